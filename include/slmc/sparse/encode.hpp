// Sparse encoders (dense fp32 + keep mask -> CSR / BSR / N:M / bitmask EncodedMatrix), the
// reference decoder, error statistics and exact size accounting / prediction.
//
// The byte layouts are specified in docs/LAYOUT.md ("Sparse formats") and computed by
// slmc/sparse/layout.hpp. Quantized values (int8; int4 for N:M) use symmetric scales computed
// over the kept values only, chosen by Encoding::search exactly as the dense quantizer chooses
// them (docs/QUANT.md): absmax d = max|w_kept| / qmax (qmax 127 for int8, 7 for int4), or the
// error-minimizing grid search (mse; weighted by per-input-channel importance), rounded to the
// scale dtype; q = round_half_even(clamp(w * (1/d))) within the code range.
#pragma once

#include <cstdint>
#include <string_view>

#include "slmc/encoding.hpp"
#include "slmc/sparse/layout.hpp"
#include "slmc/status.hpp"

namespace slmc {

/// Encodes W[rows x cols] (row-major fp32, finite where kept) into the sparse format of `encoding`.
/// `keep` (rows*cols bytes, nonzero = store) selects the stored elements; nullptr keeps the nonzeros
/// of W. For N:M the kept elements of every group must fit the pattern (at most N per group, and
/// at most N of the real columns in the tail group); groups with fewer are filled with explicit
/// zeros. For BSR a block is stored when any element in it is kept (non-kept elements of a stored
/// block are stored as zero). `stats` of the result are filled against W. `importance` (length
/// cols, finite, >= 0, e.g. calibration mean squared activations) is required by
/// ScaleSearch::kWeighted and ignored otherwise.
Result<EncodedMatrix> encode_sparse(const float* w, int64_t rows, int64_t cols, const Encoding& encoding,
                                    const uint8_t* keep, std::string_view tensor_name,
                                    const float* importance = nullptr);

/// Reference decoder: validates `m` (validate_sparse_matrix) and writes the dense fp32 matrix
/// (rows*cols floats, row-major) to `dense_out`. Never reads out of bounds, whatever `m` holds.
Status decode_sparse(const EncodedMatrixView& m, float* dense_out);

/// Error of `approx` against `original` (both rows*cols), with sparsity = zeros of `approx` and
/// bits_per_weight = 8 * total_bytes / (rows*cols).
ErrorStats sparse_error_stats(const float* original, const float* approx, int64_t rows, int64_t cols,
                              uint64_t total_bytes);

/// Exact size of an encoded matrix, per segment.
struct SparseSize {
  uint64_t values = 0, scales = 0, row_ptr = 0, col_idx = 0, meta = 0;
  uint64_t total = 0;
  double bits_per_weight = 0;  ///< 8 * total / (rows*cols); 0 for an empty matrix
};

/// Exact size for `stored` units (nnz for CSR/bitmask, blocks for BSR; ignored for N:M).
Result<SparseSize> sparse_size(int64_t rows, int64_t cols, const Encoding& encoding, uint64_t stored);

/// Predicted size for a matrix pruned to `sparsity` (fraction of zero weights, 0..1) in the format of
/// `encoding`. CSR/bitmask: nnz = round((1 - sparsity) * rows * cols). BSR: the matrix is assumed
/// block-pruned, blocks = round((1 - sparsity) * ceil(rows/r) * ceil(cols/c)). N:M: exact (the
/// pattern fixes the size; `sparsity` is ignored). Exact whenever the assumption holds.
Result<SparseSize> predict_sparse_size(int64_t rows, int64_t cols, const Encoding& encoding, double sparsity);

/// Bytes of the same matrix stored dense (f32: 4*M*K; int8/int4: the dense quantized layout with
/// `encoding`'s granularity, group size and scale dtype), for comparison with sparse formats.
uint64_t dense_size_bytes(int64_t rows, int64_t cols, const Encoding& encoding);

}  // namespace slmc
