// NEON micro-kernels of the int8 (block) activation mode (include/slmc/kernels/linear.hpp; the
// x86 ones are linear_block_x86.hpp), included after linear_neon_impl.hpp by linear_neon.cpp and
// linear_neon_dotprod.cpp: internal linkage, one copy per -march.
//
// Per 32-value chunk and (weight row, row of X): the integer dot of the chunk (two `sdot` with
// dotprod; else smull + smlal2 into int16 pair sums, |w| <= 128 and |x| <= 127 keep them below
// 2^15, and sadalp into int32), one scvtf and one fmla by s_j (times d_g when the scales are
// grouped) into four fp32 lanes, summed once at the end (faddp pairs, fixed order). int4 nibbles
// are unpacked with and/ushr into signed bytes 0..15 (codes 0-15 the low nibbles, 16-31 the high
// ones); the -8 of symmetric int4 and the mins are the offset term sum_g m_g * xsum_g. nl4 nibbles
// index the code book kNl4Levels (one tbl per 16 codes) and are then int8 codes.
//
// Determinism: an output's reduction does not depend on P, NX, the batch or the thread split.
#pragma once

#include <arm_neon.h>

#include <algorithm>
#include <cstdint>

#include "linear/driver.hpp"
#include "linear/linear.hpp"
#include "linear/linear_rows.hpp"

namespace slmc::detail {
namespace {
namespace blk_neon {

constexpr int kAccumulators = 16;  // of 32 Q registers
constexpr int kNx = 4;             // rows of X per weight pass

// Integer dot of 32 codes (w0: 0-15, w1: 16-31) with 32 activations.
inline int32x4_t dot32(int8x16_t w0, int8x16_t w1, int8x16_t x0, int8x16_t x1) {
#if SLMC_LINEAR_SDOT
  return vdotq_s32(vdotq_s32(vdupq_n_s32(0), w0, x0), w1, x1);
#else
  int16x8_t p0 = vmull_s8(vget_low_s8(w0), vget_low_s8(x0));
  p0 = vmlal_high_s8(p0, w0, x0);
  int16x8_t p1 = vmull_s8(vget_low_s8(w1), vget_low_s8(x1));
  p1 = vmlal_high_s8(p1, w1, x1);
  return vpadalq_s16(vpaddlq_s16(p0), p1);
#endif
}

/// Rows r..r+P-1 times rows i0..i0+NX-1 of X (no bias). `buf`: 2 * groups * P floats.
template <bool kInt4, bool kGrouped, int P, int NX, bool kNl4 = false>
void rows(const LinearArgs& a, int64_t r, int64_t i0, float* buf) {
  const DenseQuantLayout& l = a.layout;
  RowStream s[P];
  SLMC_NEON_UNROLL
  for (int p = 0; p < P; ++p) s[p] = row_stream(a, r + p);
  const bool has_m = has_offset_term(a);
  float* dbuf = buf;                 // [g][P]
  float* mbuf = buf + l.groups * P;  // [g][P]
  if (kGrouped || has_m) {
    for (int64_t g = 0; g < l.groups; ++g) {
      SLMC_NEON_UNROLL
      for (int p = 0; p < P; ++p) {
        const int64_t si = s[p].s0 + g * s[p].sstride;
        dbuf[g * P + p] = scale_at(a.scales, a.scales_f16, si);
        mbuf[g * P + p] = a.symmetric ? -8.0f * dbuf[g * P + p] : scale_at(a.mins, a.scales_f16, si);
      }
    }
  }
  const int8_t* xq[NX];
  const float* xb[NX];
  SLMC_NEON_UNROLL
  for (int i = 0; i < NX; ++i) {
    xq[i] = a.xq + (i0 + i) * a.kpad;
    xb[i] = a.xbs + (i0 + i) * l.chunks;
  }
  float32x4_t acc[P][NX];
  SLMC_NEON_UNROLL
  for (int p = 0; p < P; ++p) {
    SLMC_NEON_UNROLL
    for (int i = 0; i < NX; ++i) acc[p][i] = vdupq_n_f32(0.0f);
  }
  const int64_t chunks_per_group = kGrouped ? l.group_size / kChunk : 1;
  const uint8x16_t low4 = vdupq_n_u8(0x0f);
  const int8x16_t book = vld1q_s8(kNl4Levels);
  const float* dg = dbuf;
  int64_t left_in_group = chunks_per_group;
  for (int64_t j = 0; j < l.chunks; ++j) {
    int8x16_t x0[NX], x1[NX];
    float sx[NX];
    SLMC_NEON_UNROLL
    for (int i = 0; i < NX; ++i) {
      x0[i] = vld1q_s8(xq[i] + j * kChunk);
      x1[i] = vld1q_s8(xq[i] + j * kChunk + 16);
      sx[i] = xb[i][j];
    }
    SLMC_NEON_UNROLL
    for (int p = 0; p < P; ++p) {
      const uint8_t* w = s[p].w + j * s[p].wstride;
      int8x16_t w0, w1;
      if (kNl4) {
        const uint8x16_t b = vld1q_u8(w);
        w0 = vqtbl1q_s8(book, vandq_u8(b, low4));
        w1 = vqtbl1q_s8(book, vshrq_n_u8(b, 4));
      } else if (kInt4) {
        const uint8x16_t b = vld1q_u8(w);
        w0 = vreinterpretq_s8_u8(vandq_u8(b, low4));
        w1 = vreinterpretq_s8_u8(vshrq_n_u8(b, 4));
      } else {
        w0 = vld1q_s8(reinterpret_cast<const int8_t*>(w));
        w1 = vld1q_s8(reinterpret_cast<const int8_t*>(w) + 16);
      }
      SLMC_NEON_UNROLL
      for (int i = 0; i < NX; ++i) {
        const float32x4_t f = vcvtq_f32_s32(dot32(w0, w1, x0[i], x1[i]));
        acc[p][i] = vfmaq_n_f32(acc[p][i], f, kGrouped ? dg[p] * sx[i] : sx[i]);
      }
    }
    if (kGrouped && --left_in_group == 0) {
      left_in_group = chunks_per_group;
      dg += P;
    }
  }
  float d0[P];
  if (!kGrouped) {
    SLMC_NEON_UNROLL
    for (int p = 0; p < P; ++p) d0[p] = scale_at(a.scales, a.scales_f16, s[p].s0);
  }
  SLMC_NEON_UNROLL
  for (int i = 0; i < NX; ++i) {
    const float* xs = a.xsum + (i0 + i) * l.groups;
    SLMC_NEON_UNROLL
    for (int p = 0; p < P; ++p) {
      float v = vaddvq_f32(acc[p][i]);
      if (!kGrouped) v *= d0[p];
      float offset = 0.0f;
      if (has_m) {
        for (int64_t g = 0; g < l.groups; ++g) offset += mbuf[g * P + p] * xs[g];
      }
      a.y[(i0 + i) * a.m + r + p] = v + offset;
    }
  }
}

template <bool kInt4, bool kGrouped, int P, bool kNl4 = false>
void rows_batch(const LinearArgs& a, int64_t r, int64_t i0, int nx, float* buf) {
  constexpr int kMax = std::min(kNx, std::max(1, kAccumulators / P));
  for (int i = 0; i < nx; i += kMax) {
    with_count<1, kMax>(std::min(kMax, nx - i),
                        [&](auto c) { rows<kInt4, kGrouped, P, decltype(c)::value, kNl4>(a, r, i0 + i, buf); });
  }
}

/// The table entry: y[:, m0:m1) (bias included) in int8 (block) mode; groupings that split a
/// chunk (g16, g48) go to the scalar reference. `scratch`: the table's scratch_bytes.
void int8_block(const LinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch) {
  const bool grouped = grouped_scales(a);
  if (grouped && a.layout.group_size % kChunk != 0) return linear_int8_block_scalar(a, m0, m1, scratch);
  float* buf = reinterpret_cast<float*>(scratch);
  auto run = [&](auto int4, auto grouped_c, auto nl4) {
    constexpr bool kI4 = decltype(int4)::value, kG = decltype(grouped_c)::value, kN = decltype(nl4)::value;
    gemv_batches(a, m0, m1, kNx, [&](int64_t r, int p, int64_t i0, int nx) {
      switch (p) {
        case 8: return rows_batch<kI4, kG, 8, kN>(a, r, i0, nx, buf);
        case 4: return rows_batch<kI4, kG, 4, kN>(a, r, i0, nx, buf);
        default: return rows_batch<kI4, kG, 1, kN>(a, r, i0, nx, buf);
      }
    });
  };
  using T = std::true_type;
  using F = std::false_type;
  if (a.vt == ValueType::kNl4) {
    grouped ? run(F(), T(), T()) : run(F(), F(), T());
  } else if (a.vt == ValueType::kInt4) {
    grouped ? run(T(), T(), F()) : run(T(), F(), F());
  } else {
    grouped ? run(F(), T(), F()) : run(F(), F(), F());
  }
}

}  // namespace blk_neon
}  // namespace
}  // namespace slmc::detail
