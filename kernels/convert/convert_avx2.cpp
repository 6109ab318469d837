// AVX2 + F16C. VCVTPS2PH with imm 0 rounds to nearest even and quiets NaNs keeping the top payload
// bits, exactly like slmc::fp32_to_fp16; the bf16 paths are the scalar integer recipe, 8 lanes wide.
#include <immintrin.h>

#include "convert/convert.hpp"
#include "slmc/half.hpp"

namespace slmc::detail {
namespace {
void fp32_to_fp16(const float* src, uint16_t* dst, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
  }
  for (; i < n; ++i) dst[i] = slmc::fp32_to_fp16(src[i]);
}

void fp16_to_fp32(const uint16_t* src, float* dst, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) dst[i] = slmc::fp16_to_fp32(src[i]);
}

void fp32_to_bf16(const float* src, uint16_t* dst, size_t n) {
  size_t i = 0;
  const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff);
  const __m256i inf = _mm256_set1_epi32(0x7f800000);
  const __m256i bias = _mm256_set1_epi32(0x7fff);
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i quiet = _mm256_set1_epi32(0x40);
  for (; i + 8 <= n; i += 8) {
    __m256i x = _mm256_castps_si256(_mm256_loadu_ps(src + i));
    __m256i is_nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, abs_mask), inf);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), one);
    __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(x, _mm256_add_epi32(bias, lsb)), 16);
    __m256i nan = _mm256_or_si256(_mm256_srli_epi32(x, 16), quiet);
    __m256i r = _mm256_blendv_epi8(rounded, nan, is_nan);
    // Pack 8 x u32 (values < 2^16) to 8 x u16: packus works per 128-bit lane, then fix lane order.
    __m256i packed = _mm256_packus_epi32(r, r);
    packed = _mm256_permute4x64_epi64(packed, 0x08);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm256_castsi256_si128(packed));
  }
  for (; i < n; ++i) dst[i] = slmc::fp32_to_bf16(src[i]);
}

void bf16_to_fp32(const uint16_t* src, float* dst, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
    _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
  }
  for (; i < n; ++i) dst[i] = slmc::bf16_to_fp32(src[i]);
}
}  // namespace

const ConvertKernels& convert_kernels_avx2() {
  static const ConvertKernels table{"avx2", fp32_to_fp16, fp16_to_fp32, fp32_to_bf16, bf16_to_fp32};
  return table;
}
}  // namespace slmc::detail
