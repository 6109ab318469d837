// Element types of tensors as they appear in source files and in .slm files, with one constexpr
// traits table. Enum values are stable: they are written into files. Never renumber or reuse one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace slmc {

enum class DType : uint8_t {
  kF32 = 0,
  kF16 = 1,
  kBF16 = 2,
  kF64 = 3,
  kI8 = 4,
  kU8 = 5,
  kI16 = 6,
  kI32 = 7,
  kI64 = 8,
  kBool = 9,
  kI4 = 10,    ///< 4-bit integer codes, two per byte (layout: quant/int4 packing, see docs/LAYOUT.md)
  kQ8_0 = 20,  ///< GGUF block type: 32 int8 + one fp16 scale (34 bytes)
  kQ4_0 = 21,  ///< GGUF block type: 32 4-bit codes + one fp16 scale (18 bytes)
  kQ4_1 = 22,  ///< GGUF block type: 32 4-bit codes + fp16 scale and min (20 bytes)
};

struct DTypeTraits {
  DType dtype;
  std::string_view name;  ///< stable lower-case name used in reports and scheme strings
  uint32_t bits;          ///< storage bits per element (payload only; blocks include their scales)
  uint32_t block_size;    ///< elements per block (1 for plain element types)
  uint32_t block_bytes;   ///< bytes per block
  bool is_float;
  bool is_quantized;      ///< values need scales to mean anything
};

inline constexpr DTypeTraits kDTypeTraits[] = {
    {DType::kF32, "f32", 32, 1, 4, true, false},
    {DType::kF16, "f16", 16, 1, 2, true, false},
    {DType::kBF16, "bf16", 16, 1, 2, true, false},
    {DType::kF64, "f64", 64, 1, 8, true, false},
    {DType::kI8, "i8", 8, 1, 1, false, false},
    {DType::kU8, "u8", 8, 1, 1, false, false},
    {DType::kI16, "i16", 16, 1, 2, false, false},
    {DType::kI32, "i32", 32, 1, 4, false, false},
    {DType::kI64, "i64", 64, 1, 8, false, false},
    {DType::kBool, "bool", 8, 1, 1, false, false},
    {DType::kI4, "i4", 4, 2, 1, false, true},
    {DType::kQ8_0, "q8_0", 8, 32, 34, false, true},
    {DType::kQ4_0, "q4_0", 4, 32, 18, false, true},
    {DType::kQ4_1, "q4_1", 4, 32, 20, false, true},
};

/// Traits of a dtype, or nullptr for a value not in the table (e.g. read from a hostile file).
constexpr const DTypeTraits* find_dtype_traits(DType dtype) noexcept {
  for (const auto& t : kDTypeTraits) {
    if (t.dtype == dtype) return &t;
  }
  return nullptr;
}

/// Traits of a dtype known to be valid (the enum value came from this library).
constexpr const DTypeTraits& dtype_traits(DType dtype) noexcept { return *find_dtype_traits(dtype); }

constexpr std::string_view dtype_name(DType dtype) noexcept {
  const DTypeTraits* t = find_dtype_traits(dtype);
  return t ? t->name : std::string_view("invalid");
}

constexpr std::optional<DType> dtype_from_name(std::string_view name) noexcept {
  for (const auto& t : kDTypeTraits) {
    if (t.name == name) return t.dtype;
  }
  return std::nullopt;
}

/// True if `raw` is a DType value this version knows (for validating values read from files).
constexpr bool is_valid_dtype(uint32_t raw) noexcept {
  return raw <= 0xff && find_dtype_traits(static_cast<DType>(raw)) != nullptr;
}

}  // namespace slmc
