// Row dequantizers of dense encodings (internal; the public entry points are in
// slmc/quant/dequantize.hpp).
#pragma once

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <vector>

#include "quant/detail/common.hpp"
#include "slmc/encoding.hpp"
#include "slmc/half.hpp"
#include "slmc/layout.hpp"

namespace slmc {
namespace quant_detail {

/// Unpacks chunk record `chunk` (32 codes) into `codes` as stored (int8: signed; int4, nl4: 0..15).
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
      const float q = e.value_type == ValueType::kNl4 ? static_cast<float>(kNl4Levels[codes[k - k0]])
                                                      : static_cast<float>(codes[k - k0] - offset);
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

}  // namespace slmc
