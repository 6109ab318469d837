// AVX2 GEMV micro-kernels (see linear_avx2.hpp for the split): fp32 mode, one weight pass per row
// of X, four rows in flight (codes -> floats -> w = d*c + m -> FMA with x); int8 mode, one pass per
// up to 8 rows of X:
//   int8 codes  -> vpmaddubsw(|w|, sign(x, w)) + vpmaddwd, int32 per scale span;
//   int4 nibbles -> one broadcast load, vpsrlvd + vpand give 32 codes u in element order,
//                   vpmaddubsw(u, x) summed in int16 over up to 8 chunks (|u| <= 15: 8 * 2 * 15 *
//                   127 < 32767), then one vpmaddwd; one cvt + FMA with the scale per group;
//   int4 in interleaved blocks: row pairs from one 32-byte load (PairsGemv).
// The int8 dot of a chunk (vpmaddubsw + vpmaddwd) is where a VNNI build's vpdpbusd goes.
#include <type_traits>
#include <utility>

#include "linear/linear_avx2.hpp"

namespace slmc::detail {
namespace {

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

// The *_rows dispatchers below are always inlined into their driver loop (gemv_batches), so the
// loop, the dispatch and whichever micro-kernels GCC inlines form one function, as they did before
// the drivers were shared: called per row group instead, the int4 row-pair GEMV inlined into them
// ran 4-5 % more instructions (callgrind, 576x1536 and 4096^2, N = 1), and making the micro-kernels
// noinline instead cost 10 % (their per-row-group setup is no longer hoisted).
// fp32 mode, the GEMV micro-kernels on rows r..r+P-1 for rows i0..i0+nx-1 of X.
template <ValueType kVt>
inline __attribute__((always_inline)) void gemv_f32_float_rows(const LinearArgs& a, int64_t r, int p, int64_t i0, int nx) {
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
inline __attribute__((always_inline)) void gemv_f32_quant_rows(const LinearArgs& a, int64_t r, int p, int64_t i0, int nx) {
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
void gemv_f32_path(const LinearArgs& a, int64_t m0, int64_t m1, int64_t nx_max) {
  gemv_batches(a, m0, m1, nx_max, [&](int64_t r, int p, int64_t i0, int nx) {
    if constexpr (kVt == ValueType::kInt8 || kVt == ValueType::kInt4) {
      gemv_f32_quant_rows<kVt == ValueType::kInt4>(a, r, p, i0, nx);
    } else {
      gemv_f32_float_rows<kVt>(a, r, p, i0, nx);
    }
  });
}

// int8 mode, the GEMV micro-kernels on rows r..r+P-1 for rows i0..i0+nx-1 of X: int4 in 4- or
// 8-row interleaved blocks through the row pairs (PairsGemv) when the plan says so, several rows of
// X through RowsGemv, one through gemv_i8.
template <bool kInt4, int kSpan>
inline __attribute__((always_inline)) void gemv_i8_rows(const LinearArgs& a, bool pairs, int64_t r, int p, int64_t i0, int nx, float* buf) {
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
void gemv_i8_path(const LinearArgs& a, bool pairs, int64_t nx_max, int64_t m0, int64_t m1, uint8_t* scratch) {
  float* buf = reinterpret_cast<float*>(scratch);
  gemv_batches(a, m0, m1, nx_max, [&](int64_t r, int p, int64_t i0, int nx) {
    gemv_i8_rows<kInt4, kSpan>(a, pairs, r, p, i0, nx, buf);
  });
}

}  // namespace

void avx2::gemv_fp32(const LinearArgs& a, int64_t m0, int64_t m1, int64_t nx) {
  switch (a.vt) {
    case ValueType::kF32: return gemv_f32_path<ValueType::kF32>(a, m0, m1, nx);
    case ValueType::kF16: return gemv_f32_path<ValueType::kF16>(a, m0, m1, nx);
    case ValueType::kBF16: return gemv_f32_path<ValueType::kBF16>(a, m0, m1, nx);
    case ValueType::kInt8: return gemv_f32_path<ValueType::kInt8>(a, m0, m1, nx);
    case ValueType::kInt4: return gemv_f32_path<ValueType::kInt4>(a, m0, m1, nx);
    case ValueType::kNl4: break;  // never here: nl4 runs the scalar table in fp32 mode (src/kernels/linear.cpp)
  }
}

void avx2::gemv_int8(const LinearArgs& a, bool pairs, int span, int64_t nx, int64_t m0, int64_t m1, uint8_t* scratch) {
  const bool int4 = a.vt == ValueType::kInt4;
  // The common group sizes get their span as a constant: the per-group loops then unroll.
  switch (span) {
    case 1: return int4 ? gemv_i8_path<true, 1>(a, pairs, nx, m0, m1, scratch) : gemv_i8_path<false, 1>(a, pairs, nx, m0, m1, scratch);
    case 4: return int4 ? gemv_i8_path<true, 4>(a, pairs, nx, m0, m1, scratch) : gemv_i8_path<false, 4>(a, pairs, nx, m0, m1, scratch);
    default: return int4 ? gemv_i8_path<true, 0>(a, pairs, nx, m0, m1, scratch) : gemv_i8_path<false, 0>(a, pairs, nx, m0, m1, scratch);
  }
}

}  // namespace slmc::detail
