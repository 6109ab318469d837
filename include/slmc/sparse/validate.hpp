// Validation of sparse matrices read from files written by others (hostile input).
#pragma once

#include <string_view>

#include "slmc/encoding.hpp"
#include "slmc/status.hpp"

namespace slmc {

/// Checks every invariant of a CSR / BSR / N:M / bitmask matrix (docs/LAYOUT.md, "Sparse formats")
/// without ever reading outside the segments' [data, data + nbytes): encoding parameters, exact
/// segment sizes (unused segments empty), monotone row pointers starting at 0 and ending at the
/// stored count, column / block-column indices in range and strictly increasing within a row, N:M
/// positions strictly increasing within a group and padding slots zero, bitmask popcounts equal to
/// the row offsets and padding bits zero, BSR edge padding zero, finite scales.
/// After it returns ok, kernels may trust the structure (not the numeric values' magnitude).
/// Errors are kInvalidFormat / kOutOfRange / kUnsupported / kNonFinite and name `tensor_name`.
Status validate_sparse_matrix(const EncodedMatrixView& m, std::string_view tensor_name);

}  // namespace slmc
