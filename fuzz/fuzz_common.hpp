// Helpers for the fuzz targets: read every byte a caller could be handed, so that ASan sees any
// view that points outside its buffer.
#pragma once

#include <cstddef>
#include <cstdint>

#include "slmc/io/model_source.hpp"

namespace slmc::fuzz {

inline uint64_t read_all(const void* p, uint64_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  uint64_t sum = 0;
  for (uint64_t i = 0; i < n; ++i) sum += b[i];
  return sum;
}

inline void sink(uint64_t v) {
  static volatile uint64_t s;
  s = s + v;
}

/// Loads every tensor (raw, and as fp32 when it is a weight and small) as a consumer would.
inline void touch_source(const ModelSource& src) {
  uint64_t sum = 0;
  for (size_t i = 0; i < src.tensors().size(); ++i) {
    const auto& t = src.tensors()[i];
    AlignedBuffer bytes;
    auto v = src.load(i, bytes);
    if (!v.ok()) __builtin_trap();  // every described tensor lies inside the file
    sum += read_all(v->data, v->nbytes) + static_cast<uint64_t>(t.shape.numel());
    if (is_weight_dtype(t.dtype) && t.shape.numel() <= (int64_t{1} << 20)) {
      auto f = src.load_f32(i);
      if (!f.ok()) __builtin_trap();
      sum += read_all(f->data(), f->size());
    }
  }
  for (const auto& [k, v] : src.metadata()) sum += k.size() + v.text.size();
  for (const auto& [k, v] : src.architecture()) sum += k.size() + v.text.size();
  sink(sum);
}

}  // namespace slmc::fuzz
