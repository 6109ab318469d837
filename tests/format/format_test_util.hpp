// Builders for encoded matrices in the layouts of docs/LAYOUT.md (an independent, plain
// implementation for tests: absmax quantization per scale group, codes placed with write_code).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "slmc/encoding.hpp"
#include "slmc/format/model_file.hpp"
#include "slmc/half.hpp"
#include "slmc/layout.hpp"
#include "support/random.hpp"

namespace slmc::test {

/// Dense float matrix of the given value type from random values.
inline EncodedMatrix make_float_matrix(int64_t rows, int64_t cols, ValueType vt, uint64_t seed) {
  EncodedMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.encoding.value_type = vt;
  const std::vector<float> w = gaussian(static_cast<size_t>(rows * cols), seed);
  const size_t n = w.size();
  if (vt == ValueType::kF32) {
    m.segment(SegmentRole::kValues) = AlignedBuffer(w.data(), n * 4);
  } else {
    AlignedBuffer b(n * 2);
    for (size_t i = 0; i < n; ++i) b.as<uint16_t>()[i] = vt == ValueType::kF16 ? fp32_to_fp16(w[i]) : fp32_to_bf16(w[i]);
    m.segment(SegmentRole::kValues) = std::move(b);
  }
  m.stats.bits_per_weight = vt == ValueType::kF32 ? 32 : 16;
  return m;
}

/// int8/int4 matrix quantized from `w` (rows x cols) with encoding `e` (dense, any granularity,
/// symmetric or not, f16/f32 scales, any row layout).
inline EncodedMatrix quantize_for_test(const float* w, int64_t rows, int64_t cols, const Encoding& e) {
  EncodedMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.encoding = e;
  const DenseQuantLayout l(rows, cols, e);
  AlignedBuffer values(static_cast<size_t>(l.values_bytes()));
  const bool int4 = e.value_type == ValueType::kInt4;
  if (int4) std::memset(values.data(), e.symmetric ? 0x88 : 0x00, values.size());  // padding codes
  const size_t sbytes = e.scale_dtype == DType::kF16 ? 2 : 4;
  AlignedBuffer scales(static_cast<size_t>(l.scale_count()) * sbytes);
  AlignedBuffer mins(e.symmetric ? 0 : static_cast<size_t>(l.scale_count()) * sbytes);
  auto store = [&](AlignedBuffer& b, int64_t i, float v) {
    if (sbytes == 2) {
      b.as<uint16_t>()[i] = fp32_to_fp16(v);
    } else {
      b.as<float>()[i] = v;
    }
  };
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < l.groups; ++g) {
      const int64_t k0 = l.per_tensor ? 0 : g * l.group_size;
      const int64_t k1 = l.per_tensor ? cols : std::min(cols, k0 + l.group_size);
      const int64_t r0 = l.per_tensor ? 0 : r, r1 = l.per_tensor ? rows : r + 1;
      float lo = 0, hi = 0, amax = 0;
      for (int64_t rr = r0; rr < r1; ++rr) {
        for (int64_t k = k0; k < k1; ++k) {
          const float x = w[rr * cols + k];
          lo = std::min(lo, x), hi = std::max(hi, x), amax = std::max(amax, std::fabs(x));
        }
      }
      float d, mn = 0;
      if (e.symmetric) {
        d = amax / (int4 ? 8.0f : 127.0f);
      } else {
        d = (hi - lo) / (int4 ? 15.0f : 255.0f);
        mn = int4 ? lo : lo + 128 * d;
      }
      if (d == 0) d = 1;
      const int64_t si = l.scale_index(r, g);
      store(scales, si, d);
      if (!e.symmetric) store(mins, si, mn);
      for (int64_t k = k0; k < k1; ++k) {
        const float x = w[r * cols + k];
        int32_t q;
        if (int4) {
          q = e.symmetric ? static_cast<int32_t>(std::lround(x / d)) + 8 : static_cast<int32_t>(std::lround((x - mn) / d));
          q = std::clamp(q, 0, 15);
        } else {
          q = static_cast<int32_t>(std::lround((x - mn) / d));
          q = std::clamp(q, e.symmetric ? -127 : -128, 127);
        }
        write_code(l, e.value_type, values.data(), r, k, q);
      }
      if (l.per_tensor) break;
    }
  }
  m.segment(SegmentRole::kValues) = std::move(values);
  m.segment(SegmentRole::kScales) = std::move(scales);
  m.segment(SegmentRole::kMins) = std::move(mins);
  m.stats.bits_per_weight = 8.0 * static_cast<double>(m.total_bytes()) / static_cast<double>(rows * cols);
  return m;
}

/// A TensorInfo with just a name and a shape.
inline TensorInfo info_of(const std::string& name, Shape shape) {
  TensorInfo info;
  info.name = name;
  info.shape = std::move(shape);
  return info;
}

inline Encoding quant_encoding(ValueType vt, Granularity g, int32_t group, bool sym, DType sdt, RowLayout layout) {
  Encoding e;
  e.value_type = vt;
  e.granularity = g;
  e.group_size = g == Granularity::kGroup ? group : 0;
  e.symmetric = sym;
  e.scale_dtype = sdt;
  e.layout = layout;
  return e;
}

}  // namespace slmc::test
