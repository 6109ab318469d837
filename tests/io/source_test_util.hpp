// Reading one tensor of a ModelSource in tests (ModelSource::load), kept alive with its bytes.
#pragma once

#include <string_view>

#include "slmc/io/model_source.hpp"

namespace slmc::test {

/// A tensor loaded from a source: `view` points into `bytes`. False when the name is unknown or
/// the load failed.
struct LoadedTensor {
  AlignedBuffer bytes;
  TensorView view;
  bool ok = false;
  const TensorView* operator->() const { return &view; }
  explicit operator bool() const { return ok; }
};

inline LoadedTensor load_tensor(const ModelSource& src, std::string_view name) {
  LoadedTensor t;
  const int64_t i = src.index_of(name);
  if (i < 0) return t;
  auto v = src.load(static_cast<size_t>(i), t.bytes);
  if (!v.ok()) return t;
  t.view = *v;
  t.ok = true;
  return t;
}

}  // namespace slmc::test
