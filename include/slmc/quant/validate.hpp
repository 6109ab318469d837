// Validation of a dense encoded matrix read from a (possibly hostile) file, before any kernel or
// dequantizer touches it. Called by the .slm loader for every dense tensor.
#pragma once

#include <string_view>

#include "slmc/encoding.hpp"
#include "slmc/status.hpp"

namespace slmc {

/// Checks that `view` is a well-formed dense encoding (float passthrough or int8/int4):
///  - every enum field holds a known value; format is kDense; sparse fields are zero;
///  - rows, cols > 0 and rows*cols <= kMaxTensorElements;
///  - float: granularity kNone, group_size 0, layout kRows;
///    quantized: granularity / group size legal for the value type (docs/QUANT.md),
///    group_size 0 unless kGroup, scale dtype f16 or f32;
///  - every segment has exactly the size DenseQuantLayout (or rows*cols*elem) gives, unused roles
///    are empty, non-empty segments have non-null data;
///  - every scale (and min) is finite.
/// Codes themselves are not checked: every byte is a valid code (docs/LAYOUT.md).
/// Errors are kInvalidFormat (kUnsupported for valid-but-unsupported schemes, kNonFinite for
/// scales), with a message naming `tensor_name` and the bad field or position.
Status validate_dense_matrix(const EncodedMatrixView& view, std::string_view tensor_name);

}  // namespace slmc
