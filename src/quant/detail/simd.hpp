// Internal: an 8-lane float vector for the quantizer's hot loops. With SSE2 (every x86-64) it is
// two __m128; elsewhere a plain array the compiler may vectorize. Both give bit-identical
// results: every operation is lane-wise IEEE arithmetic (no FMA, no reassociation), and the
// horizontal sum uses one fixed tree order (hsum). Inputs are finite (checked up front), so
// min/max never see NaN.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__SSE2__) && !defined(SLMC_QUANT_PORTABLE)  // SLMC_QUANT_PORTABLE: test the fallback
#include <emmintrin.h>
#define SLMC_QUANT_SSE2 1
#endif

namespace slmc::quant_detail {

/// Fixed-order sum of 8 lanes: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)).
inline float hsum_lanes(const float* l) noexcept {
  const float a0 = l[0] + l[4], a1 = l[1] + l[5], a2 = l[2] + l[6], a3 = l[3] + l[7];
  return (a0 + a2) + (a1 + a3);
}

#if defined(SLMC_QUANT_SSE2)
struct V8 {
  __m128 lo, hi;
  static V8 zero() noexcept { return {_mm_setzero_ps(), _mm_setzero_ps()}; }
  static V8 set1(float x) noexcept { return {_mm_set1_ps(x), _mm_set1_ps(x)}; }
  static V8 load(const float* p) noexcept { return {_mm_loadu_ps(p), _mm_loadu_ps(p + 4)}; }
  void store(float* p) const noexcept {
    _mm_storeu_ps(p, lo);
    _mm_storeu_ps(p + 4, hi);
  }
  friend V8 operator+(V8 a, V8 b) noexcept { return {_mm_add_ps(a.lo, b.lo), _mm_add_ps(a.hi, b.hi)}; }
  friend V8 operator-(V8 a, V8 b) noexcept { return {_mm_sub_ps(a.lo, b.lo), _mm_sub_ps(a.hi, b.hi)}; }
  friend V8 operator*(V8 a, V8 b) noexcept { return {_mm_mul_ps(a.lo, b.lo), _mm_mul_ps(a.hi, b.hi)}; }
  friend V8 vmin(V8 a, V8 b) noexcept { return {_mm_min_ps(a.lo, b.lo), _mm_min_ps(a.hi, b.hi)}; }
  friend V8 vmax(V8 a, V8 b) noexcept { return {_mm_max_ps(a.lo, b.lo), _mm_max_ps(a.hi, b.hi)}; }
  friend V8 vabs(V8 a) noexcept {
    const __m128 m = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
    return {_mm_and_ps(a.lo, m), _mm_and_ps(a.hi, m)};
  }
  /// 1.0f where a == 0, else 0.0f.
  friend V8 vis_zero(V8 a) noexcept {
    const __m128 one = _mm_set1_ps(1.0f), z = _mm_setzero_ps();
    return {_mm_and_ps(_mm_cmpeq_ps(a.lo, z), one), _mm_and_ps(_mm_cmpeq_ps(a.hi, z), one)};
  }
  /// Stores the 8 lanes, which hold integers in [-128, 255], as int8 (wrapping 128..255).
  void store_codes(int8_t* p) const noexcept {
    const __m128i a = _mm_cvtps_epi32(lo), b = _mm_cvtps_epi32(hi);
    const __m128i mask = _mm_set1_epi32(0xff);
    const __m128i w = _mm_packs_epi32(_mm_and_si128(a, mask), _mm_and_si128(b, mask));  // 0..255 fits int16
    const __m128i bytes = _mm_packus_epi16(w, w);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), bytes);
  }
};
#else
struct V8 {
  float v[8];
  static V8 zero() noexcept { return set1(0.0f); }
  static V8 set1(float x) noexcept {
    V8 r;
    for (float& f : r.v) f = x;
    return r;
  }
  static V8 load(const float* p) noexcept {
    V8 r;
    for (int j = 0; j < 8; ++j) r.v[j] = p[j];
    return r;
  }
  void store(float* p) const noexcept {
    for (int j = 0; j < 8; ++j) p[j] = v[j];
  }
#define SLMC_QUANT_V8_BINOP(name, expr)               \
  friend V8 name(V8 a, V8 b) noexcept {               \
    V8 r;                                             \
    for (int j = 0; j < 8; ++j) {                     \
      const float x = a.v[j], y = b.v[j];             \
      r.v[j] = (expr);                                \
    }                                                 \
    return r;                                         \
  }
  SLMC_QUANT_V8_BINOP(operator+, x + y)
  SLMC_QUANT_V8_BINOP(operator-, x - y)
  SLMC_QUANT_V8_BINOP(operator*, x * y)
  SLMC_QUANT_V8_BINOP(vmin, x < y ? x : y)
  SLMC_QUANT_V8_BINOP(vmax, x > y ? x : y)
#undef SLMC_QUANT_V8_BINOP
  friend V8 vabs(V8 a) noexcept {
    for (float& f : a.v) f = std::fabs(f);
    return a;
  }
  friend V8 vis_zero(V8 a) noexcept {
    for (float& f : a.v) f = f == 0.0f ? 1.0f : 0.0f;
    return a;
  }
  void store_codes(int8_t* p) const noexcept {
    for (int j = 0; j < 8; ++j) p[j] = static_cast<int8_t>(static_cast<uint8_t>(static_cast<int32_t>(v[j]) & 0xff));
  }
};
#endif

}  // namespace slmc::quant_detail
