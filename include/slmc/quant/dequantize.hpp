// Reference dequantization of dense encodings (float passthrough and int8/int4 in every row
// layout): the oracle that kernels and tests compare against. Element (m, k) becomes exactly
//   int8 symmetric  d*q          int8 asymmetric  d*q + m
//   int4 symmetric  d*(u - 8)    int4 asymmetric  d*u + m
// computed in fp32 (one multiply, then one add), with d and m read from the stored scale dtype.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "slmc/encoding.hpp"
#include "slmc/half.hpp"
#include "slmc/layout.hpp"
#include "slmc/quant/detail/common.hpp"
#include "slmc/quant/validate.hpp"
#include "slmc/status.hpp"

namespace slmc {
namespace quant_detail {

/// Unpacks chunk record `chunk` (32 codes) into `codes` as stored (int8: signed; int4: 0..15).
inline void unpack_chunk(const uint8_t* rec, ValueType t, int32_t* codes) noexcept {
  if (t == ValueType::kInt8) {
    for (int j = 0; j < 32; ++j) codes[j] = static_cast<int8_t>(rec[j]);
  } else {
    for (int j = 0; j < 16; ++j) {
      codes[j] = rec[j] & 0x0f;
      codes[j + 16] = rec[j] >> 4;
    }
  }
}

/// Decodes row `row` of a validated quantized view into out[0, cols).
inline void dequantize_quant_row(const EncodedMatrixView& v, const DenseQuantLayout& l, int64_t row, float* out) noexcept {
  const Encoding& e = v.encoding;
  const auto* values = v.segment(SegmentRole::kValues).as<uint8_t>();
  const void* scales = v.segment(SegmentRole::kScales).data;
  const void* mins = v.segment(SegmentRole::kMins).data;
  const int32_t offset = code_range(e.value_type, e.symmetric).offset;
  int32_t codes[kChunk];
  int64_t group = -1;
  float d = 0, m = 0;
  for (int64_t c = 0; c < l.chunks; ++c) {
    unpack_chunk(values + l.chunk_offset(row, c), e.value_type, codes);
    const int64_t k0 = c * kChunk, k1 = std::min(v.cols, k0 + kChunk);
    for (int64_t k = k0; k < k1; ++k) {
      const int64_t g = k / l.group_size;
      if (g != group) {
        group = g;
        const int64_t si = l.scale_index(row, g);
        d = load_scale(scales, si, e.scale_dtype);
        m = e.symmetric ? 0.0f : load_scale(mins, si, e.scale_dtype);
      }
      const float q = static_cast<float>(codes[k - k0] - offset);
      const float dq = d * q;
      out[k] = e.symmetric ? dq : dq + m;
    }
  }
}

inline void dequantize_float_rows(const EncodedMatrixView& v, int64_t row_begin, int64_t row_end, float* out) {
  const size_t n = static_cast<size_t>((row_end - row_begin) * v.cols);
  const auto* base = v.segment(SegmentRole::kValues).as<uint8_t>();
  const size_t eb = float_value_bytes(v.encoding.value_type);
  const uint8_t* src = base + static_cast<size_t>(row_begin * v.cols) * eb;
  if (v.encoding.value_type == ValueType::kF32) {
    std::memcpy(out, src, n * 4);
    return;
  }
  // The 16-bit sources may be unaligned inside a file: convert through an aligned bounce buffer.
  std::vector<uint16_t> tmp(std::min<size_t>(n, 1 << 16));
  for (size_t i = 0; i < n; i += tmp.size()) {
    const size_t len = std::min(tmp.size(), n - i);
    std::memcpy(tmp.data(), src + 2 * i, 2 * len);
    if (v.encoding.value_type == ValueType::kF16) {
      convert_fp16_to_fp32(tmp.data(), out + i, len);
    } else {
      convert_bf16_to_fp32(tmp.data(), out + i, len);
    }
  }
}

}  // namespace quant_detail

/// Dequantizes rows [row_begin, row_end) of a view that already passed validate_dense_matrix
/// (e.g. once at load time): the embedding lookup path, O(rows * cols) per call. Checks only the
/// row range and `out`, which holds (row_end - row_begin) * cols floats (row-major).
inline Status dequantize_rows_validated(const EncodedMatrixView& view, int64_t row_begin, int64_t row_end, float* out) {
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
inline Status dequantize_rows(const EncodedMatrixView& view, int64_t row_begin, int64_t row_end, float* out) {
  SLMC_RETURN_IF_ERROR(validate_dense_matrix(view, "dequantize"));
  return dequantize_rows_validated(view, row_begin, row_end, out);
}

/// Dequantizes the whole matrix into `out` (rows * cols floats, row-major).
inline Status dequantize(const EncodedMatrixView& view, float* out) {
  return dequantize_rows(view, 0, view.rows, out);
}

}  // namespace slmc
