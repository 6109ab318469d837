// Kernel family "linear": Y[N x M] = X[N x K] * W[M x K]^T (+ bias) on dense encoded weights.
//
// The front end (src/kernels/linear.cpp) validates, prepares the activations once per call
// (LinearArgs: zero-padded fp32 copy, int8 quantization, exact per-group sums) and splits the
// output rows over threads in blocks of kLinearRowGrain rows. Each ISA's table computes a range of
// output rows [m0, m1) for all N rows of X. Kernels only assert: every input here was validated.
//
// Determinism: m0 is always a multiple of kLinearRowGrain (a multiple of every interleave R), and
// m1 is one too or M, so any thread count hands every row to the same code path with the same
// neighbours; each output is reduced in a fixed order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "slmc/encoding.hpp"
#include "slmc/half.hpp"
#include "slmc/layout.hpp"

namespace slmc::detail {

inline constexpr int64_t kLinearRowGrain = 16;

struct LinearArgs {
  // Weights: M x K.
  ValueType vt = ValueType::kF32;
  int64_t m = 0, k = 0;
  const void* values = nullptr;  ///< values segment
  // Quantized weights only.
  DenseQuantLayout layout;
  const void* scales = nullptr;  ///< layout.scale_count() scales (fp16 or fp32)
  const void* mins = nullptr;    ///< same count, asymmetric only (else null)
  bool scales_f16 = false;
  bool symmetric = true;
  int64_t kpad = 0;              ///< chunks * 32

  // Activations: N x K.
  int64_t n = 0;
  const float* x = nullptr;      ///< [n][k] as given by the caller
  const float* xpad = nullptr;   ///< fp32 mode, quantized weights: [n][kpad], zero beyond k
  const int8_t* xq = nullptr;    ///< int8 mode: [n][kpad] codes, zero beyond k
  const float* xscale = nullptr; ///< int8-row mode: [n] scales (x ~ xscale * xq)
  const float* xbs = nullptr;    ///< int8 (block) mode: [n][chunks] scales, one per 32 values
                                 ///< (x[c] ~ xbs[c / 32] * xq[c])
  const float* xsum = nullptr;   ///< both int8 modes: [n][groups] sums of x over each weight group:
                                 ///< fp32 sums of x, or for symmetric int4 the sums of the quantized
                                 ///< x (xscale * sum of xq; block mode: sum of xbs[c / 32] * xq[c])

  const float* bias = nullptr;   ///< [m] or null
  float* y = nullptr;            ///< [n][m]
};

struct LinearKernels {
  const char* isa;
  /// fp32 activations: y[:, m0:m1) (bias included).
  void (*fp32)(const LinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch);
  /// int8-row activations (one scale per row of X; quantized weights only): y[:, m0:m1) (bias
  /// included).
  void (*int8_row)(const LinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch);
  /// int8 activations with one scale per block of 32 values (a.xbs; quantized weights only):
  /// y[:, m0:m1) (bias included).
  void (*int8)(const LinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch);
  /// Scratch bytes one thread needs for a call with `a` (64-byte aligned slot).
  size_t (*scratch_bytes)(const LinearArgs& a);
  /// out[i][0:k) = dequantized row rows[i], i in [0, count).
  void (*gather)(const LinearArgs& a, const int64_t* rows, int64_t count, float* out);
  /// int8 mode: one row of activations to codes xq[0:kpad) (round half to even of
  /// x * 127 / max|x|, zero beyond k; NaN inputs give 0) and returns the scale max|x| / 127.
  /// Bit-identical to quantize_x_scalar in every ISA.
  float (*quantize_x)(const float* x, int64_t k, int64_t kpad, int8_t* xq);
  /// int8 (block) mode: one row of activations to codes xq[0:kpad) and one scale per 32 values
  /// xbs[0:kpad / 32), each block quantized as quantize_x quantizes it alone (bit-identical in
  /// every ISA; kpad = 32 * ceil(k / 32)).
  void (*quantize_x_blocks)(const float* x, int64_t k, int64_t kpad, int8_t* xq, float* xbs);
};

/// The reference activation quantizer (linear_scalar.cpp), also the NEON tables' entry.
float quantize_x_scalar(const float* x, int64_t k, int64_t kpad, int8_t* xq);
/// quantize_x_scalar on each 32-value block (linear_scalar.cpp), also the NEON tables' entry.
void quantize_x_blocks_scalar(const float* x, int64_t k, int64_t kpad, int8_t* xq, float* xbs);

/// The reference int8 (block) kernel (linear_scalar.cpp): what every ISA's int8 entry computes,
/// and the entry of ISAs (and groupings) without block micro-kernels of their own.
void linear_int8_block_scalar(const LinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch);
/// The scalar row gather (linear_scalar.cpp), shared by the x86 tables.
void linear_gather_scalar(const LinearArgs& a, const int64_t* rows, int64_t count, float* out);

const LinearKernels& linear_kernels_scalar();
const LinearKernels& linear_kernels_avx2();
const LinearKernels& linear_kernels_neon();
const LinearKernels& linear_kernels_neon_dotprod();
const LinearKernels& linear_kernels_avxvnni();
const LinearKernels& linear_kernels_avx512();

// ---- helpers shared by the ISA files (plain C++) ----

/// Scale (or min) number `i` of `p`.
inline float load_scale(const void* p, bool f16, int64_t i) noexcept {
  if (f16) return fp16_to_fp32(static_cast<const uint16_t*>(p)[i]);
  return static_cast<const float*>(p)[i];
}

/// Scale d and offset m of group g of row r: w = d * c + m with c the code as stored in the layout
/// (int8: signed q; int4: unsigned nibble u; nl4: the level kNl4Levels[u]). Symmetric int4 has
/// m = -8 d, symmetric int8 and nl4 m = 0.
inline void group_params(const LinearArgs& a, int64_t r, int64_t g, float* d, float* m) noexcept {
  const int64_t si = a.layout.scale_index(r, g);
  *d = load_scale(a.scales, a.scales_f16, si);
  if (!a.symmetric) {
    *m = load_scale(a.mins, a.scales_f16, si);
  } else {
    *m = a.vt == ValueType::kInt4 ? -8.0f * *d : 0.0f;
  }
}

/// Whether y has the offset term sum_g m_g * xsum_g: asymmetric weights (their mins) and symmetric
/// int4 (m = -8 d); symmetric int8 and nl4 have none, so no kernel reads xsum for them.
inline bool has_offset_term(const LinearArgs& a) noexcept { return !a.symmetric || a.vt == ValueType::kInt4; }

inline float float_weight(const LinearArgs& a, int64_t r, int64_t c) noexcept {
  const int64_t i = r * a.k + c;
  switch (a.vt) {
    case ValueType::kF16: return fp16_to_fp32(static_cast<const uint16_t*>(a.values)[i]);
    case ValueType::kBF16: return bf16_to_fp32(static_cast<const uint16_t*>(a.values)[i]);
    default: return static_cast<const float*>(a.values)[i];
  }
}

}  // namespace slmc::detail
