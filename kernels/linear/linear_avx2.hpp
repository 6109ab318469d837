// AVX2 + FMA + F16C linear micro-kernels: what the parts share. The micro-kernels are split along
// their seams, each part compiled with the AVX2 flags (slmc_kernels_avx2):
//   linear_avx2.cpp       the table: entry points (the driver plan -> a part), activation quantizer
//   linear_gemv_avx2.cpp  the GEMVs: fp32 mode, int8 mode (gemv_i8, RowsGemv, int4 row pairs)
//   linear_gemm_avx2.cpp  the GEMM panels: fp32 (16 x 6) and int8 (16 x 3)
// Design notes in docs/KERNELS.md ("Kernel design (AVX2 + FMA + F16C)"); the drivers (row groups,
// batches of rows of X, the GEMM panel loop, which path serves which N) are kernels/linear/driver.hpp.
//
// Everything here has internal linkage (unnamed namespace) except the four part entry points in
// slmc::detail::avx2, which are ordinary functions defined once (no weak copies: they are only
// called from AVX2 code, see cmake/check_isa_objects.cmake).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "linear/driver.hpp"
#include "linear/linear.hpp"
#include "linear/linear_rows.hpp"
#include "slmc/check.hpp"

// Loops over a compile-time number of rows/columns must be unrolled completely: otherwise GCC keeps
// the accumulator arrays in memory and stores every accumulator in every iteration.
#define SLMC_UNROLL _Pragma("GCC unroll 16")

namespace slmc::detail {

namespace avx2 {
/// fp32 mode, the GEMV path: rows of X in batches of nx, y[:, m0:m1) with bias.
void gemv_fp32(const LinearArgs& a, int64_t m0, int64_t m1, int64_t nx);
/// int8 mode, the GEMV path (linear_plan's pairs, span constant and nx): y[:, m0:m1) with bias.
void gemv_int8(const LinearArgs& a, bool pairs, int span, int64_t nx, int64_t m0, int64_t m1, uint8_t* scratch);
/// fp32 mode, the GEMM path: y[:, m0:m1) with bias.
void gemm_fp32(const LinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch);
/// int8 mode, the GEMM path: y[:, m0:m1) with bias.
void gemm_int8(const LinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch);
/// The table's entries (linear_avx2.cpp), also the entries of the AVX-VNNI and AVX-512 tables
/// for what those ISAs do not specialize.
void fp32(const LinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch);
void int8_row(const LinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch);
float quantize_x(const float* x, int64_t k, int64_t kpad, int8_t* xq);
void quantize_x_blocks(const float* x, int64_t k, int64_t kpad, int8_t* xq, float* xbs);
size_t scratch_bytes(const LinearArgs& a);
}  // namespace avx2

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

// int8 GEMM K block: whole scale groups of about kKcI8 elements.
inline int64_t i8_kc(const LinearArgs& a) {
  const int64_t gs = a.layout.groups > 1 || a.layout.group_size < a.k ? a.layout.group_size : 0;
  if (gs == 0) return kKcI8;
  return gs >= kKcI8 ? gs : kKcI8 / gs * gs;
}

}  // namespace
}  // namespace slmc::detail
