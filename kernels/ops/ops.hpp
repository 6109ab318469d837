// Kernel family "ops": the element-wise and attention ops of include/slmc/kernels/ops.hpp, one
// table per ISA. The front end (src/kernels/ops.cpp) validates nothing beyond what the public
// header states: these are inner-loop ops whose callers (the runtimes) own the shapes.
#pragma once

#include <cstdint>

namespace slmc::detail {

struct OpsKernels {
  const char* isa;
  float (*sum_squares)(const float* x, int64_t n);
  /// out[i] = (x[i] * s) * w[i]
  void (*scale_mul)(const float* x, const float* w, float s, int64_t n, float* out);
  void (*rope)(float* v, int64_t heads, int64_t head_dim, const float* cos, const float* sin, bool interleaved);
  void (*softmax)(float* x, int64_t n);
  void (*silu_mul)(const float* gate, const float* up, int64_t n, float* out);
  void (*add)(float* x, const float* y, int64_t n);
  void (*dot_rows)(const float* q, const float* k, int64_t stride, int64_t rows, int64_t n, float scale, float* out);
  void (*weighted_sum_rows)(const float* a, const float* v, int64_t stride, int64_t rows, int64_t n, float* out);
};

const OpsKernels& ops_kernels_scalar();
const OpsKernels& ops_kernels_avx2();
const OpsKernels& ops_kernels_avx512();
const OpsKernels& ops_kernels_neon();

/// Cephes' expf polynomial (shared by the vector ISAs): exp(x) = 2^n · p(r), n = round(x·log2 e),
/// r = x − n·ln 2 in two parts; relative error below 3e-7 on [-87, 88].
inline constexpr float kExpHi = 88.3762626647950f;
inline constexpr float kExpLo = -88.3762626647949f;
inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kLn2Hi = 0.693359375f;
inline constexpr float kLn2Lo = -2.12194440e-4f;
inline constexpr float kExpP0 = 1.9875691500e-4f;
inline constexpr float kExpP1 = 1.3981999507e-3f;
inline constexpr float kExpP2 = 8.3334519073e-3f;
inline constexpr float kExpP3 = 4.1665795894e-2f;
inline constexpr float kExpP4 = 1.6666665459e-1f;
inline constexpr float kExpP5 = 5.0000001201e-1f;

}  // namespace slmc::detail
