#include "text/pretokenize.hpp"

#include "text/unicode.hpp"

namespace slmc::text {
namespace {

struct Cp {
  uint32_t cp;
  uint8_t flags;
  size_t offset;  ///< byte offset of the code point in the text
};

bool is_l(const Cp& c) { return c.flags & kLetter; }
bool is_n(const Cp& c) { return c.flags & kNumber; }
bool is_s(const Cp& c) { return c.flags & kWhitespace; }
bool is_other(const Cp& c) { return !(c.flags & (kLetter | kNumber | kWhitespace)); }
bool is_crlf(const Cp& c) { return c.cp == '\r' || c.cp == '\n'; }
uint32_t lower_ascii(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/// Length (in code points) of a contraction 's 't 're 've 'm 'll 'd at i, or 0.
size_t contraction(const std::vector<Cp>& c, size_t i, size_t end, bool ignore_case) {
  if (c[i].cp != '\'' || i + 1 >= end) return 0;
  auto at = [&](size_t k) { return ignore_case ? lower_ascii(c[k].cp) : c[k].cp; };
  const uint32_t a = at(i + 1);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (i + 2 < end) {
    const uint32_t b = at(i + 2);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  }
  return 0;
}

/// \s+(?!\S)|\s+ at i (c[i] is whitespace): the run, less its last character when a non-space
/// follows and the run is longer than one.
size_t whitespace_run(const std::vector<Cp>& c, size_t i, size_t end) {
  size_t k = i;
  while (k < end && is_s(c[k])) ++k;
  if (k < end && k - i > 1) --k;
  return k - i;
}

// GPT-2 rules over code points [begin, end).
void split_gpt2(const std::vector<Cp>& c, size_t begin, size_t end, std::vector<std::pair<size_t, size_t>>& out) {
  size_t i = begin;
  while (i < end) {
    size_t n = contraction(c, i, end, false);
    if (n == 0) {
      const bool sp = c[i].cp == ' ' && i + 1 < end;
      const size_t j = sp ? i + 1 : i;
      if (is_l(c[j]) && (sp || is_l(c[i]))) {
        size_t k = j;
        while (k < end && is_l(c[k])) ++k;
        n = k - i;
      } else if (is_n(c[j]) && (sp || is_n(c[i]))) {
        size_t k = j;
        while (k < end && is_n(c[k])) ++k;
        n = k - i;
      } else if (is_other(c[j]) && (sp || is_other(c[i]))) {
        size_t k = j;
        while (k < end && is_other(c[k])) ++k;
        n = k - i;
      } else {
        n = whitespace_run(c, i, end);
      }
    }
    if (n == 0) n = 1;
    out.emplace_back(c[i].offset, c[i + n].offset);
    i += n;
  }
}

// Llama-3 rules (max_digits 3) and Qwen2 (max_digits 1) over [begin, end).
void split_llama3(const std::vector<Cp>& c, size_t begin, size_t end, size_t max_digits,
                  std::vector<std::pair<size_t, size_t>>& out) {
  size_t i = begin;
  while (i < end) {
    size_t n = contraction(c, i, end, true);
    if (n == 0) {
      // [^\r\n\p{L}\p{N}]?\p{L}+
      const bool prefix = !is_crlf(c[i]) && !is_l(c[i]) && !is_n(c[i]) && i + 1 < end && is_l(c[i + 1]);
      if (is_l(c[i]) || prefix) {
        size_t k = prefix ? i + 1 : i;
        while (k < end && is_l(c[k])) ++k;
        n = k - i;
      } else if (is_n(c[i])) {  // \p{N}{1,max}
        size_t k = i;
        while (k < end && k - i < max_digits && is_n(c[k])) ++k;
        n = k - i;
      } else if (is_other(c[i]) || (c[i].cp == ' ' && i + 1 < end && is_other(c[i + 1]))) {
        // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        size_t k = c[i].cp == ' ' ? i + 1 : i;
        while (k < end && is_other(c[k])) ++k;
        while (k < end && is_crlf(c[k])) ++k;
        n = k - i;
      } else {
        // c[i] is whitespace. \s*[\r\n]+ : up to the last \r or \n of the run.
        size_t k = i;
        size_t last_crlf = end;
        while (k < end && is_s(c[k])) {
          if (is_crlf(c[k])) last_crlf = k;
          ++k;
        }
        if (last_crlf != end) {
          n = last_crlf + 1 - i;
        } else {
          n = whitespace_run(c, i, end);
        }
      }
    }
    if (n == 0) n = 1;
    out.emplace_back(c[i].offset, c[i + n].offset);
    i += n;
  }
}

/// Pieces are [begin, end) code point ranges; `split` refines each piece into sub-pieces.
using Ranges = std::vector<std::pair<size_t, size_t>>;

template <typename Split>
Ranges refine(const Ranges& in, Split&& split) {
  Ranges out;
  for (const auto& [b, e] : in) split(b, e, out);
  return out;
}

/// Matches of `run_len(i)` (length of a match starting at i, 0 for none) and the gaps between them.
template <typename RunLen>
void split_matches(size_t b, size_t e, Ranges& out, RunLen&& run_len) {
  size_t gap = b, i = b;
  while (i < e) {
    const size_t n = run_len(i);
    if (n == 0) {
      ++i;
      continue;
    }
    if (i > gap) out.emplace_back(gap, i);
    out.emplace_back(i, i + n);
    i += n;
    gap = i;
  }
  if (e > gap) out.emplace_back(gap, e);
}

void split_default(const std::vector<Cp>& c, size_t n, std::vector<std::pair<size_t, size_t>>& pieces) {
  auto punct = [&](size_t i) {
    const uint32_t cp = c[i].cp;
    return (c[i].flags & kPunctuation) || cp == '$' || cp == '+' || cp == '<' || cp == '=' || cp == '>' ||
           cp == '^' || cp == '~' || cp == '|';
  };
  Ranges r{{0, n}};
  r = refine(r, [&](size_t b, size_t e, Ranges& out) {
    split_matches(b, e, out, [&](size_t i) {
      size_t k = i;
      while (k < e && punct(k)) ++k;
      return k - i;
    });
  });
  r = refine(r, [&](size_t b, size_t e, Ranges& out) {
    std::vector<std::pair<size_t, size_t>> bytes;
    split_gpt2(c, b, e, bytes);  // byte offsets: map back to code point indices
    size_t i = b;
    for (const auto& piece : bytes) {
      size_t j = i;
      while (j < e && c[j].offset < piece.second) ++j;
      out.emplace_back(i, j);
      i = j;
    }
  });
  r = refine(r, [&](size_t b, size_t e, Ranges& out) {
    split_matches(b, e, out, [&](size_t i) {
      size_t k = i;
      while (k < e && is_n(c[k])) ++k;
      return k - i;
    });
  });
  r = refine(r, [&](size_t b, size_t e, Ranges& out) {
    split_matches(b, e, out, [&](size_t i) -> size_t {
      auto digit = [&](size_t k) { return k < e && c[k].cp >= '0' && c[k].cp <= '9'; };
      return digit(i) && digit(i + 1) && digit(i + 2) ? 3 : 0;
    });
  });
  for (const auto& [b, e] : r) pieces.emplace_back(c[b].offset, c[e].offset);
}

}  // namespace

bool pretokenizer_from_name(std::string_view name, PreTokenizer* out) {
  if (name == "gpt2" || name == "gpt-2" || name == "jais" || name == "mpt" || name == "olmo") {
    *out = PreTokenizer::kGpt2;
  } else if (name == "smollm" || name == "starcoder" || name == "refact" || name == "command-r" ||
             name == "codeshell" || name == "exaone" || name == "minerva-7b") {
    *out = PreTokenizer::kSmolLm;
  } else if (name == "llama3" || name == "llama-bpe" || name == "llama-v3" || name == "falcon3" ||
             name == "pixtral" || name == "dbrx" || name == "smaug-bpe") {
    *out = PreTokenizer::kLlama3;
  } else if (name == "qwen2" || name == "deepseek-r1-qwen" || name == "stablelm2" || name == "hunyuan") {
    *out = PreTokenizer::kQwen2;
  } else if (name == "default") {
    *out = PreTokenizer::kDefault;
  } else {
    return false;
  }
  return true;
}

void pretokenize(PreTokenizer kind, std::string_view text, std::vector<std::pair<size_t, size_t>>& pieces) {
  pieces.clear();
  std::vector<Cp> c;
  c.reserve(text.size() + 1);
  for (size_t i = 0; i < text.size();) {
    const size_t at = i;
    const uint32_t cp = next_code_point(text, i);
    c.push_back(Cp{cp, unicode_flags(cp), at});
  }
  const size_t n = c.size();
  c.push_back(Cp{0, 0, text.size()});  // sentinel: offset of the end
  switch (kind) {
    case PreTokenizer::kGpt2: split_gpt2(c, 0, n, pieces); break;
    case PreTokenizer::kLlama3: split_llama3(c, 0, n, 3, pieces); break;
    case PreTokenizer::kQwen2: split_llama3(c, 0, n, 1, pieces); break;
    case PreTokenizer::kDefault: split_default(c, n, pieces); break;
    case PreTokenizer::kSmolLm: {
      size_t start = 0;
      for (size_t i = 0; i <= n; ++i) {
        if (i == n || is_n(c[i])) {
          if (i > start) split_gpt2(c, start, i, pieces);
          if (i < n) pieces.emplace_back(c[i].offset, c[i + 1].offset);
          start = i + 1;
        }
      }
      break;
    }
  }
}

}  // namespace slmc::text
