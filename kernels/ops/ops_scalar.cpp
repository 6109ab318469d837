// The reference table of the ops family: plain loops, std::exp. Sums run in 8 float partial sums
// (i mod 8) so the loop has independent chains; every other ISA is tested against fp64 oracles.
// GCC contracts a*b + c*d into an FMA under its C++ default (-ffp-contract=fast), intrinsics
// included: the ops spell every FMA they want, and the rest must round as written (RoPE is
// bit-identical across ISAs, tests/kernels/test_ops.cpp).
#pragma GCC optimize("fp-contract=off")
#include <algorithm>
#include <cmath>

#include "ops/ops.hpp"

namespace slmc::detail {
namespace {

float sum_squares(const float* x, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += x[i + j] * x[i + j];
  }
  for (int j = 0; i < n; ++i, ++j) acc[j] += x[i] * x[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

void scale_mul(const float* x, const float* w, float s, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * s * w[i];
}

void rope(float* v, int64_t heads, int64_t hd, const float* cs, const float* sn, bool interleaved) {
  const int64_t half = hd / 2;
  for (int64_t h = 0; h < heads; ++h) {
    float* p = v + h * hd;
    for (int64_t i = 0; i < half; ++i) {
      const int64_t a = interleaved ? 2 * i : i;
      const int64_t b = interleaved ? 2 * i + 1 : i + half;
      const float x0 = p[a], x1 = p[b];
      p[a] = x0 * cs[i] - x1 * sn[i];
      p[b] = x0 * sn[i] + x1 * cs[i];
    }
  }
}

void softmax(float* x, int64_t n) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    acc[i & 7] += x[i];
  }
  const float sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void silu_mul(const float* g, const float* u, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void add(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

void dot_rows(const float* q, const float* k, int64_t stride, int64_t rows, int64_t n, float scale, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* kr = k + r * stride;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t i = 0; i < n; ++i) acc[i & 7] += q[i] * kr[i];
    out[r] = (((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))) * scale;
  }
}

void weighted_sum_rows(const float* a, const float* v, int64_t stride, int64_t rows, int64_t n, float* out) {
  std::fill(out, out + n, 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const float* vr = v + r * stride;
    const float ar = a[r];
    for (int64_t i = 0; i < n; ++i) out[i] += ar * vr[i];
  }
}

constexpr OpsKernels kTable = {"scalar", sum_squares, scale_mul, rope, softmax, silu_mul, add, dot_rows,
                               weighted_sum_rows};
}  // namespace

const OpsKernels& ops_kernels_scalar() { return kTable; }

}  // namespace slmc::detail
