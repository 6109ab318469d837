// Internal helpers shared by the sparse encoder, decoder and validator.
#pragma once

#include <cstdint>

#include "slmc/encoding.hpp"
#include "slmc/sparse/layout.hpp"

namespace slmc::detail {

/// Value of stored f32/int8 unit element `i` (CSR/BSR/bitmask) at dense (row, col), dequantized.
float sparse_value(const SparseLayout& l, const uint8_t* values, const void* scales, uint64_t i, int64_t row,
                   int64_t col) noexcept;

/// Decodes a matrix whose structure is known to be valid (encoder output or validated input).
/// `stored` = units implied by the values segment; `out` has rows*cols floats.
void decode_trusted(const EncodedMatrixView& m, const SparseLayout& l, uint64_t stored, float* out);

}  // namespace slmc::detail
