// Reference dequantization (include/slmc/quant/dequantize.hpp), compiled into the library.
#include "slmc/quant/dequantize.hpp"

#include <string>

#include "quant/detail/dequantize_rows.hpp"
#include "slmc/quant/validate.hpp"

namespace slmc {

/// Dequantizes rows [row_begin, row_end) of a view that already passed validate_dense_matrix
/// (e.g. once at load time): the embedding lookup path, O(rows * cols) per call. Checks only the
/// row range and `out`, which holds (row_end - row_begin) * cols floats (row-major).
Status dequantize_rows_validated(const EncodedMatrixView& view, int64_t row_begin, int64_t row_end, float* out) {
  if (row_begin < 0 || row_end > view.rows || row_begin > row_end) {
    return make_error(ErrorCode::kOutOfRange, "dequantize_rows: rows [" + std::to_string(row_begin) + ", " +
                                                  std::to_string(row_end) + ") outside [0, " +
                                                  std::to_string(view.rows) + ")");
  }
  if (row_end > row_begin && out == nullptr) return make_error(ErrorCode::kInvalidArgument, "dequantize_rows: null output");
  if (!view.encoding.is_quantized()) {
    quant_detail::dequantize_float_rows(view, row_begin, row_end, out);
    return Status::ok_status();
  }
  const DenseQuantLayout l(view.rows, view.cols, view.encoding);
  for (int64_t r = row_begin; r < row_end; ++r) {
    quant_detail::dequantize_quant_row(view, l, r, out + (r - row_begin) * view.cols);
  }
  return Status::ok_status();
}

/// Dequantizes rows [row_begin, row_end) of a dense encoding into `out`, which holds
/// (row_end - row_begin) * cols floats (row-major). Validates the whole view first (its cost is
/// O(number of scales)); for repeated lookups validate once and use dequantize_rows_validated.
Status dequantize_rows(const EncodedMatrixView& view, int64_t row_begin, int64_t row_end, float* out) {
  SLMC_RETURN_IF_ERROR(validate_dense_matrix(view, "dequantize"));
  return dequantize_rows_validated(view, row_begin, row_end, out);
}

/// Dequantizes the whole matrix into `out` (rows * cols floats, row-major).
Status dequantize(const EncodedMatrixView& view, float* out) {
  return dequantize_rows(view, 0, view.rows, out);
}

}  // namespace slmc
