// The tokenizers moved to slmc/text/tokenizer.hpp (one interface for llama2.c, SentencePiece-style
// and byte-level BPE); this header stays for existing includes.
#pragma once

#include "slmc/text/tokenizer.hpp"
