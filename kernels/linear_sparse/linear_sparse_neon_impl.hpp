// AArch64 NEON sparse linear kernels, shared by linear_sparse_neon.cpp (ARMv8-A) and
// linear_sparse_neon_dotprod.cpp (ARMv8.2-A + dotprod + fp16). Each of the two files includes this
// header once and builds its own table; everything here has internal linkage (anonymous namespace),
// so the two compilations with different -march flags never share a symbol. The only difference
// between them is the int8 dot product of 16 code pairs (dot16 below): `sdot` when
// __ARM_FEATURE_DOTPROD is defined, else smull + smlal2 (int16 pair sums) + sadalp (pairwise
// widening into int32). The structure is the AVX2 one (linear_sparse_avx2.cpp, docs/KERNELS.md
// "Sparse kernels"):
//
// fp32 mode, N = 1:
//   CSR     eight entries per step: x assembled from scalar loads (two lanes per chain) into two
//           float32x4 vectors, two fmla accumulator chains; int8 values widened (sxtl) and converted,
//           one scale per run of entries sharing a scale group (binary search on the columns).
//   bitmask per mask byte the eight packed f32 values are expanded with one tbl over two registers
//           (32 bytes) and a byte control derived from kBitmaskExpand; int8 values: two mask bytes
//           (16 columns) per tbl, as in the int8-mode decoder.
//   BSR/N:M the portable entry walker, scalar FMAs.
// fp32 mode, N > 1: every stored weight is broadcast (fmla by element) over tile/4 vectors of the
//   transposed activations; the accumulators stay in registers for the whole row.
// int8 mode (and fp32 mode for quantized N:M, or bitmask with N > 1): each weight row is decoded into
//   32-column int8 chunks (bitmask: one 16-column tbl per two mask bytes; 2:4: one tbl per 16
//   columns whose control is two 8-column table entries plus slot offsets; other patterns, CSR
//   and BSR: scatter into a zeroed row), then multiplied with the quantized activations, int32
//   per scale group (split into spans of at most kSpanMax chunks), float accumulation across groups.
//   Scale groups that are not a multiple of 32 columns use the scalar kernel.
// Every output is reduced in an order fixed by the weights alone: results do not depend on threads.
#pragma once

#include <arm_neon.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "linear_sparse/driver.hpp"
#include "linear_sparse/linear_sparse.hpp"

#if defined(__ARM_FEATURE_DOTPROD)
#define SLMC_SPARSE_SDOT 1
#else
#define SLMC_SPARSE_SDOT 0
#endif

// Loops over a compile-time number of vectors must be unrolled completely so that the accumulator
// arrays become registers.
#define SLMC_SPARSE_NEON_UNROLL _Pragma("GCC unroll 16")

namespace slmc::detail {
namespace {

// Chunks of 32 columns per int32 span: a lane takes 8 products of at most 128 * 127 per chunk, so
// 1024 chunks stay below 2^31 / 8 / 16256 = 16512.
constexpr int64_t kSpanMax = 1024;

// Own conversion (not slmc::fp16_to_fp32): fcvtl is ARMv8.0, and this keeps the scale loads of the
// group path in NEON registers.
inline float half_to_float(uint16_t h) { return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0); }

// ---- tables ------------------------------------------------------------------------------------

// Bitmask with f32 values: per mask byte m, the byte control of one tbl over 32 bytes (8 floats)
// that places packed value lane[m][j] in lane j: bytes 4j..4j+3 = 4 * lane + 0..3, or 0xff (zero)
// when bit j of m is clear.
struct F32ExpandTable {
  uint8_t b[256][32];
};
constexpr F32ExpandTable make_f32_expand() {
  F32ExpandTable t{};
  for (int m = 0; m < 256; ++m) {
    for (int j = 0; j < 8; ++j) {
      const int lane = kBitmaskExpand.lane[m][j];
      for (int k = 0; k < 4; ++k) t.b[m][4 * j + k] = lane >= 8 ? uint8_t{0xff} : static_cast<uint8_t>(4 * lane + k);
    }
  }
  return t;
}
constexpr F32ExpandTable kF32Expand = make_f32_expand();

// 2:4 decoding reads kNm24Expand (linear_sparse.hpp) as tbl controls.

// ---- fp32 mode, N = 1 ----------------------------------------------------------------------------

inline void load_val8(const float* p, float32x4_t& a, float32x4_t& b) {
  a = vld1q_f32(p);
  b = vld1q_f32(p + 4);
}
inline void load_val8(const int8_t* p, float32x4_t& a, float32x4_t& b) {
  const int16x8_t h = vmovl_s8(vld1_s8(p));
  a = vcvtq_f32_s32(vmovl_s16(vget_low_s16(h)));
  b = vcvtq_f32_s32(vmovl_high_s16(h));
}
inline float32x4_t load_val4(const float* p) { return vld1q_f32(p); }
inline float32x4_t load_val4(const int8_t* p) {
  int32_t u;
  std::memcpy(&u, p, 4);
  return vcvtq_f32_s32(vmovl_s16(vget_low_s16(vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(u))))));
}
inline float val1(const float* p) { return *p; }
inline float val1(const int8_t* p) { return static_cast<float>(*p); }

// x[i[0..3]] from scalar loads: two independent two-lane chains (ld1r + ld1 lane), then combined.
template <typename Idx>
inline float32x4_t x4(const float* x, const Idx* i) {
  float32x2_t lo = vld1_dup_f32(x + i[0]);
  float32x2_t hi = vld1_dup_f32(x + i[2]);
  lo = vld1_lane_f32(x + i[1], lo, 1);
  hi = vld1_lane_f32(x + i[3], hi, 1);
  return vcombine_f32(lo, hi);
}

// sum_{p in [p0, p1)} v[p] * x[idx[p]]: eight entries per step, two accumulator chains.
template <typename Idx, typename Val>
float gather_dot(const Val* v, const Idx* idx, uint64_t p0, uint64_t p1, const float* x) {
  float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
  uint64_t p = p0;
  for (; p + 8 <= p1; p += 8) {
    float32x4_t w0, w1;
    load_val8(v + p, w0, w1);
    acc0 = vfmaq_f32(acc0, w0, x4(x, idx + p));
    acc1 = vfmaq_f32(acc1, w1, x4(x, idx + p + 4));
  }
  if (p + 4 <= p1) {
    acc0 = vfmaq_f32(acc0, load_val4(v + p), x4(x, idx + p));
    p += 4;
  }
  float s = vaddvq_f32(vaddq_f32(acc0, acc1));
  for (; p < p1; ++p) s += val1(v + p) * x[idx[p]];
  return s;
}

// One CSR row: f32 values directly; int8 values in runs of one scale group.
template <typename Idx, typename Val>
float csr_row_f32(const SparseLinearArgs& a, int64_t r, const float* x) {
  const SparseLayout& l = a.layout;
  const auto* v = static_cast<const Val*>(a.values);
  const auto* idx = static_cast<const Idx*>(a.col_idx);
  const uint64_t p0 = a.pointer(r), p1 = a.pointer(r + 1);
  if (!l.quantized()) return gather_dot(v, idx, p0, p1, x);
  if (l.encoding.granularity != Granularity::kGroup) {
    return a.scale(l.scale_index(r, 0)) * gather_dot(v, idx, p0, p1, x);
  }
  float s = 0.0f;
  uint64_t p = p0;
  while (p < p1) {
    const int64_t g = static_cast<int64_t>(idx[p]) / l.scale_group;
    const int64_t end = std::min<int64_t>(l.cols, (g + 1) * l.scale_group);
    const uint64_t q = static_cast<uint64_t>(
        std::lower_bound(idx + p, idx + p1, end, [](Idx c, int64_t e) { return static_cast<int64_t>(c) < e; }) - idx);
    s += a.scale(l.scale_index(r, g * l.scale_group)) * gather_dot(v, idx, p, q, x);
    p = q;
  }
  return s;
}

// 16 int8 values of two consecutive mask bytes m0, m1 expanded to 16 columns (zero where a bit is
// clear) by one tbl: the second byte's indices start where the first byte's values end (control
// kBitmaskLo16[m0] + kBitmaskHi16[m1]). Reads 16 bytes at v (the values segment's 32-byte zero
// tail keeps that in bounds) and advances v.
inline int8x16_t expand16(const uint8_t*& v, unsigned m0, unsigned m1) {
  const uint8x16_t ctrl = vaddq_u8(vld1q_u8(kBitmaskLo16.e[m0].b), vld1q_u8(kBitmaskHi16.e[m1].b));
  const int8x16_t out = vreinterpretq_s8_u8(vqtbl1q_u8(vld1q_u8(v), ctrl));
  v += kBitmaskExpand.count[m0] + kBitmaskExpand.count[m1];
  return out;
}

// One bitmask row: f32 values one mask byte (8 columns) per step, int8 values two; the last partial
// byte of K scalar.
// a0..a3 += the 16 codes of q (as floats) times x[0:16), four columns each.
inline void fma_codes16(int8x16_t q, const float* x, float32x4_t& a0, float32x4_t& a1, float32x4_t& a2,
                        float32x4_t& a3) {
  const int16x8_t h0 = vmovl_s8(vget_low_s8(q)), h1 = vmovl_high_s8(q);
  a0 = vfmaq_f32(a0, vcvtq_f32_s32(vmovl_s16(vget_low_s16(h0))), vld1q_f32(x));
  a1 = vfmaq_f32(a1, vcvtq_f32_s32(vmovl_high_s16(h0)), vld1q_f32(x + 4));
  a2 = vfmaq_f32(a2, vcvtq_f32_s32(vmovl_s16(vget_low_s16(h1))), vld1q_f32(x + 8));
  a3 = vfmaq_f32(a3, vcvtq_f32_s32(vmovl_high_s16(h1)), vld1q_f32(x + 12));
}

template <typename Val>
float bitmask_row_f32(const SparseLinearArgs& a, int64_t r, const float* x) {
  const SparseLayout& l = a.layout;
  const uint8_t* v = static_cast<const uint8_t*>(a.values) + a.pointer(r) * sizeof(Val);
  const uint8_t* meta = a.meta + l.meta_offset(r);
  const int64_t k8 = l.cols / 8;
  const bool grouped = l.quantized() && l.encoding.granularity == Granularity::kGroup;
  const int64_t gbytes = grouped ? l.scale_group / 8 : k8 + 1;  // mask bytes per scale run
  float s = 0.0f;
  int64_t b = 0;
  for (int64_t g = 0; b < k8; ++g) {
    const int64_t be = std::min(k8, b + gbytes);
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    if constexpr (sizeof(Val) == 4) {
      for (; b < be; ++b) {
        const unsigned m = meta[b];
        const uint8x16x2_t src = {{vld1q_u8(v), vld1q_u8(v + 16)}};  // 8 floats (tail: zero bytes)
        const float32x4_t w0 = vreinterpretq_f32_u8(vqtbl2q_u8(src, vld1q_u8(kF32Expand.b[m])));
        const float32x4_t w1 = vreinterpretq_f32_u8(vqtbl2q_u8(src, vld1q_u8(kF32Expand.b[m] + 16)));
        acc0 = vfmaq_f32(acc0, w0, vld1q_f32(x + 8 * b));
        acc1 = vfmaq_f32(acc1, w1, vld1q_f32(x + 8 * b + 4));
        v += 4 * kBitmaskExpand.count[m];
      }
    } else {
      for (; b + 2 <= be; b += 2) {
        fma_codes16(expand16(v, meta[b], meta[b + 1]), x + 8 * b, acc0, acc1, acc2, acc3);
      }
      if (b < be) {  // an odd mask byte at the end of the run: one 8-byte tbl
        const unsigned m = meta[b];
        const int16x8_t h = vmovl_s8(vreinterpret_s8_u8(vtbl1_u8(vld1_u8(v), vld1_u8(kBitmaskExpand.lane[m]))));
        acc0 = vfmaq_f32(acc0, vcvtq_f32_s32(vmovl_s16(vget_low_s16(h))), vld1q_f32(x + 8 * b));
        acc1 = vfmaq_f32(acc1, vcvtq_f32_s32(vmovl_high_s16(h)), vld1q_f32(x + 8 * b + 4));
        v += kBitmaskExpand.count[m];
        ++b;
      }
    }
    const float d = l.quantized() ? a.scale(l.scale_index(r, std::min(l.cols - 1, g * gbytes * 8))) : 1.0f;
    s += d * vaddvq_f32(vaddq_f32(vaddq_f32(acc0, acc1), vaddq_f32(acc2, acc3)));
  }
  // Columns [8 * k8, K): fewer than 8, scalar.
  if (k8 * 8 < l.cols) {
    s += sparse_bitmask_tail(a, r, meta[k8], k8 * 8, reinterpret_cast<const Val*>(v), x);
  }
  return s;
}

// ---- fp32 mode, N > 1: transposed activation tiles ----------------------------------------------

template <int T>
struct TileAcc {
  float32x4_t v[T / 4];
  void zero() {
    SLMC_SPARSE_NEON_UNROLL
    for (int j = 0; j < T / 4; ++j) v[j] = vdupq_n_f32(0.0f);
  }
  void fma(float w, const float* xt) {
    SLMC_SPARSE_NEON_UNROLL
    for (int j = 0; j < T / 4; ++j) v[j] = vfmaq_n_f32(v[j], vld1q_f32(xt + 4 * j), w);
  }
  void store(float* out) const {
    SLMC_SPARSE_NEON_UNROLL
    for (int j = 0; j < T / 4; ++j) vst1q_f32(out + 4 * j, v[j]);
  }
};

// ---- int8 mode -----------------------------------------------------------------------------------

// 32 int8 codes: dense columns [32c, 32c + 16) in lo, [32c + 16, 32c + 32) in hi.
struct I8x32 {
  int8x16_t lo, hi;
};

// Chunk decoders: next(c) returns the 32 int8 codes (int4: u - 8) of dense columns [32c, 32c+32) of
// one row, zero where nothing is stored, for c = 0, 1, 2, ... in order, in registers.

// Bitmask: one tbl per 16 columns (two mask bytes), see expand16.
struct BitmaskChunks {
  const uint8_t* v;
  const uint8_t* meta;
  BitmaskChunks(const SparseLinearArgs& a, int64_t r)
      : v(static_cast<const uint8_t*>(a.values) + a.pointer(r)), meta(a.meta + a.layout.meta_offset(r)) {}
  I8x32 next(int64_t c) {
    const uint8_t* m = meta + 4 * c;
    I8x32 out;
    out.lo = expand16(v, m[0], m[1]);
    out.hi = expand16(v, m[2], m[3]);
    return out;
  }
};

// 2:4: the 16 slot codes of a 32-column chunk in one register; per 16 columns one tbl whose control
// is two 8-column table entries (one per metadata byte) plus slot offsets 0/4 or 8/12.
struct Nm24Chunks {
  const uint8_t* values;
  int64_t base = 0, stride = 0;  ///< chunk record sc at values + base + sc * stride
  const uint8_t* meta;
  bool int4;
  Nm24Chunks(const SparseLinearArgs& a, int64_t r)
      : values(static_cast<const uint8_t*>(a.values)),
        meta(a.meta + a.layout.meta_offset(r)),
        int4(a.layout.encoding.value_type == ValueType::kInt4) {
    const DenseQuantLayout& vl = a.layout.nm_values;
    base = vl.chunk_offset(r, 0);
    stride = vl.chunks > 1 ? vl.chunk_offset(r, 1) - base : 0;
  }
  I8x32 next(int64_t c) {
    const int64_t sc = c / 2, h = c % 2;
    const uint8_t* rec = values + base + sc * stride;
    int8x16_t codes;
    if (!int4) {
      codes = vld1q_s8(reinterpret_cast<const int8_t*>(rec + 16 * h));
    } else {
      const uint8x16_t b = vld1q_u8(rec);
      const uint8x16_t u = h ? vshrq_n_u8(b, 4) : vandq_u8(b, vdupq_n_u8(15));
      codes = vsubq_s8(vreinterpretq_s8_u8(u), vdupq_n_s8(8));
    }
    const uint8_t* m = meta + 4 * c;
    const uint8x16_t c01 = vaddq_u8(vcombine_u8(vld1_u8(kNm24Expand.lane[m[0]]), vld1_u8(kNm24Expand.lane[m[1]])),
                                    vcombine_u8(vdup_n_u8(0), vdup_n_u8(4)));
    const uint8x16_t c23 = vaddq_u8(vcombine_u8(vld1_u8(kNm24Expand.lane[m[2]]), vld1_u8(kNm24Expand.lane[m[3]])),
                                    vcombine_u8(vdup_n_u8(8), vdup_n_u8(12)));
    I8x32 out;
    out.lo = vqtbl1q_s8(codes, c01);
    out.hi = vqtbl1q_s8(codes, c23);
    return out;
  }
};

// Scattered codes of any format, decoded once into a row buffer (CSR, BSR, other N:M patterns).
struct BufferChunks {
  const int8_t* w;
  I8x32 next(int64_t c) const {
    I8x32 out;
    out.lo = vld1q_s8(w + 32 * c);
    out.hi = vld1q_s8(w + 32 * c + 16);
    return out;
  }
};

// acc + the products of 16 code pairs, four int32 lanes (each lane 4 products).
inline int32x4_t dot16(int32x4_t acc, int8x16_t w, int8x16_t x) {
#if SLMC_SPARSE_SDOT
  return vdotq_s32(acc, w, x);
#else
  // |w * x| <= 128 * 127: a pair sum fits int16.
  const int16x8_t p = vmlal_high_s8(vmull_s8(vget_low_s8(w), vget_low_s8(x)), w, x);
  return vpadalq_s16(acc, p);
#endif
}

// sum over chunks of dot(codes, xq), int32 per run of `span` chunks (at most kSpanMax at a time),
// each run times ds[run] (ds == null: one scale, applied by the caller).
template <typename Chunks>
float dot_i8(Chunks& w, const int8_t* x, int64_t chunks, int64_t span, const float* ds) {
  float32x4_t facc = vdupq_n_f32(0.0f);
  if (ds && span == 1) {  // a scale per chunk: two FMA chains, as in the AVX2 kernel
    auto chunk_dot = [&](int64_t c) {
      const I8x32 q = w.next(c);
      return vcvtq_f32_s32(dot16(dot16(vdupq_n_s32(0), q.lo, vld1q_s8(x + 32 * c)), q.hi, vld1q_s8(x + 32 * c + 16)));
    };
    float32x4_t facc1 = vdupq_n_f32(0.0f);
    int64_t c = 0;
    for (; c + 2 <= chunks; c += 2) {
      facc = vfmaq_n_f32(facc, chunk_dot(c), ds[c]);
      facc1 = vfmaq_n_f32(facc1, chunk_dot(c + 1), ds[c + 1]);
    }
    if (c < chunks) facc = vfmaq_n_f32(facc, chunk_dot(c), ds[c]);
    return vaddvq_f32(vaddq_f32(facc, facc1));
  }
  for (int64_t c0 = 0, g = 0; c0 < chunks; c0 += span, ++g) {
    const int64_t c1 = std::min(chunks, c0 + span);
    const float d = ds ? ds[g] : 1.0f;
    for (int64_t s0 = c0; s0 < c1; s0 += kSpanMax) {
      const int64_t s1 = std::min(c1, s0 + kSpanMax);
      int32x4_t i0 = vdupq_n_s32(0), i1 = vdupq_n_s32(0);
      for (int64_t c = s0; c < s1; ++c) {
        const I8x32 q = w.next(c);
        i0 = dot16(i0, q.lo, vld1q_s8(x + 32 * c));
        i1 = dot16(i1, q.hi, vld1q_s8(x + 32 * c + 16));
      }
      facc = vfmaq_n_f32(facc, vcvtq_f32_s32(vaddq_s32(i0, i1)), d);
    }
  }
  return vaddvq_f32(facc);
}

// The row's scales, one per scale group.
void row_scales(const SparseLinearArgs& a, int64_t r, int64_t groups, float* ds) {
  const SparseLayout& l = a.layout;
  const int64_t base = l.scale_index(r, 0);
  const int64_t stride = groups > 1 ? l.scale_index(r, l.scale_group) - base : 0;
  if (l.encoding.scale_dtype == DType::kF16) {
    const auto* p = static_cast<const uint16_t*>(a.scales) + base;
    for (int64_t g = 0; g < groups; ++g) ds[g] = half_to_float(p[g * stride]);
  } else {
    const auto* p = static_cast<const float*>(a.scales) + base;
    for (int64_t g = 0; g < groups; ++g) ds[g] = p[g * stride];
  }
}


// fp32 mode on decoded codes: sum_g d_g * sum_{k in g} code_k * x_k, 32 columns per step (four
// accumulator chains); the columns of a last partial chunk scalar (x has exactly K floats).
float dot_codes_f32(const int8_t* w, const float* x, int64_t k, int64_t span, const float* ds) {
  const int64_t full = k / 32, chunks = (k + 31) / 32;
  float s = 0.0f;
  for (int64_t c0 = 0, g = 0; c0 < chunks; c0 += span, ++g) {
    const int64_t c1 = std::min(full, c0 + span);
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    for (int64_t c = c0; c < c1; ++c) {
      fma_codes16(vld1q_s8(w + 32 * c), x + 32 * c, acc0, acc1, acc2, acc3);
      fma_codes16(vld1q_s8(w + 32 * c + 16), x + 32 * c + 16, acc0, acc1, acc2, acc3);
    }
    float part = vaddvq_f32(vaddq_f32(vaddq_f32(acc0, acc1), vaddq_f32(acc2, acc3)));
    if (c1 < std::min(chunks, c0 + span)) {  // the partial last chunk
      for (int64_t col = 32 * c1; col < k; ++col) part += static_cast<float>(w[col]) * x[col];
    }
    s += (ds ? ds[g] : 1.0f) * part;
  }
  return s;
}

// The micro-kernels of this file for the ISA-neutral drivers (linear_sparse/driver.hpp).
struct SparseUkernels {
  static constexpr int64_t kSpanMax = detail::kSpanMax;
  template <int T>
  using TileAcc = detail::TileAcc<T>;
  using BitmaskChunks = detail::BitmaskChunks;
  using Nm24Chunks = detail::Nm24Chunks;
  using BufferChunks = detail::BufferChunks;
  template <typename Idx, typename Val>
  static float csr_row_f32(const SparseLinearArgs& a, int64_t r, const float* x) {
    return detail::csr_row_f32<Idx, Val>(a, r, x);
  }
  template <typename Val>
  static float bitmask_row_f32(const SparseLinearArgs& a, int64_t r, const float* x) {
    return detail::bitmask_row_f32<Val>(a, r, x);
  }
  template <typename Chunks>
  static void store_chunk(Chunks& dec, int64_t c, int8_t* dst) {
    const I8x32 q = dec.next(c);
    vst1q_s8(dst, q.lo);
    vst1q_s8(dst + 16, q.hi);
  }
  template <typename Chunks>
  static float dot_i8(Chunks& w, const int8_t* x, int64_t chunks, int64_t span, const float* ds) {
    return detail::dot_i8(w, x, chunks, span, ds);
  }
  static float dot_codes_f32(const int8_t* w, const float* x, int64_t k, int64_t span, const float* ds) {
    return detail::dot_codes_f32(w, x, k, span, ds);
  }
  static void row_scales(const SparseLinearArgs& a, int64_t r, int64_t groups, float* ds) {
    detail::row_scales(a, r, groups, ds);
  }
  // Scale groups of a whole number of 32-column chunks (or one scale per row)? dot_i8 splits
  // longer spans into kSpanMax chunks itself.
  static bool chunked_scales(const SparseLayout& l) { return sparse_scales_in_chunks(l); }
  static constexpr bool kNm24SelectGemv = false;
  static constexpr int kDotI8Rows = 1;  // no multi-row dot yet: one dot_i8 per row of X
};

void fp32_rows(const SparseLinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch) { sparse_fp32<SparseUkernels>(a, m0, m1, scratch); }
void int8_rows(const SparseLinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch) { sparse_int8<SparseUkernels>(a, m0, m1, scratch); }

}  // namespace
}  // namespace slmc::detail
