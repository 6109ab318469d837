// Quantizers: fp32 weights W[M x K] -> an EncodedMatrix in the dense layout of docs/LAYOUT.md
// (the layout kernels read and the .slm file stores), plus float passthrough encodings.
// Schemes, scale searches and error statistics are described in docs/QUANT.md.
//
// The implementation (scale search, GPTQ, SIMD, OpenMP) is compiled into the library
// (src/quant/quantize.cpp): a consumer's compiler flags cannot change the bytes it produces.
#pragma once

#include <cstdint>
#include <string_view>

#include "slmc/encoding.hpp"
#include "slmc/quant/config.hpp"
#include "slmc/status.hpp"

namespace slmc {

/// Quantizes the row-major fp32 matrix w[rows x cols] (groups along cols) with `config`.
///
/// Returns the encoding (Encoding filled from config; group_size 0 unless kGroup), its segments
/// (values; scales; mins when asymmetric) laid out exactly as DenseQuantLayout says, and the error
/// statistics against w (bits_per_weight from the exact segment bytes). Codes are computed with
/// the scale and min as stored (fp16-rounded when scale_dtype is kF16).
///
/// Errors (message names the tensor): empty or overflowing shape, null w, NaN/Inf weight (with its
/// row and column), unsupported value type / granularity / group size / scale dtype / layout,
/// missing or invalid importance for kWeighted, a scale that overflows fp16 (row and group given;
/// use fp32 scales), out of memory. Results are identical for every num_threads.
Result<EncodedMatrix> quantize(std::string_view tensor_name, const float* w, int64_t rows, int64_t cols,
                               const QuantConfig& config);

/// Float passthrough: stores w[rows x cols] as plain row-major f32, f16 or bf16 (round to nearest
/// even) with error statistics. Errors: bad shape, NaN/Inf input, a value that overflows the
/// 16-bit type (row and column given), a quantized value type.
Result<EncodedMatrix> encode_float(std::string_view tensor_name, const float* w, int64_t rows, int64_t cols,
                                   ValueType value_type);

}  // namespace slmc
