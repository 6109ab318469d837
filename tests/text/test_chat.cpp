// Chat prompts from stored templates (slmc/text/chat.hpp). The SmolLM2 template against Jinja2's
// rendering is tested in tests/real/real_tests.py.
#include <catch2/catch.hpp>

#include "slmc/text/chat.hpp"

using namespace slmc;

TEST_CASE("chat templates are recognized and rendered", "[text][chat]") {
  // Qwen2-style ChatML with a default system message written with a Jinja escape.
  auto qwen = parse_chat_template(
      "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
      "{% endif %}{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
      "{% endfor %}",
      "q");
  REQUIRE(qwen.ok());
  CHECK(qwen->format == ChatFormat::kChatMl);
  CHECK(qwen->default_system == "You are a helpful assistant.");
  CHECK(render_chat(*qwen, {{"user", "Hi"}}) ==
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n");
  CHECK(render_chat(*qwen, {{"system", "S"}, {"user", "Hi"}}) ==
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  // ChatML whose system text is computed: no default is guessed.
  auto computed = parse_chat_template("{{ '<|im_start|>system\\n' + sys + '<|im_end|>' }}<|im_start|>", "c");
  REQUIRE(computed.ok());
  CHECK(computed->default_system.empty());
  auto llama3 = parse_chat_template(
      "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] + '<|eot_id|>' }}", "l");
  REQUIRE(llama3.ok());
  CHECK(llama3->format == ChatFormat::kLlama3);
  CHECK(render_chat(*llama3, {{"system", "S"}, {"user", "Hi"}}) ==
        "<|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi"
        "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  auto other = parse_chat_template("[INST] {{ m }} [/INST]", "mistral.gguf");
  CHECK(other.status().code() == ErrorCode::kUnsupported);
  CHECK(other.status().message().find("mistral.gguf") != std::string::npos);
  CHECK(parse_chat_template("", "x").status().code() == ErrorCode::kNotFound);
}
