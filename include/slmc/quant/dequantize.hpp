// Reference dequantization of dense encodings (float passthrough and int8/int4 in every row
// layout): the oracle that kernels and tests compare against. Element (m, k) becomes exactly
//   int8 symmetric  d*q          int8 asymmetric  d*q + m
//   int4 symmetric  d*(u - 8)    int4 asymmetric  d*u + m
// computed in fp32 (one multiply, then one add), with d and m read from the stored scale dtype.
#pragma once

#include <cstdint>

#include "slmc/encoding.hpp"
#include "slmc/status.hpp"

namespace slmc {

/// Dequantizes rows [row_begin, row_end) of a view that already passed validate_dense_matrix
/// (e.g. once at load time): the embedding lookup path, O(rows * cols) per call. Checks only the
/// row range and `out`, which holds (row_end - row_begin) * cols floats (row-major).
Status dequantize_rows_validated(const EncodedMatrixView& view, int64_t row_begin, int64_t row_end, float* out);

/// Dequantizes rows [row_begin, row_end) of a dense encoding into `out`, which holds
/// (row_end - row_begin) * cols floats (row-major). Validates the whole view first (its cost is
/// O(number of scales)); for repeated lookups validate once and use dequantize_rows_validated.
Status dequantize_rows(const EncodedMatrixView& view, int64_t row_begin, int64_t row_end, float* out);

/// Dequantizes the whole matrix into `out` (rows * cols floats, row-major).
Status dequantize(const EncodedMatrixView& view, float* out);

}  // namespace slmc
