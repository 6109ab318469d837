// Helpers shared by the tokenizer readers (GGUF, Hugging Face).
#pragma once

#include "slmc/text/tokenizer.hpp"

namespace slmc::text {

/// Adds to eog_ids the control tokens that end a turn in the chat formats slmc knows
/// (<|im_end|>, <|endoftext|>, <|eot_id|>, <|end_of_text|>, <|eom_id|>, </s>, <end_of_turn>), as
/// llama.cpp does by text.
void add_end_of_generation_by_name(TokenizerData& d);

}  // namespace slmc::text
