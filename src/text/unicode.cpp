#include "text/unicode.hpp"

#include <algorithm>
#include <array>
#include <iterator>

namespace slmc::text {
namespace {

struct UnicodeRange {
  uint32_t first, last;
  uint8_t flags;
};
#include "text/unicode_tables.inc"

}  // namespace

uint8_t unicode_flags(uint32_t cp) noexcept {
  if (cp < 0x80) {
    // ASCII fast path, identical to the table.
    static const auto kAscii = [] {
      std::array<uint8_t, 128> t{};
      for (uint32_t c = 0; c < 128; ++c) {
        const auto* end = std::end(kUnicodeRanges);
        const auto* it = std::upper_bound(std::begin(kUnicodeRanges), end, c,
                                          [](uint32_t v, const UnicodeRange& r) { return v < r.first; });
        t[c] = (it != std::begin(kUnicodeRanges) && c <= (it - 1)->last) ? (it - 1)->flags : 0;
      }
      return t;
    }();
    return kAscii[cp];
  }
  const auto* end = std::end(kUnicodeRanges);
  const auto* it = std::upper_bound(std::begin(kUnicodeRanges), end, cp,
                                    [](uint32_t v, const UnicodeRange& r) { return v < r.first; });
  if (it == std::begin(kUnicodeRanges)) return 0;
  --it;
  return cp <= it->last ? it->flags : 0;
}

const char* unicode_version() noexcept { return kUnicodeVersion; }

uint32_t next_code_point(std::string_view s, size_t& i) noexcept {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  int len;
  uint32_t cp, min;
  if (b0 >= 0xC2 && b0 <= 0xDF) { len = 2; cp = b0 & 0x1F; min = 0x80; }
  else if (b0 >= 0xE0 && b0 <= 0xEF) { len = 3; cp = b0 & 0x0F; min = 0x800; }
  else if (b0 >= 0xF0 && b0 <= 0xF4) { len = 4; cp = b0 & 0x07; min = 0x10000; }
  else { ++i; return 0xFFFD; }
  size_t k = 1;
  for (; k < static_cast<size_t>(len); ++k) {
    if (i + k >= s.size()) break;
    const auto b = static_cast<unsigned char>(s[i + k]);
    // The second byte's range is narrower for E0 (no overlongs), ED (no surrogates), F0, F4.
    unsigned lo = 0x80, hi = 0xBF;
    if (k == 1) {
      if (b0 == 0xE0) lo = 0xA0;
      if (b0 == 0xED) hi = 0x9F;
      if (b0 == 0xF0) lo = 0x90;
      if (b0 == 0xF4) hi = 0x8F;
    }
    if (b < lo || b > hi) break;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (k < static_cast<size_t>(len)) {
    i += k;  // the maximal invalid prefix: lead byte + the valid continuation bytes seen
    return 0xFFFD;
  }
  i += k;
  (void)min;
  return cp;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace slmc::text
