// WordPiece (BERT) tokenizer: Hugging Face's BertNormalizer, BertPreTokenizer and WordPiece model
// (docs/TOKENIZERS.md "WordPiece"), over the tables of src/text/unicode_bert.inc.
#include <algorithm>
#include <iterator>
#include <unordered_map>

#include "text/tokenizer_internal.hpp"
#include "text/unicode.hpp"

namespace slmc {
namespace {

struct CodeRange {
  uint32_t first, last;
};
struct ClassRange {
  uint32_t first, last;
  uint8_t ccc;
};
struct Mapping {
  uint32_t cp;
  uint32_t offset;
  uint32_t length;
};
#include "text/unicode_bert.inc"

template <typename Range, size_t N>
const Range* find_range(const Range (&table)[N], uint32_t cp) {
  const Range* it = std::upper_bound(std::begin(table), std::end(table), cp,
                                     [](uint32_t v, const Range& r) { return v < r.first; });
  if (it == std::begin(table)) return nullptr;
  --it;
  return cp <= it->last ? it : nullptr;
}
template <size_t N>
const Mapping* find_mapping(const Mapping (&table)[N], uint32_t cp) {
  const Mapping* it = std::lower_bound(std::begin(table), std::end(table), cp,
                                       [](const Mapping& m, uint32_t v) { return m.cp < v; });
  return it != std::end(table) && it->cp == cp ? it : nullptr;
}

/// HF's is_control: category Other (Cc Cf Cs Co Cn) except tab, newline and carriage return.
bool is_other(uint32_t cp) { return cp != '\t' && cp != '\n' && cp != '\r' && find_range(kOtherRanges, cp); }
bool is_whitespace(uint32_t cp) { return (text::unicode_flags(cp) & text::kWhitespace) != 0; }
bool is_nonspacing_mark(uint32_t cp) { return find_range(kNonspacingMarkRanges, cp) != nullptr; }
uint8_t combining_class(uint32_t cp) {
  const ClassRange* r = find_range(kCombiningClassRanges, cp);
  return r ? r->ccc : 0;
}
/// BertPreTokenizer's punctuation: ASCII punctuation (which includes $+<=>^`|~) or \p{P}.
bool is_punctuation(uint32_t cp) {
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)) {
    return true;
  }
  return (text::unicode_flags(cp) & text::kPunctuation) != 0;
}
/// The CJK Unified Ideograph blocks BERT surrounds with spaces (the original BERT's list).
bool is_chinese_char(uint32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

/// Appends the canonical decomposition of cp (Hangul syllables by formula).
void decompose(uint32_t cp, std::vector<uint32_t>& out) {
  constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7, kTCount = 28, kNCount = 588;
  if (cp >= kSBase && cp < kSBase + 11172) {
    const uint32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out.push_back(kTBase + s % kTCount);
    return;
  }
  if (const Mapping* m = find_mapping(kDecompositions, cp)) {
    out.insert(out.end(), kDecompositionPool + m->offset, kDecompositionPool + m->offset + m->length);
  } else {
    out.push_back(cp);
  }
}

/// NFD: decomposition, then each run of non-starters sorted by combining class (stable).
void nfd(std::vector<uint32_t>& cps) {
  std::vector<uint32_t> out;
  out.reserve(cps.size());
  for (uint32_t cp : cps) decompose(cp, out);
  for (size_t i = 0; i < out.size();) {
    if (combining_class(out[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < out.size() && combining_class(out[j]) != 0) ++j;
    std::stable_sort(out.begin() + static_cast<std::ptrdiff_t>(i), out.begin() + static_cast<std::ptrdiff_t>(j),
                     [](uint32_t a, uint32_t b) { return combining_class(a) < combining_class(b); });
    i = j;
  }
  cps.swap(out);
}

struct BertNormalizer {
  bool clean_text = false, handle_chinese_chars = false, strip_accents = false, lowercase = false;
};

/// Parses TokenizerData::normalizer for WordPiece: "bert:" and a comma-separated list of the
/// options that are on (clean_text, handle_chinese_chars, strip_accents, lowercase), or "bert".
bool parse_normalizer(const std::string& s, BertNormalizer* out) {
  BertNormalizer n;
  if (s.compare(0, 4, "bert") != 0) return false;
  if (s.size() > 4) {
    if (s[4] != ':') return false;
    size_t start = 5;
    while (start <= s.size()) {
      size_t comma = s.find(',', start);
      if (comma == std::string::npos) comma = s.size();
      const std::string flag = s.substr(start, comma - start);
      if (flag == "clean_text") n.clean_text = true;
      else if (flag == "handle_chinese_chars") n.handle_chinese_chars = true;
      else if (flag == "strip_accents") n.strip_accents = true;
      else if (flag == "lowercase") n.lowercase = true;
      else return false;
      start = comma + 1;
    }
  }
  *out = n;
  return true;
}

class WordPieceTokenizer final : public Tokenizer {
 public:
  explicit WordPieceTokenizer(TokenizerData data) : Tokenizer(std::move(data)) {}

  Status init(const std::string& where) {
    if (!parse_normalizer(data_.normalizer, &norm_)) {
      return make_error(ErrorCode::kInvalidFormat, where + ": WordPiece normalizer '" + data_.normalizer + "' is not valid");
    }
    lookup_.reserve(data_.tokens.size());
    for (size_t i = 0; i < data_.tokens.size(); ++i) lookup_.emplace(data_.tokens[i], static_cast<int32_t>(i));
    specials_.build(data_);
    return Status::ok_status();
  }

  std::vector<int32_t> encode(std::string_view raw, const EncodeOptions& options) const override {
    const std::string text = sanitize_utf8(raw);
    std::vector<int32_t> ids;
    if (options.add_bos && data_.bos_id >= 0) ids.push_back(data_.bos_id);
    specials_.split(
        text, options.parse_special, [&](size_t b, size_t e) { encode_plain(std::string_view(text).substr(b, e - b), ids); },
        [&](int32_t id) { ids.push_back(id); });
    if (options.add_eos && data_.eos_id >= 0) ids.push_back(data_.eos_id);
    return ids;
  }

  std::string token_bytes(int32_t id) const override {
    if (id < 0 || id >= vocab_size()) return std::string();
    return data_.tokens[static_cast<size_t>(id)];
  }

  int32_t find(std::string_view piece) const override {
    auto it = lookup_.find(std::string(piece));
    return it == lookup_.end() ? -1 : it->second;
  }

 private:
  /// Normalizes and pre-tokenizes `text`, then WordPiece on every word.
  void encode_plain(std::string_view text, std::vector<int32_t>& ids) const {
    std::vector<uint32_t> cps;
    cps.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
      const uint32_t cp = text::next_code_point(text, i);
      if (norm_.clean_text) {
        if (cp == 0 || cp == 0xFFFD || is_other(cp)) continue;
        if (cp == '\t' || cp == '\n' || cp == '\r' || is_whitespace(cp)) {
          cps.push_back(' ');
          continue;
        }
      }
      if (norm_.handle_chinese_chars && is_chinese_char(cp)) {
        cps.push_back(' ');
        cps.push_back(cp);
        cps.push_back(' ');
        continue;
      }
      cps.push_back(cp);
    }
    if (norm_.strip_accents) {
      nfd(cps);
      cps.erase(std::remove_if(cps.begin(), cps.end(), is_nonspacing_mark), cps.end());
    }
    if (norm_.lowercase) {
      std::vector<uint32_t> lower;
      lower.reserve(cps.size());
      for (uint32_t cp : cps) {
        if (const Mapping* m = find_mapping(kLowercase, cp)) {
          lower.insert(lower.end(), kLowercasePool + m->offset, kLowercasePool + m->offset + m->length);
        } else {
          lower.push_back(cp);
        }
      }
      cps.swap(lower);
    }
    // BertPreTokenizer: whitespace separates words (and is dropped); each punctuation character
    // is a word of its own.
    std::vector<uint32_t> word;
    for (uint32_t cp : cps) {
      if (is_whitespace(cp) || cp == '\t' || cp == '\n' || cp == '\r') {
        word_piece(word, ids);
      } else if (is_punctuation(cp)) {
        word_piece(word, ids);
        word.push_back(cp);
        word_piece(word, ids);
      } else {
        word.push_back(cp);
      }
    }
    word_piece(word, ids);
  }

  /// Greedy longest-match-first WordPiece of one word (cleared after): pieces after the first
  /// carry "##"; a word longer than max_input_chars_per_word characters, or one with a remainder
  /// that no piece matches, is [UNK] as a whole.
  void word_piece(std::vector<uint32_t>& word, std::vector<int32_t>& ids) const {
    if (word.empty()) return;
    const size_t n = word.size();
    if (n > text::kMaxInputCharsPerWord) {
      ids.push_back(data_.unk_id);
      word.clear();
      return;
    }
    std::vector<size_t> offsets(n + 1, 0);  // byte offset of each character in `utf8`
    std::string utf8;
    for (size_t i = 0; i < n; ++i) {
      offsets[i] = utf8.size();
      text::append_utf8(utf8, word[i]);
    }
    offsets[n] = utf8.size();
    const size_t first = ids.size();
    std::string candidate;
    for (size_t start = 0; start < n;) {
      int32_t found = -1;
      size_t end = n;
      for (; end > start; --end) {
        candidate.assign(start > 0 ? text::kContinuingPrefix : "");
        candidate.append(utf8, offsets[start], offsets[end] - offsets[start]);
        auto it = lookup_.find(candidate);
        if (it != lookup_.end()) {
          found = it->second;
          break;
        }
      }
      if (found < 0) {
        ids.resize(first);
        ids.push_back(data_.unk_id);
        break;
      }
      ids.push_back(found);
      start = end;
    }
    word.clear();
  }

  BertNormalizer norm_;
  std::unordered_map<std::string, int32_t> lookup_;
  text::SpecialSplitter specials_;
};

}  // namespace

namespace text {

Status validate_wordpiece(const TokenizerData& d, const std::string& where) {
  BertNormalizer n;
  if (d.pre != "bert") {
    return make_error(ErrorCode::kUnsupported,
                      where + ": WordPiece pre-tokenizer '" + d.pre + "' is not supported (bert)");
  }
  if (!parse_normalizer(d.normalizer, &n)) {
    return make_error(ErrorCode::kInvalidFormat,
                      where + ": WordPiece normalizer '" + d.normalizer +
                          "' is not 'bert' or 'bert:' with clean_text, handle_chinese_chars, strip_accents, lowercase");
  }
  if (d.unk_id < 0) return make_error(ErrorCode::kInvalidFormat, where + ": WordPiece needs an UNK token");
  if (!d.merges.empty()) return make_error(ErrorCode::kInvalidFormat, where + ": WordPiece has merges");
  return Status::ok_status();
}

Result<std::unique_ptr<Tokenizer>> make_wordpiece_tokenizer(TokenizerData data, const std::string& where) {
  auto t = std::make_unique<WordPieceTokenizer>(std::move(data));
  SLMC_RETURN_IF_ERROR(t->init(where));
  return std::unique_ptr<Tokenizer>(std::move(t));
}

}  // namespace text
}  // namespace slmc
