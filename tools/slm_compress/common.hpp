// Shared helpers of the slm-compress subcommands: error reporting, sizes, JSON and tables.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "exit_codes.hpp"
#include "slmc/runtime/e2e.hpp"
#include "slmc/status.hpp"

namespace slmc::cli {

using Json = nlohmann::ordered_json;

/// `text` safe to print on a terminal: control characters (C0, DEL, C1) and bytes that are not
/// UTF-8 become \xNN, so names and metadata from a file cannot move the cursor, recolour or
/// retitle the terminal. Valid printable UTF-8 (and tabs) pass unchanged.
std::string terminal_safe(const std::string& text);

/// Prints "slm-compress: <message>" to stderr and returns the exit code for the error.
inline int fail(const Status& s) {
  std::cerr << "slm-compress: error: " << terminal_safe(s.message()) << " [" << error_code_name(s.code()) << "]\n";
  return exit_code_for(s);
}
inline int fail_usage(const std::string& message) {
  std::cerr << "slm-compress: error: " << terminal_safe(message) << "\n";
  return kExitUsage;
}

/// "123", "10MB" (10^6), "1.5GiB" (2^30), "64k": bytes. Suffixes k/K, M, G, T (powers of 1000,
/// an optional trailing B) and KiB, MiB, GiB, TiB (powers of 1024).
std::optional<uint64_t> parse_size(const std::string& text);
/// "1.23 MiB" style, for humans.
std::string human_bytes(uint64_t bytes);
std::string shape_string(const std::vector<int64_t>& dims);
/// Fixed-width text table: rows of cells, first row is the header; numeric-looking cells are
/// right-aligned.
void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows);
std::string fmt(const char* format, double value);
/// A number for JSON: finite doubles as is, +inf as 999 (SQNR of an exact encoding), NaN as null.
Json json_number(double v);

/// An end-to-end rate as bench --e2e --json and release manifests print it: median, mean, stddev,
/// min, max (tokens/s) and the samples in run order.
Json token_rate_json(const TokenRate& rate);

/// A one-line progress bar on stderr, drawn only when stderr is a terminal.
class Progress {
 public:
  explicit Progress(std::string label);
  ~Progress();
  void update(size_t done, size_t total, const std::string& item);

 private:
  std::string label_;
  bool enabled_;
  bool drawn_ = false;
};

}  // namespace slmc::cli

#include "slmc/decode.hpp"  // slmc::decode: every stored encoding to fp32
