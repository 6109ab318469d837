#include "slmc/runtime/tokenizer.hpp"

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

namespace slmc {

Result<std::unique_ptr<Tokenizer>> Tokenizer::parse(const uint8_t* data, size_t size, const std::string& name,
                                                    int64_t vocab_size) {
  auto err = [&](const std::string& what) {
    return make_error(ErrorCode::kInvalidFormat, name + ": " + what);
  };
  size_t off = 0;
  auto read_i32 = [&](int32_t* v) {
    if (size - off < 4) return false;
    std::memcpy(v, data + off, 4);
    off += 4;
    return true;
  };
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  if (!read_i32(&t->max_token_length_) || t->max_token_length_ <= 0 || t->max_token_length_ > 4096) {
    return err("bad max_token_length header");
  }
  while (off < size) {
    const size_t index = t->pieces_.size();
    float score = 0;
    int32_t len = 0;
    if (size - off < 8) return err("token " + std::to_string(index) + ": truncated record");
    std::memcpy(&score, data + off, 4);
    off += 4;
    std::memcpy(&len, data + off, 4);
    off += 4;
    if (len < 0 || len > t->max_token_length_ || static_cast<size_t>(len) > size - off) {
      return err("token " + std::to_string(index) + ": length " + std::to_string(len) + " out of range");
    }
    if (!std::isfinite(score)) return err("token " + std::to_string(index) + ": non-finite score");
    t->pieces_.emplace_back(reinterpret_cast<const char*>(data + off), static_cast<size_t>(len));
    t->scores_.push_back(score);
    off += static_cast<size_t>(len);
    if (t->pieces_.size() > (1u << 24)) return err("more than 2^24 tokens");
  }
  if (t->pieces_.size() < 259) return err("fewer than 259 tokens (needs <unk>, BOS, EOS and 256 byte tokens)");
  if (vocab_size > 0 && static_cast<int64_t>(t->pieces_.size()) != vocab_size) {
    return err("has " + std::to_string(t->pieces_.size()) + " tokens, the model's vocabulary has " +
               std::to_string(vocab_size));
  }
  for (size_t i = 0; i < t->pieces_.size(); ++i) {
    t->lookup_.emplace(t->pieces_[i], static_cast<int32_t>(i));  // first occurrence wins
  }
  return t;
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::load(const std::string& path, int64_t vocab_size) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(ErrorCode::kIoError, path + ": cannot open tokenizer");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse(bytes.data(), bytes.size(), path, vocab_size);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool bos, bool eos) const {
  std::vector<int32_t> ids;
  if (bos) ids.push_back(kBos);
  if (!text.empty()) {
    auto space = lookup_.find(" ");
    if (space != lookup_.end()) ids.push_back(space->second);
  }
  // Code points (a lead byte and its continuation bytes, at most 4), or their bytes as fallback.
  size_t i = 0;
  while (i < text.size()) {
    size_t len = 1;
    while (i + len < text.size() && len < 4 && (static_cast<unsigned char>(text[i + len]) & 0xC0) == 0x80) ++len;
    auto it = lookup_.find(std::string(text.substr(i, len)));
    if (it != lookup_.end()) {
      ids.push_back(it->second);
    } else {
      for (size_t b = 0; b < len; ++b) ids.push_back(static_cast<int32_t>(static_cast<unsigned char>(text[i + b])) + 3);
    }
    i += len;
  }
  // Merge the best-scoring adjacent pair until none is a token. Leftmost wins ties.
  const size_t first = bos ? 1 : 0;
  std::string merged;
  while (true) {
    float best_score = -1e30f;
    int32_t best_id = -1;
    size_t best_at = 0;
    for (size_t k = first; k + 1 < ids.size(); ++k) {
      merged = pieces_[static_cast<size_t>(ids[k])] + pieces_[static_cast<size_t>(ids[k + 1])];
      auto it = lookup_.find(merged);
      if (it != lookup_.end() && scores_[static_cast<size_t>(it->second)] > best_score) {
        best_score = scores_[static_cast<size_t>(it->second)];
        best_id = it->second;
        best_at = k;
      }
    }
    if (best_id < 0) break;
    ids[best_at] = best_id;
    ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(best_at + 1));
  }
  if (eos) ids.push_back(kEos);
  return ids;
}

std::string Tokenizer::decode(int32_t prev, int32_t id) const {
  if (id < 0 || id >= vocab_size()) return std::string();
  std::string piece = pieces_[static_cast<size_t>(id)];
  if (prev == kBos && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
  unsigned byte = 0;
  if (piece.size() == 6 && std::sscanf(piece.c_str(), "<0x%02X>", &byte) == 1) return std::string(1, static_cast<char>(byte));
  return piece;
}

}  // namespace slmc
