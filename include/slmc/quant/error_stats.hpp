// Error statistics of an encoded matrix against its fp32 original (ErrorStats in encoding.hpp).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "slmc/encoding.hpp"

namespace slmc {

/// Sums from which ErrorStats are derived; additive, so per-row sums combine into per-tensor ones.
struct ErrorSums {
  double sum_sq = 0;      ///< sum of w^2
  double sum_err_sq = 0;  ///< sum of (w - w_hat)^2
  double max_abs_error = 0;
  int64_t zeros = 0;      ///< elements with w_hat == 0
  int64_t count = 0;

  void add(const ErrorSums& o) noexcept {
    sum_sq += o.sum_sq;
    sum_err_sq += o.sum_err_sq;
    if (o.max_abs_error > max_abs_error) max_abs_error = o.max_abs_error;
    zeros += o.zeros;
    count += o.count;
  }
};

/// Accumulates n elements (sums in double, in element order).
inline ErrorSums accumulate_error_sums(const float* w, const float* w_hat, int64_t n) noexcept {
  ErrorSums s;
  for (int64_t i = 0; i < n; ++i) {
    const double x = w[i], e = x - static_cast<double>(w_hat[i]);
    s.sum_sq += x * x;
    s.sum_err_sq += e * e;
    if (std::fabs(e) > s.max_abs_error) s.max_abs_error = std::fabs(e);
    s.zeros += w_hat[i] == 0.0f;
  }
  s.count = n;
  return s;
}

/// ErrorStats from sums. `encoded_bytes` are all segment bytes of the encoding (payload + scales +
/// mins), so bits_per_weight is exact. rel_error is 0 and sqnr_db 999 when nothing was lost;
/// when w is all zero but w_hat is not, rel_error is +inf and sqnr_db -999.
inline ErrorStats error_stats_from_sums(const ErrorSums& s, uint64_t encoded_bytes) noexcept {
  ErrorStats st;
  if (s.count <= 0) return st;
  const double n = static_cast<double>(s.count);
  st.rmse = std::sqrt(s.sum_err_sq / n);
  if (s.sum_err_sq == 0) {
    st.rel_error = 0;
    st.sqnr_db = 999;
  } else if (s.sum_sq == 0) {
    st.rel_error = INFINITY;
    st.sqnr_db = -999;
  } else {
    st.rel_error = std::sqrt(s.sum_err_sq / s.sum_sq);
    st.sqnr_db = std::fmin(999.0, 10.0 * std::log10(s.sum_sq / s.sum_err_sq));
  }
  st.max_abs_error = s.max_abs_error;
  st.sparsity = static_cast<double>(s.zeros) / n;
  st.bits_per_weight = 8.0 * static_cast<double>(encoded_bytes) / n;
  return st;
}

/// Error statistics of w_hat against w, both n floats.
inline ErrorStats compute_error_stats(const float* w, const float* w_hat, int64_t n, uint64_t encoded_bytes) noexcept {
  return error_stats_from_sums(accumulate_error_sums(w, w_hat, n), encoded_bytes);
}

/// Per-row statistics of row-major [rows x cols] matrices. bits_per_weight of every row is the
/// tensor's average (8 * encoded_bytes / (rows * cols)): scales are shared in per-tensor schemes.
inline std::vector<ErrorStats> compute_row_error_stats(const float* w, const float* w_hat, int64_t rows, int64_t cols,
                                                       uint64_t encoded_bytes) {
  std::vector<ErrorStats> out(static_cast<size_t>(rows > 0 ? rows : 0));
  const double bpw = rows > 0 && cols > 0 ? 8.0 * static_cast<double>(encoded_bytes) / (double(rows) * double(cols)) : 0;
  for (int64_t r = 0; r < rows; ++r) {
    ErrorStats st = compute_error_stats(w + r * cols, w_hat + r * cols, cols, 0);
    st.bits_per_weight = bpw;
    out[static_cast<size_t>(r)] = st;
  }
  return out;
}

}  // namespace slmc
