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

inline void touch_source(const ModelSource& src) {
  uint64_t sum = 0;
  for (const auto& t : src.tensors()) {
    sum += read_all(t.data, t.nbytes) + static_cast<uint64_t>(t.shape.numel());
  }
  for (const auto& [k, v] : src.metadata()) sum += k.size() + v.text.size();
  for (const auto& [k, v] : src.architecture()) sum += k.size() + v.text.size();
  sink(sum);
}

}  // namespace slmc::fuzz
