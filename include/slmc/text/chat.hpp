// Chat prompts from a model's stored chat template, for the two template families slmc knows by
// their text (no Jinja engine): ChatML (<|im_start|>role\n...<|im_end|>\n: SmolLM2, Qwen2) and
// Llama-3's headers (<|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>). Any other
// template is kUnsupported.
#pragma once

#include <string>
#include <vector>

#include "slmc/status.hpp"

namespace slmc {

enum class ChatFormat { kChatMl, kLlama3 };

struct ChatMessage {
  std::string role;  ///< "system", "user", "assistant"
  std::string content;
};

struct ChatTemplate {
  ChatFormat format = ChatFormat::kChatMl;
  /// The system message the template inserts when the conversation has none (ChatML templates
  /// such as SmolLM2's and Qwen2's carry one); empty: none.
  std::string default_system;
};

/// Recognizes a stored template (TokenizerData::chat_template). `where` prefixes errors.
Result<ChatTemplate> parse_chat_template(const std::string& template_text, const std::string& where);

/// The prompt text of `messages` followed by the assistant's header (add_generation_prompt), as
/// the template renders it; special tokens appear as text (encode with parse_special). BOS is not
/// included: the tokenizer's add-BOS flag decides it.
std::string render_chat(const ChatTemplate& t, const std::vector<ChatMessage>& messages);

}  // namespace slmc
