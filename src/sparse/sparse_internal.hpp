// Internal helpers shared by the sparse encoder, decoder and validator.
#pragma once

#include <cstdint>

#include "slmc/encoding.hpp"
#include "slmc/sparse/layout.hpp"

namespace slmc::detail {

/// Value of stored f32/int8 unit element `i` (CSR/BSR/bitmask) at dense (row, col), dequantized.
inline float sparse_value(const SparseLayout& l, const uint8_t* values, const void* scales, uint64_t i, int64_t row,
                          int64_t col) noexcept {
  if (l.encoding.value_type == ValueType::kF32) return load_le<float>(values, i);
  const float d = load_scale(scales, static_cast<uint64_t>(l.scale_index(row, col)), l.encoding.scale_dtype);
  return d * static_cast<float>(static_cast<int8_t>(values[i]));
}

/// Decodes a matrix whose structure is known to be valid (encoder output or validated input).
/// `stored` = units implied by the values segment; `out` has rows*cols floats.
void decode_trusted(const EncodedMatrixView& m, const SparseLayout& l, uint64_t stored, float* out);

/// Decodes rows [row0, row1) into out[(row1-row0)*cols]; for BSR row0 is a multiple of block_rows.
void decode_rows(const EncodedMatrixView& m, const SparseLayout& l, uint64_t stored, int64_t row0, int64_t row1,
                 float* out);

/// Error statistics of a trusted encoded matrix against the original W, decoding a few rows at a time.
ErrorStats encoded_error_stats(const EncodedMatrixView& m, const SparseLayout& l, uint64_t stored, const float* w);

}  // namespace slmc::detail
