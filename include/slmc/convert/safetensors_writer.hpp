// Writing safetensors files (for `slm-compress export` and the synthetic demo model). Streams
// one tensor at a time; the file appears only when complete (temporary file + fsync + rename).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "slmc/dtype.hpp"
#include "slmc/status.hpp"

namespace slmc {

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::kF32;      ///< any safetensors element type (f32, f16, bf16, f64, i8, ...)
  std::vector<int64_t> shape;
};

/// Writes `entries` in order. `produce(i, bytes)` fills `bytes` with tensor i's data (exactly
/// numel * element size bytes, little-endian). `metadata` becomes `__metadata__` (string values).
/// On any error nothing is left at `path`.
Status write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& entries,
                         const std::map<std::string, std::string>& metadata,
                         const std::function<Status(size_t, std::vector<uint8_t>&)>& produce);

}  // namespace slmc
