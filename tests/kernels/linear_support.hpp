// Test support for the linear kernels: random encoded matrices written code by code through the
// layout (slmc/layout.hpp), their fp64 dequantization, and the fp64 oracle with error bounds.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "slmc/codec.hpp"
#include "slmc/encoding.hpp"
#include "slmc/half.hpp"
#include "slmc/layout.hpp"

namespace slmc::test {

struct TestMatrix {
  EncodedMatrix em;
  std::vector<double> w;    ///< [M][K] dequantized weights (what the kernels must multiply with)
  std::vector<double> dc;   ///< [M][K] |d * c|: the part of w multiplied with quantized activations
  std::vector<double> off;  ///< [M][K] |m|: the offset part (multiplied with exact activations)
  std::vector<double> d, m; ///< [M][K] quantized: the element's scale and offset (w = d * code + m)
};

/// Every dense encoding the kernels accept, from the codec table (enumerate_encodings, codec.hpp):
/// its representative group sizes, both symmetries, both scale dtypes, every row layout. The scale
/// search is provenance only, so one search (absmax) stands for all.
inline std::vector<Encoding> all_dense_encodings() {
  std::vector<Encoding> out;
  for (const Encoding& e : enumerate_encodings()) {
    if (e.format == SparseFormat::kDense && e.search == ScaleSearch::kAbsmax) out.push_back(e);
  }
  return out;
}

inline void store_scale(EncodedMatrix& em, SegmentRole role, int64_t i, float v, double* exact) {
  if (em.encoding.scale_dtype == DType::kF16) {
    const uint16_t h = fp32_to_fp16(v);
    em.segment(role).as<uint16_t>()[i] = h;
    *exact = fp16_to_fp32(h);
  } else {
    em.segment(role).as<float>()[i] = v;
    *exact = v;
  }
}

/// A random M x K matrix in encoding `e`. Quantized: random codes over the full stored range
/// (int8 asym includes -128), random positive scales, random mins; padding codes beyond K are
/// random garbage (kernels must ignore them).
inline TestMatrix make_matrix(int64_t m, int64_t k, const Encoding& e, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  TestMatrix t;
  t.em.rows = m;
  t.em.cols = k;
  t.em.encoding = e;
  t.w.assign(static_cast<size_t>(m * k), 0.0);
  t.dc.assign(static_cast<size_t>(m * k), 0.0);
  t.off.assign(static_cast<size_t>(m * k), 0.0);
  t.d.assign(static_cast<size_t>(m * k), 0.0);
  t.m.assign(static_cast<size_t>(m * k), 0.0);
  if (!e.is_quantized()) {
    const size_t eb = e.value_type == ValueType::kF32 ? 4 : 2;
    t.em.segment(SegmentRole::kValues) = AlignedBuffer(static_cast<size_t>(m * k) * eb);
    for (int64_t i = 0; i < m * k; ++i) {
      const float v = normal(rng);
      double exact = v;
      if (e.value_type == ValueType::kF32) {
        t.em.segment(SegmentRole::kValues).as<float>()[i] = v;
      } else if (e.value_type == ValueType::kF16) {
        const uint16_t h = fp32_to_fp16(v);
        t.em.segment(SegmentRole::kValues).as<uint16_t>()[i] = h;
        exact = fp16_to_fp32(h);
      } else {
        const uint16_t h = fp32_to_bf16(v);
        t.em.segment(SegmentRole::kValues).as<uint16_t>()[i] = h;
        exact = bf16_to_fp32(h);
      }
      t.w[static_cast<size_t>(i)] = exact;
      t.dc[static_cast<size_t>(i)] = std::fabs(exact);
    }
    return t;
  }
  const DenseQuantLayout l(m, k, e);
  const size_t sb = e.scale_dtype == DType::kF16 ? 2 : 4;
  t.em.segment(SegmentRole::kValues) = AlignedBuffer(static_cast<size_t>(l.values_bytes()));
  t.em.segment(SegmentRole::kScales) = AlignedBuffer(static_cast<size_t>(l.scale_count()) * sb);
  if (!e.symmetric) t.em.segment(SegmentRole::kMins) = AlignedBuffer(static_cast<size_t>(l.scale_count()) * sb);
  // Garbage everywhere first (padding codes included), then the real codes.
  uint8_t* values = t.em.segment(SegmentRole::kValues).data();
  for (int64_t i = 0; i < l.values_bytes(); ++i) values[i] = static_cast<uint8_t>(rng());
  std::vector<double> d(static_cast<size_t>(l.scale_count())), mn(static_cast<size_t>(l.scale_count()), 0.0);
  for (int64_t i = 0; i < l.scale_count(); ++i) {
    store_scale(t.em, SegmentRole::kScales, i, 0.005f + 0.05f * unit(rng), &d[static_cast<size_t>(i)]);
    if (!e.symmetric) store_scale(t.em, SegmentRole::kMins, i, normal(rng) * 0.3f, &mn[static_cast<size_t>(i)]);
  }
  const bool int8 = e.value_type == ValueType::kInt8;
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t c = 0; c < k; ++c) {
      int32_t code;
      if (int8) {
        code = static_cast<int32_t>(rng() % (e.symmetric ? 255 : 256)) - (e.symmetric ? 127 : 128);
      } else {
        code = static_cast<int32_t>(rng() % 16);
      }
      write_code(l, e.value_type, values, r, c, code);
      const size_t si = static_cast<size_t>(l.scale_index(r, c / l.group_size));
      const bool nl4 = e.value_type == ValueType::kNl4;
      double off = e.symmetric ? (int8 || nl4 ? 0.0 : -8.0 * d[si]) : mn[si];
      const size_t idx = static_cast<size_t>(r * k + c);
      const double level = nl4 ? kNl4Levels[code] : code;  // nl4: w = d * kNl4Levels[u]
      t.w[idx] = d[si] * level + off;
      t.d[idx] = d[si];
      t.m[idx] = off;
      // Symmetric int4: the kernels multiply (u - 8) with quantized activations (see KERNELS.md).
      const bool sym4 = e.value_type == ValueType::kInt4 && e.symmetric;
      t.dc[idx] = sym4 ? std::fabs(t.w[idx]) : std::fabs(d[si] * level);
      t.off[idx] = sym4 ? 0.0 : std::fabs(off);
    }
  }
  return t;
}

/// Replaces every nonzero code by an extreme one (int8 +-127 / -128, int4 0 or 15): the cases where
/// vpmaddubsw could saturate.
inline void make_extreme_codes(TestMatrix& t, uint64_t seed) {
  const Encoding& e = t.em.encoding;
  if (!e.is_quantized()) return;
  std::mt19937_64 rng(seed);
  const DenseQuantLayout l(t.em.rows, t.em.cols, e);
  uint8_t* values = t.em.segment(SegmentRole::kValues).data();
  for (int64_t r = 0; r < t.em.rows; ++r) {
    for (int64_t c = 0; c < t.em.cols; ++c) {
      const size_t idx = static_cast<size_t>(r * t.em.cols + c);
      int32_t code;
      if (e.value_type == ValueType::kInt8) {
        code = (rng() & 1) ? 127 : -128;  // -128 even when symmetric: any stored byte must work
      } else {
        code = (rng() & 1) ? 15 : 0;
      }
      write_code(l, e.value_type, values, r, c, code);
      const double level = e.value_type == ValueType::kNl4 ? kNl4Levels[code] : code;  // nl4: -127 / 105
      t.w[idx] = t.d[idx] * level + t.m[idx];
      const bool sym4 = e.value_type == ValueType::kInt4 && e.symmetric;
      t.dc[idx] = sym4 ? std::fabs(t.w[idx]) : std::fabs(t.d[idx] * level);
    }
  }
}

}  // namespace slmc::test
