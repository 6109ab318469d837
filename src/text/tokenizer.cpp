// Tokenizers (include/slmc/text/tokenizer.hpp): validation, byte-level BPE, SentencePiece-style
// BPE and llama2.c.
#include "slmc/text/tokenizer.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <queue>
#include <unordered_map>

#include "text/pretokenize.hpp"
#include "text/tokenizer_internal.hpp"
#include "text/unicode.hpp"

namespace slmc {
namespace {

constexpr int64_t kMaxTokens = int64_t{1} << 24;
constexpr const char kSpmSpace[] = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK

Status invalid(const std::string& where, const std::string& what) {
  return make_error(ErrorCode::kInvalidFormat, where + ": " + what);
}

std::string quoted(std::string_view s) {
  std::string out = "'";
  for (char ch : s.substr(0, 64)) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  if (s.size() > 64) out += "...";
  return out + "'";
}

/// Parses "<0xNN>"; -1 when `piece` is not a byte token.
int byte_of_piece(std::string_view piece) {
  if (piece.size() != 6 || piece.compare(0, 3, "<0x") != 0 || piece[5] != '>') return -1;
  int v = 0;
  for (int k = 3; k < 5; ++k) {
    const char c = piece[static_cast<size_t>(k)];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else return -1;
  }
  return v;
}

/// Merges adjacent symbols with a priority queue: `best(left, right)` gives the merge of two
/// symbols (ok = false when none), the queue pops the best priority, leftmost first. O(m log m).
struct Symbol {
  int32_t prev, next;
  int32_t id;      ///< current token id (byte BPE) or -1
  size_t begin, end;  ///< byte range of the symbol's text (SPM)
  bool alive;
};

// ---------------------------------------------------------------------------------------------
// Byte-level BPE.

class ByteBpeTokenizer final : public Tokenizer {
 public:
  explicit ByteBpeTokenizer(TokenizerData d) : Tokenizer(std::move(d)) {}

  Status init(const std::string& where) {
    if (!text::pretokenizer_from_name(data_.pre, &pre_)) {
      return make_error(ErrorCode::kUnsupported, where + ": pre-tokenizer '" + data_.pre + "' is not supported");
    }
    ignore_merges_ = pre_ == text::PreTokenizer::kLlama3;
    // GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others for
    // U+0100 upwards in byte order.
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      byte_cp_[b] = printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + extra++);
      cp_byte_[byte_cp_[b]] = static_cast<uint8_t>(b);
    }
    lookup_.reserve(data_.tokens.size());
    for (size_t i = 0; i < data_.tokens.size(); ++i) lookup_.emplace(data_.tokens[i], static_cast<int32_t>(i));
    for (int b = 0; b < 256; ++b) {
      std::string ch;
      text::append_utf8(ch, byte_cp_[b]);
      auto it = lookup_.find(ch);
      byte_token_[b] = it == lookup_.end() ? -1 : it->second;
    }
    merges_.reserve(data_.merges.size());
    for (size_t r = 0; r < data_.merges.size(); ++r) {
      const std::string& m = data_.merges[r];
      const size_t sp = m.find(' ', 1);
      if (sp == std::string::npos || sp + 1 >= m.size()) {
        return invalid(where, "merge " + std::to_string(r) + " " + quoted(m) + " is not two tokens separated by a space");
      }
      const std::string a = m.substr(0, sp), b = m.substr(sp + 1);
      auto ia = lookup_.find(a), ib = lookup_.find(b), iab = lookup_.find(a + b);
      if (ia == lookup_.end() || ib == lookup_.end()) {
        return invalid(where, "merge " + std::to_string(r) + " " + quoted(m) + " names the unknown token " +
                                  quoted(ia == lookup_.end() ? a : b));
      }
      if (iab == lookup_.end()) {
        return invalid(where, "merge " + std::to_string(r) + " " + quoted(m) + " makes " + quoted(a + b) +
                                  ", which is not in the vocabulary");
      }
      const uint64_t key = pair_key(ia->second, ib->second);
      merges_.emplace(key, Merge{static_cast<int32_t>(r), iab->second});  // first (best) rank wins
    }
    specials_.build(data_);
    return Status::ok_status();
  }

  std::vector<int32_t> encode(std::string_view raw, const EncodeOptions& o) const override {
    const std::string text = sanitize_utf8(raw);
    std::vector<int32_t> ids;
    if (o.add_bos && data_.bos_id >= 0) ids.push_back(data_.bos_id);
    std::vector<std::pair<size_t, size_t>> pieces;
    std::unordered_map<std::string_view, std::vector<int32_t>> cache;
    std::vector<int32_t> word;
    specials_.split(
        text, o.parse_special,
        [&](size_t begin, size_t end) {
          const std::string_view part(text.data() + begin, end - begin);
          text::pretokenize(pre_, part, pieces);
          for (const auto& [b, e] : pieces) {
            const std::string_view w = part.substr(b, e - b);
            if (w.size() <= 64) {
              auto it = cache.find(w);
              if (it != cache.end()) {
                ids.insert(ids.end(), it->second.begin(), it->second.end());
                continue;
              }
            }
            encode_word(w, word);
            ids.insert(ids.end(), word.begin(), word.end());
            if (w.size() <= 64) cache.emplace(w, word);
          }
        },
        [&](int32_t id) { ids.push_back(id); });
    if (o.add_eos && data_.eos_id >= 0) ids.push_back(data_.eos_id);
    return ids;
  }

  std::string token_bytes(int32_t id) const override {
    if (id < 0 || id >= vocab_size()) return std::string();
    const std::string& t = data_.tokens[static_cast<size_t>(id)];
    if (!data_.token_types.empty()) {
      const auto type = static_cast<TokenType>(data_.token_types[static_cast<size_t>(id)]);
      if (type == TokenType::kControl || type == TokenType::kUserDefined) return t;
    }
    std::string out;
    for (size_t i = 0; i < t.size();) {
      const uint32_t cp = text::next_code_point(t, i);
      auto it = cp_byte_.find(cp);
      if (it == cp_byte_.end()) return t;  // not a byte-level token: its text as is
      out += static_cast<char>(it->second);
    }
    return out;
  }

  int32_t find(std::string_view piece) const override {
    auto it = lookup_.find(std::string(piece));
    return it == lookup_.end() ? -1 : it->second;
  }

 private:
  struct Merge {
    int32_t rank, result;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  void encode_word(std::string_view w, std::vector<int32_t>& out) const {
    out.clear();
    if (ignore_merges_ && w.size() > 1) {
      // Llama-3 (HF "ignore_merges", llama.cpp likewise): a piece that is a token as a whole is
      // that token, whatever the merges would make of it.
      std::string mapped;
      for (char ch : w) text::append_utf8(mapped, byte_cp_[static_cast<unsigned char>(ch)]);
      if (auto it = lookup_.find(mapped); it != lookup_.end()) {
        out.push_back(it->second);
        return;
      }
    }
    std::vector<Symbol> s(w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      s[i] = Symbol{static_cast<int32_t>(i) - 1, i + 1 < w.size() ? static_cast<int32_t>(i + 1) : -1,
                    byte_token_[static_cast<unsigned char>(w[i])], i, i + 1, true};
    }
    struct Cand {
      int32_t rank, left, right_id, left_id;
      bool operator<(const Cand& o) const {  // priority_queue pops the largest: lowest rank, leftmost
        return rank != o.rank ? rank > o.rank : left > o.left;
      }
    };
    std::priority_queue<Cand> q;
    auto push = [&](int32_t left) {
      if (left < 0) return;
      const int32_t right = s[static_cast<size_t>(left)].next;
      if (right < 0) return;
      const int32_t a = s[static_cast<size_t>(left)].id, b = s[static_cast<size_t>(right)].id;
      if (a < 0 || b < 0) return;
      auto it = merges_.find(pair_key(a, b));
      if (it != merges_.end()) q.push(Cand{it->second.rank, left, b, a});
    };
    for (size_t i = 0; i + 1 < w.size(); ++i) push(static_cast<int32_t>(i));
    while (!q.empty()) {
      const Cand c = q.top();
      q.pop();
      Symbol& l = s[static_cast<size_t>(c.left)];
      if (!l.alive || l.id != c.left_id || l.next < 0) continue;
      Symbol& r = s[static_cast<size_t>(l.next)];
      if (r.id != c.right_id) continue;
      l.id = merges_.at(pair_key(c.left_id, c.right_id)).result;
      l.end = r.end;
      r.alive = false;
      l.next = r.next;
      if (r.next >= 0) s[static_cast<size_t>(r.next)].prev = c.left;
      push(l.prev);
      push(c.left);
    }
    for (int32_t i = w.empty() ? -1 : 0; i >= 0; i = s[static_cast<size_t>(i)].next) {
      const Symbol& sym = s[static_cast<size_t>(i)];
      if (sym.id >= 0) {
        out.push_back(sym.id);
      } else if (data_.unk_id >= 0) {
        out.push_back(data_.unk_id);  // a byte without a token (not in GPT-2-style vocabularies)
      }
    }
  }

  text::PreTokenizer pre_ = text::PreTokenizer::kGpt2;
  bool ignore_merges_ = false;
  uint32_t byte_cp_[256] = {};
  std::unordered_map<uint32_t, uint8_t> cp_byte_;
  int32_t byte_token_[256] = {};
  std::unordered_map<std::string, int32_t> lookup_;
  std::unordered_map<uint64_t, Merge> merges_;
  text::SpecialSplitter specials_;
};

// ---------------------------------------------------------------------------------------------
// SentencePiece-style BPE (kSpm) and llama2.c (kLlama2c).

class SpmTokenizer final : public Tokenizer {
 public:
  explicit SpmTokenizer(TokenizerData d) : Tokenizer(std::move(d)) {}

  Status init(const std::string& where) {
    llama2c_ = data_.kind == TokenizerKind::kLlama2c;
    space_ = llama2c_ ? " " : kSpmSpace;
    lookup_.reserve(data_.tokens.size());
    for (size_t i = 0; i < data_.tokens.size(); ++i) lookup_.emplace(data_.tokens[i], static_cast<int32_t>(i));
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      auto it = lookup_.find(name);
      byte_token_[b] = it != lookup_.end() ? it->second : -1;
      if (byte_token_[b] < 0 && llama2c_ && 3 + b < data_.size()) byte_token_[b] = 3 + b;  // llama2.c layout
    }
    (void)where;
    specials_.build(data_);
    return Status::ok_status();
  }

  std::vector<int32_t> encode(std::string_view raw, const EncodeOptions& o) const override {
    const std::string text = sanitize_utf8(raw);
    std::vector<int32_t> ids;
    if (o.add_bos && data_.bos_id >= 0) ids.push_back(data_.bos_id);
    bool first = true;
    auto encode_part = [&](size_t begin, size_t end) {
      std::string escaped;
      // The dummy prefix goes before the text's first part only (llama.cpp adds it after BOS or a
      // special token too; for prose that starts with text both agree).
      if ((llama2c_ || data_.add_space_prefix) && first) escaped += space_;
      for (size_t i = begin; i < end; ++i) {
        if (text[i] == ' ') escaped += space_;
        else escaped += text[i];
      }
      encode_escaped(escaped, ids);
      first = false;
    };
    if (llama2c_) {
      if (!text.empty()) encode_part(0, text.size());
    } else {
      specials_.split(text, o.parse_special, encode_part, [&](int32_t id) {
        ids.push_back(id);
        first = false;
      });
    }
    if (o.add_eos && data_.eos_id >= 0) ids.push_back(data_.eos_id);
    return ids;
  }

  std::string token_bytes(int32_t id) const override {
    if (id < 0 || id >= vocab_size()) return std::string();
    const std::string& t = data_.tokens[static_cast<size_t>(id)];
    const int byte = byte_of_piece(t);
    if (byte >= 0) return std::string(1, static_cast<char>(byte));
    if (llama2c_) return t;
    std::string out;
    for (size_t i = 0; i < t.size();) {
      if (t.compare(i, 3, kSpmSpace) == 0) {
        out += ' ';
        i += 3;
      } else {
        out += t[i++];
      }
    }
    return out;
  }

  int32_t find(std::string_view piece) const override {
    auto it = lookup_.find(std::string(piece));
    return it == lookup_.end() ? -1 : it->second;
  }

 private:
  void encode_escaped(const std::string& text, std::vector<int32_t>& ids) const {
    // Symbols are UTF-8 characters; merge the adjacent pair whose concatenation is the token with
    // the highest score, leftmost first on ties.
    std::vector<Symbol> s;
    for (size_t i = 0; i < text.size();) {
      const size_t at = i;
      text::next_code_point(text, i);  // text is valid UTF-8 here
      const int32_t k = static_cast<int32_t>(s.size());
      s.push_back(Symbol{k - 1, -1, -1, at, i, true});
      if (k > 0) s[static_cast<size_t>(k - 1)].next = k;
    }
    struct Cand {
      float score;
      int32_t left;
      size_t left_len, right_len;
      bool operator<(const Cand& o) const { return score != o.score ? score < o.score : left > o.left; }
    };
    std::priority_queue<Cand> q;
    auto push = [&](int32_t left) {
      if (left < 0) return;
      const Symbol& l = s[static_cast<size_t>(left)];
      if (l.next < 0) return;
      const Symbol& r = s[static_cast<size_t>(l.next)];
      auto it = lookup_.find(text.substr(l.begin, r.end - l.begin));
      if (it == lookup_.end()) return;
      q.push(Cand{data_.scores[static_cast<size_t>(it->second)], left, l.end - l.begin, r.end - r.begin});
    };
    for (size_t i = 0; i + 1 < s.size(); ++i) push(static_cast<int32_t>(i));
    while (!q.empty()) {
      const Cand c = q.top();
      q.pop();
      Symbol& l = s[static_cast<size_t>(c.left)];
      if (!l.alive || l.next < 0 || l.end - l.begin != c.left_len) continue;
      Symbol& r = s[static_cast<size_t>(l.next)];
      if (r.end - r.begin != c.right_len) continue;
      l.end = r.end;
      r.alive = false;
      l.next = r.next;
      if (r.next >= 0) s[static_cast<size_t>(r.next)].prev = c.left;
      push(l.prev);
      push(c.left);
    }
    for (int32_t i = s.empty() ? -1 : 0; i >= 0; i = s[static_cast<size_t>(i)].next) {
      const Symbol& sym = s[static_cast<size_t>(i)];
      auto it = lookup_.find(text.substr(sym.begin, sym.end - sym.begin));
      if (it != lookup_.end()) {
        ids.push_back(it->second);
        continue;
      }
      for (size_t b = sym.begin; b < sym.end; ++b) {
        const int32_t t = byte_token_[static_cast<unsigned char>(text[b])];
        if (t >= 0) ids.push_back(t);
        else if (data_.unk_id >= 0) ids.push_back(data_.unk_id);
      }
    }
  }

  bool llama2c_ = false;
  std::string space_;
  int32_t byte_token_[256] = {};
  std::unordered_map<std::string, int32_t> lookup_;
  text::SpecialSplitter specials_;
};

}  // namespace

std::string_view tokenizer_kind_name(TokenizerKind kind) noexcept {
  switch (kind) {
    case TokenizerKind::kNone: return "none";
    case TokenizerKind::kLlama2c: return "llama2c";
    case TokenizerKind::kSpm: return "spm";
    case TokenizerKind::kByteBpe: return "byte_bpe";
    case TokenizerKind::kWordPiece: return "wordpiece";
  }
  return "unknown";
}

namespace text {
void add_end_of_generation_by_name(TokenizerData& d) {
  for (size_t i = 0; i < d.tokens.size(); ++i) {
    const std::string& t = d.tokens[i];
    if (t == "<|im_end|>" || t == "<|endoftext|>" || t == "<|eot_id|>" || t == "<|end_of_text|>" ||
        t == "<|eom_id|>" || t == "</s>" || t == "<end_of_turn>") {
      if (d.token_types.empty() || d.token_types[i] == static_cast<uint8_t>(TokenType::kControl)) {
        d.eog_ids.push_back(static_cast<int32_t>(i));
      }
    }
  }
}
}  // namespace text

std::vector<std::string> pretokenizer_names() { return {"gpt2", "smollm", "llama3", "llama-bpe", "qwen2", "default"}; }

Status TokenizerData::validate(const std::string& where) const {
  const std::string w = where + ": tokenizer";
  if (kind == TokenizerKind::kNone) return invalid(w, "has no kind");
  if (static_cast<uint8_t>(kind) > static_cast<uint8_t>(TokenizerKind::kWordPiece)) {
    return invalid(w, "kind " + std::to_string(static_cast<int>(kind)) + " is unknown");
  }
  if (tokens.empty()) return invalid(w, "has no tokens");
  if (size() > kMaxTokens) return invalid(w, "has " + std::to_string(size()) + " tokens (at most 2^24)");
  if (!scores.empty() && static_cast<int64_t>(scores.size()) != size()) {
    return invalid(w, "has " + std::to_string(scores.size()) + " scores for " + std::to_string(size()) + " tokens");
  }
  if (!token_types.empty() && static_cast<int64_t>(token_types.size()) != size()) {
    return invalid(w, "has " + std::to_string(token_types.size()) + " token types for " + std::to_string(size()) +
                          " tokens");
  }
  for (size_t i = 0; i < scores.size(); ++i) {
    if (!std::isfinite(scores[i])) return invalid(w, "token " + std::to_string(i) + " has a non-finite score");
  }
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (sanitize_utf8(tokens[i]).size() != tokens[i].size() || tokens[i].find('\0') != std::string::npos) {
      return invalid(w, "token " + std::to_string(i) + " is not valid UTF-8 text");
    }
  }
  for (size_t i = 0; i < token_types.size(); ++i) {
    if (token_types[i] > static_cast<uint8_t>(TokenType::kByte)) {
      return invalid(w, "token " + std::to_string(i) + " has the unknown type " + std::to_string(token_types[i]));
    }
  }
  const std::pair<const char*, int32_t> ids[] = {{"BOS", bos_id}, {"EOS", eos_id}, {"UNK", unk_id}, {"PAD", pad_id}};
  for (const auto& [name, id] : ids) {
    if (id < -1 || id >= size()) {
      return invalid(w, std::string(name) + " id " + std::to_string(id) + " is outside the vocabulary [0, " +
                            std::to_string(size()) + ")");
    }
  }
  for (int32_t id : eog_ids) {
    if (id < 0 || id >= size()) {
      return invalid(w, "end-of-generation id " + std::to_string(id) + " is outside the vocabulary [0, " +
                            std::to_string(size()) + ")");
    }
  }
  if ((kind == TokenizerKind::kSpm || kind == TokenizerKind::kLlama2c) && scores.empty()) {
    return invalid(w, "of kind " + std::string(tokenizer_kind_name(kind)) + " needs a score per token");
  }
  if (kind == TokenizerKind::kByteBpe) {
    text::PreTokenizer p;
    if (!text::pretokenizer_from_name(pre, &p)) {
      std::string names;
      for (const auto& n : pretokenizer_names()) names += (names.empty() ? "" : ", ") + n;
      return make_error(ErrorCode::kUnsupported,
                        w + ": pre-tokenizer '" + pre + "' is not supported (supported: " + names + ")");
    }
  } else if (kind == TokenizerKind::kWordPiece) {
    SLMC_RETURN_IF_ERROR(text::validate_wordpiece(*this, w));
  } else if (!merges.empty()) {
    return invalid(w, "of kind " + std::string(tokenizer_kind_name(kind)) + " has merges");
  }
  return Status::ok_status();
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::create(TokenizerData data, const std::string& where) {
  SLMC_RETURN_IF_ERROR(data.validate(where));
  std::sort(data.eog_ids.begin(), data.eog_ids.end());
  data.eog_ids.erase(std::unique(data.eog_ids.begin(), data.eog_ids.end()), data.eog_ids.end());
  if (data.kind == TokenizerKind::kWordPiece) return text::make_wordpiece_tokenizer(std::move(data), where + ": tokenizer");
  if (data.kind == TokenizerKind::kByteBpe) {
    auto t = std::make_unique<ByteBpeTokenizer>(std::move(data));
    SLMC_RETURN_IF_ERROR(t->init(where + ": tokenizer"));
    return std::unique_ptr<Tokenizer>(std::move(t));
  }
  auto t = std::make_unique<SpmTokenizer>(std::move(data));
  SLMC_RETURN_IF_ERROR(t->init(where + ": tokenizer"));
  return std::unique_ptr<Tokenizer>(std::move(t));
}

bool Tokenizer::is_end_of_generation(int32_t id) const noexcept {
  return id >= 0 && (id == data_.eos_id || std::binary_search(data_.eog_ids.begin(), data_.eog_ids.end(), id));
}

std::string Tokenizer::decode(int32_t prev, int32_t id) const {
  std::string piece = token_bytes(id);
  if (data_.kind == TokenizerKind::kWordPiece) {
    // HF's WordPiece decoder: pieces joined by spaces, a "##" piece glued to the one before.
    if (piece.compare(0, 2, text::kContinuingPrefix) == 0) return piece.substr(2);
    return prev < 0 ? piece : " " + piece;
  }
  const bool prefix = data_.kind == TokenizerKind::kLlama2c || (data_.kind == TokenizerKind::kSpm && data_.add_space_prefix);
  if (prefix && (prev < 0 || prev == data_.bos_id) && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
  return piece;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  int32_t prev = -1;
  for (int32_t id : ids) {
    out += decode(prev, id);
    prev = id;
  }
  return out;
}

std::string sanitize_utf8(std::string_view text) {
  bool valid = true;
  for (size_t i = 0; i < text.size() && valid;) {
    const size_t at = i;
    const uint32_t cp = text::next_code_point(text, i);
    valid = cp != 0xFFFD || (i - at == 3 && text.compare(at, 3, "\xEF\xBF\xBD") == 0);
  }
  if (valid) return std::string(text);
  std::string out;
  out.reserve(text.size() + 16);
  for (size_t k = 0; k < text.size();) text::append_utf8(out, text::next_code_point(text, k));
  return out;
}

// ---------------------------------------------------------------------------------------------
// llama2.c tokenizer.bin: int32 max_token_length, then per token {float32 score, int32 length, bytes}.

Result<std::unique_ptr<Tokenizer>> Tokenizer::parse(const uint8_t* data, size_t size, const std::string& name,
                                                    int64_t vocab_size) {
  auto err = [&](const std::string& what) { return make_error(ErrorCode::kInvalidFormat, name + ": " + what); };
  size_t off = 0;
  int32_t max_len = 0;
  if (size < 4) return err("bad max_token_length header");
  std::memcpy(&max_len, data, 4);
  off = 4;
  if (max_len <= 0 || max_len > 4096) return err("bad max_token_length header");
  TokenizerData d;
  d.kind = TokenizerKind::kLlama2c;
  while (off < size) {
    const size_t index = d.tokens.size();
    float score = 0;
    int32_t len = 0;
    if (size - off < 8) return err("token " + std::to_string(index) + ": truncated record");
    std::memcpy(&score, data + off, 4);
    std::memcpy(&len, data + off + 4, 4);
    off += 8;
    if (len < 0 || len > max_len || static_cast<size_t>(len) > size - off) {
      return err("token " + std::to_string(index) + ": length " + std::to_string(len) + " out of range");
    }
    if (!std::isfinite(score)) return err("token " + std::to_string(index) + ": non-finite score");
    d.tokens.emplace_back(reinterpret_cast<const char*>(data + off), static_cast<size_t>(len));
    d.scores.push_back(score);
    off += static_cast<size_t>(len);
    if (d.tokens.size() > static_cast<size_t>(kMaxTokens)) return err("more than 2^24 tokens");
  }
  if (d.tokens.size() < 259) return err("fewer than 259 tokens (needs <unk>, BOS, EOS and 256 byte tokens)");
  if (vocab_size > 0 && static_cast<int64_t>(d.tokens.size()) != vocab_size) {
    return err("has " + std::to_string(d.tokens.size()) + " tokens, the model's vocabulary has " +
               std::to_string(vocab_size));
  }
  d.unk_id = 0;
  d.bos_id = 1;
  d.eos_id = 2;
  d.add_bos = true;
  d.add_space_prefix = true;
  d.token_types.assign(d.tokens.size(), static_cast<uint8_t>(TokenType::kNormal));
  d.token_types[0] = static_cast<uint8_t>(TokenType::kUnknown);
  d.token_types[1] = d.token_types[2] = static_cast<uint8_t>(TokenType::kControl);
  for (size_t i = 3; i < 259; ++i) d.token_types[i] = static_cast<uint8_t>(TokenType::kByte);
  return create(std::move(d), name);
}

}  // namespace slmc
