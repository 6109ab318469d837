// libFuzzer target: the tokenizers on arbitrary bytes. A byte-level BPE vocabulary (256 byte
// characters and a few merges) under every pre-tokenizer, and a SentencePiece-style one with byte
// fallback, encode the input with special tokens parsed and not; properties checked: ids are in
// range, and byte-level BPE decodes back to the input with invalid UTF-8 replaced (U+FFFD).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "slmc/text/tokenizer.hpp"

namespace {

std::string byte_char(unsigned b) {
  int extra = 0;
  uint32_t cp = 0;
  for (unsigned i = 0; i <= b; ++i) {
    const bool printable = (i >= 0x21 && i <= 0x7E) || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE && i <= 0xFF);
    cp = printable ? i : 256 + extra++;
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

std::vector<std::unique_ptr<slmc::Tokenizer>> make_tokenizers() {
  std::vector<std::unique_ptr<slmc::Tokenizer>> out;
  for (const char* pre : {"gpt2", "smollm", "llama3", "qwen2", "default"}) {
    slmc::TokenizerData d;
    d.kind = slmc::TokenizerKind::kByteBpe;
    d.pre = pre;
    d.tokens.push_back("<|im_end|>");
    d.token_types.push_back(3);
    for (unsigned b = 0; b < 256; ++b) {
      d.tokens.push_back(byte_char(b));
      d.token_types.push_back(1);
    }
    const std::string space = byte_char(' ');
    for (const std::string& m : std::vector<std::string>{"t h", "th e", space + " t", space + "t h", space + "th e", "1 2", "a b"}) {
      const size_t sp = m.find(' ');
      d.tokens.push_back(m.substr(0, sp) + m.substr(sp + 1));
      d.token_types.push_back(1);
      d.merges.push_back(m);
    }
    d.eos_id = 0;
    auto t = slmc::Tokenizer::create(d);
    if (!t.ok()) __builtin_trap();
    out.push_back(std::move(*t));
  }
  slmc::TokenizerData s;
  s.kind = slmc::TokenizerKind::kSpm;
  s.add_space_prefix = true;
  s.tokens = {"<unk>", "<s>", "</s>"};
  s.token_types = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    s.tokens.push_back(name);
    s.token_types.push_back(6);
  }
  for (const char* p : {"\xE2\x96\x81", "t", "h", "e", "th", "the", "\xE2\x96\x81the"}) {
    s.tokens.push_back(p);
    s.token_types.push_back(1);
  }
  s.scores.assign(s.tokens.size(), 0.0f);
  for (size_t i = 259; i < s.tokens.size(); ++i) s.scores[i] = -static_cast<float>(i);
  s.unk_id = 0;
  s.bos_id = 1;
  s.eos_id = 2;
  auto t = slmc::Tokenizer::create(s);
  if (!t.ok()) __builtin_trap();
  out.push_back(std::move(*t));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto tokenizers = make_tokenizers();
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::string clean = slmc::sanitize_utf8(text);
  for (const auto& t : tokenizers) {
    for (bool special : {false, true}) {
      slmc::EncodeOptions o;
      o.parse_special = special;
      const std::vector<int32_t> ids = t->encode(text, o);
      for (int32_t id : ids) {
        if (id < 0 || id >= t->vocab_size()) __builtin_trap();
      }
      if (t->kind() == slmc::TokenizerKind::kByteBpe && t->decode(ids) != clean) __builtin_trap();
    }
  }
  return 0;
}
