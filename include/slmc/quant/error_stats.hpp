// Error statistics of an encoded matrix against its fp32 original (ErrorStats in encoding.hpp).
#pragma once

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
ErrorSums accumulate_error_sums(const float* w, const float* w_hat, int64_t n) noexcept;

/// ErrorStats from sums. `encoded_bytes` are all segment bytes of the encoding (payload + scales +
/// mins), so bits_per_weight is exact. rel_error is 0 and sqnr_db 999 when nothing was lost;
/// when w is all zero but w_hat is not, rel_error is +inf and sqnr_db -999.
ErrorStats error_stats_from_sums(const ErrorSums& s, uint64_t encoded_bytes) noexcept;

/// Error statistics of w_hat against w, both n floats.
ErrorStats compute_error_stats(const float* w, const float* w_hat, int64_t n, uint64_t encoded_bytes) noexcept;

/// Per-row statistics of row-major [rows x cols] matrices. bits_per_weight of every row is the
/// tensor's average (8 * encoded_bytes / (rows * cols)): scales are shared in per-tensor schemes.
std::vector<ErrorStats> compute_row_error_stats(const float* w, const float* w_hat, int64_t rows, int64_t cols,
                                                uint64_t encoded_bytes);

}  // namespace slmc
