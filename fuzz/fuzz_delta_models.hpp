// The fixed OLD and NEW models behind the apply fuzz target and its seeds (make_seeds.cpp): the
// fuzzer mutates deltas, so the base they apply to must be the same file in both programs.
// Deterministic: no clocks, no random state.
#pragma once

#include <string>
#include <vector>

#include "slmc/buffer.hpp"
#include "slmc/encoding.hpp"
#include "slmc/format/model_file.hpp"

namespace slmc::fuzz {

/// Adds an f32 tensor of `values` (rows x cols).
inline Status add_f32(ModelFileWriter& w, const std::string& name, int64_t rows, int64_t cols,
                      const std::vector<float>& values) {
  TensorInfo info;
  info.name = name;
  info.shape = Shape{rows, cols};
  EncodedMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.encoding.value_type = ValueType::kF32;
  m.segment(SegmentRole::kValues) = AlignedBuffer(values.data(), values.size() * sizeof(float));
  return w.add(info, m.view());
}

inline std::vector<float> pattern(size_t n, unsigned seed) {
  std::vector<float> v(n);
  uint32_t x = 2654435761u * (seed + 1);
  for (size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    v[i] = static_cast<float>(static_cast<int32_t>(x >> 8) % 2000) / 1000.0f;
  }
  return v;
}

/// OLD (`changed` false) or NEW (`changed` true): NEW changes a few values of "b" (an xor / add
/// op), adds "d" (a literal op), keeps "a" (a copy op) and has another recipe (the header op).
inline Status write_delta_model(const std::string& path, bool changed) {
  ModelHeader h;
  h.recipe = changed ? "{\"v\":2}" : "{\"v\":1}";
  h.producer_version = "fuzz";
  SLMC_ASSIGN_OR_RETURN(auto w, ModelFileWriter::create(path, h));
  std::vector<float> a = pattern(32 * 64, 1), b = pattern(32 * 64, 2), d = pattern(16 * 16, 3);
  if (changed) {
    for (size_t i = 0; i < b.size(); i += 37) b[i] += 0.001f;
  }
  SLMC_RETURN_IF_ERROR(add_f32(*w, "a", 32, 64, a));
  SLMC_RETURN_IF_ERROR(add_f32(*w, "b", 32, 64, b));
  if (changed) SLMC_RETURN_IF_ERROR(add_f32(*w, "d", 16, 16, d));
  return w->finish();
}

}  // namespace slmc::fuzz
