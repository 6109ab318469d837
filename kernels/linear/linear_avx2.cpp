// AVX2 + FMA + F16C linear micro-kernels. The drivers (row groups, batches of rows of X, the GEMM
// panel loop, the path plan and its thresholds, kLinearTuningAvx2) are ISA-neutral:
// kernels/linear/driver.hpp. Design notes in docs/KERNELS.md; in short:
//
// GEMV (fp32 mode: one weight pass per row of X; int8 mode: one pass per 8 rows of X), four rows
// in flight:
//   int8 mode: int8 codes  -> vpmaddubsw(|w|, sign(x, w)) + vpmaddwd, int32 per scale span;
//              int4 nibbles -> one broadcast load, vpsrlvd + vpand give 32 codes u in element order,
//              vpmaddubsw(u, x) summed in int16 over up to 8 chunks (|u| <= 15: 8 * 2 * 15 * 127
//              < 32767), then one vpmaddwd; one cvt + FMA with the scale per group.
//   fp32 mode: codes -> floats -> w = d*c + m -> FMA with x.
// int4 in interleaved blocks, int8 mode: row pairs from one 32-byte load, up to 8 rows of X per
//   weight pass (PairsGemv).
// GEMM: 16 output rows at a time; the weights of a K block are repacked into an L1/L2-resident
//   panel once and reused for every row of X:
//   fp32 mode: panel [k][16 rows] fp32, outer-product micro-kernel 16 x 6 (12 accumulators).
//   int8 mode: panel [k/4][16 rows][4 codes]: one vpmaddubsw multiplies 8 rows x 4 k with a
//              broadcast of 4 activation bytes, so output lanes are rows (no horizontal sums) and
//              int4 products accumulate in int16 over 32 k (8 vpmaddubsw) before one vpmaddwd.
//              int8 codes use |w| and vpsignb; their products are widened every step.
// The int8 dot of a chunk (vpmaddubsw + vpmaddwd) is where a VNNI build's vpdpbusd goes.
// Unusual groupings in int8 mode (group size not a multiple of 32) use the scalar kernel.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <utility>

#include "linear/driver.hpp"
#include "linear/linear.hpp"
#include "linear/linear_rows.hpp"
#include "slmc/check.hpp"

// Loops over a compile-time number of rows/columns must be unrolled completely: otherwise GCC keeps
// the accumulator arrays in memory and stores every accumulator in every iteration.
#define SLMC_UNROLL _Pragma("GCC unroll 16")

namespace slmc::detail {
namespace {

// Software prefetch distance in chunk steps of a row stream (1 KiB ahead on plain int8 rows, 8 KiB on
// 8-row interleaved int8 blocks): measured better than 0, 4 or 12 on the DRAM-resident GEMV.
constexpr int64_t kPrefetchChunks = 32;
constexpr int kMaxNX = static_cast<int>(kLinearTuningAvx2.gemv_nx_int8);  // rows of X per weight pass, batched GEMVs
constexpr int64_t kMr = 16;        // GEMM rows per panel
constexpr int64_t kNrF32 = 6;      // GEMM fp32 micro-kernel columns (rows of X)
constexpr int64_t kNrI8 = 3;       // GEMM int8 micro-kernel columns
constexpr int64_t kKcF32 = 256;    // fp32 panel depth (16 KiB)
constexpr int64_t kKcI8 = 1024;    // int8 panel depth before rounding to whole groups
constexpr int64_t kSpanMax = 1024; // chunks per int32 span without per-group scales (no overflow)
// int8 GEMV rows up to this K (per-channel or per-tensor scales) take an 8-row block as two 4-row
// halves. Session 4, R=8, fastest / median of interleaved runs, 1536x576: 0.045 / 0.048 ->
// 0.034 / 0.043 ms and 0.048 / 0.051 -> 0.034 / 0.044 ms; at K = 4096 and 8192 the halves were
// 1.3-2x slower (the block no longer stays in L1 between them), and with g32 scales 1.2x slower
// (each half converts the block's interleaved scales).
constexpr int64_t kShortRowK = 1024;

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// y = xscale * dot + offset with one rounding, written out: plain C++ leaves the contraction to
// the compiler, which may choose differently in different functions (one-row and batched GEMVs
// must agree to the bit).
inline float combine(float xscale, float dot, float offset) {
  return _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(xscale), _mm_set_ss(dot), _mm_set_ss(offset)));
}

inline float scale_at(const void* p, bool f16, int64_t i) {
  if (f16) return _cvtsh_ss(static_cast<const uint16_t*>(p)[i]);
  return static_cast<const float*>(p)[i];
}

inline __m256i load_bcast_i32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// Scale d and offset m of group g (w = d * c + m, c the stored code).
inline void scale_min(const LinearArgs& a, const RowStream& s, int64_t g, float* d, float* m) {
  scale_min_with<scale_at>(a, s, g, d, m);
}

// 8 codes of a row starting at element k (a multiple of 8), as floats.
template <bool kInt4>
inline __m256 codes8(const RowStream& s, int64_t k) {
  const uint8_t* p = s.w + (k >> 5) * s.wstride;
  const int64_t j = k & 31;
  if (!kInt4) {
    const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + j));
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
  }
  const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + (j & 15)));
  __m256i v = _mm256_cvtepu8_epi32(b);
  if (j >= 16) v = _mm256_srli_epi32(v, 4);
  return _mm256_cvtepi32_ps(_mm256_and_si256(v, _mm256_set1_epi32(15)));
}

// 8 float weights of row r at element k (k + 8 <= K).
template <ValueType kVt>
inline __m256 float8(const void* values, int64_t idx) {
  if (kVt == ValueType::kF32) return _mm256_loadu_ps(static_cast<const float*>(values) + idx);
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(values) + idx));
  if (kVt == ValueType::kF16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

inline void transpose8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// ------------------------------------------------------------------------------------------------
// GEMV, fp32 activations
// ------------------------------------------------------------------------------------------------

template <ValueType kVt, int P>
void gemv_f32_float(const LinearArgs& a, int64_t r, const float* x, float* out) {
  const int64_t k = a.k, k8 = k / 8 * 8;
  __m256 acc[P];
  SLMC_UNROLL
  for (int p = 0; p < P; ++p) acc[p] = _mm256_setzero_ps();
  for (int64_t c = 0; c < k8; c += 8) {
    const __m256 xv = _mm256_loadu_ps(x + c);
    SLMC_UNROLL
    for (int p = 0; p < P; ++p) acc[p] = _mm256_fmadd_ps(float8<kVt>(a.values, (r + p) * k + c), xv, acc[p]);
  }
  SLMC_UNROLL
  for (int p = 0; p < P; ++p) {
    float s = hsum(acc[p]);
    for (int64_t c = k8; c < k; ++c) s += float_weight(a, r + p, c) * x[c];
    out[p] = s;
  }
}

template <bool kInt4, int P>
void gemv_f32_quant(const LinearArgs& a, int64_t r, const float* x /* kpad, zero padded */, float* out) {
  const DenseQuantLayout& l = a.layout;
  RowStream s[P];
  SLMC_UNROLL
  for (int p = 0; p < P; ++p) s[p] = row_stream(a, r + p);
  __m256 acc[P];
  SLMC_UNROLL
  for (int p = 0; p < P; ++p) acc[p] = _mm256_setzero_ps();
  const int64_t kend = (a.k + 7) / 8 * 8;  // codes up to the padded chunk are readable; x is 0 there
  for (int64_t g = 0; g < l.groups; ++g) {
    const int64_t k0 = g * l.group_size, k1 = std::min(kend, k0 + l.group_size);
    __m256 d[P], m[P];
    SLMC_UNROLL
    for (int p = 0; p < P; ++p) {
      float dd, mm;
      scale_min(a, s[p], g, &dd, &mm);
      d[p] = _mm256_set1_ps(dd);
      m[p] = _mm256_set1_ps(mm);
    }
    for (int64_t c = k0; c < k1; c += 8) {
      const __m256 xv = _mm256_loadu_ps(x + c);
      SLMC_UNROLL
      for (int p = 0; p < P; ++p) {
        const __m256 w = _mm256_fmadd_ps(codes8<kInt4>(s[p], c), d[p], m[p]);
        acc[p] = _mm256_fmadd_ps(w, xv, acc[p]);
      }
    }
  }
  SLMC_UNROLL
  for (int p = 0; p < P; ++p) out[p] = hsum(acc[p]);
}

// ------------------------------------------------------------------------------------------------
// GEMV, int8 activations
// ------------------------------------------------------------------------------------------------

// Scales (and mins) of P consecutive rows starting at r as fp32: for row p and group g,
// d[off[p] + g * sstride]. fp32 scales point into the segment; fp16 scales are converted into
// `buf` (which needs room for 2 * (G * R + 8) floats) with F16C, eight at a time.
struct RowScales {
  const float* d;
  const float* m;  // null when symmetric
  int64_t off[8];
  int64_t sstride;
};

template <int P>
RowScales row_scales(const LinearArgs& a, const RowStream* s, float* buf) {
  RowScales rs;
  const int64_t first = s[0].s0;
  const int64_t last = s[P - 1].s0 + (a.layout.groups - 1) * s[P - 1].sstride;
  const int64_t len = last - first + 1;
  SLMC_UNROLL
  for (int p = 0; p < P; ++p) rs.off[p] = s[p].s0 - first;
  rs.sstride = s[0].sstride;
  auto convert = [&](const void* src, float* dst) -> const float* {
    if (!a.scales_f16) return static_cast<const float*>(src) + first;
    const uint16_t* h = static_cast<const uint16_t*>(src) + first;
    int64_t i = 0;
    for (; i + 8 <= len; i += 8) {
      _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i))));
    }
    for (; i < len; ++i) dst[i] = _cvtsh_ss(h[i]);
    return dst;
  };
  rs.d = convert(a.scales, buf);
  rs.m = a.symmetric ? nullptr : convert(a.mins, buf + len + 8);
  return rs;
}

// mt[p] = sum_g m[p][g] * xs[g] for the P rows of `sc` (m = the mins, or the scales when
// `use_d`). Interleaved blocks store the rows of one group side by side: one FMA per group serves
// all rows; plain rows are contiguous along g: eight groups per FMA.
template <int P>
void offset_terms(const RowScales& sc, bool use_d, const float* xs, int64_t groups, float* mt) {
  const float* m = use_d ? sc.d : sc.m;
  if (P == 8 && sc.sstride == 8 && sc.off[1] == 1) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t g = 0; g < groups; ++g) acc = _mm256_fmadd_ps(_mm256_loadu_ps(m + g * 8), _mm256_broadcast_ss(xs + g), acc);
    _mm256_storeu_ps(mt, acc);
    return;
  }
  if (P == 4 && sc.sstride == 4 && sc.off[1] == 1) {
    __m128 acc = _mm_setzero_ps();
    for (int64_t g = 0; g < groups; ++g) acc = _mm_fmadd_ps(_mm_loadu_ps(m + g * 4), _mm_broadcast_ss(xs + g), acc);
    _mm_storeu_ps(mt, acc);
    return;
  }
  for (int p = 0; p < P; ++p) {
    const float* mp = m + sc.off[p];
    float t = 0.0f;
    int64_t g = 0;
    if (sc.sstride == 1) {
      __m256 acc = _mm256_setzero_ps();
      for (; g + 8 <= groups; g += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(mp + g), _mm256_loadu_ps(xs + g), acc);
      t = hsum(acc);
    }
    for (; g < groups; ++g) t += mp[g * sc.sstride] * xs[g];
    mt[p] = t;
  }
}

// Output rows r..r+P-1 for activation row i:
//   y = xscale * sum_g d_g * isum_g + sum_g m_g * xsum_g
// isum_g: integer dot product of the group's codes with xq. kSpan: chunks per scale group when it
// is a compile-time constant (1 for g32, 4 for g128), else 0. Per-channel and per-tensor scales
// use spans of at most kSpanMax chunks (int32 cannot overflow) with the same scale.
template <bool kInt4, int P, int kSpan>
void gemv_i8(const LinearArgs& a, int64_t r, int64_t i, float* buf, float* out) {
  const DenseQuantLayout& l = a.layout;
  const bool grouped = l.groups > 1 || l.group_size < a.k;
  const int64_t span = kSpan > 0 ? kSpan : (grouped ? l.group_size / kChunk : kSpanMax);
  const int8_t* xq = a.xq + i * a.kpad;
  const float* xs = a.xsum + i * l.groups;
  RowStream s[P];
  SLMC_UNROLL
  for (int p = 0; p < P; ++p) s[p] = row_stream(a, r + p);
  const RowScales sc = row_scales<P>(a, s, buf);
  const uint8_t* w[P];
  SLMC_UNROLL
  for (int p = 0; p < P; ++p) w[p] = s[p].w;
  const int64_t cstride = s[0].wstride;  // the P rows share one storage region
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i nib = _mm256_set1_epi8(15);
  const __m256i shift = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);
  // symmetric int4: m = -8d, so the offset term is d * (-8 * xsum); symmetric int8: none.
  const bool sym4 = kInt4 && a.symmetric;
  const bool has_m = !a.symmetric || kInt4;
  __m256 facc[P];
  SLMC_UNROLL
  for (int p = 0; p < P; ++p) facc[p] = _mm256_setzero_ps();
  // Integer products of one chunk of row p with the activation chunk xv (int8: 16 lanes of
  // pair sums, |.| <= 2 * 128 * 127; int4: <= 2 * 15 * 127, eight of them fit in int16).
  auto chunk_i16 = [&](int p, int64_t c, __m256i xv) {
    const uint8_t* wp = w[p] + c * cstride;
    // Interleaved int8 rows 2j and 2j+1 share a cache line: prefetch it once.
    if (P == 1 || cstride != P * 32 || p % 2 == 0) {
      _mm_prefetch(reinterpret_cast<const char*>(wp + kPrefetchChunks * cstride), _MM_HINT_T0);
    }
    if (kInt4) {
      const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wp)));
      return _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srlv_epi32(b, shift), nib), xv);
    }
    const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp));
    return _mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8(xv, wv));
  };
  auto xchunk = [&](int64_t c) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(xq + c * kChunk)); };
  auto scale = [&](int p, int64_t g) { return _mm256_broadcast_ss(sc.d + sc.off[p] + g * sc.sstride); };
  if (span <= 8) {
    // Short groups (g <= 256): row by row within a group; int4 sums stay in int16 for the group.
    for (int64_t g = 0; g < l.groups; ++g) {
      const int64_t c0 = g * span, c1 = std::min(l.chunks, c0 + span);
      SLMC_UNROLL
      for (int p = 0; p < P; ++p) {
        __m256i isum;
        if (kInt4) {
          __m256i i16 = chunk_i16(p, c0, xchunk(c0));
          for (int64_t c = c0 + 1; c < c1; ++c) i16 = _mm256_add_epi16(i16, chunk_i16(p, c, xchunk(c)));
          isum = _mm256_madd_epi16(i16, ones);
        } else {
          isum = _mm256_madd_epi16(chunk_i16(p, c0, xchunk(c0)), ones);
          for (int64_t c = c0 + 1; c < c1; ++c) {
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(chunk_i16(p, c, xchunk(c)), ones));
          }
        }
        facc[p] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale(p, g), facc[p]);
      }
    }
  } else {
    // Long spans (per-channel, per-tensor, groups > 256): int32 accumulators for all P rows.
    int64_t g = 0;
    for (int64_t c0 = 0; c0 < l.chunks; c0 += span, g += grouped ? 1 : 0) {
      const int64_t c1 = std::min(l.chunks, c0 + span);
      __m256i iacc[P];
      SLMC_UNROLL
      for (int p = 0; p < P; ++p) iacc[p] = _mm256_setzero_si256();
      if (kInt4) {
        for (int64_t cc = c0; cc < c1; cc += 8) {
          const int64_t ce = std::min(c1, cc + 8);
          SLMC_UNROLL
          for (int p = 0; p < P; ++p) {
            __m256i i16 = chunk_i16(p, cc, xchunk(cc));
            for (int64_t c = cc + 1; c < ce; ++c) i16 = _mm256_add_epi16(i16, chunk_i16(p, c, xchunk(c)));
            iacc[p] = _mm256_add_epi32(iacc[p], _mm256_madd_epi16(i16, ones));
          }
        }
      } else {
        // Named accumulators (an array would live in memory, see mk_f32_any).
        __m256i a0 = iacc[0], a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        auto step = [&](int p, int64_t c, __m256i xv, __m256i acc) {
          return _mm256_add_epi32(acc, _mm256_madd_epi16(chunk_i16(p, c, xv), ones));
        };
        for (int64_t c = c0; c < c1; ++c) {
          const __m256i xv = xchunk(c);
          a0 = step(0, c, xv, a0);
          if constexpr (P >= 4) {
            a1 = step(1, c, xv, a1);
            a2 = step(2, c, xv, a2);
            a3 = step(3, c, xv, a3);
          }
          if constexpr (P >= 8) {
            a4 = step(4, c, xv, a4);
            a5 = step(5, c, xv, a5);
            a6 = step(6, c, xv, a6);
            a7 = step(7, c, xv, a7);
          }
        }
        const __m256i all[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
        SLMC_UNROLL
        for (int p = 0; p < P; ++p) iacc[p] = all[p];
      }
      SLMC_UNROLL
      for (int p = 0; p < P; ++p) facc[p] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(iacc[p]), scale(p, g), facc[p]);
    }
  }
  // Offset term sum_g m_g * xsum_g from the fp32 scale copies (symmetric int4: m = -8d).
  float mt[8] = {};
  if (has_m) offset_terms<P>(sc, sym4, xs, l.groups, mt);
  SLMC_UNROLL
  for (int p = 0; p < P; ++p) out[p] = combine(a.xscale[i], hsum(facc[p]), sym4 ? -8.0f * mt[p] : mt[p]);
}

// The batched GEMVs take a row group (or block) in several passes; each pass prefetches its share
// of the next group's bytes, kStep of them per chunk step from byte `off` of that group: every
// cache line that starts in [off, off + kStep) once.
template <int64_t kStep>
inline void prefetch_share(uintptr_t next, int64_t off) {
  if constexpr (kStep >= 64) {
    SLMC_UNROLL
    for (int64_t b = 0; b < kStep; b += 64) _mm_prefetch(reinterpret_cast<const char*>(next + static_cast<uintptr_t>(off + b)), _MM_HINT_T0);
  } else if ((off & 63) < kStep) {
    _mm_prefetch(reinterpret_cast<const char*>(next + static_cast<uintptr_t>(off)), _MM_HINT_T0);
  }
}

// gemv_i8 for NX rows of X (2..kMaxNX) per weight pass: the codes of a chunk are loaded and made
// ready (int8: |w|; int4: unpacked) once for all of them. Accumulators are fp32 per (row, row of X),
// plus per row of X an int32 (int8) or int16 (int4) group sum, and for spans longer than 8 chunks
// an int32 span sum per (row, row of X); passes over kR rows x kJ rows of X keep them in registers
// (later passes read the rows from L1/L2). Every (row, row of X) sees gemv_i8's operations in its
// order, so a row of X gets the same bits as in a one-row call.
template <bool kInt4, int P, int kSpan, int NX>
class RowsGemv {
 public:
  // Scale groups of a runtime length (per-channel scales above all: one span of up to kSpanMax
  // chunks) keep their fp32 sums in memory: they change once per group, the int sums every chunk.
  static constexpr bool kFaccInMemory = kSpan == 0;
  static constexpr int kJ = kSpan == 4 ? std::min(NX, 4) : std::min(NX, 8);
  static constexpr int kR = kSpan == 4 ? (kJ <= 2 ? 2 : 1) : std::min(P, std::max(1, 8 / kJ));
  static_assert(P % kR == 0, "passes cover whole row groups");
  static constexpr int kPasses = (P / kR) * ((NX + kJ - 1) / kJ);
  // Bytes of the next row group each pass prefetches per chunk step (see prefetch_share).
  static constexpr int64_t kNextStep = P * (kInt4 ? 16 : 32) / kPasses;

  RowsGemv(const LinearArgs& a, int64_t r, int64_t i0, float* buf) : a_(a), l_(a.layout), i0_(i0) {
    grouped_ = l_.groups > 1 || l_.group_size < a.k;
    span_ = kSpan > 0 ? kSpan : (grouped_ ? l_.group_size / kChunk : kSpanMax);
    RowStream s[P];
    SLMC_UNROLL
    for (int p = 0; p < P; ++p) s[p] = row_stream(a, r + p);
    sc_ = row_scales<P>(a, s, buf);
    SLMC_UNROLL
    for (int p = 0; p < P; ++p) w_[p] = s[p].w;
    cstride_ = s[0].wstride;
    interleaved_ = P > 1 && cstride_ == P * l_.chunk_bytes;
    next_ = reinterpret_cast<uintptr_t>(w_[0] + P * l_.row_bytes());
  }

  // out[j * M + p] = y of row r + p for row i0 + j of X.
  void run(float* out) {
    alignas(32) float dot[NX][P];
    rows(dot);
    const bool sym4 = kInt4 && a_.symmetric;
    const bool has_m = !a_.symmetric || kInt4;
    for (int j = 0; j < NX; ++j) {
      float mt[8] = {};
      if (has_m) offset_terms<P>(sc_, sym4, a_.xsum + (i0_ + j) * l_.groups, l_.groups, mt);
      SLMC_UNROLL
      for (int p = 0; p < P; ++p) out[j * a_.m + p] = combine(a_.xscale[i0_ + j], dot[j][p], sym4 ? -8.0f * mt[p] : mt[p]);
    }
  }

 private:
  // The row offsets are runtime values: one instantiation per shape of pass, not per pass (a
  // compile-time offset multiplied the instantiations, and the file's compile time, by 10).
  void rows(float (*dot)[P]) {
    int index = 0;
    for (int r0 = 0; r0 < P; r0 += kR) {
      int j0 = 0;
      for (; j0 + kJ <= NX; j0 += kJ) pass<kJ>(r0, j0, index++, dot);
      if constexpr (NX % kJ != 0) pass<NX % kJ>(r0, j0, index++, dot);
    }
  }

  // Rows [r0, r0 + kR) for rows [j0, j0 + NJ) of X over the whole row; pass number `index` of
  // kPasses.
  template <int NJ>
  void pass(int r0, int j0, int index, float (*dot)[P]) {
    constexpr int NR = kR;
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i nib = _mm256_set1_epi8(15);
    const __m256i shift = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);
    const bool first = r0 == 0 && j0 == 0;
    // Every pass fetches its share of the next row group (the P rows stored after these): without
    // it the first pass streams the whole group from memory while doing 1/passes of the products.
    const int64_t next0 = index * l_.chunks * kNextStep;
    const int8_t* xq = a_.xq + (i0_ + j0) * a_.kpad;
    const int64_t kpad = a_.kpad;
    auto xchunk = [&](int j, int64_t c) {
      return _mm256_load_si256(reinterpret_cast<const __m256i*>(xq + j * kpad + c * kChunk));
    };
    // Chunk c of row p ready for vpmaddubsw: int4 codes (w), or int8 |w| (w) and w itself (sgn).
    auto codes = [&](int p, int64_t c, __m256i* w, __m256i* sgn) {
      const uint8_t* wp = w_[p] + c * cstride_;
      if (kPasses > 1 && p == r0) prefetch_share<kNextStep>(next_, next0 + c * kNextStep);
      if (first && p == 0) {
        // The first pass fetches ahead for every row: later passes find them in cache.
        if (interleaved_) {
          SLMC_UNROLL
          for (int64_t line = 0; line < P * (kInt4 ? 16 : 32) / 64; ++line) {
            _mm_prefetch(reinterpret_cast<const char*>(wp + kPrefetchChunks * cstride_ + 64 * line), _MM_HINT_T0);
          }
        } else {
          SLMC_UNROLL
          for (int q = 0; q < P; ++q) {
            _mm_prefetch(reinterpret_cast<const char*>(w_[q] + (c + kPrefetchChunks) * cstride_), _MM_HINT_T0);
          }
        }
      }
      if (kInt4) {
        const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wp)));
        *w = _mm256_and_si256(_mm256_srlv_epi32(b, shift), nib);
      } else {
        *sgn = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp));
        *w = _mm256_abs_epi8(*sgn);
      }
    };
    auto product = [&](__m256i w, __m256i sgn, __m256i xv) {
      return kInt4 ? _mm256_maddubs_epi16(w, xv) : _mm256_maddubs_epi16(w, _mm256_sign_epi8(xv, sgn));
    };
    auto scale = [&](int p, int64_t g) { return _mm256_broadcast_ss(sc_.d + sc_.off[p] + g * sc_.sstride); };
    __m256 facc[NR][NJ];
    alignas(32) float fmem[NR][NJ][8];
    SLMC_UNROLL
    for (int r = 0; r < NR; ++r) {
      SLMC_UNROLL
      for (int j = 0; j < NJ; ++j) {
        facc[r][j] = _mm256_setzero_ps();
        if (kFaccInMemory) _mm256_store_ps(fmem[r][j], facc[r][j]);
      }
    }
    // facc[r][j] += isum * d
    auto accumulate = [&](int r, int j, __m256i isum, __m256 d) {
      if (kFaccInMemory) {
        _mm256_store_ps(fmem[r][j], _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), d, _mm256_load_ps(fmem[r][j])));
      } else {
        facc[r][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), d, facc[r][j]);
      }
    };
    const int64_t span = span_;
    if (span <= 8) {
      for (int64_t g = 0; g < l_.groups; ++g) {
        const int64_t c0 = g * span, c1 = std::min(l_.chunks, c0 + span);
        SLMC_UNROLL
        for (int r = 0; r < NR; ++r) {
          // int8: int32 sums of each chunk's pair products; int4: int16 over the group.
          __m256i sum[NJ];
          __m256i w = _mm256_setzero_si256(), sgn = w;
          codes(r0 + r, c0, &w, &sgn);
          SLMC_UNROLL
          for (int j = 0; j < NJ; ++j) {
            const __m256i t = product(w, sgn, xchunk(j, c0));
            sum[j] = kInt4 ? t : _mm256_madd_epi16(t, ones);
          }
          for (int64_t c = c0 + 1; c < c1; ++c) {
            codes(r0 + r, c, &w, &sgn);
            SLMC_UNROLL
            for (int j = 0; j < NJ; ++j) {
              const __m256i t = product(w, sgn, xchunk(j, c));
              sum[j] = kInt4 ? _mm256_add_epi16(sum[j], t) : _mm256_add_epi32(sum[j], _mm256_madd_epi16(t, ones));
            }
          }
          const __m256 d = scale(r0 + r, g);
          SLMC_UNROLL
          for (int j = 0; j < NJ; ++j) accumulate(r, j, kInt4 ? _mm256_madd_epi16(sum[j], ones) : sum[j], d);
        }
      }
    } else {
      int64_t g = 0;
      for (int64_t c0 = 0; c0 < l_.chunks; c0 += span, g += grouped_ ? 1 : 0) {
        const int64_t c1 = std::min(l_.chunks, c0 + span);
        __m256i iacc[NR][NJ];
        SLMC_UNROLL
        for (int r = 0; r < NR; ++r) {
          SLMC_UNROLL
          for (int j = 0; j < NJ; ++j) iacc[r][j] = _mm256_setzero_si256();
        }
        // int4: int16 sums over up to 8 chunks, then widened; int8: widened every chunk.
        constexpr int64_t kStep = kInt4 ? 8 : 1;
        for (int64_t cc = c0; cc < c1; cc += kStep) {
          const int64_t ce = std::min(c1, cc + kStep);
          SLMC_UNROLL
          for (int r = 0; r < NR; ++r) {
            __m256i i16[NJ];
            __m256i w = _mm256_setzero_si256(), sgn = w;
            codes(r0 + r, cc, &w, &sgn);
            SLMC_UNROLL
            for (int j = 0; j < NJ; ++j) i16[j] = product(w, sgn, xchunk(j, cc));
            for (int64_t c = cc + 1; c < ce; ++c) {
              codes(r0 + r, c, &w, &sgn);
              SLMC_UNROLL
              for (int j = 0; j < NJ; ++j) i16[j] = _mm256_add_epi16(i16[j], product(w, sgn, xchunk(j, c)));
            }
            SLMC_UNROLL
            for (int j = 0; j < NJ; ++j) iacc[r][j] = _mm256_add_epi32(iacc[r][j], _mm256_madd_epi16(i16[j], ones));
          }
        }
        SLMC_UNROLL
        for (int r = 0; r < NR; ++r) {
          const __m256 d = scale(r0 + r, g);
          SLMC_UNROLL
          for (int j = 0; j < NJ; ++j) accumulate(r, j, iacc[r][j], d);
        }
      }
    }
    SLMC_UNROLL
    for (int r = 0; r < NR; ++r) {
      SLMC_UNROLL
      for (int j = 0; j < NJ; ++j) dot[j0 + j][r0 + r] = hsum(kFaccInMemory ? _mm256_load_ps(fmem[r][j]) : facc[r][j]);
    }
  }

  const LinearArgs& a_;
  const DenseQuantLayout& l_;
  int64_t i0_;
  bool grouped_ = false;
  int64_t span_ = 0;
  RowScales sc_;
  const uint8_t* w_[P];
  int64_t cstride_ = 0;
  bool interleaved_ = false;
  uintptr_t next_ = 0;  ///< where the next row group's storage starts (prefetched, never read)
};

template <bool kInt4, int P, int kSpan>
void gemv_i8_multi(const LinearArgs& a, int64_t r, int64_t i0, int nx, float* buf, float* out) {
  with_count<2, kMaxNX>(nx, [&](auto c) { RowsGemv<kInt4, P, kSpan, decltype(c)::value>(a, r, i0, buf).run(out); });
}

// ------------------------------------------------------------------------------------------------
// GEMM, fp32 activations: panel [k][16] fp32, micro-kernel 16 x NR
// ------------------------------------------------------------------------------------------------

// Packs rows mb..mb+rows-1 (rows <= 16; missing rows are zero), elements [kb, kb+kc), into
// panel[(k - kb) * 16 + row].
template <ValueType kVt>
void pack_f32(const LinearArgs& a, int64_t mb, int64_t rows, int64_t kb, int64_t kc, float* panel) {
  constexpr bool kQuant = kVt == ValueType::kInt8 || kVt == ValueType::kInt4;
  const int64_t kc8 = kQuant ? (kc + 7) / 8 * 8 : kc / 8 * 8;  // quantized: padded codes readable
  for (int64_t h = 0; h < 2; ++h) {
    RowStream s[8];
    __m256 d[8], m[8];
    SLMC_UNROLL
    for (int j = 0; j < 8; ++j) {
      d[j] = m[j] = _mm256_setzero_ps();
      if (kQuant && h * 8 + j < rows) s[j] = row_stream(a, mb + h * 8 + j);
    }
    int64_t group_end = -1;  // first element of the next scale group (no division per step)
    // 16 elements (a whole cache line of fp32 rows) per row and step: rows 16 KiB apart share L1
    // sets, so a line must be consumed before the next rows evict it.
    for (int64_t k = 0; k < kc8; k += 16) {
      const int subs = k + 8 < kc8 ? 2 : 1;
      for (int sub = 0; sub < subs; ++sub) {
        const int64_t kk = k + 8 * sub;
        if constexpr (kQuant) {
          if (kb + kk >= group_end) {
            const int64_t g = (kb + kk) / a.layout.group_size;
            group_end = (g + 1) * a.layout.group_size;
            SLMC_UNROLL
            for (int j = 0; j < 8; ++j) {
              if (h * 8 + j >= rows) continue;
              float dd, mm;
              scale_min(a, s[j], g, &dd, &mm);
              d[j] = _mm256_set1_ps(dd);
              m[j] = _mm256_set1_ps(mm);
            }
          }
        }
        __m256 v[8];
        SLMC_UNROLL
        for (int j = 0; j < 8; ++j) {
          const int64_t row = h * 8 + j;
          if (row >= rows) {
            v[j] = _mm256_setzero_ps();
          } else if constexpr (kQuant) {
            v[j] = _mm256_fmadd_ps(codes8<kVt == ValueType::kInt4>(s[j], kb + kk), d[j], m[j]);
          } else {
            v[j] = float8<kVt>(a.values, (mb + row) * a.k + kb + kk);
          }
        }
        transpose8(v);
        SLMC_UNROLL
        for (int j = 0; j < 8; ++j) _mm256_store_ps(panel + (kk + j) * kMr + h * 8, v[j]);
      }
    }
    if (!kQuant) {
      for (int64_t k = kc8; k < kc; ++k) {
        SLMC_UNROLL
        for (int j = 0; j < 8; ++j) {
          const int64_t row = h * 8 + j;
          panel[k * kMr + row] = row < rows ? float_weight(a, mb + row, kb + k) : 0.0f;
        }
      }
    }
  }
}

// C[j * ldc + 0:16] (+)= sum_k panel[k][0:16] * xp[k * 6 + j] for j < nr <= 6. The twelve
// accumulators are named variables: as an array GCC keeps them in memory and stores each one in
// every iteration (measured 2x slower). Columns j >= nr repeat column nr-1 and are not stored.
void mk_f32_any(int nr, const float* panel, int64_t kc, const float* xp, float* c, int64_t ldc, bool first) {
  const float *x0 = xp, *x1 = xp + 1, *x2 = xp + 2, *x3 = xp + 3, *x4 = xp + 4, *x5 = xp + 5;
  __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
  c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 a0 = _mm256_load_ps(panel + k * kMr), a1 = _mm256_load_ps(panel + k * kMr + 8);
    __m256 b = _mm256_broadcast_ss(x0 + k * kNrF32);
    c00 = _mm256_fmadd_ps(a0, b, c00);
    c01 = _mm256_fmadd_ps(a1, b, c01);
    b = _mm256_broadcast_ss(x1 + k * kNrF32);
    c10 = _mm256_fmadd_ps(a0, b, c10);
    c11 = _mm256_fmadd_ps(a1, b, c11);
    b = _mm256_broadcast_ss(x2 + k * kNrF32);
    c20 = _mm256_fmadd_ps(a0, b, c20);
    c21 = _mm256_fmadd_ps(a1, b, c21);
    b = _mm256_broadcast_ss(x3 + k * kNrF32);
    c30 = _mm256_fmadd_ps(a0, b, c30);
    c31 = _mm256_fmadd_ps(a1, b, c31);
    b = _mm256_broadcast_ss(x4 + k * kNrF32);
    c40 = _mm256_fmadd_ps(a0, b, c40);
    c41 = _mm256_fmadd_ps(a1, b, c41);
    b = _mm256_broadcast_ss(x5 + k * kNrF32);
    c50 = _mm256_fmadd_ps(a0, b, c50);
    c51 = _mm256_fmadd_ps(a1, b, c51);
  }
  const __m256 acc[6][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  for (int j = 0; j < nr; ++j) {
    float* cj = c + j * ldc;
    if (first) {
      _mm256_storeu_ps(cj, acc[j][0]);
      _mm256_storeu_ps(cj + 8, acc[j][1]);
    } else {
      _mm256_storeu_ps(cj, _mm256_add_ps(_mm256_loadu_ps(cj), acc[j][0]));
      _mm256_storeu_ps(cj + 8, _mm256_add_ps(_mm256_loadu_ps(cj + 8), acc[j][1]));
    }
  }
}

// The fp32-mode panel of gemm_panels (driver.hpp): weights [k][16 rows] fp32, micro-kernel 16 x 6.
// Activations of one K block are packed per tile of 6 rows as [k][6]: one stream for the
// broadcasts (rows of X 16 KiB apart would share L1 sets with each other and the panel).
template <ValueType kVt>
struct F32Panel {
  static constexpr bool kQuant = kVt == ValueType::kInt8 || kVt == ValueType::kInt4;
  static constexpr int64_t kMr = detail::kMr, kNr = kNrF32;
  const LinearArgs& a;
  int64_t kend, kc_max = kKcF32;
  float* panel;
  float* tilebuf;  ///< [kNr][kMr] partial tiles
  float* xpack;

  F32Panel(const LinearArgs& args, uint8_t* scratch)
      : a(args), kend(args.k), panel(reinterpret_cast<float*>(scratch)), tilebuf(panel + kKcF32 * kMr),
        xpack(tilebuf + kNrF32 * kMr) {}

  void pack_x(int64_t kb, int64_t kc) {
    const float* x = kQuant ? a.xpad : a.x;
    const int64_t ldx = kQuant ? a.kpad : a.k;
    const int64_t tiles = (a.n + kNrF32 - 1) / kNrF32;
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t nb = t * kNrF32, nr = std::min(kNrF32, a.n - nb);
      float* dst = xpack + t * kKcF32 * kNrF32;
      for (int64_t j = 0; j < kNrF32; ++j) {
        const float* src = x + (nb + std::min(j, nr - 1)) * ldx + kb;
        for (int64_t k = 0; k < kc; ++k) dst[k * kNrF32 + j] = src[k];
      }
    }
  }
  void pack_w(int64_t kb, int64_t kc, int64_t mb, int64_t rows) { pack_f32<kVt>(a, mb, rows, kb, kc, panel); }
  void tile(int64_t, int64_t kc, int64_t mb, int64_t rows, int64_t nb, int nr, bool first) {
    on_tile<kMr>(a, mb, rows, nb, nr, first, tilebuf, [&](float* c, int64_t ldc, bool f) {
      mk_f32_any(nr, panel, kc, xpack + nb / kNrF32 * kKcF32 * kNrF32, c, ldc, f);
    });
  }
  void finish(int64_t m0, int64_t m1) { add_bias(a, m0, m1, 0, a.n); }
};

template <ValueType kVt>
void gemm_f32(const LinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch) {
  F32Panel<kVt> panel(a, scratch);
  gemm_panels(a, m0, m1, panel);
}

// ------------------------------------------------------------------------------------------------
// GEMM, int8 activations: panel [k/4][16 rows][4 codes], micro-kernel 16 x NR
// ------------------------------------------------------------------------------------------------

struct I8Panel {
  uint8_t* u;      // [kc/4][16][4]: int4 codes u, or |w| for int8
  int8_t* w;       // int8 only: the signed codes (for vpsignb)
  float* d;        // [spans][16] scales of each span of the block
  float* m;        // [groups][16] offsets of every group (whole K)
  float* tile;     // [kNrI8][16] partial-tile buffer
};

inline int64_t i8_kc(const LinearArgs& a) {
  const int64_t gs = a.layout.groups > 1 || a.layout.group_size < a.k ? a.layout.group_size : 0;
  if (gs == 0) return kKcI8;
  return gs >= kKcI8 ? gs : kKcI8 / gs * gs;
}

// Packs chunks [cb, cb + nch) of rows mb..mb+rows-1 into the panel (missing rows: code 0).
template <bool kInt4>
void pack_i8(const RowStream* s, int64_t rows, int64_t cb, int64_t nch, I8Panel& p) {
  const __m256i nib = _mm256_set1_epi8(15);
  const __m256i shift = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);
  for (int64_t h = 0; h < 2; ++h) {
    for (int64_t c = 0; c < nch; ++c) {
      __m256 u[8], w[8];
      SLMC_UNROLL
      for (int j = 0; j < 8; ++j) {
        const int64_t row = h * 8 + j;
        if (row >= rows) {
          u[j] = w[j] = _mm256_setzero_ps();
          continue;
        }
        const uint8_t* src = s[row].w + (cb + c) * s[row].wstride;
        if (kInt4) {
          const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src)));
          u[j] = _mm256_castsi256_ps(_mm256_and_si256(_mm256_srlv_epi32(b, shift), nib));
        } else {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src));
          u[j] = _mm256_castsi256_ps(_mm256_abs_epi8(v));
          w[j] = _mm256_castsi256_ps(v);
        }
      }
      transpose8(u);
      SLMC_UNROLL
      for (int j = 0; j < 8; ++j) _mm256_store_ps(reinterpret_cast<float*>(p.u + ((c * 8 + j) * kMr + h * 8) * 4), u[j]);
      if (!kInt4) {
        transpose8(w);
        SLMC_UNROLL
        for (int j = 0; j < 8; ++j) _mm256_store_ps(reinterpret_cast<float*>(p.w + ((c * 8 + j) * kMr + h * 8) * 4), w[j]);
      }
    }
  }
}

// C[j][0:16] (+)= sum over spans of d[span][0:16] * isum_span[j][0:16], for j < NR.
// steps: k/4 steps in the block; span_steps: k/4 steps per scale span (a multiple of 8).
template <bool kInt4, int NR>
void mk_i8(const I8Panel& p, int64_t steps, int64_t span_steps, const int8_t* xp, float* c, int64_t ldc,
           bool first) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[NR][2];
  SLMC_UNROLL
  for (int j = 0; j < NR; ++j) {
    acc[j][0] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(c + j * ldc);
    acc[j][1] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(c + j * ldc + 8);
  }
  for (int64_t s0 = 0; s0 < steps; s0 += span_steps) {
    const __m256 d0 = _mm256_load_ps(p.d + s0 / span_steps * kMr);
    const __m256 d1 = _mm256_load_ps(p.d + s0 / span_steps * kMr + 8);
    const int64_t s1 = std::min(steps, s0 + span_steps);
    if (kInt4) {
      for (int64_t t = s0; t < s1; t += 8) {
        __m256i i16[NR][2];
        SLMC_UNROLL
        for (int j = 0; j < NR; ++j) i16[j][0] = i16[j][1] = _mm256_setzero_si256();
        for (int64_t q = t; q < t + 8; ++q) {
          const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.u + q * 64));
          const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.u + q * 64 + 32));
          SLMC_UNROLL
          for (int j = 0; j < NR; ++j) {
            const __m256i xb = load_bcast_i32(xp + (q * kNrI8 + j) * 4);
            i16[j][0] = _mm256_add_epi16(i16[j][0], _mm256_maddubs_epi16(w0, xb));
            i16[j][1] = _mm256_add_epi16(i16[j][1], _mm256_maddubs_epi16(w1, xb));
          }
        }
        SLMC_UNROLL
        for (int j = 0; j < NR; ++j) {
          acc[j][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(i16[j][0], ones)), d0, acc[j][0]);
          acc[j][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(i16[j][1], ones)), d1, acc[j][1]);
        }
      }
    } else {
      __m256i i32[NR][2];
      SLMC_UNROLL
      for (int j = 0; j < NR; ++j) i32[j][0] = i32[j][1] = _mm256_setzero_si256();
      for (int64_t q = s0; q < s1; ++q) {
        const __m256i a0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.u + q * 64));
        const __m256i a1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.u + q * 64 + 32));
        const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.w + q * 64));
        const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.w + q * 64 + 32));
        SLMC_UNROLL
        for (int j = 0; j < NR; ++j) {
          const __m256i xb = load_bcast_i32(xp + (q * kNrI8 + j) * 4);
          i32[j][0] = _mm256_add_epi32(i32[j][0], _mm256_madd_epi16(_mm256_maddubs_epi16(a0, _mm256_sign_epi8(xb, w0)), ones));
          i32[j][1] = _mm256_add_epi32(i32[j][1], _mm256_madd_epi16(_mm256_maddubs_epi16(a1, _mm256_sign_epi8(xb, w1)), ones));
        }
      }
      SLMC_UNROLL
      for (int j = 0; j < NR; ++j) {
        acc[j][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i32[j][0]), d0, acc[j][0]);
        acc[j][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i32[j][1]), d1, acc[j][1]);
      }
    }
  }
  SLMC_UNROLL
  for (int j = 0; j < NR; ++j) {
    _mm256_storeu_ps(c + j * ldc, acc[j][0]);
    _mm256_storeu_ps(c + j * ldc + 8, acc[j][1]);
  }
}

template <bool kInt4>
void mk_i8_any(int nr, const I8Panel& p, int64_t steps, int64_t span_steps, const int8_t* x, float* c,
               int64_t ldc, bool first) {
  switch (nr) {
    case 1: mk_i8<kInt4, 1>(p, steps, span_steps, x, c, ldc, first); break;
    case 2: mk_i8<kInt4, 2>(p, steps, span_steps, x, c, ldc, first); break;
    default: mk_i8<kInt4, 3>(p, steps, span_steps, x, c, ldc, first); break;
  }
}

// The int8-mode panel of gemm_panels (driver.hpp). K blocks of whole scale groups (the int8
// activation slice, N x kc bytes, stays in L2); y accumulates sum_spans d * isum, then finish
// applies y = xscale * y + sum_g m_g * xsum_g + bias.
template <bool kInt4>
struct I8Gemm {
  static constexpr int64_t kMr = detail::kMr, kNr = kNrI8;
  const LinearArgs& a;
  const DenseQuantLayout& l;
  int64_t kend, kc_max;
  bool grouped;
  int64_t span_k;
  I8Panel p;
  // Activations of one K block, packed per tile of kNrI8 rows as [k/4][kNrI8][4 bytes]: one
  // sequential stream for the broadcasts (rows of X kpad bytes apart alias in L1 at K = 4096).
  int8_t* xpack;
  RowStream s[kMr];

  I8Gemm(const LinearArgs& args, uint8_t* scratch)
      : a(args), l(args.layout), kend(args.kpad), kc_max(i8_kc(args)), grouped(grouped_scales(args)),
        span_k(grouped ? l.group_size : kc_max) {
    uint8_t* q = scratch;
    p.u = q;
    q += kc_max * kMr;
    p.w = reinterpret_cast<int8_t*>(q);
    q += kInt4 ? 0 : kc_max * kMr;
    p.d = reinterpret_cast<float*>(q);
    q += (kc_max / span_k + 1) * kMr * 4;
    p.m = reinterpret_cast<float*>(q);
    q += l.groups * kMr * 4;
    p.tile = reinterpret_cast<float*>(q);
    q += kNrI8 * kMr * 4;
    xpack = reinterpret_cast<int8_t*>(q);
  }

  void pack_x(int64_t kb, int64_t kc) {  // kc: a multiple of 32
    const int64_t tiles = (a.n + kNrI8 - 1) / kNrI8;
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t nb = t * kNrI8, nr = std::min(kNrI8, a.n - nb);
      int8_t* dst = xpack + t * kc * kNrI8;
      for (int64_t k4 = 0; k4 < kc / 4; ++k4) {
        for (int64_t j = 0; j < kNrI8; ++j) {
          std::memcpy(dst + (k4 * kNrI8 + j) * 4, a.xq + (nb + std::min(j, nr - 1)) * a.kpad + kb + k4 * 4, 4);
        }
      }
    }
  }

  void pack_w(int64_t kb, int64_t kc, int64_t mb, int64_t rows) {
    const int64_t spans = (kc + span_k - 1) / span_k;
    for (int64_t r = 0; r < rows; ++r) s[r] = row_stream(a, mb + r);
    for (int64_t sp = 0; sp < spans; ++sp) {
      const int64_t g = grouped ? (kb / span_k + sp) : 0;
      for (int64_t r = 0; r < kMr; ++r) {
        float d = 0.0f, m = 0.0f;
        if (r < rows) scale_min(a, s[r], g, &d, &m);
        p.d[sp * kMr + r] = d;
      }
    }
    pack_i8<kInt4>(s, rows, kb / kChunk, kc / kChunk, p);
  }

  void tile(int64_t, int64_t kc, int64_t mb, int64_t rows, int64_t nb, int nr, bool first) {
    const int8_t* x = xpack + nb / kNrI8 * kc * kNrI8;
    on_tile<kMr>(a, mb, rows, nb, nr, first, p.tile, [&](float* c, int64_t ldc, bool f) {
      mk_i8_any<kInt4>(nr, p, kc / 4, span_k / 4, x, c, ldc, f);
    });
  }

  // y = xscale * y + sum_g m_g * xsum_g + bias.
  void finish(int64_t m0, int64_t m1) {
    const bool has_m = !a.symmetric || kInt4;
    for (int64_t mb = m0; mb < m1; mb += kMr) {
      const int64_t rows = std::min(kMr, m1 - mb);
      if (has_m) {
        for (int64_t r = 0; r < rows; ++r) s[r] = row_stream(a, mb + r);
        for (int64_t g = 0; g < l.groups; ++g) {
          for (int64_t r = 0; r < kMr; ++r) {
            float d = 0.0f, m = 0.0f;
            if (r < rows) scale_min(a, s[r], g, &d, &m);
            p.m[g * kMr + r] = m;
          }
        }
      }
      for (int64_t n = 0; n < a.n; ++n) {
        alignas(32) float mt[kMr] = {};
        if (has_m) {
          const float* xs = a.xsum + n * l.groups;
          __m256 t0 = _mm256_setzero_ps(), t1 = _mm256_setzero_ps();
          for (int64_t g = 0; g < l.groups; ++g) {
            const __m256 xg = _mm256_set1_ps(xs[g]);
            t0 = _mm256_fmadd_ps(_mm256_load_ps(p.m + g * kMr), xg, t0);
            t1 = _mm256_fmadd_ps(_mm256_load_ps(p.m + g * kMr + 8), xg, t1);
          }
          _mm256_store_ps(mt, t0);
          _mm256_store_ps(mt + 8, t1);
        }
        float* y = a.y + n * a.m + mb;
        const float sx = a.xscale[n];
        for (int64_t r = 0; r < rows; ++r) y[r] = sx * y[r] + mt[r] + (a.bias ? a.bias[mb + r] : 0.0f);
      }
    }
  }
};

template <bool kInt4>
void gemm_i8(const LinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch) {
  I8Gemm<kInt4> panel(a, scratch);
  gemm_panels(a, m0, m1, panel);
}

// ------------------------------------------------------------------------------------------------
// Entry points
// ------------------------------------------------------------------------------------------------

// fp32 mode, the GEMV micro-kernels on rows r..r+P-1 for rows i0..i0+nx-1 of X.
template <ValueType kVt>
void gemv_f32_float_rows(const LinearArgs& a, int64_t r, int p, int64_t i0, int nx) {
  for (int64_t i = i0; i < i0 + nx; ++i) {
    const float* x = a.x + i * a.k;
    float* y = a.y + i * a.m + r;
    if (p == 4) {
      gemv_f32_float<kVt, 4>(a, r, x, y);
    } else {
      gemv_f32_float<kVt, 1>(a, r, x, y);
    }
  }
}

template <bool kInt4>
void gemv_f32_quant_rows(const LinearArgs& a, int64_t r, int p, int64_t i0, int nx) {
  for (int64_t i = i0; i < i0 + nx; ++i) {
    const float* x = a.xpad + i * a.kpad;
    float* y = a.y + i * a.m + r;
    if (p >= 4) {
      for (int q = 0; q < p; q += 4) gemv_f32_quant<kInt4, 4>(a, r + q, x, y + q);
    } else {
      gemv_f32_quant<kInt4, 1>(a, r, x, y);
    }
  }
}

template <ValueType kVt>
void fp32_path(const LinearArgs& a, const LinearPlan& pl, int64_t m0, int64_t m1, uint8_t* scratch) {
  if (pl.path == LinearPath::kGemm) return gemm_f32<kVt>(a, m0, m1, scratch);
  gemv_batches(a, m0, m1, pl.nx, [&](int64_t r, int p, int64_t i0, int nx) {
    if constexpr (kVt == ValueType::kInt8 || kVt == ValueType::kInt4) {
      gemv_f32_quant_rows<kVt == ValueType::kInt4>(a, r, p, i0, nx);
    } else {
      gemv_f32_float_rows<kVt>(a, r, p, i0, nx);
    }
  });
}

void fp32(const LinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch) {
  const LinearPlan pl = linear_plan(a, /*int8_acts=*/false, kLinearTuningAvx2);
  switch (a.vt) {
    case ValueType::kF32: return fp32_path<ValueType::kF32>(a, pl, m0, m1, scratch);
    case ValueType::kF16: return fp32_path<ValueType::kF16>(a, pl, m0, m1, scratch);
    case ValueType::kBF16: return fp32_path<ValueType::kBF16>(a, pl, m0, m1, scratch);
    case ValueType::kInt8: return fp32_path<ValueType::kInt8>(a, pl, m0, m1, scratch);
    case ValueType::kInt4: return fp32_path<ValueType::kInt4>(a, pl, m0, m1, scratch);
  }
}

// int4, R-row interleaved (P = R = 4 or 8): the chunk records of rows 2q and 2q+1 are adjacent,
// so one 32-byte load gives both rows' nibbles. lo = v & 15 holds elements 0..15 of row 2q (low
// lane) and of row 2q+1 (high lane), hi = (v >> 4) & 15 elements 16..31: multiplied with the
// activation halves broadcast to both lanes, one vpmaddubsw pair, one vpmaddwd, one cvt and one
// FMA serve two rows. int16 sums hold 4 chunks (4 * 2 * 2 * 15 * 127 < 32767).
//
// NX rows of X (1..kMaxNX) share each unpacked weight register: the block is read from memory once
// for all of them. Accumulators are fp32 per (pair, row of X), plus int16 group sums per row of X
// and, for spans longer than 4 chunks, int32 span sums per (pair, row of X); when they would not fit
// the 16 ymm registers, the block is taken in passes over kQ pairs x kJ rows of X (later passes read
// the block from L1/L2). Every (pair, row of X) sees the same operations in the same order for any
// NX, so a row of X gets the same bits whatever other rows share the call.

template <int P, int kSpan, int NX>
struct PairsPlan {
  static constexpr int kPairs = P / 2;
  // One row of X: all pairs in one pass (as many accumulators as pairs). More rows: int16 group
  // sums per row of X must stay in registers next to the fp32 accumulators, so longer spans
  // take fewer rows per pass.
  static constexpr int kJ = kSpan == 1 ? std::min(NX, 8) : kSpan == 4 ? std::min(NX, 3) : std::min(NX, 2);
  static constexpr int kQ = NX == 1 ? kPairs : kSpan == 1 ? std::min(kPairs, std::max(1, 8 / kJ)) : 1;
};

template <int P, int kSpan, int NX>
class PairsGemv {
 public:
  static constexpr int kPairs = P / 2;
  static constexpr int64_t kStride = P * 16;
  using Plan = PairsPlan<P, kSpan, NX>;
  static_assert(kPairs % Plan::kQ == 0, "passes cover whole blocks");
  static constexpr int kPasses = (kPairs / Plan::kQ) * ((NX + Plan::kJ - 1) / Plan::kJ);
  static constexpr int64_t kNextStep = kStride / kPasses;  // see RowsGemv

  PairsGemv(const LinearArgs& a, int64_t r, int64_t i0) : a_(a), l_(a.layout), i0_(i0) {
    grouped_ = l_.groups > 1 || l_.group_size < a.k;
    span_ = kSpan > 0 ? kSpan : (grouped_ ? l_.group_size / kChunk : kSpanMax);
    RowStream s0 = row_stream(a, r);
    SLMC_DCHECK(s0.wstride == kStride && s0.sstride == P && row_stream(a, r + 1).s0 == s0.s0 + 1, "interleaved block");
    blk_ = s0.w;
    s0_ = s0.s0;
  }

  // out[j * M + p] = y of row r + p for row i0 + j of X.
  void run(float* out) {
    alignas(32) float mt[NX][8] = {};  // P = 4 leaves lanes 4..7 zero
    alignas(32) float dot[NX][8] = {};
    if constexpr (NX == 1) {
      passes(dot, mt);
    } else {
      offsets(mt);
      passes(dot, mt);
    }
    // y = xscale * dot + offset as one explicit FMA (plain C++ would leave the contraction to the
    // compiler, which may choose differently per instantiation); -8 * mt is exact.
    const __m256 m8 = _mm256_set1_ps(a_.symmetric ? -8.0f : 1.0f);
    for (int j = 0; j < NX; ++j) {
      const __m256 xs = _mm256_set1_ps(a_.xscale[i0_ + j]);
      const __m256 y = _mm256_fmadd_ps(xs, _mm256_load_ps(dot[j]), _mm256_mul_ps(m8, _mm256_load_ps(mt[j])));
      if (P == 8) {
        _mm256_storeu_ps(out + j * a_.m, y);
      } else {
        _mm_storeu_ps(out + j * a_.m, _mm256_castps256_ps128(y));
      }
    }
  }

 private:
  // The P rows of a group keep their scales (and mins) side by side: one load (and one F16C
  // conversion) per group gives all of them, read straight from the weights.
  __m256 group_vec(const void* src, int64_t g) const {
    const int64_t at = s0_ + g * P;
    if (a_.scales_f16) {
      const auto* h = static_cast<const uint16_t*>(src) + at;
      if (P == 8) return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h)));
      return _mm256_zextps128_ps256(_mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(h))));
    }
    const float* f = static_cast<const float*>(src) + at;
    return P == 8 ? _mm256_loadu_ps(f) : _mm256_zextps128_ps256(_mm_loadu_ps(f));
  }
  // Offset term sum_g m_g * xsum_g per row (m = the scales for symmetric int4, scaled by -8 in run).
  __m256 offset_vec(int64_t g) const { return a_.symmetric ? group_vec(a_.scales, g) : group_vec(a_.mins, g); }
  __m256 offset_step(__m256 acc, __m256 m, int64_t g, int64_t j) const {
    return _mm256_fmadd_ps(m, _mm256_broadcast_ss(a_.xsum + (i0_ + j) * l_.groups + g), acc);
  }
  void offsets(float (*mt)[8]) const {
    __m256 acc[NX];
    SLMC_UNROLL
    for (int j = 0; j < NX; ++j) acc[j] = _mm256_setzero_ps();
    const int64_t groups = grouped_ ? l_.groups : 1;
    for (int64_t g = 0; g < groups; ++g) {
      const __m256 m = offset_vec(g);
      SLMC_UNROLL
      for (int j = 0; j < NX; ++j) acc[j] = offset_step(acc[j], m, g, j);
    }
    SLMC_UNROLL
    for (int j = 0; j < NX; ++j) _mm256_store_ps(mt[j], acc[j]);
  }

  // Pair and row offsets are runtime values (see RowsGemv::rows).
  void passes(float (*dot)[8], float (*mt)[8]) {
    int index = 0;
    for (int q0 = 0; q0 < kPairs; q0 += Plan::kQ) {
      int j0 = 0;
      for (; j0 + Plan::kJ <= NX; j0 += Plan::kJ) pass<Plan::kQ, Plan::kJ>(q0, j0, index++, dot, mt);
      if constexpr (NX % Plan::kJ != 0) pass<Plan::kQ, NX % Plan::kJ>(q0, j0, index++, dot, mt);
    }
  }

  // Pairs [q0, q0 + NQ) for rows [j0, j0 + NJ) of X over the whole row; pass number `index` of
  // kPasses.
  template <int NQ, int NJ>
  void pass(int q0, int j0, int index, float (*dot)[8], float (*mt)[8]) {
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i nib = _mm256_set1_epi8(15);
    const bool first = q0 == 0 && j0 == 0;
    // Each pass fetches its share of the next block (see RowsGemv::pass).
    const int64_t next0 = index * l_.chunks * kNextStep;
    const uintptr_t next = reinterpret_cast<uintptr_t>(blk_ + l_.chunks * kStride);
    const int8_t* xq = a_.xq + (i0_ + j0) * a_.kpad;
    const int64_t kpad = a_.kpad;
    auto xhalf = [&](int j, int64_t c, int h) {
      return _mm256_broadcastsi128_si256(
          _mm_load_si128(reinterpret_cast<const __m128i*>(xq + j * kpad + c * kChunk + 16 * h)));
    };
    // The 32 bytes of pair q in chunk c (prefetching ahead in the first pass).
    auto load_pair = [&](int q, int64_t c) {
      const uint8_t* wp = blk_ + c * kStride + q * 32;
      if (kPasses > 1 && q == q0) prefetch_share<kNextStep>(next, next0 + c * kNextStep);
      if (first) {
        if (NQ == kPairs) {
          if (q % 2 == 0) _mm_prefetch(reinterpret_cast<const char*>(wp + kPrefetchChunks * kStride), _MM_HINT_T0);
        } else if (q == 0) {
          SLMC_UNROLL
          for (int line = 0; line < kStride / 64; ++line) {
            _mm_prefetch(reinterpret_cast<const char*>(wp + kPrefetchChunks * kStride + 64 * line), _MM_HINT_T0);
          }
        }
      }
      return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp));
    };
    // i16[j] (+)= products of pair q's chunk c with row j of X.
    auto chunk = [&](int q, int64_t c, __m256i* i16, bool add) {
      const __m256i v = load_pair(q, c);
      const __m256i lo = _mm256_and_si256(v, nib);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
      SLMC_UNROLL
      for (int j = 0; j < NJ; ++j) {
        const __m256i t = _mm256_add_epi16(_mm256_maddubs_epi16(lo, xhalf(j, c, 0)), _mm256_maddubs_epi16(hi, xhalf(j, c, 1)));
        i16[j] = add ? _mm256_add_epi16(i16[j], t) : t;
      }
    };
    auto pair_scale = [&](__m256 dv, int q) {
      const __m256i idx = _mm256_add_epi32(_mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1), _mm256_set1_epi32(2 * q));
      return _mm256_permutevar8x32_ps(dv, idx);
    };
    __m256 facc[NQ][NJ];
    SLMC_UNROLL
    for (int q = 0; q < NQ; ++q) {
      SLMC_UNROLL
      for (int j = 0; j < NJ; ++j) facc[q][j] = _mm256_setzero_ps();
    }
    __m256 offset = _mm256_setzero_ps();  // NX == 1: the offset term in the same pass
    const int64_t span = span_;
    int64_t g = 0;
    for (int64_t c0 = 0; c0 < l_.chunks; c0 += span, g += grouped_ ? 1 : 0) {
      const int64_t c1 = std::min(l_.chunks, c0 + span);
      const __m256 dv = group_vec(a_.scales, g);
      if constexpr (NX == 1) {
        if (grouped_ || c0 == 0) offset = offset_step(offset, a_.symmetric ? dv : group_vec(a_.mins, g), g, 0);
      }
      if (kSpan == 1) {
        // One chunk per group: each row's products go straight into its accumulator.
        SLMC_UNROLL
        for (int q = 0; q < NQ; ++q) {
          const __m256i v = load_pair(q0 + q, c0);
          const __m256i lo = _mm256_and_si256(v, nib);
          const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
          const __m256 ps = pair_scale(dv, q0 + q);
          SLMC_UNROLL
          for (int j = 0; j < NJ; ++j) {
            const __m256i t = _mm256_add_epi16(_mm256_maddubs_epi16(lo, xhalf(j, c0, 0)), _mm256_maddubs_epi16(hi, xhalf(j, c0, 1)));
            facc[q][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(t, ones)), ps, facc[q][j]);
          }
        }
      } else if (span <= 4) {
        SLMC_UNROLL
        for (int q = 0; q < NQ; ++q) {
          __m256i i16[NJ];
          chunk(q0 + q, c0, i16, false);
          for (int64_t c = c0 + 1; c < c1; ++c) chunk(q0 + q, c, i16, true);
          const __m256 ps = pair_scale(dv, q0 + q);
          SLMC_UNROLL
          for (int j = 0; j < NJ; ++j) {
            facc[q][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(i16[j], ones)), ps, facc[q][j]);
          }
        }
      } else {
        __m256i iacc[NQ][NJ];
        SLMC_UNROLL
        for (int q = 0; q < NQ; ++q) {
          SLMC_UNROLL
          for (int j = 0; j < NJ; ++j) iacc[q][j] = _mm256_setzero_si256();
        }
        for (int64_t cc = c0; cc < c1; cc += 4) {
          const int64_t ce = std::min(c1, cc + 4);
          SLMC_UNROLL
          for (int q = 0; q < NQ; ++q) {
            __m256i i16[NJ];
            chunk(q0 + q, cc, i16, false);
            for (int64_t c = cc + 1; c < ce; ++c) chunk(q0 + q, c, i16, true);
            SLMC_UNROLL
            for (int j = 0; j < NJ; ++j) iacc[q][j] = _mm256_add_epi32(iacc[q][j], _mm256_madd_epi16(i16[j], ones));
          }
        }
        SLMC_UNROLL
        for (int q = 0; q < NQ; ++q) {
          const __m256 ps = pair_scale(dv, q0 + q);
          SLMC_UNROLL
          for (int j = 0; j < NJ; ++j) facc[q][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(iacc[q][j]), ps, facc[q][j]);
        }
      }
    }
    if constexpr (NX == 1) _mm256_store_ps(mt[0], offset);
    SLMC_UNROLL
    for (int q = 0; q < NQ; ++q) {
      SLMC_UNROLL
      for (int j = 0; j < NJ; ++j) {
        SLMC_UNROLL
        for (int h = 0; h < 2; ++h) {
          __m128 v = h == 0 ? _mm256_castps256_ps128(facc[q][j]) : _mm256_extractf128_ps(facc[q][j], 1);
          v = _mm_add_ps(v, _mm_movehl_ps(v, v));
          v = _mm_add_ss(v, _mm_movehdup_ps(v));
          dot[j0 + j][2 * (q0 + q) + h] = _mm_cvtss_f32(v);
        }
      }
    }
  }

  const LinearArgs& a_;
  const DenseQuantLayout& l_;
  int64_t i0_;
  bool grouped_ = false;
  int64_t span_ = 0;
  const uint8_t* blk_ = nullptr;
  int64_t s0_ = 0;
};

template <int P, int kSpan>
void gemv_i4_pairs(const LinearArgs& a, int64_t r, int64_t i0, int nx, float* out) {
  with_count<1, kMaxNX>(nx, [&](auto c) { PairsGemv<P, kSpan, decltype(c)::value>(a, r, i0).run(out); });
}

// int8 mode, the GEMV micro-kernels on rows r..r+P-1 for rows i0..i0+nx-1 of X: int4 in 4- or
// 8-row interleaved blocks through the row pairs (PairsGemv) when the plan says so, several rows of
// X through RowsGemv, one through gemv_i8.
template <bool kInt4, int kSpan>
void gemv_i8_rows(const LinearArgs& a, bool pairs, int64_t r, int p, int64_t i0, int nx, float* buf) {
  float* out = a.y + i0 * a.m + r;
  if (kInt4 && pairs && r < a.layout.interleaved_rows && p == a.layout.interleave) {
    return p == 8 ? gemv_i4_pairs<8, kSpan>(a, r, i0, nx, out) : gemv_i4_pairs<4, kSpan>(a, r, i0, nx, out);
  }
  if (nx > 1 && p == 8) return gemv_i8_multi<kInt4, 8, kSpan>(a, r, i0, nx, buf, out);
  if (nx > 1 && p == 4) return gemv_i8_multi<kInt4, 4, kSpan>(a, r, i0, nx, buf, out);
  for (int64_t i = i0; i < i0 + nx; ++i) {
    float* y = a.y + i * a.m;
    if (p == 8 && !kInt4 && a.layout.groups == 1 && a.k <= kShortRowK) {
      // Short int8 rows, one scale per row: two 4-row halves of the block. Eight int32
      // accumulators spill in the 8-row loop, four do not; the block (<= 8 KiB) is still in L1
      // for the second half.
      gemv_i8<kInt4, 4, kSpan>(a, r, i, buf, y + r);
      gemv_i8<kInt4, 4, kSpan>(a, r + 4, i, buf, y + r + 4);
    } else if (p == 8) {
      gemv_i8<kInt4, 8, kSpan>(a, r, i, buf, y + r);
    } else if (p == 4) {
      gemv_i8<kInt4, 4, kSpan>(a, r, i, buf, y + r);
    } else {
      gemv_i8<kInt4, 1, kSpan>(a, r, i, buf, y + r);
    }
  }
}

template <bool kInt4, int kSpan>
void gemv_i8_path(const LinearArgs& a, const LinearPlan& pl, int64_t m0, int64_t m1, uint8_t* scratch) {
  float* buf = reinterpret_cast<float*>(scratch);
  gemv_batches(a, m0, m1, pl.nx, [&](int64_t r, int p, int64_t i0, int nx) {
    gemv_i8_rows<kInt4, kSpan>(a, pl.pairs, r, p, i0, nx, buf);
  });
}

template <bool kInt4>
void int8_path(const LinearArgs& a, const LinearPlan& pl, int64_t m0, int64_t m1, uint8_t* scratch) {
  if (pl.path == LinearPath::kGemm) return gemm_i8<kInt4>(a, m0, m1, scratch);
  // The common group sizes get their span as a constant: the per-group loops then unroll.
  switch (pl.span) {
    case 1: return gemv_i8_path<kInt4, 1>(a, pl, m0, m1, scratch);
    case 4: return gemv_i8_path<kInt4, 4>(a, pl, m0, m1, scratch);
    default: return gemv_i8_path<kInt4, 0>(a, pl, m0, m1, scratch);
  }
}

void int8(const LinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch) {
  const LinearPlan pl = linear_plan(a, /*int8_acts=*/true, kLinearTuningAvx2);
  if (pl.path == LinearPath::kReference) return linear_kernels_scalar().int8(a, m0, m1, scratch);
  return a.vt == ValueType::kInt4 ? int8_path<true>(a, pl, m0, m1, scratch) : int8_path<false>(a, pl, m0, m1, scratch);
}

// int8-mode activations: quantize_x_scalar's operations on eight lanes, bit-identical to it (a
// maximum is exact in any order; each code is the same multiply, clamp and two additions). A tail
// of k % 32 values goes through a zero-padded copy (zeros change neither the maximum nor a code).
float quantize_x(const float* x, int64_t k, int64_t kpad, int8_t* xq) {
  const int64_t full = k / 32 * 32;
  alignas(32) float tail[32] = {};
  std::memcpy(tail, x + full, static_cast<size_t>(k - full) * 4);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 mx[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  // max_ps returns its second operand when either is NaN: a NaN input never replaces the maximum.
  auto amax32 = [&](const float* p) {
    SLMC_UNROLL
    for (int j = 0; j < 4; ++j) mx[j] = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(p + 8 * j), abs_mask), mx[j]);
  };
  for (int64_t c = 0; c < full; c += 32) amax32(x + c);
  amax32(tail);
  const __m256 m = _mm256_max_ps(_mm256_max_ps(mx[0], mx[1]), _mm256_max_ps(mx[2], mx[3]));
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  const float amax = _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
  const float scale = amax / 127.0f;
  const float inv = amax > 0.0f && std::isfinite(amax) ? 127.0f / amax : 0.0f;
  const __m256 vinv = _mm256_set1_ps(inv), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
  const __m256 magic = _mm256_set1_ps(12582912.0f);
  auto codes8 = [&](const float* p) {
    __m256 v = _mm256_mul_ps(_mm256_loadu_ps(p), vinv);
    v = _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));  // NaN (or inf * 0) -> 0
    v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
    return _mm256_cvtps_epi32(_mm256_sub_ps(_mm256_add_ps(v, magic), magic));
  };
  auto codes32 = [&](const float* p, int8_t* dst) {
    const __m256i ab = _mm256_packs_epi32(codes8(p), codes8(p + 8));
    const __m256i cd = _mm256_packs_epi32(codes8(p + 16), codes8(p + 24));
    const __m256i bytes = _mm256_packs_epi16(ab, cd);  // dwords a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 ...
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst),
                        _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  };
  for (int64_t c = 0; c < full; c += 32) codes32(x + c, xq + c);
  if (full < k) {
    alignas(32) int8_t t[32];
    codes32(tail, t);
    std::memcpy(xq + full, t, static_cast<size_t>(k - full));
  }
  std::memset(xq + k, 0, static_cast<size_t>(kpad - k));
  return scale;
}

size_t scratch_bytes(const LinearArgs& a) {
  const int64_t ntiles_f32 = (a.n + kNrF32 - 1) / kNrF32, ntiles_i8 = (a.n + kNrI8 - 1) / kNrI8;
  const size_t f32 = static_cast<size_t>(kKcF32 * kMr * 4 + kNrF32 * kMr * 4 + ntiles_f32 * kKcF32 * kNrF32 * 4);
  size_t i8 = 0;
  if (a.vt == ValueType::kInt8 || a.vt == ValueType::kInt4) {
    const int64_t kc = i8_kc(a);
    i8 = static_cast<size_t>(2 * kc * kMr + (kc / 32 + 2) * kMr * 4 + a.layout.groups * kMr * 4 + kNrI8 * kMr * 4 +
                             ntiles_i8 * kc * kNrI8);
  }
  // GEMV: fp32 copies of the scales and mins of 4 rows (interleaved: of their R-row block).
  const size_t gemv = static_cast<size_t>(2 * (a.layout.groups * 8 + 16) * 4);
  return std::max(std::max(f32, i8), gemv) + 64;
}

}  // namespace

const LinearKernels& linear_kernels_avx2() {
  static const LinearKernels k{"avx2", fp32, int8, scratch_bytes, linear_kernels_scalar().gather, quantize_x};
  return k;
}

}  // namespace slmc::detail
