// The llama2.c tokenizer file format (tokenizer.bin / tok512.bin): int32 max_token_length, then
// per token {float32 score, int32 length, bytes}. SentencePiece-style BPE: encode splits UTF-8
// text into code points (unknown ones fall back to byte tokens <0x00>..<0xFF> at ids 3..258),
// then repeatedly merges the adjacent pair whose concatenation is a token with the highest score.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "slmc/status.hpp"

namespace slmc {

class Tokenizer {
 public:
  static constexpr int32_t kBos = 1;
  static constexpr int32_t kEos = 2;

  /// Reads and validates a llama2.c tokenizer file. `vocab_size` > 0 checks the token count.
  static Result<std::unique_ptr<Tokenizer>> load(const std::string& path, int64_t vocab_size = 0);
  /// Parses the bytes of such a file; `name` is used in errors.
  static Result<std::unique_ptr<Tokenizer>> parse(const uint8_t* data, size_t size, const std::string& name,
                                                  int64_t vocab_size = 0);

  int64_t vocab_size() const noexcept { return static_cast<int64_t>(pieces_.size()); }
  const std::string& piece(int32_t id) const { return pieces_[static_cast<size_t>(id)]; }

  /// Token ids of `text`: optional BOS, the dummy-prefix space (as llama2.c and SentencePiece add),
  /// the BPE merges, optional EOS.
  std::vector<int32_t> encode(std::string_view text, bool bos, bool eos) const;
  /// The text of token `id` following token `prev` (strips the leading space after BOS; byte
  /// tokens <0xNN> become that byte).
  std::string decode(int32_t prev, int32_t id) const;

 private:
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int32_t> lookup_;
  int32_t max_token_length_ = 0;
};

}  // namespace slmc
