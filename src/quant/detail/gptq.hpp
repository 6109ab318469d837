// Internal: error-compensating quantization with the input Gram matrix ("GPTQ"; Frantar et al.,
// "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers", 2022).
//
// For a linear layer y = W x, the output error of a quantized row w_hat over the calibration
// inputs is e^T H e with e = w - w_hat and H = mean(x x^T) (the Gram matrix, K x K). GPTQ
// quantizes the columns of a row in order and, after each column i, spreads its rounding error
// over the columns not yet quantized so that e^T H e grows as little as possible:
//
//   H_damped = H + lambda I                 (lambda = 1% of the mean diagonal)
//   H_damped^-1 = U^T U                     (U upper triangular: Cholesky factor of the inverse)
//   for i in 0 .. K-1:  q_i = Q(w_i);  d = (w_i - q_i) / U_ii;  w_j -= d * U_ij  for j > i
//
// Rows are independent (H is shared), so rows run in parallel. Every step is an elementwise
// operation or a sum in a fixed sequential order: results are bit-identical for any thread count
// and instruction set.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace slmc::quant_detail {

/// lambda = kGramDamping * mean(diag(G)): GPTQ's default dampening (1%). Measured on stories260K
/// int4 g32: 0.1% to 5% give the same quality within the noise of the evaluation.
inline constexpr double kGramDamping = 0.01;

/// The upper triangular U with (G + lambda I)^-1 = U^T U, for the symmetric K x K Gram matrix
/// `gram` (row-major; only the upper triangle j >= i is read). A zero diagonal entry (a channel
/// that is always zero) is treated as 1, lambda is `damp` times the mean of the diagonal. If the
/// damped matrix is not positive definite (a Gram matrix that is not positive semi-definite), the
/// damping is multiplied by 10, at most 4 times. Returns false when that still fails.
///
/// Computed in place, in double, as U = R^-1 for the upper triangular R with G + lambda I = R R^T
/// (a Cholesky factorization run from the last column to the first, as rank-1 updates of the
/// leading block), then the triangular inverse: 2 K^3 / 3 multiply-adds, all of them elementwise
/// row updates (no reductions), so the compiler may vectorize them without changing a bit.
inline bool gram_inverse_factor(const float* gram, int64_t k, double damp, std::vector<double>& u) {
  const size_t kk = static_cast<size_t>(k) * static_cast<size_t>(k);
  auto diag = [&](int64_t i) {
    const double d = gram[i * k + i];
    return d == 0 ? 1.0 : d;
  };
  double mean_diag = 0;
  for (int64_t i = 0; i < k; ++i) mean_diag += diag(i);
  mean_diag /= static_cast<double>(k);
  std::vector<double> col(static_cast<size_t>(k));
  bool ok = false;
  for (int attempt = 0; attempt < 5 && !ok; ++attempt, damp *= 10) {
    const double lambda = damp * mean_diag;
    u.assign(kk, 0.0);
    for (int64_t i = 0; i < k; ++i) {
      for (int64_t j = i + 1; j < k; ++j) u[static_cast<size_t>(i * k + j)] = gram[i * k + j];
      u[static_cast<size_t>(i * k + i)] = diag(i) + lambda;
    }
    ok = true;
    // Column j (from the last): R[j][j] = sqrt(S[j][j]), R[i][j] = S[i][j] / R[j][j] (i < j), then
    // S[i][l] -= R[i][j] R[l][j] for i <= l < j. Column j of S becomes column j of R.
    for (int64_t j = k - 1; j >= 0; --j) {
      const double s = u[static_cast<size_t>(j * k + j)];
      if (!(s > 0) || !std::isfinite(s)) {
        ok = false;
        break;
      }
      const double rjj = std::sqrt(s);
      u[static_cast<size_t>(j * k + j)] = rjj;
      for (int64_t i = 0; i < j; ++i) {
        double& v = u[static_cast<size_t>(i * k + j)];
        v /= rjj;
        col[static_cast<size_t>(i)] = v;
      }
      for (int64_t i = 0; i < j; ++i) {
        const double c = col[static_cast<size_t>(i)];
        if (c == 0) continue;
        double* si = u.data() + i * k;
        for (int64_t l = i; l < j; ++l) si[l] -= c * col[static_cast<size_t>(l)];
      }
    }
  }
  if (!ok) return false;
  // U = R^-1 (upper), rows from the last up: row i = -(sum_{p > i} R[i][p] U[p][:]) / R[i][i].
  // Rows below i already hold U, row i still holds R.
  std::vector<double>& row = col;
  for (int64_t i = k - 1; i >= 0; --i) {
    double* ui = u.data() + i * k;
    std::fill(row.begin(), row.end(), 0.0);
    for (int64_t p = i + 1; p < k; ++p) {
      const double c = ui[p];
      if (c == 0) continue;
      const double* up = u.data() + p * k;
      for (int64_t j = p; j < k; ++j) row[static_cast<size_t>(j)] -= c * up[j];
    }
    const double inv = 1.0 / ui[i];
    for (int64_t j = i + 1; j < k; ++j) ui[j] = row[static_cast<size_t>(j)] * inv;
    ui[i] = inv;
  }
  return true;
}

/// e^T G e for the symmetric Gram matrix (upper triangle read). The products of row i go to 8
/// double lanes (element j to lane (j - i - 1) % 8), summed in a fixed order: deterministic,
/// and the lanes vectorize.
inline double gram_error(const float* gram, const double* e, int64_t k) noexcept {
  double total = 0;
  for (int64_t i = 0; i < k; ++i) {
    const float* gi = gram + i * k;
    double lanes[8] = {};
    int64_t j = i + 1;
    for (; j + 8 <= k; j += 8) {
      for (int l = 0; l < 8; ++l) lanes[l] += static_cast<double>(gi[j + l]) * e[j + l];
    }
    for (int l = 0; j < k; ++j, ++l) lanes[l] += static_cast<double>(gi[j]) * e[j];
    const double off = ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6])) + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]));
    total += e[i] * (static_cast<double>(gi[i]) * e[i] + 2.0 * off);
  }
  return total;
}

/// After column i of a row was quantized with rounding error err (= w_i - w_hat_i), spreads it
/// over the columns i+1 .. K-1 of the row (`work`, in double; U from gram_inverse_factor).
inline void gptq_propagate(double* work, const double* u, int64_t k, int64_t i, double err) noexcept {
  const double* ui = u + i * k;
  const double d = err / ui[i];
  for (int64_t j = i + 1; j < k; ++j) work[j] -= d * ui[j];
}

}  // namespace slmc::quant_detail
