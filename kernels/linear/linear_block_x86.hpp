// x86 micro-kernels of the int8 (block) activation mode, shared by the AVX2, AVX-VNNI and AVX-512
// builds: each ISA file instantiates them with its own chunk dot (Dot below) and its own flags.
//
// The mode (include/slmc/kernels/linear.hpp): x is quantized in blocks of 32 values, block j of a
// row of X with its own scale s_j, so each 32-value chunk of a weight row gives one integer dot
// that is converted and scaled once:
//   y = sum_j s_j * d_g(j) * isum_j + sum_g m_g * xsum_g        (grouped scales, G % 32 == 0)
//   y = d * sum_j s_j * isum_j + m * xsum                       (per-row or per-tensor scales)
// isum_j over the chunk's 32 codes: int8 codes q as vpmaddubsw/vpdpbusd(|q|, sign(xq, q)); int4
// nibbles u (0..15) directly as the unsigned operand with xq signed, the -8 of symmetric int4 (and
// asymmetric mins) in the offset term. Eight int32 lanes per chunk, one cvt + FMA into eight fp32
// lanes per (row, row of X); the lanes are summed once at the end.
//
// The loops around the micro-kernel are the shared drivers (gemv_batches, for_row_groups):
// P = the row group (R for interleaved blocks, 4 plain rows, 1), NX rows of X per weight pass
// bounded by the register file (Dot::kAccumulators fp32 vectors).
//
// Determinism: an output's reduction is the same chunk-ordered sequence of vector FMAs and one
// horizontal sum whatever P, NX, the batch or the thread split, so results are bit-identical for
// any thread count and any N.
//
// Internal linkage (unnamed namespace): every ISA file compiles its own copy with its own flags.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "linear/driver.hpp"
#include "linear/linear.hpp"
#include "linear/linear_rows.hpp"
#include "slmc/check.hpp"

#define SLMC_BLK_UNROLL _Pragma("GCC unroll 16")

#if defined(__AVXVNNI__)
#define SLMC_HAVE_AVXVNNI_FLAGS 1
#else
#define SLMC_HAVE_AVXVNNI_FLAGS 0
#endif
#if defined(__AVX512VNNI__) && defined(__AVX512VL__) && defined(__AVX512BW__)
#define SLMC_HAVE_AVX512_FLAGS 1
#else
#define SLMC_HAVE_AVX512_FLAGS 0
#endif

namespace slmc::detail {
namespace {
namespace blk {

/// AVX2: vpmaddubsw (pairs of u8 * s8 -> s16; |u| <= 128 and |s| <= 127 never saturate) + vpmaddwd.
struct DotAvx2 {
  static constexpr int kAccumulators = 8;  // 16 YMM registers
  static constexpr bool kZmm = false;      // int8 rows two chunks per ZMM (rows_i8_zmm)
  static inline __m256i dot(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
  }
  /// dot(u1, s1) + dot(u2, s2) for nibbles (|u| <= 15: four products per int16 lane stay < 2^15).
  static inline __m256i dot2_u4(__m256i u1, __m256i s1, __m256i u2, __m256i s2) {
    return _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(u1, s1), _mm256_maddubs_epi16(u2, s2)),
                             _mm256_set1_epi16(1));
  }
};

#if defined(__AVXVNNI__)
/// AVX-VNNI: one VEX vpdpbusd per chunk.
struct DotAvxVnni {
  static constexpr int kAccumulators = 8;
  static constexpr bool kZmm = false;
  static inline __m256i dot(__m256i u, __m256i s) { return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s); }
  static inline __m256i dot2_u4(__m256i u1, __m256i s1, __m256i u2, __m256i s2) {
    return _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u1, s1), u2, s2);
  }
};
#endif

#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
/// AVX-512 VNNI + VL: the EVEX vpdpbusd on YMM, and 32 vector registers.
struct DotAvx512 {
  static constexpr int kAccumulators = 16;
  static constexpr bool kZmm = true;
  static inline __m256i dot(__m256i u, __m256i s) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s); }
  static inline __m256i dot2_u4(__m256i u1, __m256i s1, __m256i u2, __m256i s2) {
    return _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), u1, s1), u2, s2);
  }
};
#endif

inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float scale_of(const void* p, bool f16, int64_t i) {
  if (f16) return _cvtsh_ss(static_cast<const uint16_t*>(p)[i]);
  return static_cast<const float*>(p)[i];
}

/// The scales (or mins) of P rows as fp32, [g][P]: the micro-kernel's per-chunk scale is then one
/// broadcast load (no fp16 conversion, no index arithmetic in the chunk loop). Interleaved blocks
/// store the P scales of a group side by side: eight at a time.
template <int P>
void row_group_scales(const LinearArgs& a, const RowStream* s, const void* src, float* dst) {
  const int64_t groups = a.layout.groups;
  const bool side_by_side = P == 8 && s[0].sstride == 8 && s[1].s0 == s[0].s0 + 1;
  for (int64_t g = 0; g < groups; ++g) {
    if (side_by_side && a.scales_f16) {
      const auto* h = static_cast<const uint16_t*>(src) + s[0].s0 + g * 8;
      _mm256_storeu_ps(dst + g * P, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h))));
      continue;
    }
    SLMC_BLK_UNROLL
    for (int p = 0; p < P; ++p) dst[g * P + p] = scale_of(src, a.scales_f16, s[p].s0 + g * s[p].sstride);
  }
}

/// out[p] = sum_g m[g][P + p] * xs[g] for the P rows (m: [g][P] fp32, from row_group_scales).
template <int P>
inline void offset_terms(const float* m, const float* xs, int64_t groups, float* out) {
  if constexpr (P == 8) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t g = 0; g < groups; ++g) acc = _mm256_fmadd_ps(_mm256_loadu_ps(m + g * 8), _mm256_broadcast_ss(xs + g), acc);
    _mm256_storeu_ps(out, acc);
  } else if constexpr (P == 4) {
    __m128 acc = _mm_setzero_ps();
    for (int64_t g = 0; g < groups; ++g) acc = _mm_fmadd_ps(_mm_loadu_ps(m + g * 4), _mm_broadcast_ss(xs + g), acc);
    _mm_storeu_ps(out, acc);
  } else {
    int64_t g = 0;
    __m256 acc = _mm256_setzero_ps();
    for (; g + 8 <= groups; g += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(m + g), _mm256_loadu_ps(xs + g), acc);
    float t = hsum8(acc);
    for (; g < groups; ++g) t = _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(m[g]), _mm_set_ss(xs[g]), _mm_set_ss(t)));
    out[0] = t;
  }
}

/// The last step of an output, written out as one FMA: plain C++ leaves contraction to the
/// compiler (x86 builds use GCC's default -ffp-contract=fast), which may fuse differently in the
/// instantiations of different batch sizes, and a batch must give each row of X the bits of a
/// one-row call. Grouped: y = offset * f + v (f = -8 for symmetric int4's -8 d, else 1);
/// per-row: y = v * d + m * xsum.
inline float finish_grouped(float v, float offset, float f) {
  return _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(offset), _mm_set_ss(f), _mm_set_ss(v)));
}
inline float finish_row(float v, float d, float offset) {
  return _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(v), _mm_set_ss(d), _mm_set_ss(offset)));
}

/// offsets[i][p] = sum_g m[g][P + p] * xsum_i[g] for NX rows of X at once: one pass over the
/// groups with NX independent FMA chains (a single chain waits on the FMA latency every group).
/// Each (p, i) is still summed over g in order, so a batch gives the bits of one row.
template <int P, int NX>
inline void offset_terms_nx(const float* m, const float* const* xs, int64_t groups, float (*out)[P]) {
  if constexpr (P == 8) {
    __m256 acc[NX];
    SLMC_BLK_UNROLL
    for (int i = 0; i < NX; ++i) acc[i] = _mm256_setzero_ps();
    for (int64_t g = 0; g < groups; ++g) {
      const __m256 mv = _mm256_loadu_ps(m + g * 8);
      SLMC_BLK_UNROLL
      for (int i = 0; i < NX; ++i) acc[i] = _mm256_fmadd_ps(mv, _mm256_broadcast_ss(xs[i] + g), acc[i]);
    }
    SLMC_BLK_UNROLL
    for (int i = 0; i < NX; ++i) _mm256_storeu_ps(out[i], acc[i]);
  } else if constexpr (P == 4) {
    __m128 acc[NX];
    SLMC_BLK_UNROLL
    for (int i = 0; i < NX; ++i) acc[i] = _mm_setzero_ps();
    for (int64_t g = 0; g < groups; ++g) {
      const __m128 mv = _mm_loadu_ps(m + g * 4);
      SLMC_BLK_UNROLL
      for (int i = 0; i < NX; ++i) acc[i] = _mm_fmadd_ps(mv, _mm_broadcast_ss(xs[i] + g), acc[i]);
    }
    SLMC_BLK_UNROLL
    for (int i = 0; i < NX; ++i) _mm_storeu_ps(out[i], acc[i]);
  } else {
    SLMC_BLK_UNROLL
    for (int i = 0; i < NX; ++i) offset_terms<P>(m, xs[i], groups, out[i]);
  }
}

/// What every block micro-kernel sets up for rows r..r+P-1 and rows i0..i0+NX-1 of X: the row
/// streams, one chunk stride shared by the P rows with each row at a fixed offset from the first
/// (R-row blocks: adjacent chunks, `one_region`; plain rows: one row apart), and the codes and
/// block scales of each row of X.
template <int P, int NX>
struct RowGroup {
  RowStream s[P];
  int64_t wstride;
  int64_t off[P];
  bool one_region;  ///< the P rows' chunks lie side by side (an interleaved block)
  int64_t region;   ///< bytes of one chunk of all P rows
  const int8_t* xq[NX];
  const float* xb[NX];

  RowGroup(const LinearArgs& a, int64_t r, int64_t i0) {
    SLMC_BLK_UNROLL
    for (int p = 0; p < P; ++p) s[p] = row_stream(a, r + p);
    wstride = s[0].wstride;
    SLMC_BLK_UNROLL
    for (int p = 0; p < P; ++p) {
      SLMC_DCHECK(s[p].wstride == wstride, "block rows: one stride per row group");
      off[p] = s[p].w - s[0].w;
    }
    one_region = off[P - 1] == (P - 1) * a.layout.chunk_bytes;
    region = P * a.layout.chunk_bytes;
    SLMC_BLK_UNROLL
    for (int i = 0; i < NX; ++i) {
      xq[i] = a.xq + (i0 + i) * a.kpad;
      xb[i] = a.xbs + (i0 + i) * a.layout.chunks;
    }
  }
};

// Distance of the software prefetch along a row stream, in chunks (as the int8-row GEMV).
constexpr int64_t kPrefetchChunks = 32;

/// Rows r..r+P-1 times rows i0..i0+NX-1 of X: y[i][r + p] = the block-mode product (no bias).
/// `buf`: room for 2 * groups * P floats (grouped scales only). kNl4: the nibbles index the code
/// book kNl4Levels (one vpshufb to int8 levels), then the chunk is an int8 chunk.
template <class Dot, bool kInt4, bool kGrouped, int P, int NX, bool kNl4 = false>
void rows(const LinearArgs& a, int64_t r, int64_t i0, float* buf) {
  const DenseQuantLayout& l = a.layout;
  const RowGroup<P, NX> rg(a, r, i0);
  const RowStream* s = rg.s;
  const int64_t wstride = rg.wstride;
  const int64_t* off = rg.off;
  const bool one_region = rg.one_region;
  const int64_t region = rg.region;
  const int8_t* const* xq = rg.xq;
  const float* const* xb = rg.xb;
  const bool has_m = has_offset_term(a);
  float* dbuf = buf;
  float* mbuf = buf + l.groups * P;
  if (kGrouped) {
    row_group_scales<P>(a, s, a.scales, dbuf);
    if (!a.symmetric) row_group_scales<P>(a, s, a.mins, mbuf);
  }
  __m256 acc[P][NX];
  SLMC_BLK_UNROLL
  for (int p = 0; p < P; ++p) {
    SLMC_BLK_UNROLL
    for (int i = 0; i < NX; ++i) acc[p][i] = _mm256_setzero_ps();
  }
  const int64_t chunks_per_group = kGrouped ? l.group_size / kChunk : 1;
  const __m128i low4 = _mm_set1_epi8(0x0f);
  const __m256i book = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kNl4Levels)));
  const uint8_t* wj = s[0].w;
  const float* dg = dbuf;
  int64_t left_in_group = chunks_per_group;
  for (int64_t j = 0; j < l.chunks; ++j, wj += wstride) {
    __m256i xv[NX];
    __m256 sx[NX];
    SLMC_BLK_UNROLL
    for (int i = 0; i < NX; ++i) {
      xv[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq[i] + j * kChunk));
      sx[i] = _mm256_broadcast_ss(xb[i] + j);
    }
    if (one_region) {
      for (int64_t b = 0; b < region; b += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(wj + kPrefetchChunks * wstride + b), _MM_HINT_T0);
      }
    }
    SLMC_BLK_UNROLL
    for (int p = 0; p < P; ++p) {
      const uint8_t* w = wj + off[p];
      if (!one_region) _mm_prefetch(reinterpret_cast<const char*>(w + kPrefetchChunks * wstride), _MM_HINT_T0);
      __m256i isum[NX];
      if (kInt4) {
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w));
        const __m256i u = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b, 4), low4), _mm_and_si128(b, low4));
        SLMC_BLK_UNROLL
        for (int i = 0; i < NX; ++i) isum[i] = Dot::dot(u, xv[i]);
      } else {
        __m256i q;
        if constexpr (kNl4) {
          const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w));
          q = _mm256_shuffle_epi8(book, _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b, 4), low4), _mm_and_si128(b, low4)));
        } else {
          q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
        }
        const __m256i qa = _mm256_abs_epi8(q);
        SLMC_BLK_UNROLL
        for (int i = 0; i < NX; ++i) isum[i] = Dot::dot(qa, _mm256_sign_epi8(xv[i], q));
      }
      if (kGrouped) {
        const __m256 d = _mm256_broadcast_ss(dg + p);
        SLMC_BLK_UNROLL
        for (int i = 0; i < NX; ++i) {
          acc[p][i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[i]), _mm256_mul_ps(d, sx[i]), acc[p][i]);
        }
      } else {
        SLMC_BLK_UNROLL
        for (int i = 0; i < NX; ++i) acc[p][i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[i]), sx[i], acc[p][i]);
      }
    }
    if (kGrouped && --left_in_group == 0) {
      left_in_group = chunks_per_group;
      dg += P;
    }
  }
  // Epilogue: the lanes' sum, the per-row scale, the offset term sum_g m_g * xsum_g (m = -8 d for
  // symmetric int4).
  float d0[P], m0[P];
  if (!kGrouped) {
    SLMC_BLK_UNROLL
    for (int p = 0; p < P; ++p) scale_min_with<scale_of>(a, s[p], 0, &d0[p], &m0[p]);
  }
  SLMC_BLK_UNROLL
  for (int i = 0; i < NX; ++i) {
    const float* xs = a.xsum + (i0 + i) * l.groups;
    float offset[P] = {};
    if (has_m) {
      if (kGrouped) {
        offset_terms<P>(a.symmetric ? dbuf : mbuf, xs, l.groups, offset);
      } else {
        SLMC_BLK_UNROLL
        for (int p = 0; p < P; ++p) offset[p] = m0[p] * xs[0];
      }
    }
    const float f = a.symmetric ? -8.0f : 1.0f;
    SLMC_BLK_UNROLL
    for (int p = 0; p < P; ++p) {
      const float v = hsum8(acc[p][i]);
      a.y[(i0 + i) * a.m + r + p] = kGrouped ? finish_grouped(v, offset[p], f) : finish_row(v, d0[p], offset[p]);
    }
  }
}

/// int4 rows in pairs (P = 4 or 8): one 256-bit register holds the 16 code bytes of two rows
/// (adjacent in an interleaved block: one load), so each nibble unpack and each dot instruction
/// serves two rows: lanes 0-3 of a pair's accumulator belong to row p, lanes 4-7 to row p + 1,
/// against x split into halves broadcast to both 128-bit lanes (codes 0-15 are the low nibbles,
/// 16-31 the high ones). `buf`: room for 6 * groups * P floats.
template <class Dot, bool kGrouped, int P, int NX>
void int4_pairs(const LinearArgs& a, int64_t r, int64_t i0, float* buf) {
  static_assert(P % 2 == 0, "pairs of rows");
  constexpr int Q = P / 2;
  const DenseQuantLayout& l = a.layout;
  const RowGroup<P, NX> rg(a, r, i0);
  const RowStream* s = rg.s;
  const int64_t wstride = rg.wstride;
  const int64_t* off = rg.off;
  const bool one_region = rg.one_region;
  const int64_t region = rg.region;
  const int8_t* const* xq = rg.xq;
  const float* const* xb = rg.xb;
  float* dbuf = buf;                      // [g][P]
  float* mbuf = buf + l.groups * P;       // [g][P]
  if (kGrouped) {
    row_group_scales<P>(a, s, a.scales, dbuf);
    if (!a.symmetric) row_group_scales<P>(a, s, a.mins, mbuf);
  }
  // d of row 2q into lanes 0-3, of row 2q+1 into 4-7: one permute per pair and chunk.
  const __m256i spread = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
  __m256 acc[Q][NX];
  SLMC_BLK_UNROLL
  for (int q = 0; q < Q; ++q) {
    SLMC_BLK_UNROLL
    for (int i = 0; i < NX; ++i) acc[q][i] = _mm256_setzero_ps();
  }
  const int64_t chunks_per_group = kGrouped ? l.group_size / kChunk : 1;
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  const uint8_t* wj = s[0].w;
  const float* dg = dbuf;
  int64_t left_in_group = chunks_per_group;
  for (int64_t j = 0; j < l.chunks; ++j, wj += wstride) {
    __m256i xlo[NX], xhi[NX];
    __m256 sx[NX];
    SLMC_BLK_UNROLL
    for (int i = 0; i < NX; ++i) {
      const __m128i* xp = reinterpret_cast<const __m128i*>(xq[i] + j * kChunk);
      xlo[i] = _mm256_broadcastsi128_si256(_mm_loadu_si128(xp));
      xhi[i] = _mm256_broadcastsi128_si256(_mm_loadu_si128(xp + 1));
      sx[i] = _mm256_broadcast_ss(xb[i] + j);
    }
    if (one_region) {
      for (int64_t b = 0; b < region; b += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(wj + kPrefetchChunks * wstride + b), _MM_HINT_T0);
      }
    }
    SLMC_BLK_UNROLL
    for (int q = 0; q < Q; ++q) {
      const uint8_t* w0 = wj + off[2 * q];
      const uint8_t* w1 = wj + off[2 * q + 1];
      if (!one_region) {
        _mm_prefetch(reinterpret_cast<const char*>(w0 + kPrefetchChunks * wstride), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(w1 + kPrefetchChunks * wstride), _MM_HINT_T0);
      }
      const __m256i b = one_region ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w0))
                                   : _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(w1),
                                                         reinterpret_cast<const __m128i*>(w0));
      const __m256i ulo = _mm256_and_si256(b, low4);
      const __m256i uhi = _mm256_and_si256(_mm256_srli_epi16(b, 4), low4);
      __m256 scale[NX];
      if (kGrouped) {
        const __m256 d = _mm256_permutevar8x32_ps(
            _mm256_castpd_ps(_mm256_zextpd128_pd256(_mm_load_sd(reinterpret_cast<const double*>(dg + 2 * q)))),
            spread);
        SLMC_BLK_UNROLL
        for (int i = 0; i < NX; ++i) scale[i] = _mm256_mul_ps(d, sx[i]);
      } else {
        SLMC_BLK_UNROLL
        for (int i = 0; i < NX; ++i) scale[i] = sx[i];
      }
      SLMC_BLK_UNROLL
      for (int i = 0; i < NX; ++i) {
        const __m256i isum = Dot::dot2_u4(ulo, xlo[i], uhi, xhi[i]);
        acc[q][i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale[i], acc[q][i]);
      }
    }
    if (kGrouped && --left_in_group == 0) {
      left_in_group = chunks_per_group;
      dg += P;
    }
  }
  float d0[P], m0[P];
  if (!kGrouped) {
    SLMC_BLK_UNROLL
    for (int p = 0; p < P; ++p) scale_min_with<scale_of>(a, s[p], 0, &d0[p], &m0[p]);
  }
  const float* xsums[NX];
  SLMC_BLK_UNROLL
  for (int i = 0; i < NX; ++i) xsums[i] = a.xsum + (i0 + i) * l.groups;
  float offsets[NX][P] = {};
  if (kGrouped) offset_terms_nx<P, NX>(a.symmetric ? dbuf : mbuf, xsums, l.groups, offsets);
  SLMC_BLK_UNROLL
  for (int i = 0; i < NX; ++i) {
    const float* xs = xsums[i];
    float* offset = offsets[i];
    const float f = a.symmetric ? -8.0f : 1.0f;
    if (!kGrouped) {
      SLMC_BLK_UNROLL
      for (int p = 0; p < P; ++p) offset[p] = m0[p] * xs[0];
    }
    SLMC_BLK_UNROLL
    for (int q = 0; q < Q; ++q) {
      // The two halves of the pair's lanes: row 2q in 0-3, row 2q+1 in 4-7.
      __m128 lo = _mm256_castps256_ps128(acc[q][i]), hi = _mm256_extractf128_ps(acc[q][i], 1);
      __m128 t = _mm_hadd_ps(lo, hi);  // lo0+lo1 lo2+lo3 hi0+hi1 hi2+hi3
      t = _mm_hadd_ps(t, t);           // lo hi lo hi
      const float v0 = _mm_cvtss_f32(t), v1 = _mm_cvtss_f32(_mm_shuffle_ps(t, t, 1));
      float* y = a.y + (i0 + i) * a.m + r + 2 * q;
      y[0] = kGrouped ? finish_grouped(v0, offset[2 * q], f) : finish_row(v0, d0[2 * q], offset[2 * q]);
      y[1] = kGrouped ? finish_grouped(v1, offset[2 * q + 1], f) : finish_row(v1, d0[2 * q + 1], offset[2 * q + 1]);
    }
  }
}

#if SLMC_HAVE_AVX512_FLAGS
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*() (a self-initialized local), which
// its own -W(maybe-)uninitialized reports at every inlined use: a known false positive.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
/// int8 rows on AVX-512: two chunks per ZMM register, so one vpdpbusd, one convert and one FMA
/// serve 64 products (the YMM kernel needs two of each). The sign moves from w to x with one
/// masked subtract (AVX-512 has no vpsignb); the scale vector holds s_j in lanes 0-7 and s_j+1
/// in 8-15 (times d_g of each chunk when grouped). An odd last chunk is loaded masked (x and w
/// zero beyond it). `buf`: 2 * groups * P floats.
// Two YMM halves as one ZMM and back, with AVX-512F only (insertf32x8 / extractf32x8 need DQ).
inline __m512 join8(__m256 lo, __m256 hi) {
  return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_zextpd256_pd512(_mm256_castps_pd(lo)), _mm256_castps_pd(hi), 1));
}
inline __m256 high8(__m512 v) { return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)); }

template <bool kGrouped, int P, int NX>
void rows_i8_zmm(const LinearArgs& a, int64_t r, int64_t i0, float* buf) {
  const DenseQuantLayout& l = a.layout;
  const RowGroup<P, NX> rg(a, r, i0);
  const RowStream* s = rg.s;
  const int64_t wstride = rg.wstride;
  const int64_t* off = rg.off;
  const int8_t* const* xq = rg.xq;
  const float* const* xb = rg.xb;
  const bool adjacent = wstride == kChunk;  // plain rows: chunks j and j + 1 side by side
  const bool has_m = !a.symmetric;          // int8: offsets only with mins
  float* dbuf = buf;
  float* mbuf = buf + l.groups * P;
  if (kGrouped) {
    row_group_scales<P>(a, s, a.scales, dbuf);
    if (has_m) row_group_scales<P>(a, s, a.mins, mbuf);
  }
  __m512 acc[P][NX];
  SLMC_BLK_UNROLL
  for (int p = 0; p < P; ++p) {
    SLMC_BLK_UNROLL
    for (int i = 0; i < NX; ++i) acc[p][i] = _mm512_setzero_ps();
  }
  const int64_t cpg = kGrouped ? l.group_size / kChunk : 1;
  const __m512i zero = _mm512_setzero_si512();
  // Groups of chunks j and j + 1, advanced without a division (an idiv per step costs more than
  // the step).
  int64_t g0 = 0, g1 = cpg > 1 ? 0 : 1, left0 = cpg, left1 = cpg > 1 ? cpg - 1 : cpg;
  auto advance = [cpg](int64_t& g, int64_t& left) {
    left -= 2;
    while (left <= 0) {
      left += cpg;
      ++g;
    }
  };
  for (int64_t j = 0; j < l.chunks; j += 2, advance(g0, left0), advance(g1, left1)) {
    const bool pair = j + 1 < l.chunks;
    const __mmask64 m64 = pair ? ~__mmask64{0} : __mmask64{0xffffffffu};
    __m512i xv[NX];
    __m512 sx[NX];
    SLMC_BLK_UNROLL
    for (int i = 0; i < NX; ++i) {
      xv[i] = _mm512_maskz_loadu_epi8(m64, xq[i] + j * kChunk);
      const __m256 s0 = _mm256_broadcast_ss(xb[i] + j);
      const __m256 s1 = pair ? _mm256_broadcast_ss(xb[i] + j + 1) : _mm256_setzero_ps();
      sx[i] = join8(s0, s1);
    }
    const uint8_t* wj = s[0].w + j * wstride;
    SLMC_BLK_UNROLL
    for (int p = 0; p < P; ++p) {
      const uint8_t* w = wj + off[p];
      _mm_prefetch(reinterpret_cast<const char*>(w + kPrefetchChunks * wstride), _MM_HINT_T0);
      __m512i q;
      if (adjacent) {
        q = _mm512_maskz_loadu_epi8(m64, w);
      } else {
        const __m256i q0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
        const __m256i q1 = pair ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + wstride))
                                : _mm256_setzero_si256();
        q = _mm512_inserti64x4(_mm512_zextsi256_si512(q0), q1, 1);
      }
      const __mmask64 neg = _mm512_movepi8_mask(q);
      const __m512i qa = _mm512_abs_epi8(q);
      __m512 scale[NX];
      if (kGrouped) {
        const __m256 d0 = _mm256_broadcast_ss(dbuf + g0 * P + p);
        const __m256 d1 = pair ? _mm256_broadcast_ss(dbuf + g1 * P + p) : _mm256_setzero_ps();
        const __m512 d = join8(d0, d1);
        SLMC_BLK_UNROLL
        for (int i = 0; i < NX; ++i) scale[i] = _mm512_mul_ps(d, sx[i]);
      } else {
        SLMC_BLK_UNROLL
        for (int i = 0; i < NX; ++i) scale[i] = sx[i];
      }
      SLMC_BLK_UNROLL
      for (int i = 0; i < NX; ++i) {
        const __m512i xs = _mm512_mask_sub_epi8(xv[i], neg, zero, xv[i]);
        const __m512i isum = _mm512_dpbusd_epi32(zero, qa, xs);
        acc[p][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scale[i], acc[p][i]);
      }
    }
  }
  float d0[P], m0[P];
  if (!kGrouped) {
    SLMC_BLK_UNROLL
    for (int p = 0; p < P; ++p) scale_min_with<scale_of>(a, s[p], 0, &d0[p], &m0[p]);
  }
  SLMC_BLK_UNROLL
  for (int i = 0; i < NX; ++i) {
    const float* xs = a.xsum + (i0 + i) * l.groups;
    float offset[P] = {};
    if (has_m) {
      if (kGrouped) {
        offset_terms<P>(mbuf, xs, l.groups, offset);
      } else {
        SLMC_BLK_UNROLL
        for (int p = 0; p < P; ++p) offset[p] = m0[p] * xs[0];
      }
    }
    SLMC_BLK_UNROLL
    for (int p = 0; p < P; ++p) {
      const __m512 v16 = acc[p][i];
      const float v = hsum8(_mm256_add_ps(_mm512_castps512_ps256(v16), high8(v16)));
      a.y[(i0 + i) * a.m + r + p] = kGrouped ? finish_grouped(v, offset[p], 1.0f) : finish_row(v, d0[p], offset[p]);
    }
  }
}
/// int4 rows in quads on AVX-512 (P = 4 or 8): one ZMM holds the 16 code bytes of four rows (an
/// interleaved block's four adjacent chunks: one load), so each unpack and each pair of vpdpbusd
/// serves four rows; lanes 4r..4r+3 of a quad's accumulator belong to its row r, against x halves
/// broadcast to all four 128-bit lanes. `buf`: 6 * groups * P floats.
template <bool kGrouped, int P, int NX>
void int4_quads(const LinearArgs& a, int64_t r, int64_t i0, float* buf) {
  static_assert(P % 4 == 0, "quads of rows");
  constexpr int Q = P / 4;
  const DenseQuantLayout& l = a.layout;
  const RowGroup<P, NX> rg(a, r, i0);
  const RowStream* s = rg.s;
  const int64_t wstride = rg.wstride;
  const int64_t* off = rg.off;
  const bool one_region = rg.one_region;
  const int64_t region = rg.region;
  const int8_t* const* xq = rg.xq;
  const float* const* xb = rg.xb;
  float* dbuf = buf;                     // [g][P]
  float* mbuf = buf + l.groups * P;      // [g][P]
  if (kGrouped) {
    row_group_scales<P>(a, s, a.scales, dbuf);
    if (!a.symmetric) row_group_scales<P>(a, s, a.mins, mbuf);
  }
  // d of row 4q+r into lanes 4r..4r+3: one permute of the four scales per quad and chunk.
  const __m512i spread = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  __m512 acc[Q][NX];
  SLMC_BLK_UNROLL
  for (int q = 0; q < Q; ++q) {
    SLMC_BLK_UNROLL
    for (int i = 0; i < NX; ++i) acc[q][i] = _mm512_setzero_ps();
  }
  const int64_t chunks_per_group = kGrouped ? l.group_size / kChunk : 1;
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const __m512i zero = _mm512_setzero_si512();
  const uint8_t* wj = s[0].w;
  const float* dg = dbuf;
  int64_t left_in_group = chunks_per_group;
  for (int64_t j = 0; j < l.chunks; ++j, wj += wstride) {
    __m512i xlo[NX], xhi[NX];
    __m512 sx[NX];
    SLMC_BLK_UNROLL
    for (int i = 0; i < NX; ++i) {
      const __m128i* xp = reinterpret_cast<const __m128i*>(xq[i] + j * kChunk);
      xlo[i] = _mm512_broadcast_i32x4(_mm_loadu_si128(xp));
      xhi[i] = _mm512_broadcast_i32x4(_mm_loadu_si128(xp + 1));
      sx[i] = _mm512_set1_ps(xb[i][j]);
    }
    if (one_region) {
      for (int64_t b = 0; b < region; b += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(wj + kPrefetchChunks * wstride + b), _MM_HINT_T0);
      }
    }
    SLMC_BLK_UNROLL
    for (int q = 0; q < Q; ++q) {
      __m512i b;
      if (one_region) {
        b = _mm512_loadu_si512(wj + off[4 * q]);
      } else {
        SLMC_BLK_UNROLL
        for (int rr = 0; rr < 4; ++rr) {
          _mm_prefetch(reinterpret_cast<const char*>(wj + off[4 * q + rr] + kPrefetchChunks * wstride), _MM_HINT_T0);
        }
        b = _mm512_zextsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wj + off[4 * q])));
        b = _mm512_inserti32x4(b, _mm_loadu_si128(reinterpret_cast<const __m128i*>(wj + off[4 * q + 1])), 1);
        b = _mm512_inserti32x4(b, _mm_loadu_si128(reinterpret_cast<const __m128i*>(wj + off[4 * q + 2])), 2);
        b = _mm512_inserti32x4(b, _mm_loadu_si128(reinterpret_cast<const __m128i*>(wj + off[4 * q + 3])), 3);
      }
      const __m512i ulo = _mm512_and_si512(b, low4);
      const __m512i uhi = _mm512_and_si512(_mm512_srli_epi16(b, 4), low4);
      __m512 scale[NX];
      if (kGrouped) {
        const __m512 d = _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(_mm_loadu_ps(dg + 4 * q)));
        SLMC_BLK_UNROLL
        for (int i = 0; i < NX; ++i) scale[i] = _mm512_mul_ps(d, sx[i]);
      } else {
        SLMC_BLK_UNROLL
        for (int i = 0; i < NX; ++i) scale[i] = sx[i];
      }
      SLMC_BLK_UNROLL
      for (int i = 0; i < NX; ++i) {
        const __m512i isum = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, ulo, xlo[i]), uhi, xhi[i]);
        acc[q][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scale[i], acc[q][i]);
      }
    }
    if (kGrouped && --left_in_group == 0) {
      left_in_group = chunks_per_group;
      dg += P;
    }
  }
  float d0[P], m0[P];
  if (!kGrouped) {
    SLMC_BLK_UNROLL
    for (int p = 0; p < P; ++p) scale_min_with<scale_of>(a, s[p], 0, &d0[p], &m0[p]);
  }
  const float f = a.symmetric ? -8.0f : 1.0f;
  const float* xsums[NX];
  SLMC_BLK_UNROLL
  for (int i = 0; i < NX; ++i) xsums[i] = a.xsum + (i0 + i) * l.groups;
  float offsets[NX][P] = {};
  if (kGrouped) offset_terms_nx<P, NX>(a.symmetric ? dbuf : mbuf, xsums, l.groups, offsets);
  SLMC_BLK_UNROLL
  for (int i = 0; i < NX; ++i) {
    const float* xs = xsums[i];
    float* offset = offsets[i];
    if (!kGrouped) {
      SLMC_BLK_UNROLL
      for (int p = 0; p < P; ++p) offset[p] = m0[p] * xs[0];
    }
    float* y = a.y + (i0 + i) * a.m + r;
    SLMC_BLK_UNROLL
    for (int q = 0; q < Q; ++q) {
      // Lanes 4rr..4rr+3 are row 4q+rr: each 128-bit lane summed in a fixed order.
      const __m512 v = acc[q][i];
      __m128 lanes[4] = {_mm512_castps512_ps128(v), _mm512_extractf32x4_ps(v, 1), _mm512_extractf32x4_ps(v, 2),
                         _mm512_extractf32x4_ps(v, 3)};
      SLMC_BLK_UNROLL
      for (int rr = 0; rr < 4; ++rr) {
        __m128 t = _mm_add_ps(lanes[rr], _mm_movehl_ps(lanes[rr], lanes[rr]));
        t = _mm_add_ss(t, _mm_movehdup_ps(t));
        const float vv = _mm_cvtss_f32(t);
        const int p = 4 * q + rr;
        y[p] = kGrouped ? finish_grouped(vv, offset[p], f) : finish_row(vv, d0[p], offset[p]);
      }
    }
  }
}
#pragma GCC diagnostic pop
#endif

#if SLMC_HAVE_AVX512_FLAGS
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// ------------------------------------------------------------------------------------------------
// The packed GEMM of the block mode (AVX-512 VNNI), run by gemm_panels (driver.hpp) for N >=
// LinearTuning::gemm_min_n_int8_block.
//
// Panel: 16 rows of W over a K block of kc chunks, repacked once per block into
//   bytes [chunk][k4 = 0..7][row = 0..15][4 codes]   (512 bytes per chunk)
// so one ZMM load holds 4 consecutive codes of each of the 16 rows, and one vpdpbusd against four
// codes of a row of X broadcast to every lane does 64 products of 16 outputs. The codes are stored
// unsigned (the operand vpdpbusd takes unsigned): int8 q + 128 (nl4: its level + 128), int4 the nibble u (symmetric: the
// signed value + 8). The bias goes back out in the integer domain: each (row of X, chunk) starts
// its int32 accumulator at -bias * sum of its 32 codes (pack_x), so after 8 vpdpbusd the lane holds
// the chunk's exact integer dot sum_k c_k xq_k with c the signed value (int8 q; symmetric int4
// u - 8; asymmetric int4 u, its min goes to the offset term). Then one convert and one FMA per
// (16 rows, row of X, chunk): acc += float(isum) * (d_g(rows) * s_j), the d of the chunk's group
// stored beside the panel ([chunk][16] fp32; per-row scales: acc += float(isum) * s_j, d after).
// A tile is 16 rows x up to kNr = 12 rows of X: 12 int32 + 12 fp32 accumulators, 8 loads of W
// per chunk shared by 12 rows of X.
//
// Numbers: each output is one fp32 FMA chain over its chunks in order (partial sums of K blocks
// kept in y), then finish(): y = v + sum_g m_g xsum_g (asymmetric, grouped), y = v * d + m * xsum
// (per-row), + bias. The same for every tile position, tile width, N and thread split, so any
// batch served by the GEMM gives each row of X the same bits; but not the bits of the GEMV (which
// keeps 8 or 16 partial lanes per output and sums them at the end): see KERNELS.md.
struct BlockGemmZmm {
  static constexpr int64_t kMr = 16, kNr = 12;
  static constexpr int64_t kChunkBytes = kMr * kChunk;  // one chunk of the panel
  static constexpr int64_t kMaxBlockChunks = 64;        // 2048 values: a 32 KiB panel (L1)
  // One chunk of a tile of rows of X: codes [k4][kNr] (32 bits each), corrections [kNr] (int32),
  // block scales [kNr] (fp32). One pointer and immediate offsets in the micro-kernel.
  static constexpr int64_t kXChunkBytes = 8 * kNr * 4 + kNr * 4 + kNr * 4;

  const LinearArgs& a;
  int64_t kend, kc_max;
  bool int4, nl4, grouped, offsets;
  int32_t code_bias;   // the code bias: 128 (int8), 8 (symmetric int4), 0 (asymmetric int4)
  uint8_t* panel;      // kMaxBlockChunks * kChunkBytes
  float* dpanel;       // kMaxBlockChunks * kMr: d of each chunk's group (grouped scales)
  uint8_t* xpanel;     // [tile][chunk] of kXChunkBytes: the activations, packed once per call
  float* mbuf;         // [groups][kMr]: the offset term's m (finish)

  static size_t scratch_bytes(const LinearArgs& a) {
    return static_cast<size_t>(kMaxBlockChunks * kChunkBytes + kMaxBlockChunks * kMr * 4 + xpanel_bytes(a) +
                               a.layout.groups * kMr * 4 + 64);
  }
  static int64_t xpanel_bytes(const LinearArgs& a) {
    return ((a.n + kNr - 1) / kNr * a.layout.chunks * kXChunkBytes + 63) / 64 * 64;
  }

  BlockGemmZmm(const LinearArgs& args, uint8_t* scratch) : a(args) {
    const DenseQuantLayout& l = a.layout;
    kend = l.chunks;
    kc_max = kMaxBlockChunks;
    int4 = a.vt == ValueType::kInt4;
    nl4 = a.vt == ValueType::kNl4;  // nibbles looked up to int8 levels at packing: then an int8 panel
    grouped = grouped_scales(a);
    offsets = !a.symmetric;
    code_bias = !int4 ? 128 : a.symmetric ? 8 : 0;
    panel = scratch;
    dpanel = reinterpret_cast<float*>(panel + kMaxBlockChunks * kChunkBytes);
    xpanel = reinterpret_cast<uint8_t*>(dpanel + kMaxBlockChunks * kMr);
    mbuf = reinterpret_cast<float*>(xpanel + xpanel_bytes(a));
  }

  /// The activations of every block at the first block (the caller's, whole), tile by tile: the
  /// codes as [k4][row of X], -bias * sum of the chunk's codes (vpsadbw on the codes + 128) and
  /// the block scale. Rows beyond N are zero.
  void pack_x(int64_t kb, int64_t) {
    if (kb != 0) return;
    const int64_t chunks = a.layout.chunks, tiles = (a.n + kNr - 1) / kNr;
    const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
    for (int64_t tile = 0; tile < tiles; ++tile) {
      for (int64_t i = 0; i < kNr; ++i) {
        const int64_t row = tile * kNr + i;
        uint8_t* dst = xpanel + tile * chunks * kXChunkBytes;
        for (int64_t j = 0; j < chunks; ++j, dst += kXChunkBytes) {
          auto* codes = reinterpret_cast<int32_t*>(dst);
          int32_t* corr = codes + 8 * kNr;
          auto* scale = reinterpret_cast<float*>(corr + kNr);
          if (row >= a.n) {
            for (int t = 0; t < 8; ++t) codes[t * kNr + i] = 0;
            corr[i] = 0;
            scale[i] = 0.0f;
            continue;
          }
          const int8_t* xq = a.xq + row * a.kpad + j * kChunk;
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq));
          alignas(32) int32_t c[8];
          _mm256_store_si256(reinterpret_cast<__m256i*>(c), v);
          for (int t = 0; t < 8; ++t) codes[t * kNr + i] = c[t];
          const __m256i sad = _mm256_sad_epu8(_mm256_xor_si256(v, flip), _mm256_setzero_si256());  // 4 sums of 8 (x + 128)
          const __m128i h = _mm_add_epi64(_mm256_castsi256_si128(sad), _mm256_extracti128_si256(sad, 1));
          const int32_t sum = _mm_cvtsi128_si32(_mm_add_epi64(h, _mm_unpackhi_epi64(h, h))) - 128 * kChunk;
          corr[i] = -code_bias * sum;
          scale[i] = a.xbs[row * chunks + j];
        }
      }
    }
  }

  /// Rows [mb, mb + rows) over chunks [kb, kb + kc) into the panel; missing rows read a zero chunk
  /// (their lanes are computed and never stored) and get d = 0. Per chunk: rows p and p + 8 in the
  /// two halves of one ZMM (eight 32-bit groups of 4 codes each), then an 8 x 8 transpose of 32-bit
  /// elements in both halves at once (unpack 32, unpack 64, one two-source permute per output).
  void pack_w(int64_t kb, int64_t kc, int64_t mb, int64_t rows) {
    const DenseQuantLayout& l = a.layout;
    alignas(64) static const uint8_t zeros[32] = {};
    const uint8_t* w[kMr];
    int64_t ws[kMr];
    for (int64_t p = 0; p < kMr; ++p) {
      if (p < rows) {
        const RowStream s = row_stream(a, mb + p);
        w[p] = s.w + kb * s.wstride;
        ws[p] = s.wstride;
        if (grouped) {
          const int64_t cpg = l.group_size / kChunk;
          int64_t g = kb / cpg, left = cpg - kb % cpg;
          float d = scale_of(a.scales, a.scales_f16, s.s0 + g * s.sstride);
          for (int64_t j = 0; j < kc; ++j) {
            dpanel[j * kMr + p] = d;
            if (--left == 0 && j + 1 < kc) {
              left = cpg;
              ++g;
              d = scale_of(a.scales, a.scales_f16, s.s0 + g * s.sstride);
            }
          }
        }
      } else {
        w[p] = zeros;
        ws[p] = 0;
        if (grouped) {
          for (int64_t j = 0; j < kc; ++j) dpanel[j * kMr + p] = 0.0f;
        }
      }
    }
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    const __m512i book = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kNl4Levels)));
    const __m512i nib_shift = _mm512_setr_epi64(0, 0, 0x0004000400040004, 0x0004000400040004, 0, 0,
                                                0x0004000400040004, 0x0004000400040004);
    const __m512i lo_idx = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
    const __m512i hi_idx = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    uint8_t* out = panel;
    for (int64_t j = 0; j < kc; ++j, out += kChunkBytes) {
      __m512i z[8];
      SLMC_BLK_UNROLL
      for (int p = 0; p < 8; ++p) {
        const uint8_t* w0 = w[p] + j * ws[p];
        const uint8_t* w1 = w[p + 8] + j * ws[p + 8];
        if (int4 || nl4) {
          // [b0 b0 b1 b1] -> low nibbles of b0 | high nibbles of b0 | the same of b1.
          const __m256i b0 = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w0)));
          const __m256i b1 = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w1)));
          const __m512i b = _mm512_inserti64x4(_mm512_castsi256_si512(b0), b1, 1);
          z[p] = _mm512_and_si512(_mm512_srlv_epi16(b, nib_shift), low4);
          if (nl4) z[p] = _mm512_xor_si512(_mm512_shuffle_epi8(book, z[p]), flip);  // level + 128
        } else {
          const __m256i q0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w0));
          const __m256i q1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w1));
          z[p] = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(q0), q1, 1), flip);
        }
      }
      __m512i t[8], u[8];
      SLMC_BLK_UNROLL
      for (int q = 0; q < 4; ++q) {
        t[2 * q] = _mm512_unpacklo_epi32(z[2 * q], z[2 * q + 1]);
        t[2 * q + 1] = _mm512_unpackhi_epi32(z[2 * q], z[2 * q + 1]);
      }
      SLMC_BLK_UNROLL
      for (int h = 0; h < 2; ++h) {  // rows 0-3 (h = 0) and 4-7 (h = 1) of each half
        __m512i* uh = u + 4 * h;
        const __m512i* th = t + 4 * h;
        uh[0] = _mm512_unpacklo_epi64(th[0], th[2]);
        uh[1] = _mm512_unpackhi_epi64(th[0], th[2]);
        uh[2] = _mm512_unpacklo_epi64(th[1], th[3]);
        uh[3] = _mm512_unpackhi_epi64(th[1], th[3]);
      }
      // u[e] (rows 0-3) and u[4 + e] (rows 4-7) hold element e of each 128-bit lane: element e of
      // 32-bit group 4h + e sits in lane h (rows p) and lane 2 + h (rows p + 8).
      SLMC_BLK_UNROLL
      for (int e = 0; e < 4; ++e) {
        _mm512_store_si512(out + e * 64, _mm512_permutex2var_epi64(u[e], lo_idx, u[4 + e]));
        _mm512_store_si512(out + (4 + e) * 64, _mm512_permutex2var_epi64(u[e], hi_idx, u[4 + e]));
      }
    }
  }

  template <bool kGrouped, int NR>
  void tile_nr(int64_t kb, int64_t kc, int64_t mb, int64_t rows, int64_t nb, bool first) const {
    const __mmask16 mask = static_cast<__mmask16>((1u << rows) - 1);
    float* y = a.y + nb * a.m + mb;
    __m512 acc[NR];
    SLMC_BLK_UNROLL
    for (int i = 0; i < NR; ++i) acc[i] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask, y + i * a.m);
    const uint8_t* xp = xpanel + ((nb / kNr) * a.layout.chunks + kb) * kXChunkBytes;
    const uint8_t* pj = panel;
    for (int64_t j = 0; j < kc; ++j, pj += kChunkBytes, xp += kXChunkBytes) {
      const auto* codes = reinterpret_cast<const int32_t*>(xp);
      const int32_t* corr = codes + 8 * kNr;
      const auto* scale = reinterpret_cast<const float*>(corr + kNr);
      __m512i isum[NR];
      SLMC_BLK_UNROLL
      for (int i = 0; i < NR; ++i) isum[i] = _mm512_set1_epi32(corr[i]);
      SLMC_BLK_UNROLL
      for (int t = 0; t < 8; ++t) {
        const __m512i w = _mm512_load_si512(pj + t * 64);
        SLMC_BLK_UNROLL
        for (int i = 0; i < NR; ++i) isum[i] = _mm512_dpbusd_epi32(isum[i], w, _mm512_set1_epi32(codes[t * kNr + i]));
      }
      if (kGrouped) {
        const __m512 d = _mm512_load_ps(dpanel + j * kMr);
        SLMC_BLK_UNROLL
        for (int i = 0; i < NR; ++i) {
          acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[i]), _mm512_mul_ps(d, _mm512_set1_ps(scale[i])), acc[i]);
        }
      } else {
        SLMC_BLK_UNROLL
        for (int i = 0; i < NR; ++i) acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[i]), _mm512_set1_ps(scale[i]), acc[i]);
      }
    }
    SLMC_BLK_UNROLL
    for (int i = 0; i < NR; ++i) _mm512_mask_storeu_ps(y + i * a.m, mask, acc[i]);
  }

  void tile(int64_t kb, int64_t kc, int64_t mb, int64_t rows, int64_t nb, int nr, bool first) const {
    with_count<1, static_cast<int>(kNr)>(nr, [&](auto c) {
      constexpr int NR = decltype(c)::value;
      grouped ? tile_nr<true, NR>(kb, kc, mb, rows, nb, first) : tile_nr<false, NR>(kb, kc, mb, rows, nb, first);
    });
  }

  /// The epilogue over y[:, m0:m1): offsets, per-row scales, bias; 16 rows at a time.
  void finish(int64_t m0, int64_t m1) {
    const DenseQuantLayout& l = a.layout;
    for (int64_t mb = m0; mb < m1; mb += kMr) {
      const int64_t rows = std::min(kMr, m1 - mb);
      const __mmask16 mask = static_cast<__mmask16>((1u << rows) - 1);
      alignas(64) float d[kMr] = {}, mn[kMr] = {};
      for (int64_t p = 0; p < rows; ++p) {
        const RowStream s = row_stream(a, mb + p);
        if (!grouped) {
          d[p] = scale_of(a.scales, a.scales_f16, s.s0);
          if (offsets) mn[p] = scale_of(a.mins, a.scales_f16, s.s0);
        } else if (offsets) {
          for (int64_t g = 0; g < l.groups; ++g) mbuf[g * kMr + p] = scale_of(a.mins, a.scales_f16, s.s0 + g * s.sstride);
        }
      }
      if (grouped && offsets) {
        for (int64_t g = 0; g < l.groups; ++g) {
          for (int64_t p = rows; p < kMr; ++p) mbuf[g * kMr + p] = 0.0f;
        }
      }
      const __m512 dv = _mm512_load_ps(d), mv = _mm512_load_ps(mn);
      const __m512 bv = a.bias ? _mm512_maskz_loadu_ps(mask, a.bias + mb) : _mm512_setzero_ps();
      for (int64_t i = 0; i < a.n; ++i) {
        float* y = a.y + i * a.m + mb;
        const float* xs = a.xsum + i * l.groups;
        __m512 v = _mm512_maskz_loadu_ps(mask, y);
        if (!grouped) {
          v = _mm512_fmadd_ps(v, dv, offsets ? _mm512_mul_ps(mv, _mm512_set1_ps(xs[0])) : _mm512_setzero_ps());
        } else if (offsets) {
          __m512 off = _mm512_setzero_ps();
          for (int64_t g = 0; g < l.groups; ++g) off = _mm512_fmadd_ps(_mm512_load_ps(mbuf + g * kMr), _mm512_set1_ps(xs[g]), off);
          v = _mm512_add_ps(v, off);
        }
        if (a.bias) v = _mm512_add_ps(v, bv);  // no bias: y as computed (an added 0 would turn -0 into +0)
        _mm512_mask_storeu_ps(y, mask, v);
      }
    }
  }
};
#pragma GCC diagnostic pop
#endif

// Rows of X per weight pass: 4-row groups keep 4 * kNx accumulators in registers.
template <class Dot>
constexpr int kNx = Dot::kAccumulators / 4;

/// nl4 rows: the plain row micro-kernel with the code book lookup.
template <class Dot, bool kGrouped, int P>
void nl4_rows_batch(const LinearArgs& a, int64_t r, int64_t i0, int nx, float* buf) {
  constexpr int kMax = std::min(kNx<Dot>, std::max(1, Dot::kAccumulators / P));
  for (int i = 0; i < nx; i += kMax) {
    with_count<1, kMax>(std::min(kMax, nx - i), [&](auto c) {
      rows<Dot, false, kGrouped, P, decltype(c)::value, true>(a, r, i0 + i, buf);
    });
  }
}

template <class Dot, bool kInt4, bool kGrouped, int P>
void rows_batch(const LinearArgs& a, int64_t r, int64_t i0, int nx, float* buf) {
  // P rows keep P * NX accumulators in registers (int4 pairs: P / 2): batches of at most
  // kAccumulators / that many rows of X.
  constexpr bool kPairs = kInt4 && P >= 4;
  constexpr bool kQuads = kPairs && Dot::kZmm;
  constexpr int kAccPerX = kQuads ? P / 4 : kPairs ? P / 2 : P;
  constexpr int kMax = std::min(kNx<Dot>, std::max(1, Dot::kAccumulators / kAccPerX));
  for (int i = 0; i < nx; i += kMax) {
    with_count<1, kMax>(std::min(kMax, nx - i), [&](auto c) {
      if constexpr (kQuads) {
#if SLMC_HAVE_AVX512_FLAGS
        int4_quads<kGrouped, P, decltype(c)::value>(a, r, i0 + i, buf);
#endif
      } else if constexpr (kPairs) {
        int4_pairs<Dot, kGrouped, P, decltype(c)::value>(a, r, i0 + i, buf);
#if SLMC_HAVE_AVX512_FLAGS
      } else if constexpr (!kInt4 && Dot::kZmm) {
        rows_i8_zmm<kGrouped, P, decltype(c)::value>(a, r, i0 + i, buf);
#endif
      } else {
        rows<Dot, kInt4, kGrouped, P, decltype(c)::value>(a, r, i0 + i, buf);
      }
    });
  }
}

/// Scratch floats the block micro-kernels need per thread (fp32 scales and mins of a row group).
inline size_t scratch_floats(const LinearArgs& a) { return static_cast<size_t>(6 * a.layout.groups * 8 + 16); }

/// The table entry: y[:, m0:m1) (bias included) in int8 (block) mode. Groupings that split a
/// chunk between two weight scales (g16, g48) go to the scalar reference. `scratch` holds
/// scratch_floats(a) floats (the table's scratch_bytes covers it).
template <class Dot>
void int8_block(const LinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch) {
  const bool grouped = grouped_scales(a);
  if (grouped && a.layout.group_size % kChunk != 0) return linear_int8_block_scalar(a, m0, m1, scratch);
#if SLMC_HAVE_AVX512_FLAGS
  if constexpr (Dot::kZmm) {
    if (a.n >= kLinearTuningAvx512.gemm_min_n_int8_block) {
      BlockGemmZmm g(a, scratch);
      return gemm_panels(a, m0, m1, g);
    }
  }
#endif
  float* buf = reinterpret_cast<float*>(scratch);
  auto run = [&](auto int4, auto grouped_c) {
    constexpr bool kI4 = decltype(int4)::value, kG = decltype(grouped_c)::value;
    gemv_batches(a, m0, m1, kNx<Dot>, [&](int64_t r, int p, int64_t i0, int nx) {
      switch (p) {
        case 8: return rows_batch<Dot, kI4, kG, 8>(a, r, i0, nx, buf);
        case 4: return rows_batch<Dot, kI4, kG, 4>(a, r, i0, nx, buf);
        default: return rows_batch<Dot, kI4, kG, 1>(a, r, i0, nx, buf);
      }
    });
  };
  using T = std::true_type;
  using F = std::false_type;
  if (a.vt == ValueType::kNl4) {
    auto run_nl4 = [&](auto grouped_c) {
      constexpr bool kG = decltype(grouped_c)::value;
      gemv_batches(a, m0, m1, kNx<Dot>, [&](int64_t r, int p, int64_t i0, int nx) {
        switch (p) {
          case 8: return nl4_rows_batch<Dot, kG, 8>(a, r, i0, nx, buf);
          case 4: return nl4_rows_batch<Dot, kG, 4>(a, r, i0, nx, buf);
          default: return nl4_rows_batch<Dot, kG, 1>(a, r, i0, nx, buf);
        }
      });
    };
    grouped ? run_nl4(T()) : run_nl4(F());
    return;
  }
  const bool int4 = a.vt == ValueType::kInt4;
  if (int4) {
    grouped ? run(T(), T()) : run(T(), F());
  } else {
    grouped ? run(F(), T()) : run(F(), F());
  }
}

}  // namespace blk
}  // namespace
}  // namespace slmc::detail
