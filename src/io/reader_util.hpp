// Helpers shared by the source readers (internal).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "slmc/io/model_source.hpp"

namespace slmc::io_detail {

/// Quoted for messages: 'name' with control / non-printable bytes escaped and long names cut.
std::string quote(std::string_view s);

/// True if `s` is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool is_valid_utf8(std::string_view s) noexcept;

/// Appends a tensor whose bytes are [data, data + nbytes) inside a mapping; copies them into an
/// owned aligned buffer if `data` is misaligned for the dtype. The view is validated.
Status add_tensor(ModelSource& src, const std::string& file, std::string name, Shape shape, DType dtype,
                  const uint8_t* data, uint64_t nbytes, uint32_t file_index, DType source_dtype);

/// Transposes a rank-2 tensor [a, b] -> [b, a] in place of its view (the data becomes owned).
Status transpose_2d(ModelSource& src, size_t index);

/// Element size of a plain (non-block) dtype.
inline uint64_t element_bytes(DType d) { return dtype_traits(d).block_bytes; }

template <typename T>
inline T load_le(const uint8_t* p) noexcept {
  T v;
  std::memcpy(&v, p, sizeof(T));  // the library targets little-endian hosts (x86-64, AArch64)
  return v;
}

}  // namespace slmc::io_detail
