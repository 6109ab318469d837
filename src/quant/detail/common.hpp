// Internal helpers shared by the quantizer, the reference dequantizer and the validator: code
// ranges, scale storage (fp16/fp32) and the legality rules of quantized encodings.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "slmc/encoding.hpp"
#include "slmc/half.hpp"
#include "slmc/status.hpp"

namespace slmc::quant_detail {

/// Range of the stored codes and the value of the padding codes beyond K (docs/LAYOUT.md).
/// For int4 the codes are the unsigned nibbles u; symmetric int4 means w = d*(u - 8), which the
/// quantizer handles as signed q = u - 8 in [-8, 7] (`offset` = 8 maps q back to u). nl4 codes are
/// code book indices u, stored as they are.
struct CodeRange {
  int32_t lo;      ///< smallest code the quantizer produces (signed q for symmetric int4)
  int32_t hi;      ///< largest
  int32_t offset;  ///< stored code = q + offset (8 for symmetric int4, else 0)
  int32_t pad;     ///< stored value of padding codes
};

inline CodeRange code_range(ValueType t, bool symmetric) noexcept {
  if (t == ValueType::kNl4) return CodeRange{0, 15, 0, 8};  // code book indices; 8 is the level 0
  if (t == ValueType::kInt8) return symmetric ? CodeRange{-127, 127, 0, 0} : CodeRange{-128, 127, 0, 0};
  return symmetric ? CodeRange{-8, 7, 8, 8} : CodeRange{0, 15, 0, 0};
}

inline size_t scale_bytes(DType d) noexcept { return d == DType::kF16 ? 2 : 4; }

/// The value a scale takes once stored with dtype `d` (fp16 rounds to nearest even).
inline float round_to_scale_dtype(float x, DType d) noexcept {
  return d == DType::kF16 ? fp16_to_fp32(fp32_to_fp16(x)) : x;
}

/// Reads scale `i` of a scales/mins segment (no alignment required).
inline float load_scale(const void* seg, int64_t i, DType d) noexcept {
  if (d == DType::kF16) {
    uint16_t h;
    std::memcpy(&h, static_cast<const uint8_t*>(seg) + 2 * i, 2);
    return fp16_to_fp32(h);
  }
  float f;
  std::memcpy(&f, static_cast<const uint8_t*>(seg) + 4 * i, 4);
  return f;
}

inline void store_scale(void* seg, int64_t i, DType d, float v) noexcept {
  if (d == DType::kF16) {
    const uint16_t h = fp32_to_fp16(v);
    std::memcpy(static_cast<uint8_t*>(seg) + 2 * i, &h, 2);
  } else {
    std::memcpy(static_cast<uint8_t*>(seg) + 4 * i, &v, 4);
  }
}

/// Bytes per element of a float passthrough value type, 0 for the quantized ones.
inline size_t float_value_bytes(ValueType t) noexcept {
  switch (t) {
    case ValueType::kF32: return 4;
    case ValueType::kF16:
    case ValueType::kBF16: return 2;
    default: return 0;
  }
}

inline std::string tensor_label(std::string_view name) {
  return "tensor '" + std::string(name.empty() ? std::string_view("<unnamed>") : name) + "'";
}

}  // namespace slmc::quant_detail
