// AVX2 + FMA + F16C sparse linear kernels. Design notes in docs/KERNELS.md ("Sparse kernels"):
//
// fp32 mode, N = 1:
//   CSR     eight entries per step: x assembled from eight scalar loads (faster than vgatherdps
//           here), one FMA with the eight stored values (int8 values: converted, one scale per run of
//           entries sharing a scale group, runs found by binary search on the sorted columns).
//   bitmask eight columns per mask byte: the packed values are expanded in registers (vpermps with
//           the shuffle table of slmc/sparse/layout.hpp, int8 values vpshufb) and FMA'd with x.
//   BSR/N:M the portable entry walker (slmc/sparse/layout.hpp order), scalar FMAs.
// fp32 mode, N > 1: X is transposed into tiles of 8/16/32 rows by the front end; every stored weight
//   is broadcast once and multiplies tile/8 vectors of activations: accumulators stay in registers
//   for the whole row, so a weight costs one broadcast plus tile/8 loads and FMAs.
// int8 mode: each weight row is decoded into a dense int8 row in L1 (bitmask: vpshufb expansion, 32
//   columns per step; 2:4: vpshufb with a table per metadata byte; other patterns and CSR/BSR:
//   scatter), then multiplied with every quantized activation row by vpmaddubsw + vpmaddwd, int32
//   per scale group, exactly like the dense int8 kernels. Scale groups that are not a multiple of
//   32 columns use the scalar kernel.
// Every output is reduced in an order fixed by the weights alone: results do not depend on threads.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "linear_sparse/driver.hpp"
#include "linear_sparse/linear_sparse.hpp"

namespace slmc::detail {
namespace {

#define SLMC_UNROLL _Pragma("GCC unroll 16")

constexpr int64_t kSpanMax = 1024;  // chunks per int32 span of one scale (no overflow)

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline uint64_t load_u64(const void* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// ---- tables ------------------------------------------------------------------------------------

// Bitmask decoding reads kBitmaskLo16 / kBitmaskHi16, 2:4 decoding kNm24Expand (linear_sparse.hpp)
// as vpshufb controls.

// ---- fp32 mode, N = 1 ----------------------------------------------------------------------------

inline __m256 load_val8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load_val8(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
inline float val1(const float* p) { return *p; }
inline float val1(const int8_t* p) { return static_cast<float>(*p); }

// sum_{p in [p0, p1)} v[p] * x[idx[p]]: x assembled from scalar loads into vectors of 8 (two
// accumulator chains), values read as vectors. Measured on the Zen 3 reference machine at 90%
// sparsity, 4096 x 4096: 0.36 ns per entry, vgatherdps 0.53, a scalar loop with four
// accumulators 0.62, one accumulator (Eigen's loop, FMA-latency bound) 1.28.
template <typename Idx>
inline __m256 x8(const float* x, const Idx* i) {
  if constexpr (sizeof(Idx) == 2) {
    // u16 columns two per 32-bit load: a CSR row at 90% sparsity is bound by load slots (two
    // loads per entry otherwise), and the shift / mask go to the otherwise idle integer ALUs.
    // Session 6, 4096^2 N = 1, two interleaved rounds (fastest / median ms): 90% 0.811 / 1.052 ->
    // 0.614 / 0.865 and 0.894 / 1.063 -> 0.745 / 0.935; 50-95% no slower. Four per 64-bit load
    // measured in between.
    uint32_t p[4];
    std::memcpy(p, i, 16);
    const __m128 lo = _mm_setr_ps(x[p[0] & 0xFFFF], x[p[0] >> 16], x[p[1] & 0xFFFF], x[p[1] >> 16]);
    const __m128 hi = _mm_setr_ps(x[p[2] & 0xFFFF], x[p[2] >> 16], x[p[3] & 0xFFFF], x[p[3] >> 16]);
    return _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1);
  }
  const __m128 lo = _mm_setr_ps(x[i[0]], x[i[1]], x[i[2]], x[i[3]]);
  const __m128 hi = _mm_setr_ps(x[i[4]], x[i[5]], x[i[6]], x[i[7]]);
  return _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1);
}
template <typename Idx, typename Val>
float gather_dot(const Val* v, const Idx* idx, uint64_t p0, uint64_t p1, const float* x) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  uint64_t p = p0;
  for (; p + 16 <= p1; p += 16) {
    acc0 = _mm256_fmadd_ps(load_val8(v + p), x8(x, idx + p), acc0);
    acc1 = _mm256_fmadd_ps(load_val8(v + p + 8), x8(x, idx + p + 8), acc1);
  }
  if (p + 8 <= p1) {
    acc0 = _mm256_fmadd_ps(load_val8(v + p), x8(x, idx + p), acc0);
    p += 8;
  }
  float s = hsum(_mm256_add_ps(acc0, acc1));
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

// One bitmask row: 8 columns per mask byte, the last partial byte of K scalar.
template <typename Val>
float bitmask_row_f32(const SparseLinearArgs& a, int64_t r, const float* x) {
  const SparseLayout& l = a.layout;
  const auto* v = static_cast<const Val*>(a.values) + a.pointer(r);
  const uint8_t* meta = a.meta + l.meta_offset(r);
  const int64_t k8 = l.cols / 8;
  const bool grouped = l.quantized() && l.encoding.granularity == Granularity::kGroup;
  const int64_t gbytes = grouped ? l.scale_group / 8 : k8 + 1;  // mask bytes per scale run
  float s = 0.0f;
  int64_t b = 0;
  for (int64_t g = 0; b < k8; ++g) {
    const int64_t be = std::min(k8, b + gbytes);
    __m256 acc = _mm256_setzero_ps();
    for (; b < be; ++b) {
      const unsigned m = meta[b];
      const __m128i lane = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(kBitmaskExpand.lane[m]));
      __m256 w;
      if constexpr (sizeof(Val) == 4) {
        const __m256i ctrl = _mm256_cvtepu8_epi32(lane);
        w = _mm256_permutevar8x32_ps(_mm256_loadu_ps(reinterpret_cast<const float*>(v)), ctrl);
        // Lanes whose control is 0x80 (bit clear) become zero: the sign of ctrl << 24 picks them.
        w = _mm256_blendv_ps(w, _mm256_setzero_ps(), _mm256_castsi256_ps(_mm256_slli_epi32(ctrl, 24)));
      } else {
        const __m128i q = _mm_shuffle_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(v)), lane);
        w = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
      }
      acc = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + 8 * b), acc);
      v += kBitmaskExpand.count[m];
    }
    const float d = l.quantized() ? a.scale(l.scale_index(r, std::min(l.cols - 1, g * gbytes * 8))) : 1.0f;
    s += d * hsum(acc);
  }
  // Columns [8 * k8, K): fewer than 8, scalar.
  if (k8 * 8 < l.cols) s += sparse_bitmask_tail(a, r, meta[k8], k8 * 8, v, x);
  return s;
}

// ---- fp32 mode, N > 1: transposed activation tiles ----------------------------------------------

template <int T>
struct TileAcc {
  __m256 v[T / 8];
  void zero() {
    SLMC_UNROLL
    for (int j = 0; j < T / 8; ++j) v[j] = _mm256_setzero_ps();
  }
  void fma(float w, const float* xt) {
    const __m256 wv = _mm256_set1_ps(w);
    SLMC_UNROLL
    for (int j = 0; j < T / 8; ++j) v[j] = _mm256_fmadd_ps(wv, _mm256_load_ps(xt + 8 * j), v[j]);
  }
  void store(float* out) const {
    SLMC_UNROLL
    for (int j = 0; j < T / 8; ++j) _mm256_store_ps(out + 8 * j, v[j]);
  }
};

// ---- int8 mode -----------------------------------------------------------------------------------

// Chunk decoders: next(c) returns the 32 int8 codes (int4: u - 8) of dense columns [32c, 32c+32) of
// one row, zero where nothing is stored, for c = 0, 1, 2, ... in order. Everything stays in
// registers (a store of the codes and an unaligned reload would stall store forwarding).

// Bitmask: one 32-column vpshufb per chunk. Lane 0 (mask bytes m0, m1) reads the values from v,
// lane 1 (m2, m3) from v + popcount(m0 m1); each lane's control is two 16-byte table entries
// (kBitmaskLo16 / kBitmaskHi16) added. About 34 instructions per chunk with the product, against
// ~45 for 8-byte table entries assembled with vmovq / vpinsrq and a count table (docs/KERNELS.md).
struct BitmaskChunks {
  const uint8_t* v;
  const uint8_t* meta;
  BitmaskChunks(const SparseLinearArgs& a, int64_t r)
      : v(static_cast<const uint8_t*>(a.values) + a.pointer(r)), meta(a.meta + a.layout.meta_offset(r)) {}
  static __m128i entry(const BitmaskControlTable& t, uint32_t m16) {  // m16 = mask byte * 16
    return _mm_load_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint8_t*>(t.e) + m16));
  }
  __m256i next(int64_t c) {
    uint32_t mk;
    std::memcpy(&mk, meta + 4 * c, 4);
    const __m256i lo = _mm256_inserti128_si256(_mm256_castsi128_si256(entry(kBitmaskLo16, (mk << 4) & 0xFF0)),
                                               entry(kBitmaskLo16, (mk >> 12) & 0xFF0), 1);
    const __m256i hi = _mm256_inserti128_si256(_mm256_castsi128_si256(entry(kBitmaskHi16, (mk >> 4) & 0xFF0)),
                                               entry(kBitmaskHi16, (mk >> 20) & 0xFF0), 1);
    const __m256i src = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v))),
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(v + __builtin_popcount(mk & 0xFFFF))), 1);
    v += __builtin_popcount(mk);
    return _mm256_shuffle_epi8(src, _mm256_add_epi8(lo, hi));
  }
};

// 2:4: the 16 slot codes of a 32-column chunk are broadcast to both lanes; one vpshufb control
// (four 8-column table entries plus slot offsets 0/4/8/12) places them.
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
  __m256i next(int64_t c) {
    const int64_t sc = c / 2, h = c % 2;
    const uint8_t* rec = values + base + sc * stride;
    __m128i codes;
    if (!int4) {
      codes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rec + 16 * h));
    } else {
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rec));
      const __m128i u = _mm_and_si128(h ? _mm_srli_epi16(b, 4) : b, _mm_set1_epi8(15));
      codes = _mm_sub_epi8(u, _mm_set1_epi8(8));
    }
    const uint8_t* m = meta + 8 * sc + 4 * h;
    const __m256i ctrl = _mm256_add_epi8(
        _mm256_setr_epi64x(static_cast<long long>(load_u64(kNm24Expand.lane[m[0]])), static_cast<long long>(load_u64(kNm24Expand.lane[m[1]])),
                           static_cast<long long>(load_u64(kNm24Expand.lane[m[2]])), static_cast<long long>(load_u64(kNm24Expand.lane[m[3]]))),
        _mm256_setr_epi64x(0, 0x0404040404040404ll, 0x0808080808080808ll, 0x0c0c0c0c0c0c0c0cll));
    return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(codes), ctrl);
  }
};

// Scattered codes of any format, decoded once into a row buffer (CSR, BSR, other N:M patterns).
struct BufferChunks {
  const int8_t* w;
  __m256i next(int64_t c) const { return _mm256_load_si256(reinterpret_cast<const __m256i*>(w + 32 * c)); }
};

inline __m256i dot32(__m256i wv, __m256i xv) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8(xv, wv)), _mm256_set1_epi16(1));
}

// sum over chunks of dot(codes, xq), int32 per run of `span` chunks, each run times ds[run]
// (ds == null: one scale, applied by the caller). A scale per chunk (span 1) alternates two FMA
// chains: one chain would bound each chunk by the FMA latency.
template <typename Chunks>
float dot_i8(Chunks& w, const int8_t* x, int64_t chunks, int64_t span, const float* ds) {
  auto chunk_dot = [&](int64_t c) {
    return dot32(w.next(c), _mm256_load_si256(reinterpret_cast<const __m256i*>(x + 32 * c)));
  };
  __m256 facc = _mm256_setzero_ps();
  if (ds && span == 1) {
    __m256 facc1 = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + 2 <= chunks; c += 2) {
      facc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(chunk_dot(c)), _mm256_broadcast_ss(ds + c), facc);
      facc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(chunk_dot(c + 1)), _mm256_broadcast_ss(ds + c + 1), facc1);
    }
    if (c < chunks) facc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(chunk_dot(c)), _mm256_broadcast_ss(ds + c), facc);
    return hsum(_mm256_add_ps(facc, facc1));
  }
  for (int64_t c0 = 0, g = 0; c0 < chunks; c0 += span, ++g) {
    const int64_t c1 = std::min(chunks, c0 + span);
    __m256i isum = _mm256_setzero_si256();
    for (int64_t c = c0; c < c1; ++c) isum = _mm256_add_epi32(isum, chunk_dot(c));
    const __m256 f = _mm256_cvtepi32_ps(isum);
    facc = ds ? _mm256_fmadd_ps(f, _mm256_set1_ps(ds[g]), facc) : _mm256_add_ps(facc, f);
  }
  return hsum(facc);
}

// dot_i8 of one decoded row (32-byte aligned codes) with kRows rows of X (kpad apart) at once, for
// batches (prefill): each chunk of codes is loaded and its |w| taken once for every row of X. Each
// row's operations and their order are dot_i8's, so out[j] has the bits of a one-row call.
template <int kRows>
void dot_i8_rows(const int8_t* w, const int8_t* x, int64_t kpad, int64_t chunks, int64_t span, const float* ds,
                 float* out) {
  const __m256i ones = _mm256_set1_epi16(1);
  auto codes = [&](int64_t c) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(w + 32 * c)); };
  auto xchunk = [&](int j, int64_t c) {
    return _mm256_load_si256(reinterpret_cast<const __m256i*>(x + j * kpad + 32 * c));
  };
  auto chunk_dot = [&](__m256i abs_w, __m256i wv, __m256i xv) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(abs_w, _mm256_sign_epi8(xv, wv)), ones);
  };
  if (ds && span == 1) {
    __m256 facc[kRows], facc1[kRows];
    for (int j = 0; j < kRows; ++j) facc[j] = facc1[j] = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + 2 <= chunks; c += 2) {
      const __m256i w0 = codes(c), w1 = codes(c + 1);
      const __m256i a0 = _mm256_abs_epi8(w0), a1 = _mm256_abs_epi8(w1);
      const __m256 d0 = _mm256_broadcast_ss(ds + c), d1 = _mm256_broadcast_ss(ds + c + 1);
#pragma GCC unroll 8
      for (int j = 0; j < kRows; ++j) {
        facc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(chunk_dot(a0, w0, xchunk(j, c))), d0, facc[j]);
        facc1[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(chunk_dot(a1, w1, xchunk(j, c + 1))), d1, facc1[j]);
      }
    }
    if (c < chunks) {
      const __m256i w0 = codes(c), a0 = _mm256_abs_epi8(w0);
      const __m256 d0 = _mm256_broadcast_ss(ds + c);
#pragma GCC unroll 8
      for (int j = 0; j < kRows; ++j) {
        facc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(chunk_dot(a0, w0, xchunk(j, c))), d0, facc[j]);
      }
    }
    for (int j = 0; j < kRows; ++j) out[j] = hsum(_mm256_add_ps(facc[j], facc1[j]));
    return;
  }
  __m256 facc[kRows];
  for (int j = 0; j < kRows; ++j) facc[j] = _mm256_setzero_ps();
  for (int64_t c0 = 0, g = 0; c0 < chunks; c0 += span, ++g) {
    const int64_t c1 = std::min(chunks, c0 + span);
    __m256i isum[kRows];
    for (int j = 0; j < kRows; ++j) isum[j] = _mm256_setzero_si256();
    for (int64_t c = c0; c < c1; ++c) {
      const __m256i w0 = codes(c), a0 = _mm256_abs_epi8(w0);
#pragma GCC unroll 8
      for (int j = 0; j < kRows; ++j) isum[j] = _mm256_add_epi32(isum[j], chunk_dot(a0, w0, xchunk(j, c)));
    }
#pragma GCC unroll 8
    for (int j = 0; j < kRows; ++j) {
      const __m256 f = _mm256_cvtepi32_ps(isum[j]);
      facc[j] = ds ? _mm256_fmadd_ps(f, _mm256_set1_ps(ds[g]), facc[j]) : _mm256_add_ps(facc[j], f);
    }
  }
  for (int j = 0; j < kRows; ++j) out[j] = hsum(facc[j]);
}

// ---- 2:4 GEMV in int8 mode: select the activations instead of expanding the weights ----------------
//
// Expanding a row's 2:4 codes to dense columns (Nm24Chunks) spends a table lookup per meta byte and
// multiplies the zeros too. At N = 1 the activations are shared by every row, so here they are
// selected instead: per 64 dense columns (32 slots, one 32-byte code record, 8 meta bytes) the
// shuffle controls come from the meta bits by arithmetic (no table), two vpshufb pick each slot's
// activation and one vpmaddubsw pair multiplies only the stored codes.

// x rearranged for the selection, per 64 columns: [0,16) [32,48) [16,32) [48,64), so that one
// 32-byte load gives the low 16 columns of each 32-column half (lanes) and the next one the high.
void nm24_swizzle_x(const int8_t* x, int64_t steps, int8_t* xs) {
  for (int64_t s = 0; s < steps; ++s) {
    const int8_t* src = x + 64 * s;
    int8_t* dst = xs + 64 * s;
    std::memcpy(dst, src, 16);
    std::memcpy(dst + 16, src + 32, 16);
    std::memcpy(dst + 32, src + 16, 16);
    std::memcpy(dst + 48, src + 48, 16);
  }
}

// Software prefetch distance of the 2:4 GEMV, in 64-column steps (4 KiB ahead in plain int8
// records, 1 KiB in meta). Each step's loads head a ~30-cycle decode/select/multiply chain, so the
// out-of-order window covers only a few steps: without prefetch a DRAM-resident row waits on its
// streams. Measured at 8192^2, 15 interleaved runs per binary: none 4.43 ms fastest, 32 steps
// 3.87; 128 steps against 32 in two later rounds: fastest 3.58 / 3.82 vs 3.83 / 3.99 ms, median
// 4.35 / 4.97 vs 5.04 / 5.13 (64 and 256 in between).
constexpr int64_t kNm24PrefetchSteps = 128;

struct Nm24Select {
  const uint8_t* values;
  int64_t base = 0, stride = 0;  ///< slot chunk record s at values + base + s * stride
  const uint8_t* meta;
  const int8_t* xs;
  bool int4;
  Nm24Select(const SparseLinearArgs& a, int64_t r, const int8_t* swizzled)
      : values(static_cast<const uint8_t*>(a.values)),
        meta(a.meta + a.layout.meta_offset(r)),
        xs(swizzled),
        int4(a.layout.encoding.value_type == ValueType::kInt4) {
    const DenseQuantLayout& vl = a.layout.nm_values;
    base = vl.chunk_offset(r, 0);
    stride = vl.chunks > 1 ? vl.chunk_offset(r, 1) - base : 0;
  }
  // int32 partial sums (lanes 0-3: columns [64s, 64s+32), lanes 4-7: [64s+32, 64s+64)).
  __m256i step(int64_t s) const {
    const uint8_t* rec = values + base + s * stride;
    _mm_prefetch(reinterpret_cast<const char*>(rec + kNm24PrefetchSteps * stride), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(meta + 8 * (s + kNm24PrefetchSteps)), _MM_HINT_T0);
    __m256i w;
    if (!int4) {
      w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec));
    } else {  // int4 record: slot i in the low nibble of byte i, slot 16 + i in the high one
      const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rec)));
      const __m256i u = _mm256_and_si256(_mm256_srlv_epi32(b, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)),
                                         _mm256_set1_epi8(15));
      w = _mm256_sub_epi8(u, _mm256_set1_epi8(8));
    }
    // Meta byte i holds the 2-bit positions of slots 4i..4i+3: spread them to one byte per slot.
    __m256i t = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(meta + 8 * s)));
    t = _mm256_and_si256(_mm256_or_si256(t, _mm256_slli_epi32(t, 12)), _mm256_set1_epi32(0x000F000F));
    t = _mm256_and_si256(_mm256_or_si256(t, _mm256_slli_epi32(t, 6)), _mm256_set1_epi32(0x03030303));
    // Slot j of a lane belongs to group j / 2: column 4 (j / 2 % 4) + position within its 16.
    const __m256i ctrl = _mm256_add_epi8(t, _mm256_set1_epi64x(0x0c0c080804040000ll));
    const __m256i* xp = reinterpret_cast<const __m256i*>(xs + 64 * s);
    const __m256i lo = _mm256_shuffle_epi8(_mm256_load_si256(xp), ctrl);      // slots 0-7: columns 0-15
    const __m256i hi = _mm256_shuffle_epi8(_mm256_load_si256(xp + 1), ctrl);  // slots 8-15: columns 16-31
    return dot32(w, _mm256_blend_epi32(lo, hi, 0xCC));
  }
};

// One row of a 2:4 GEMV in int8 mode, as dot_i8 would return it; false when the scale groups do
// not fit whole steps of 64 columns (odd spans above 1: the caller decodes instead).
bool nm24_gemv_row(const Nm24Select& w, int64_t chunks, int64_t span, const float* ds, float* out) {
  const int64_t steps = (chunks + 1) / 2;
  __m256 facc = _mm256_setzero_ps();
  if (ds == nullptr || span % 2 == 0) {  // whole scale groups (or one scale) per run of steps
    const int64_t run = ds == nullptr ? kSpanMax / 2 : span / 2;
    for (int64_t s0 = 0, g = 0; s0 < steps; s0 += run, ++g) {
      const int64_t s1 = std::min(steps, s0 + run);
      __m256i isum = _mm256_setzero_si256();
      for (int64_t s = s0; s < s1; ++s) isum = _mm256_add_epi32(isum, w.step(s));
      const __m256 f = _mm256_cvtepi32_ps(isum);
      facc = ds ? _mm256_fmadd_ps(f, _mm256_set1_ps(ds[g]), facc) : _mm256_add_ps(facc, f);
    }
  } else if (span == 1) {  // a scale per 32 columns: one per lane
    // Two accumulators: one FMA chain would bound each step by the FMA latency.
    auto lane_scales = [&](int64_t s) {
      const float d1 = 2 * s + 1 < chunks ? ds[2 * s + 1] : 0.0f;
      return _mm256_setr_m128(_mm_set1_ps(ds[2 * s]), _mm_set1_ps(d1));
    };
    __m256 facc1 = _mm256_setzero_ps();
    int64_t s = 0;
    // Four steps per load of eight scales, each lane's pair spread by one permute (three µops less
    // per step than two broadcasts and an insert).
    const __m256i sel0 = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1), sel1 = _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3);
    const __m256i sel2 = _mm256_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5), sel3 = _mm256_setr_epi32(6, 6, 6, 6, 7, 7, 7, 7);
    for (; s + 4 <= steps && 2 * s + 8 <= chunks; s += 4) {
      const __m256 d = _mm256_loadu_ps(ds + 2 * s);
      facc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(w.step(s)), _mm256_permutevar8x32_ps(d, sel0), facc);
      facc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(w.step(s + 1)), _mm256_permutevar8x32_ps(d, sel1), facc1);
      facc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(w.step(s + 2)), _mm256_permutevar8x32_ps(d, sel2), facc);
      facc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(w.step(s + 3)), _mm256_permutevar8x32_ps(d, sel3), facc1);
    }
    for (; s + 2 <= steps; s += 2) {
      facc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(w.step(s)), lane_scales(s), facc);
      facc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(w.step(s + 1)), lane_scales(s + 1), facc1);
    }
    if (s < steps) facc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(w.step(s)), lane_scales(s), facc);
    facc = _mm256_add_ps(facc, facc1);
  } else {
    return false;
  }
  *out = hsum(facc);
  return true;
}

// The row's scales, one per scale group (F16C for fp16).
void row_scales(const SparseLinearArgs& a, int64_t r, int64_t groups, float* ds) {
  const SparseLayout& l = a.layout;
  const int64_t base = l.scale_index(r, 0);
  const int64_t stride = groups > 1 ? l.scale_index(r, l.scale_group) - base : 0;
  if (l.encoding.scale_dtype == DType::kF16) {
    const auto* p = static_cast<const uint16_t*>(a.scales) + base;
    int64_t g = 0;
    if (stride == 1) {  // plain rows: eight conversions per instruction
      for (; g + 8 <= groups; g += 8) {
        _mm256_storeu_ps(ds + g, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + g))));
      }
    }
    for (; g < groups; ++g) ds[g] = _cvtsh_ss(p[g * stride]);
  } else {
    const auto* p = static_cast<const float*>(a.scales) + base;
    for (int64_t g = 0; g < groups; ++g) ds[g] = p[g * stride];
  }
}


// fp32 mode on decoded codes: sum_g d_g * sum_{k in g} code_k * x_k, 32 columns per step; the
// columns of a last partial chunk scalar (x has exactly K floats).
float dot_codes_f32(const int8_t* w, const float* x, int64_t k, int64_t span, const float* ds) {
  const int64_t full = k / 32, chunks = (k + 31) / 32;
  float s = 0.0f;
  for (int64_t c0 = 0, g = 0; c0 < chunks; c0 += span, ++g) {
    const int64_t c1 = std::min(full, c0 + span);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t c = c0; c < c1; ++c) {
      const __m256i q = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + 32 * c));
      const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
      const float* xc = x + 32 * c;
      acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), _mm256_loadu_ps(xc), acc0);
      acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), _mm256_loadu_ps(xc + 8), acc1);
      acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), _mm256_loadu_ps(xc + 16), acc0);
      acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), _mm256_loadu_ps(xc + 24), acc1);
    }
    float part = hsum(_mm256_add_ps(acc0, acc1));
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
    _mm256_store_si256(reinterpret_cast<__m256i*>(dst), dec.next(c));
  }
  template <typename Chunks>
  static float dot_i8(Chunks& w, const int8_t* x, int64_t chunks, int64_t span, const float* ds) {
    return detail::dot_i8(w, x, chunks, span, ds);
  }
  static float dot_codes_f32(const int8_t* w, const float* x, int64_t k, int64_t span, const float* ds) {
    return detail::dot_codes_f32(w, x, k, span, ds);
  }
  // int8 mode, N > 1: a decoded row times 4 rows of X per pass (dot_i8_rows).
  static constexpr int kDotI8Rows = 4;
  static void dot_i8_rows(const int8_t* w, const int8_t* x, int64_t kpad, int64_t chunks, int64_t span,
                          const float* ds, float* out) {
    detail::dot_i8_rows<kDotI8Rows>(w, x, kpad, chunks, span, ds, out);
  }
  static void row_scales(const SparseLinearArgs& a, int64_t r, int64_t groups, float* ds) {
    detail::row_scales(a, r, groups, ds);
  }
  // Scale groups of a whole number of 32-column chunks, at most kSpanMax of them (int32 sums stay
  // exact), or one scale per row? Anything else runs the scalar kernel.
  static bool chunked_scales(const SparseLayout& l) {
    return sparse_scales_in_chunks(l) && !(l.encoding.granularity == Granularity::kGroup && l.scale_group / 32 > kSpanMax);
  }
  // 2:4, int8 mode, N = 1: select the activations (Nm24Select) instead of expanding the weights.
  static constexpr bool kNm24SelectGemv = true;
  static void nm24_swizzle_x(const int8_t* x, int64_t steps, int8_t* xs) { detail::nm24_swizzle_x(x, steps, xs); }
  static bool nm24_select_row(const SparseLinearArgs& a, int64_t r, const int8_t* xs, int64_t chunks, int64_t span,
                              const float* ds, float* out) {
    return nm24_gemv_row(Nm24Select(a, r, xs), chunks, span, ds, out);
  }
};

void fp32_rows(const SparseLinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch) { sparse_fp32<SparseUkernels>(a, m0, m1, scratch); }
void int8_rows(const SparseLinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch) { sparse_int8<SparseUkernels>(a, m0, m1, scratch); }

}  // namespace

const SparseLinearKernels& linear_sparse_kernels_avx2() {
  static const SparseLinearKernels k{"avx2", fp32_rows, int8_rows, sparse_decoded_scratch_bytes};
  return k;
}

}  // namespace slmc::detail
