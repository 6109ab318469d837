// Helpers shared by the tokenizer readers (GGUF, Hugging Face).
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "slmc/text/tokenizer.hpp"

namespace slmc::text {

/// Adds to eog_ids the control tokens that end a turn in the chat formats slmc knows
/// (<|im_end|>, <|endoftext|>, <|eot_id|>, <|end_of_text|>, <|eom_id|>, </s>, <end_of_turn>), as
/// llama.cpp does by text.
void add_end_of_generation_by_name(TokenizerData& d);

/// WordPiece parameters every BERT tokenizer.json uses; read_hf_tokenizer refuses other values.
inline constexpr const char kContinuingPrefix[] = "##";
inline constexpr size_t kMaxInputCharsPerWord = 100;

/// TokenizerData::validate's WordPiece part: pre "bert", a valid normalizer string, an UNK id.
Status validate_wordpiece(const TokenizerData& d, const std::string& where);
/// The WordPiece tokenizer (src/text/wordpiece.cpp) of validated data.
Result<std::unique_ptr<Tokenizer>> make_wordpiece_tokenizer(TokenizerData data, const std::string& where);

/// Splits text at special tokens: control tokens when parse_special, user-defined ones always.
/// Longest match wins at a position; the scan is linear in the text times the few candidates that
/// share its first byte.
class SpecialSplitter {
 public:
  void build(const TokenizerData& d) {
    for (size_t id = 0; id < d.tokens.size(); ++id) {
      const auto type = d.token_types.empty() ? TokenType::kNormal : static_cast<TokenType>(d.token_types[id]);
      if ((type != TokenType::kControl && type != TokenType::kUserDefined) || d.tokens[id].empty()) continue;
      auto& bucket = by_first_[static_cast<unsigned char>(d.tokens[id][0])];
      bucket.push_back({static_cast<int32_t>(id), type == TokenType::kControl});
    }
    for (auto& bucket : by_first_) {
      std::stable_sort(bucket.begin(), bucket.end(), [&](const Entry& a, const Entry& b) {
        return d.tokens[static_cast<size_t>(a.id)].size() > d.tokens[static_cast<size_t>(b.id)].size();
      });
    }
    data_ = &d;
  }
  /// Calls text_fn(begin, end) for plain text and special_fn(id) for each special token, in order.
  template <typename TextFn, typename SpecialFn>
  void split(std::string_view text, bool parse_special, TextFn&& text_fn, SpecialFn&& special_fn) const {
    size_t start = 0;
    for (size_t i = 0; i < text.size();) {
      const auto& bucket = by_first_[static_cast<unsigned char>(text[i])];
      int32_t hit = -1;
      size_t len = 0;
      for (const Entry& e : bucket) {
        if (e.control && !parse_special) continue;
        const std::string& t = data_->tokens[static_cast<size_t>(e.id)];
        if (text.compare(i, t.size(), t) == 0) {
          hit = e.id;
          len = t.size();
          break;
        }
      }
      if (hit < 0) {
        ++i;
        continue;
      }
      if (i > start) text_fn(start, i);
      special_fn(hit);
      i += len;
      start = i;
    }
    if (start < text.size()) text_fn(start, text.size());
  }

 private:
  struct Entry {
    int32_t id;
    bool control;
  };
  std::vector<Entry> by_first_[256];
  const TokenizerData* data_ = nullptr;
};


}  // namespace slmc::text
