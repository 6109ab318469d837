// IEEE fp16 (binary16) and bfloat16 <-> fp32 conversion.
//
// Scalar functions are exact: fp32 -> fp16/bf16 rounds to nearest, ties to even; overflow gives
// +-Inf; fp16 subnormals are produced and read exactly; NaNs stay NaNs both ways (sign and payload
// bits kept as far as they fit, quiet bit set), which is what F16C and AArch64 FCVT do too. The
// array functions (convert_*) are dispatched to SIMD kernels (F16C on AVX2 machines, NEON on ARM) that give
// bit-identical results.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace slmc {

inline uint32_t float_bits(float f) noexcept {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bits_float(uint32_t u) noexcept {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

/// fp32 -> fp16 bits, round to nearest even.
inline uint16_t fp32_to_fp16(float f) noexcept {
  const uint32_t x = float_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) {  // NaN: keep the top 10 payload bits, force quiet
    return static_cast<uint16_t>(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
  }
  if (ax >= 0x477ff000u) {  // >= 65520 (halfway between 65504 and 2^16) rounds to Inf
    return static_cast<uint16_t>(sign | 0x7c00u);
  }
  if (ax < 0x38800000u) {  // |f| < 2^-14: an fp16 subnormal (or zero) after rounding
    const uint32_t exp = ax >> 23;
    if (exp < 102) return static_cast<uint16_t>(sign);  // < 2^-25: rounds to zero (ties too)
    const uint32_t mant = (ax & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exp;  // value / 2^-24 = mant * 2^(exp - 126); shift in [14, 24]
    uint32_t q = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;  // q == 0x400 becomes the smallest normal
    return static_cast<uint16_t>(sign | q);
  }
  // Normal: rebias the exponent (127 -> 15) and round the 13 dropped mantissa bits to even.
  const uint32_t odd = (ax >> 13) & 1u;
  const uint32_t rounded = ax + 0xfffu + odd - (112u << 23);
  return static_cast<uint16_t>(sign | (rounded >> 13));
}

/// fp16 bits -> fp32 (exact).
inline float fp16_to_fp32(uint16_t h) noexcept {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) {  // Inf, or NaN made quiet with its payload kept (as F16C and FCVTL do)
    return bits_float(sign | 0x7f800000u | (mant << 13) | (mant ? 0x400000u : 0u));
  }
  if (exp == 0) {
    if (mant == 0) return bits_float(sign);
    // Subnormal: normalize the mantissa.
    uint32_t e = 113;  // 127 - 14
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --e;
    }
    return bits_float(sign | (e << 23) | ((mant & 0x3ffu) << 13));
  }
  return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

/// fp32 -> bf16 bits, round to nearest even; NaN stays NaN (quiet).
inline uint16_t fp32_to_bf16(float f) noexcept {
  const uint32_t x = float_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

/// bf16 bits -> fp32 (exact).
inline float bf16_to_fp32(uint16_t b) noexcept { return bits_float(static_cast<uint32_t>(b) << 16); }

/// Array conversions through the dispatched kernels (see cpu.hpp for ISA selection).
/// `src` and `dst` hold n elements and must not overlap. No alignment is required.
void convert_fp32_to_fp16(const float* src, uint16_t* dst, size_t n);
void convert_fp16_to_fp32(const uint16_t* src, float* dst, size_t n);
void convert_fp32_to_bf16(const float* src, uint16_t* dst, size_t n);
void convert_bf16_to_fp32(const uint16_t* src, float* dst, size_t n);

}  // namespace slmc
