// Error statistics (include/slmc/quant/error_stats.hpp), compiled with the library's flags.
#include "slmc/quant/error_stats.hpp"

#include <algorithm>
#include <cmath>

namespace slmc {

ErrorSums accumulate_error_sums(const float* w, const float* w_hat, int64_t n) noexcept {
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

ErrorStats error_stats_from_sums(const ErrorSums& s, uint64_t encoded_bytes) noexcept {
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

ErrorStats compute_error_stats(const float* w, const float* w_hat, int64_t n, uint64_t encoded_bytes) noexcept {
  return error_stats_from_sums(accumulate_error_sums(w, w_hat, n), encoded_bytes);
}

std::vector<ErrorStats> compute_row_error_stats(const float* w, const float* w_hat, int64_t rows, int64_t cols,
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
