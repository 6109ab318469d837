// Chat prompts (include/slmc/text/chat.hpp).
#include "slmc/text/chat.hpp"

namespace slmc {

Result<ChatTemplate> parse_chat_template(const std::string& text, const std::string& where) {
  ChatTemplate t;
  if (text.empty()) {
    return make_error(ErrorCode::kNotFound, where + ": the model has no chat template; --chat needs one");
  }
  if (text.find("<|start_header_id|>") != std::string::npos && text.find("<|eot_id|>") != std::string::npos) {
    t.format = ChatFormat::kLlama3;
    return t;
  }
  if (text.find("<|im_start|>") != std::string::npos && text.find("<|im_end|>") != std::string::npos) {
    t.format = ChatFormat::kChatMl;
    // A default system message is written literally inside the template:
    // '<|im_start|>system' NEWLINE TEXT '<|im_end|>', the newline as a character or as the Jinja
    // escape \n.
    for (const char* open : {"<|im_start|>system\n", "<|im_start|>system\\n"}) {
      const size_t at = text.find(open);
      if (at == std::string::npos) continue;
      const size_t begin = at + std::string(open).size();
      const size_t end = text.find("<|im_end|>", begin);
      if (end != std::string::npos && text.find_first_of("{}'\"+\\", begin) >= end) {
        t.default_system = text.substr(begin, end - begin);
        break;
      }
    }
    return t;
  }
  return make_error(ErrorCode::kUnsupported,
                    where + ": the chat template is neither ChatML (<|im_start|>) nor Llama-3 headers "
                            "(<|start_header_id|>); --chat supports those two (write the prompt by hand instead)");
}

std::string render_chat(const ChatTemplate& t, const std::vector<ChatMessage>& messages) {
  std::string out;
  const bool has_system = !messages.empty() && messages.front().role == "system";
  if (t.format == ChatFormat::kChatMl) {
    if (!has_system && !t.default_system.empty()) out += "<|im_start|>system\n" + t.default_system + "<|im_end|>\n";
    for (const ChatMessage& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    out += "<|im_start|>assistant\n";
  } else {
    for (const ChatMessage& m : messages) {
      out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + m.content + "<|eot_id|>";
    }
    out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  }
  return out;
}

}  // namespace slmc
