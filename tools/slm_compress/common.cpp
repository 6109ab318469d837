#include "common.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

namespace slmc::cli {

std::optional<uint64_t> parse_size(const std::string& text) {
  if (text.empty()) return std::nullopt;
  size_t pos = 0;
  while (pos < text.size() && (std::isdigit(static_cast<unsigned char>(text[pos])) || text[pos] == '.')) ++pos;
  if (pos == 0) return std::nullopt;
  char* end = nullptr;
  const std::string number = text.substr(0, pos);
  const double value = std::strtod(number.c_str(), &end);
  if (end != number.c_str() + number.size() || !std::isfinite(value) || value < 0) return std::nullopt;
  std::string unit = text.substr(pos);
  double mult = 1;
  if (unit.empty() || unit == "B") mult = 1;
  else if (unit == "k" || unit == "K" || unit == "kB" || unit == "KB") mult = 1e3;
  else if (unit == "M" || unit == "MB") mult = 1e6;
  else if (unit == "G" || unit == "GB") mult = 1e9;
  else if (unit == "T" || unit == "TB") mult = 1e12;
  else if (unit == "KiB") mult = 1024.0;
  else if (unit == "MiB") mult = 1024.0 * 1024;
  else if (unit == "GiB") mult = 1024.0 * 1024 * 1024;
  else if (unit == "TiB") mult = 1024.0 * 1024 * 1024 * 1024;
  else return std::nullopt;
  const double bytes = std::floor(value * mult);
  if (bytes > 1.8e19) return std::nullopt;
  return static_cast<uint64_t>(bytes);
}

std::string human_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof(buf), "%llu B", static_cast<unsigned long long>(bytes));
  else std::snprintf(buf, sizeof(buf), "%.2f %s", v, units[u]);
  return buf;
}

std::string shape_string(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? "x" : "") + std::to_string(dims[i]);
  return s + "]";
}

std::string fmt(const char* format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, value);
  return buf;
}

Json token_rate_json(const TokenRate& s) {
  return Json{{"median", s.median}, {"mean", s.mean}, {"stddev", s.stddev}, {"min", s.min}, {"max", s.max},
              {"samples", s.samples}};
}

Json json_number(double v) {
  if (std::isnan(v)) return nullptr;
  if (std::isinf(v)) return v > 0 ? 999.0 : -999.0;
  return v;
}

std::string terminal_safe(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  auto hex = [&](unsigned char c) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\x%02X", c);
    out += buf;
  };
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7F) hex(c);
      else out += static_cast<char>(c);
      ++i;
      continue;
    }
    // A well-formed multi-byte sequence passes, except C1 controls (U+0080..U+009F = C2 80..C2 9F).
    int len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
    bool ok = len > 0 && i + static_cast<size_t>(len) <= s.size();
    for (int k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    if (ok && c == 0xC2 && static_cast<unsigned char>(s[i + 1]) < 0xA0) ok = false;
    if (!ok) {
      hex(c);
      ++i;
      continue;
    }
    out.append(s, i, static_cast<size_t>(len));
    i += static_cast<size_t>(len);
  }
  return out;
}

void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows_in) {
  if (rows_in.empty()) return;
  std::vector<std::vector<std::string>> rows = rows_in;
  for (auto& r : rows) {
    for (auto& cell : r) {
      cell = terminal_safe(cell);
      for (char& ch : cell) {
        if (ch == '\n' || ch == '\t') ch = ' ';
      }
    }
  }
  std::vector<size_t> width;
  for (const auto& r : rows) {
    if (width.size() < r.size()) width.resize(r.size(), 0);
    for (size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
  }
  auto numeric = [](const std::string& s) {
    return !s.empty() && (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-' || s[0] == '+') &&
           s.find_first_of("[:") == std::string::npos;
  };
  for (size_t i = 0; i < rows.size(); ++i) {
    std::string line;
    for (size_t c = 0; c < rows[i].size(); ++c) {
      const std::string& cell = rows[i][c];
      const size_t pad = width[c] - cell.size();
      if (c) line += "  ";
      if (i > 0 && numeric(cell)) line += std::string(pad, ' ') + cell;
      else line += cell + (c + 1 < rows[i].size() ? std::string(pad, ' ') : "");
    }
    out << line << "\n";
    if (i == 0) {
      size_t total = 0;
      for (size_t c = 0; c < width.size(); ++c) total += width[c] + (c ? 2 : 0);
      out << std::string(total, '-') << "\n";
    }
  }
}

Progress::Progress(std::string label) : label_(std::move(label)), enabled_(::isatty(STDERR_FILENO) != 0) {}

Progress::~Progress() {
  if (drawn_) std::fprintf(stderr, "\r\033[K");
}

void Progress::update(size_t done, size_t total, const std::string& item) {
  if (!enabled_ || total == 0) return;
  const int width = 30;
  const int filled = static_cast<int>(width * done / total);
  std::string bar(static_cast<size_t>(filled), '#');
  bar += std::string(static_cast<size_t>(width - filled), '.');
  std::string name = terminal_safe(item.size() > 40 ? "..." + item.substr(item.size() - 37) : item);
  std::fprintf(stderr, "\r\033[K%s [%s] %zu/%zu %s", label_.c_str(), bar.c_str(), done, total, name.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

}  // namespace slmc::cli

#include "slmc/decode.hpp"
#include "slmc/quant/dequantize.hpp"
#include "slmc/sparse/encode.hpp"
namespace slmc::cli {

}  // namespace slmc::cli
