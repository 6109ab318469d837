// AArch64 NEON linear kernels, shared by linear_neon.cpp (ARMv8-A) and linear_neon_dotprod.cpp
// (ARMv8.2-A + dotprod + fp16). Each of the two files includes this header once and builds its own
// table; everything here has internal linkage (anonymous namespace), so the two compilations with
// different -march flags never share a symbol. The only difference between them is the int8 dot
// product of 16 bytes (dot16 / dot32 below): `sdot` when __ARM_FEATURE_DOTPROD is defined, else
// smull + smlal2 (int16 pair sums) + sadalp (pairwise widening into int32).
//
// Design (docs/KERNELS.md, section NEON):
//
// fp32 mode (float activations):
//   GEMV (N < 4): 4 weight rows x N rows of X at a time; each weight vector (4 floats: f32 loaded,
//     f16 through fcvtl, bf16 shifted into the high half, int8/int4 codes widened and converted,
//     then w = m + c * d with one fmla) is multiplied with every row of X (fmla).
//   GEMM (N >= 4): K blocks of 256 outermost; 16 weight rows are dequantized once per block into a
//     panel [4 row quads][k][4 rows] (st4 transposes four rows of 4 k), then a 16 x 4 micro-kernel
//     (16 accumulators) runs fmla-by-lane with 4 consecutive activations of each row of X: one
//     panel vector load serves 4 rows of X, no horizontal sums. Partial sums accumulate in Y.
// int8 mode (quantized activations, integer dot products; exact int32 sums):
//   P weight rows (P = R of an interleaved block, 4 plain rows, or 1) x NB rows of X (kNbMax: the
//   P * NB accumulators stay in registers): one int32x4 accumulator per (row, row of X) and int32
//   span (one scale group, or at most kSpanMax chunks for per-channel / per-tensor scales). At the
//   end of a span four row accumulators are reduced with two addp into one vector of four row sums,
//   converted once and multiplied with the four rows' scales in one fmla: output lanes are rows.
//   Group sizes that are an odd number of 16-element halves (g16, g48, ...) run the same code on
//   half chunks.
//   N >= 4 splits K into blocks of ~1024 (whole groups): the weights of a block (P rows x 1 KiB)
//   stay in L1 while every row of X passes; Y holds sum_span d * isum until one final pass
//   y = xscale * y + sum_g m_g xsum_g + bias. With N < 4 that formula is applied directly.
//
// Every output is reduced in the same order whatever the thread split (row groups start at
// multiples of 16, and a row's arithmetic does not depend on the group it is computed in).
#pragma once

#include <arm_neon.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "linear/driver.hpp"
#include "linear/linear.hpp"
#include "linear/linear_rows.hpp"

#if defined(__ARM_FEATURE_DOTPROD)
#define SLMC_LINEAR_SDOT 1
#else
#define SLMC_LINEAR_SDOT 0
#endif

// Loops over a compile-time number of rows must be unrolled completely so that the accumulator
// arrays become registers.
#define SLMC_NEON_UNROLL _Pragma("GCC unroll 16")

namespace slmc::detail {
namespace {

constexpr int64_t kMr = 16;         // fp32 GEMM rows per panel
constexpr int kNr = 4;              // fp32 GEMM micro-kernel columns (rows of X)
constexpr int64_t kKcF32 = 256;     // fp32 panel depth (a multiple of 16): 16 KiB panel
constexpr int64_t kKcI8 = 1024;     // int8 GEMM K block, in elements, before rounding to whole groups
constexpr int64_t kSpanMax = 1024;  // chunks per int32 span without group scales (no overflow)

// ------------------------------------------------------------------------------------------------
// Scalars, scales and row streams
// ------------------------------------------------------------------------------------------------

// Own conversions (not slmc::fp16_to_fp32 & co): inline functions with external linkage compiled
// with +dotprod+fp16 could be the copy the linker keeps for every caller.
inline float half_to_float(uint16_t h) {
  return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0);
}

inline float bf16_bits_to_float(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float scale_at(const void* p, bool f16, int64_t i) {
  if (f16) return half_to_float(static_cast<const uint16_t*>(p)[i]);
  return static_cast<const float*>(p)[i];
}

// Scale d and offset m of group g (w = d * c + m, c the stored code).
inline void scale_min(const LinearArgs& a, const RowStream& s, int64_t g, float* d, float* m) {
  scale_min_with<scale_at>(a, s, g, d, m);
}

// dst[j * P + p] = scale (or min) of group g0 + j of row p, as fp32, for j < ng.
template <int P>
void fill_scales(const LinearArgs& a, const RowStream* s, const void* src, int64_t g0, int64_t ng, float* dst) {
  const bool block = P > 1 && s[0].sstride == P && s[1].s0 == s[0].s0 + 1;  // interleaved block
  if (block) {
    // The P rows of one group are adjacent: one contiguous run of ng * P scales.
    const int64_t first = s[0].s0 + g0 * P, len = ng * P;
    if (!a.scales_f16) {
      std::memcpy(dst, static_cast<const float*>(src) + first, static_cast<size_t>(len) * 4);
      return;
    }
    const uint16_t* h = static_cast<const uint16_t*>(src) + first;
    int64_t i = 0;
    for (; i + 4 <= len; i += 4) vst1q_f32(dst + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h + i))));
    for (; i < len; ++i) dst[i] = half_to_float(h[i]);
    return;
  }
  for (int64_t j = 0; j < ng; ++j) {
    SLMC_NEON_UNROLL
    for (int p = 0; p < P; ++p) dst[j * P + p] = scale_at(src, a.scales_f16, s[p].s0 + (g0 + j) * s[p].sstride);
  }
}

// ------------------------------------------------------------------------------------------------
// Weights to fp32
// ------------------------------------------------------------------------------------------------

// 4 float weights at element index i (f32 load, f16 fcvtl, bf16 shifted into the high half).
template <ValueType kVt>
inline float32x4_t float4(const void* values, int64_t i) {
  if constexpr (kVt == ValueType::kF32) {
    return vld1q_f32(static_cast<const float*>(values) + i);
  } else {
    const uint16x4_t h = vld1_u16(static_cast<const uint16_t*>(values) + i);
    if constexpr (kVt == ValueType::kF16) {
      return vcvt_f32_f16(vreinterpret_f16_u16(h));
    } else {
      return vreinterpretq_f32_u32(vshll_n_u16(h, 16));
    }
  }
}

template <ValueType kVt>
inline float float1(const void* values, int64_t i) {
  if constexpr (kVt == ValueType::kF32) {
    return static_cast<const float*>(values)[i];
  } else if constexpr (kVt == ValueType::kF16) {
    return half_to_float(static_cast<const uint16_t*>(values)[i]);
  } else {
    return bf16_bits_to_float(static_cast<const uint16_t*>(values)[i]);
  }
}

// The 16 codes of a row at element k (a multiple of 16) as four fp32 vectors. int4: the low
// nibbles of a chunk record are elements 0..15, the high nibbles 16..31.
template <bool kInt4>
inline void codes16(const RowStream& s, int64_t k, float32x4_t f[4]) {
  const uint8_t* p = s.w + (k >> 5) * s.wstride;
  if constexpr (!kInt4) {
    const int8x16_t v = vld1q_s8(reinterpret_cast<const int8_t*>(p + (k & 31)));
    const int16x8_t lo = vmovl_s8(vget_low_s8(v)), hi = vmovl_high_s8(v);
    f[0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo)));
    f[1] = vcvtq_f32_s32(vmovl_high_s16(lo));
    f[2] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi)));
    f[3] = vcvtq_f32_s32(vmovl_high_s16(hi));
  } else {
    const uint8x16_t v = vld1q_u8(p);
    const uint8x16_t u = (k & 16) ? vshrq_n_u8(v, 4) : vandq_u8(v, vdupq_n_u8(15));
    const uint16x8_t lo = vmovl_u8(vget_low_u8(u)), hi = vmovl_high_u8(u);
    f[0] = vcvtq_f32_u32(vmovl_u16(vget_low_u16(lo)));
    f[1] = vcvtq_f32_u32(vmovl_high_u16(lo));
    f[2] = vcvtq_f32_u32(vmovl_u16(vget_low_u16(hi)));
    f[3] = vcvtq_f32_u32(vmovl_high_u16(hi));
  }
}

// 16 dequantized weights w = m + c * d at element k.
template <bool kInt4>
inline void dequant16(const RowStream& s, int64_t k, float32x4_t d, float32x4_t m, float32x4_t w[4]) {
  codes16<kInt4>(s, k, w);
  SLMC_NEON_UNROLL
  for (int j = 0; j < 4; ++j) w[j] = vfmaq_f32(m, w[j], d);
}

// ------------------------------------------------------------------------------------------------
// fp32 mode, GEMV (below the plan's GEMM threshold): P weight rows x NB rows of X
// ------------------------------------------------------------------------------------------------

// One accumulator per (row, row of X) and vector slot; with a single row of X two slots keep
// enough independent FMA chains in flight.
template <int NB>
constexpr int kGemvSlots = NB == 1 ? 2 : 1;

template <int P, int NB>
inline void gemv_store(const LinearArgs& a, int64_t r, int64_t i0, float32x4_t (&acc)[P][NB][kGemvSlots<NB>],
                       const float* tail) {
  SLMC_NEON_UNROLL
  for (int p = 0; p < P; ++p) {
    SLMC_NEON_UNROLL
    for (int n = 0; n < NB; ++n) {
      float32x4_t t = acc[p][n][0];
      if constexpr (kGemvSlots<NB> == 2) t = vaddq_f32(t, acc[p][n][1]);
      const float s = vaddvq_f32(t) + (tail ? tail[p * NB + n] : 0.0f);
      a.y[(i0 + n) * a.m + r + p] = s + (a.bias ? a.bias[r + p] : 0.0f);
    }
  }
}

template <ValueType kVt, int P, int NB>
void gemv_f32_float(const LinearArgs& a, int64_t r, int64_t i0) {
  constexpr int kU = kGemvSlots<NB>;
  const int64_t k = a.k, kmain = k / (4 * kU) * (4 * kU);
  const float* x = a.x + i0 * k;
  float32x4_t acc[P][NB][kU];
  SLMC_NEON_UNROLL
  for (int p = 0; p < P; ++p)
    SLMC_NEON_UNROLL
    for (int n = 0; n < NB; ++n)
      SLMC_NEON_UNROLL
      for (int u = 0; u < kU; ++u) acc[p][n][u] = vdupq_n_f32(0.0f);
  for (int64_t c = 0; c < kmain; c += 4 * kU) {
    SLMC_NEON_UNROLL
    for (int u = 0; u < kU; ++u) {
      float32x4_t xv[NB];
      SLMC_NEON_UNROLL
      for (int n = 0; n < NB; ++n) xv[n] = vld1q_f32(x + n * k + c + 4 * u);
      SLMC_NEON_UNROLL
      for (int p = 0; p < P; ++p) {
        const float32x4_t w = float4<kVt>(a.values, (r + p) * k + c + 4 * u);
        SLMC_NEON_UNROLL
        for (int n = 0; n < NB; ++n) acc[p][n][u] = vfmaq_f32(acc[p][n][u], w, xv[n]);
      }
    }
  }
  float tail[P * NB];
  for (int p = 0; p < P; ++p) {
    for (int n = 0; n < NB; ++n) {
      float t = 0.0f;
      for (int64_t c = kmain; c < k; ++c) t += float1<kVt>(a.values, (r + p) * k + c) * x[n * k + c];
      tail[p * NB + n] = t;
    }
  }
  gemv_store<P, NB>(a, r, i0, acc, kmain < k ? tail : nullptr);
}

template <bool kInt4, int P, int NB>
void gemv_f32_quant(const LinearArgs& a, int64_t r, int64_t i0) {
  constexpr int kU = kGemvSlots<NB>;
  const DenseQuantLayout& l = a.layout;
  const int64_t kend = (a.k + 15) / 16 * 16;  // codes up to here lie in real groups; x is 0 beyond k
  RowStream s[P];
  SLMC_NEON_UNROLL
  for (int p = 0; p < P; ++p) s[p] = row_stream(a, r + p);
  float32x4_t acc[P][NB][kU];
  SLMC_NEON_UNROLL
  for (int p = 0; p < P; ++p)
    SLMC_NEON_UNROLL
    for (int n = 0; n < NB; ++n)
      SLMC_NEON_UNROLL
      for (int u = 0; u < kU; ++u) acc[p][n][u] = vdupq_n_f32(0.0f);
  for (int64_t g = 0; g < l.groups; ++g) {
    const int64_t k0 = g * l.group_size, k1 = g + 1 == l.groups ? kend : k0 + l.group_size;
    float32x4_t d[P], m[P];
    SLMC_NEON_UNROLL
    for (int p = 0; p < P; ++p) {
      float dd, mm;
      scale_min(a, s[p], g, &dd, &mm);
      d[p] = vdupq_n_f32(dd);
      m[p] = vdupq_n_f32(mm);
    }
    for (int64_t c = k0; c < k1; c += 16) {
      SLMC_NEON_UNROLL
      for (int p = 0; p < P; ++p) {
        float32x4_t w[4];
        dequant16<kInt4>(s[p], c, d[p], m[p], w);
        SLMC_NEON_UNROLL
        for (int n = 0; n < NB; ++n) {
          const float* x = a.xpad + (i0 + n) * a.kpad + c;
          SLMC_NEON_UNROLL
          for (int j = 0; j < 4; ++j) acc[p][n][j % kU] = vfmaq_f32(acc[p][n][j % kU], w[j], vld1q_f32(x + 4 * j));
        }
      }
    }
  }
  gemv_store<P, NB>(a, r, i0, acc, nullptr);
}

// ------------------------------------------------------------------------------------------------
// fp32 mode, GEMM (gemm_panels in driver.hpp): panel [4 quads][k][4 rows], micro-kernel 16 x kNr
// ------------------------------------------------------------------------------------------------

// Quad q of the panel (rows 4q..4q+3) starts at panel + q * kKcF32 * 4; element (k, j) of a quad
// is at [k * 4 + j].
inline float* panel_quad(float* panel, int q) { return panel + q * kKcF32 * 4; }

// Dequantizes / converts rows mb..mb+rows-1 (rows <= 16; missing rows are zero), elements
// [kb, kb + kc), into the panel. Quantized weights: kc is a multiple of 16 and kb + kc <= K
// rounded up to 16 (every element lies in a real scale group).
template <ValueType kVt>
void pack_f32(const LinearArgs& a, int64_t mb, int64_t rows, int64_t kb, int64_t kc, float* panel) {
  constexpr bool kQuant = kVt == ValueType::kInt8 || kVt == ValueType::kInt4;
  const float32x4_t zero = vdupq_n_f32(0.0f);
  for (int q = 0; q < 4; ++q) {
    float* dst = panel_quad(panel, q);
    bool valid[4];
    SLMC_NEON_UNROLL
    for (int j = 0; j < 4; ++j) valid[j] = 4 * q + j < rows;
    if constexpr (kQuant) {
      RowStream s[4];
      float32x4_t d[4], m[4];
      SLMC_NEON_UNROLL
      for (int j = 0; j < 4; ++j) {
        if (valid[j]) s[j] = row_stream(a, mb + 4 * q + j);
        d[j] = m[j] = zero;
      }
      int64_t gcur = -1;
      for (int64_t k = 0; k < kc; k += 16) {
        const int64_t g = (kb + k) / a.layout.group_size;  // < groups: kb + k < K
        if (g != gcur) {
          gcur = g;
          SLMC_NEON_UNROLL
          for (int j = 0; j < 4; ++j) {
            if (!valid[j]) continue;
            float dd, mm;
            scale_min(a, s[j], g, &dd, &mm);
            d[j] = vdupq_n_f32(dd);
            m[j] = vdupq_n_f32(mm);
          }
        }
        float32x4_t w[4][4];
        SLMC_NEON_UNROLL
        for (int j = 0; j < 4; ++j) {
          if (valid[j]) {
            dequant16<kVt == ValueType::kInt4>(s[j], kb + k, d[j], m[j], w[j]);
          } else {
            w[j][0] = w[j][1] = w[j][2] = w[j][3] = zero;
          }
        }
        SLMC_NEON_UNROLL
        for (int t = 0; t < 4; ++t) {
          float32x4x4_t v;
          v.val[0] = w[0][t];
          v.val[1] = w[1][t];
          v.val[2] = w[2][t];
          v.val[3] = w[3][t];
          vst4q_f32(dst + (k + 4 * t) * 4, v);
        }
      }
    } else {
      const int64_t kc4 = kc / 4 * 4;
      for (int64_t k = 0; k < kc4; k += 4) {
        float32x4x4_t v;
        SLMC_NEON_UNROLL
        for (int j = 0; j < 4; ++j) v.val[j] = valid[j] ? float4<kVt>(a.values, (mb + 4 * q + j) * a.k + kb + k) : zero;
        vst4q_f32(dst + k * 4, v);
      }
      for (int64_t k = kc4; k < kc; ++k) {
        for (int j = 0; j < 4; ++j) dst[k * 4 + j] = valid[j] ? float1<kVt>(a.values, (mb + 4 * q + j) * a.k + kb + k) : 0.0f;
      }
    }
  }
}

template <int L, int NR>
inline void mk_f32_step(const float* panel, int64_t k, const float32x4_t (&xv)[NR], float32x4_t (&acc)[NR][4]) {
  float32x4_t w[4];
  SLMC_NEON_UNROLL
  for (int q = 0; q < 4; ++q) w[q] = vld1q_f32(panel + q * kKcF32 * 4 + (k + L) * 4);
  SLMC_NEON_UNROLL
  for (int n = 0; n < NR; ++n) {
    SLMC_NEON_UNROLL
    for (int q = 0; q < 4; ++q) acc[n][q] = vfmaq_laneq_f32(acc[n][q], w[q], xv[n], L);
  }
}

// acc[n][q] = sum_k panel rows 4q..4q+3 at k times x[n][k], k in [0, kc), in k order.
template <int NR>
void mk_f32(const float* panel, int64_t kc, const float* const* x, float32x4_t (&acc)[NR][4]) {
  SLMC_NEON_UNROLL
  for (int n = 0; n < NR; ++n)
    SLMC_NEON_UNROLL
    for (int q = 0; q < 4; ++q) acc[n][q] = vdupq_n_f32(0.0f);
  const int64_t kc4 = kc / 4 * 4;
  for (int64_t k = 0; k < kc4; k += 4) {
    float32x4_t xv[NR];
    SLMC_NEON_UNROLL
    for (int n = 0; n < NR; ++n) xv[n] = vld1q_f32(x[n] + k);
    mk_f32_step<0, NR>(panel, k, xv, acc);
    mk_f32_step<1, NR>(panel, k, xv, acc);
    mk_f32_step<2, NR>(panel, k, xv, acc);
    mk_f32_step<3, NR>(panel, k, xv, acc);
  }
  for (int64_t k = kc4; k < kc; ++k) {
    SLMC_NEON_UNROLL
    for (int q = 0; q < 4; ++q) {
      const float32x4_t w = vld1q_f32(panel + q * kKcF32 * 4 + k * 4);
      SLMC_NEON_UNROLL
      for (int n = 0; n < NR; ++n) acc[n][q] = vfmaq_n_f32(acc[n][q], w, x[n][k]);
    }
  }
}

// y[nb + n][mb + 0 .. rows) (+)= acc[n] (first K block: stored, then added).
template <int NR>
void store_tile(const LinearArgs& a, int64_t mb, int64_t rows, int64_t nb, bool first, const float32x4_t (&acc)[NR][4]) {
  SLMC_NEON_UNROLL
  for (int n = 0; n < NR; ++n) {
    float* y = a.y + (nb + n) * a.m + mb;
    SLMC_NEON_UNROLL
    for (int q = 0; q < 4; ++q) {
      if (4 * q + 4 <= rows) {
        vst1q_f32(y + 4 * q, first ? acc[n][q] : vaddq_f32(vld1q_f32(y + 4 * q), acc[n][q]));
      } else if (4 * q < rows) {
        float t[4];
        vst1q_f32(t, acc[n][q]);
        for (int j = 0; j < rows - 4 * q; ++j) y[4 * q + j] = first ? t[j] : y[4 * q + j] + t[j];
      }
    }
  }
}

template <int NR>
void mk_f32_tile(const LinearArgs& a, const float* panel, int64_t kb, int64_t kc, int64_t mb, int64_t rows, int64_t nb,
                 bool first) {
  const bool quant = a.vt == ValueType::kInt8 || a.vt == ValueType::kInt4;
  const float* x = quant ? a.xpad : a.x;
  const int64_t ldx = quant ? a.kpad : a.k;
  const float* xr[NR];
  SLMC_NEON_UNROLL
  for (int n = 0; n < NR; ++n) xr[n] = x + (nb + n) * ldx + kb;
  float32x4_t acc[NR][4];
  mk_f32<NR>(panel, kc, xr, acc);
  store_tile<NR>(a, mb, rows, nb, first, acc);
}

// The fp32-mode panel of gemm_panels (driver.hpp): 16 rows dequantized once per K block of 256,
// multiplied with all rows of X (read in place: no activation packing).
template <ValueType kVt>
struct F32Panel {
  static constexpr bool kQuant = kVt == ValueType::kInt8 || kVt == ValueType::kInt4;
  static constexpr int64_t kMr = detail::kMr, kNr = detail::kNr;
  const LinearArgs& a;
  int64_t kend, kc_max = kKcF32;
  float* panel;

  F32Panel(const LinearArgs& args, uint8_t* scratch)
      : a(args), kend(kQuant ? (args.k + 15) / 16 * 16 : args.k), panel(reinterpret_cast<float*>(scratch)) {}
  void pack_x(int64_t, int64_t) {}
  void pack_w(int64_t kb, int64_t kc, int64_t mb, int64_t rows) { pack_f32<kVt>(a, mb, rows, kb, kc, panel); }
  void tile(int64_t kb, int64_t kc, int64_t mb, int64_t rows, int64_t nb, int nr, bool first) {
    with_count<1, kNr>(nr, [&](auto c) { mk_f32_tile<decltype(c)::value>(a, panel, kb, kc, mb, rows, nb, first); });
  }
  void finish(int64_t m0, int64_t m1) { add_bias(a, m0, m1, 0, a.n); }
};

template <ValueType kVt>
void gemm_f32(const LinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch) {
  F32Panel<kVt> panel(a, scratch);
  gemm_panels(a, m0, m1, panel);
}

// ------------------------------------------------------------------------------------------------
// int8 mode
// ------------------------------------------------------------------------------------------------

// Integer dot products into int32 lanes (exact: |w| <= 128, |x| <= 127, so a pair of int8
// products fits int16; int4 codes are 0..15, four products of 15 * 127 fit int16).
inline int32x4_t dot16(int32x4_t acc, int8x16_t w, int8x16_t x) {
#if SLMC_LINEAR_SDOT
  return vdotq_s32(acc, w, x);
#else
  int16x8_t t = vmull_s8(vget_low_s8(w), vget_low_s8(x));
  t = vmlal_high_s8(t, w, x);
  return vpadalq_s16(acc, t);
#endif
}

template <bool kInt4>
inline int32x4_t dot32(int32x4_t acc, int8x16_t w0, int8x16_t w1, int8x16_t x0, int8x16_t x1) {
#if SLMC_LINEAR_SDOT
  return vdotq_s32(vdotq_s32(acc, w0, x0), w1, x1);
#else
  if constexpr (kInt4) {
    int16x8_t t = vmull_s8(vget_low_s8(w0), vget_low_s8(x0));
    t = vmlal_high_s8(t, w0, x0);
    t = vmlal_s8(t, vget_low_s8(w1), vget_low_s8(x1));
    t = vmlal_high_s8(t, w1, x1);
    return vpadalq_s16(acc, t);
  } else {
    return dot16(dot16(acc, w0, x0), w1, x1);
  }
#endif
}

// How the K axis is walked in int8 mode. A unit is a chunk (32 elements) or, when the group size
// is an odd number of 16-element halves, a half chunk; a span is the units of one int32 sum.
struct I8Plan {
  bool half = false;
  bool grouped = false;
  int64_t units = 0;  ///< units per row (chunks, or ceil(K / 16) halves)
  int64_t span = 0;   ///< units per span: one group, or kSpanMax chunks without group scales
  int64_t block = 0;  ///< units per K block, a multiple of span unless it covers all units
};

inline I8Plan i8_plan(const LinearArgs& a, const LinearPlan& lp) {
  const DenseQuantLayout& l = a.layout;
  I8Plan pl;
  pl.grouped = l.groups > 1 || l.group_size < a.k;
  pl.half = pl.grouped && l.group_size % kChunk != 0;
  const int64_t unit = pl.half ? 16 : kChunk;
  pl.units = pl.half ? (a.k + 15) / 16 : l.chunks;
  pl.span = pl.grouped ? l.group_size / unit : kSpanMax;
  if (lp.path != LinearPath::kGemm) {
    pl.block = pl.units;
  } else {
    const int64_t target = kKcI8 / unit;
    pl.block = !pl.grouped ? target : (pl.span >= target ? pl.span : target / pl.span * pl.span);
  }
  return pl;
}

// Codes of unit u of a row (kHalf: 16 codes; else 32 in w0, w1), as signed bytes.
template <bool kInt4>
inline int8x16_t half_codes(const RowStream& s, int64_t u) {
  const uint8_t* p = s.w + (u >> 1) * s.wstride;
  if constexpr (kInt4) {
    const uint8x16_t v = vld1q_u8(p);
    return vreinterpretq_s8_u8((u & 1) ? vshrq_n_u8(v, 4) : vandq_u8(v, vdupq_n_u8(15)));
  } else {
    return vld1q_s8(reinterpret_cast<const int8_t*>(p + (u & 1) * 16));
  }
}

template <bool kInt4>
inline void chunk_codes(const RowStream& s, int64_t u, int8x16_t* w0, int8x16_t* w1) {
  const uint8_t* p = s.w + u * s.wstride;
  if constexpr (kInt4) {
    const uint8x16_t v = vld1q_u8(p);
    *w0 = vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(15)));
    *w1 = vreinterpretq_s8_u8(vshrq_n_u8(v, 4));
  } else {
    *w0 = vld1q_s8(reinterpret_cast<const int8_t*>(p));
    *w1 = vld1q_s8(reinterpret_cast<const int8_t*>(p + 16));
  }
}

constexpr int quads(int p) { return (p + 3) / 4; }

// facc[q][n] += for every span in units [u0, u1): d(rows 4q..4q+3) * isum(rows, x row n0 + n).
// dbuf[j * P + p]: scale of group g0 + j of row p (one group, j = 0, without group scales).
template <bool kInt4, bool kHalf, int P, int NB>
void i8_tile(const LinearArgs& a, const I8Plan& pl, const RowStream* s, int64_t u0, int64_t u1, int64_t g0,
             const float* dbuf, int64_t n0, float32x4_t (&facc)[quads(P)][NB]) {
  constexpr int kQ = quads(P);
  const int8_t* xq = a.xq + n0 * a.kpad;
  const int64_t xstride = a.kpad;
  for (int64_t su = u0; su < u1; su += pl.span) {
    const int64_t se = std::min(u1, su + pl.span);
    int32x4_t acc[P][NB];
    SLMC_NEON_UNROLL
    for (int p = 0; p < P; ++p)
      SLMC_NEON_UNROLL
      for (int n = 0; n < NB; ++n) acc[p][n] = vdupq_n_s32(0);
    if constexpr (kHalf) {
      for (int64_t u = su; u < se; ++u) {
        int8x16_t xv[NB];
        SLMC_NEON_UNROLL
        for (int n = 0; n < NB; ++n) xv[n] = vld1q_s8(xq + n * xstride + u * 16);
        SLMC_NEON_UNROLL
        for (int p = 0; p < P; ++p) {
          const int8x16_t w = half_codes<kInt4>(s[p], u);
          SLMC_NEON_UNROLL
          for (int n = 0; n < NB; ++n) acc[p][n] = dot16(acc[p][n], w, xv[n]);
        }
      }
    } else {
      for (int64_t u = su; u < se; ++u) {
        int8x16_t x0[NB], x1[NB];
        SLMC_NEON_UNROLL
        for (int n = 0; n < NB; ++n) {
          x0[n] = vld1q_s8(xq + n * xstride + u * kChunk);
          x1[n] = vld1q_s8(xq + n * xstride + u * kChunk + 16);
        }
        SLMC_NEON_UNROLL
        for (int p = 0; p < P; ++p) {
          int8x16_t w0, w1;
          chunk_codes<kInt4>(s[p], u, &w0, &w1);
          SLMC_NEON_UNROLL
          for (int n = 0; n < NB; ++n) acc[p][n] = dot32<kInt4>(acc[p][n], w0, w1, x0[n], x1[n]);
        }
      }
    }
    // Four rows' sums in one vector (lanes = rows), one convert and one FMA with their scales.
    const int64_t di = pl.grouped ? su / pl.span - g0 : 0;
    SLMC_NEON_UNROLL
    for (int q = 0; q < kQ; ++q) {
      const float32x4_t dv = P == 1 ? vdupq_n_f32(dbuf[di]) : vld1q_f32(dbuf + di * P + 4 * q);
      SLMC_NEON_UNROLL
      for (int n = 0; n < NB; ++n) {
        int32x4_t iv;
        if constexpr (P == 1) {
          iv = vsetq_lane_s32(vaddvq_s32(acc[0][n]), vdupq_n_s32(0), 0);
        } else {
          iv = vpaddq_s32(vpaddq_s32(acc[4 * q][n], acc[4 * q + 1][n]), vpaddq_s32(acc[4 * q + 2][n], acc[4 * q + 3][n]));
        }
        facc[q][n] = vfmaq_f32(facc[q][n], vcvtq_f32_s32(iv), dv);
      }
    }
  }
}

// Rows 4q.. of a group: out = xscale * v + sum_g m_g * xsum_g (+ bias), m from mbuf[g * P + p]
// (the scales for symmetric int4, whose offset is -8 d).
struct I8Out {
  bool has_m = false;  ///< offset term present (asymmetric, or symmetric int4)
  bool sym4 = false;   ///< symmetric int4: mbuf holds d, the offset is -8 d
};

template <int P>
inline float32x4_t i8_finish(const LinearArgs& a, const I8Out& o, const float* mbuf, int64_t r, int q, int64_t n,
                             float32x4_t v) {
  v = vmulq_n_f32(v, a.xscale[n]);
  if (o.has_m) {
    const float* xs = a.xsum + n * a.layout.groups;
    float32x4_t mt = vdupq_n_f32(0.0f);
    for (int64_t g = 0; g < a.layout.groups; ++g) {
      const float32x4_t mv = P == 1 ? vdupq_n_f32(mbuf[g]) : vld1q_f32(mbuf + g * P + 4 * q);
      mt = vfmaq_n_f32(mt, mv, xs[g]);
    }
    if (o.sym4) mt = vmulq_n_f32(mt, -8.0f);
    v = vaddq_f32(v, mt);
  }
  if (a.bias) v = vaddq_f32(v, P == 1 ? vdupq_n_f32(a.bias[r]) : vld1q_f32(a.bias + r + 4 * q));
  return v;
}

template <int P>
inline void store_rows(float* y, int q, float32x4_t v) {
  if constexpr (P == 1) {
    y[0] = vgetq_lane_f32(v, 0);
  } else {
    vst1q_f32(y + 4 * q, v);
  }
}

// Rows r..r+P-1, x rows n0..n0+NB-1, units [u0, u1). single: the block is all of K, so the output
// is final; else y accumulates sum_span d * isum (first block stores).
template <bool kInt4, bool kHalf, int P, int NB>
void i8_rows_tile(const LinearArgs& a, const I8Plan& pl, const I8Out& o, const RowStream* s, int64_t r, int64_t u0,
                  int64_t u1, int64_t g0, const float* dbuf, const float* mbuf, int64_t n0, bool single) {
  constexpr int kQ = quads(P);
  float32x4_t facc[kQ][NB];
  SLMC_NEON_UNROLL
  for (int q = 0; q < kQ; ++q)
    SLMC_NEON_UNROLL
    for (int n = 0; n < NB; ++n) facc[q][n] = vdupq_n_f32(0.0f);
  i8_tile<kInt4, kHalf, P, NB>(a, pl, s, u0, u1, g0, dbuf, n0, facc);
  SLMC_NEON_UNROLL
  for (int n = 0; n < NB; ++n) {
    float* y = a.y + (n0 + n) * a.m + r;
    SLMC_NEON_UNROLL
    for (int q = 0; q < kQ; ++q) {
      float32x4_t v = facc[q][n];
      if (single) {
        v = i8_finish<P>(a, o, mbuf, r, q, n0 + n, v);
      } else if (u0 > 0) {
        v = vaddq_f32(P == 1 ? vdupq_n_f32(y[0]) : vld1q_f32(y + 4 * q), v);
      }
      store_rows<P>(y, q, v);
    }
  }
}

template <bool kInt4, bool kHalf, int P>
void i8_rows(const LinearArgs& a, const I8Plan& pl, const I8Out& o, int64_t r, int64_t u0, int64_t u1, float* dbuf,
             float* mbuf) {
  RowStream s[P];
  SLMC_NEON_UNROLL
  for (int p = 0; p < P; ++p) s[p] = row_stream(a, r + p);
  const int64_t g0 = pl.grouped ? u0 / pl.span : 0;
  const int64_t g1 = pl.grouped ? (u1 + pl.span - 1) / pl.span : 1;
  fill_scales<P>(a, s, a.scales, g0, g1 - g0, dbuf);
  const bool single = u0 == 0 && u1 == pl.units;
  const float* mb = nullptr;
  if (single && o.has_m) {
    if (o.sym4) {
      mb = dbuf;  // all groups are in dbuf (g0 = 0)
    } else {
      fill_scales<P>(a, s, a.mins, 0, a.layout.groups, mbuf);
      mb = mbuf;
    }
  }
  // P * NB int32 accumulators, the activations and (without sdot) the int16 products must fit the
  // 32 vector registers.
  constexpr int kNbMax = SLMC_LINEAR_SDOT ? (P == 8 ? 2 : 4) : (P == 8 ? 1 : (P == 4 ? 2 : 4));
  for_x_batches(a.n, kNbMax, [&](int64_t n0, int nb) {
    with_count<1, kNbMax>(nb, [&](auto c) {
      i8_rows_tile<kInt4, kHalf, P, decltype(c)::value>(a, pl, o, s, r, u0, u1, g0, dbuf, mb, n0, single);
    });
  });
}

// After the K blocks: y = xscale * y + sum_g m_g xsum_g + bias for rows r..r+P-1.
template <int P>
void i8_final(const LinearArgs& a, const I8Out& o, int64_t r, float* mbuf) {
  constexpr int kQ = quads(P);
  if (o.has_m) {
    RowStream s[P];
    SLMC_NEON_UNROLL
    for (int p = 0; p < P; ++p) s[p] = row_stream(a, r + p);
    fill_scales<P>(a, s, o.sym4 ? a.scales : a.mins, 0, a.layout.groups, mbuf);
  }
  for (int64_t n = 0; n < a.n; ++n) {
    float* y = a.y + n * a.m + r;
    SLMC_NEON_UNROLL
    for (int q = 0; q < kQ; ++q) {
      const float32x4_t v = P == 1 ? vdupq_n_f32(y[0]) : vld1q_f32(y + 4 * q);
      store_rows<P>(y, q, i8_finish<P>(a, o, mbuf, r, q, n, v));
    }
  }
}

// int8 mode through k_blocked_rows (driver.hpp): one K block below the plan's GEMM threshold.
template <bool kInt4, bool kHalf>
void int8_impl(const LinearArgs& a, const I8Plan& pl, int64_t m0, int64_t m1, uint8_t* scratch) {
  float* dbuf = reinterpret_cast<float*>(scratch);
  float* mbuf = dbuf + a.layout.groups * 8 + 16;
  I8Out o;
  o.has_m = !a.symmetric || kInt4;
  o.sym4 = kInt4 && a.symmetric;
  k_blocked_rows(
      a, m0, m1, pl.units, pl.block,
      [&](int64_t r, int p, int64_t u0, int64_t u1) {
        if (p == 8) {
          i8_rows<kInt4, kHalf, 8>(a, pl, o, r, u0, u1, dbuf, mbuf);
        } else if (p == 4) {
          i8_rows<kInt4, kHalf, 4>(a, pl, o, r, u0, u1, dbuf, mbuf);
        } else {
          i8_rows<kInt4, kHalf, 1>(a, pl, o, r, u0, u1, dbuf, mbuf);
        }
      },
      [&](int64_t r, int p) {
        if (p == 8) {
          i8_final<8>(a, o, r, mbuf);
        } else if (p == 4) {
          i8_final<4>(a, o, r, mbuf);
        } else {
          i8_final<1>(a, o, r, mbuf);
        }
      });
}

// ------------------------------------------------------------------------------------------------
// Entry points
// ------------------------------------------------------------------------------------------------

// fp32 mode, the GEMV micro-kernels on rows r..r+P-1 for rows i0..i0+nx-1 of X (nx <= 3).
template <ValueType kVt>
void gemv_f32_rows(const LinearArgs& a, int64_t r, int p, int64_t i0, int nx) {
  constexpr bool kQuant = kVt == ValueType::kInt8 || kVt == ValueType::kInt4;
  with_count<1, 3>(nx, [&](auto c) {
    constexpr int NB = decltype(c)::value;
    if constexpr (kQuant) {
      if (p >= 4) {
        for (int q = 0; q < p; q += 4) gemv_f32_quant<kVt == ValueType::kInt4, 4, NB>(a, r + q, i0);
      } else {
        gemv_f32_quant<kVt == ValueType::kInt4, 1, NB>(a, r, i0);
      }
    } else if (p == 4) {
      gemv_f32_float<kVt, 4, NB>(a, r, i0);
    } else {
      gemv_f32_float<kVt, 1, NB>(a, r, i0);
    }
  });
}

template <ValueType kVt>
void fp32_path(const LinearArgs& a, const LinearPlan& pl, int64_t m0, int64_t m1, uint8_t* scratch) {
  if (pl.path == LinearPath::kGemm) return gemm_f32<kVt>(a, m0, m1, scratch);
  static_assert(kLinearTuningNeon.gemv_nx_fp32 <= 3, "the fp32 GEMV micro-kernels take 1..3 rows of X");
  gemv_batches</*kKernelAddsBias=*/true>(a, m0, m1, pl.nx, [&](int64_t r, int p, int64_t i0, int nx) {
    gemv_f32_rows<kVt>(a, r, p, i0, nx);
  });
}

void fp32(const LinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch) {
  const LinearPlan pl = linear_plan(a, /*int8_acts=*/false, kLinearTuningNeon);
  switch (a.vt) {
    case ValueType::kF32: return fp32_path<ValueType::kF32>(a, pl, m0, m1, scratch);
    case ValueType::kF16: return fp32_path<ValueType::kF16>(a, pl, m0, m1, scratch);
    case ValueType::kBF16: return fp32_path<ValueType::kBF16>(a, pl, m0, m1, scratch);
    case ValueType::kInt8: return fp32_path<ValueType::kInt8>(a, pl, m0, m1, scratch);
    case ValueType::kInt4: return fp32_path<ValueType::kInt4>(a, pl, m0, m1, scratch);
    case ValueType::kNl4: break;  // never here: nl4 runs the scalar table on NEON (src/kernels/linear.cpp)
  }
}

void int8(const LinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch) {
  const I8Plan pl = i8_plan(a, linear_plan(a, /*int8_acts=*/true, kLinearTuningNeon));
  const bool int4 = a.vt == ValueType::kInt4;
  if (int4) {
    return pl.half ? int8_impl<true, true>(a, pl, m0, m1, scratch) : int8_impl<true, false>(a, pl, m0, m1, scratch);
  }
  return pl.half ? int8_impl<false, true>(a, pl, m0, m1, scratch) : int8_impl<false, false>(a, pl, m0, m1, scratch);
}

size_t scratch_bytes(const LinearArgs& a) {
  // fp32 GEMM: the panel. int8: fp32 copies of the scales and mins of one row group (at most 8
  // rows) over all groups.
  const size_t f32 = static_cast<size_t>(4 * kKcF32 * 4) * 4;
  const size_t i8 = static_cast<size_t>(2 * (a.layout.groups * 8 + 16)) * 4;
  return std::max(f32, i8) + 64;
}

template <ValueType kVt>
void gather_float(const LinearArgs& a, int64_t r, float* o) {
  const int64_t k4 = a.k / 4 * 4;
  for (int64_t c = 0; c < k4; c += 4) vst1q_f32(o + c, float4<kVt>(a.values, r * a.k + c));
  for (int64_t c = k4; c < a.k; ++c) o[c] = float1<kVt>(a.values, r * a.k + c);
}

template <bool kInt4>
void gather_quant(const LinearArgs& a, int64_t r, float* o) {
  const RowStream s = row_stream(a, r);
  const int64_t kend = (a.k + 15) / 16 * 16;
  int64_t gcur = -1;
  float32x4_t d = vdupq_n_f32(0.0f), m = d;
  for (int64_t k = 0; k < kend; k += 16) {
    const int64_t g = k / a.layout.group_size;
    if (g != gcur) {
      gcur = g;
      float dd, mm;
      scale_min(a, s, g, &dd, &mm);
      d = vdupq_n_f32(dd);
      m = vdupq_n_f32(mm);
    }
    float32x4_t w[4];
    dequant16<kInt4>(s, k, d, m, w);
    if (k + 16 <= a.k) {
      SLMC_NEON_UNROLL
      for (int j = 0; j < 4; ++j) vst1q_f32(o + k + 4 * j, w[j]);
    } else {
      float t[16];
      SLMC_NEON_UNROLL
      for (int j = 0; j < 4; ++j) vst1q_f32(t + 4 * j, w[j]);
      std::memcpy(o + k, t, static_cast<size_t>(a.k - k) * 4);
    }
  }
}

void gather(const LinearArgs& a, const int64_t* rows, int64_t count, float* out) {
  for (int64_t i = 0; i < count; ++i) {
    float* o = out + i * a.k;
    switch (a.vt) {
      case ValueType::kF32: gather_float<ValueType::kF32>(a, rows[i], o); break;
      case ValueType::kF16: gather_float<ValueType::kF16>(a, rows[i], o); break;
      case ValueType::kBF16: gather_float<ValueType::kBF16>(a, rows[i], o); break;
      case ValueType::kInt8: gather_quant<false>(a, rows[i], o); break;
      case ValueType::kInt4: gather_quant<true>(a, rows[i], o); break;
      case ValueType::kNl4: break;  // never here: nl4 gathers with the scalar table
    }
  }
}

}  // namespace
}  // namespace slmc::detail
