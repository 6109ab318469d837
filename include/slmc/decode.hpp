// One decoder for every stored encoding: dense (float passthrough, int8/int4 in every row layout:
// slmc/quant/dequantize.hpp) and sparse (CSR, BSR, N:M, bitmask: slmc/sparse/encode.hpp).
#pragma once

#include "slmc/encoding.hpp"
#include "slmc/status.hpp"

namespace slmc {

/// Decodes `view` to fp32 into `out` (rows * cols floats, row-major), validating it first.
/// Errors name what is wrong with the view; nothing is written past rows * cols.
Status decode(const EncodedMatrixView& view, float* out);

}  // namespace slmc
