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

/// Appends a tensor whose bytes are [offset, offset + nbytes) of file `file_index` (the caller
/// checked that range against the file); checks the shape and that nbytes is shape x dtype.
Status add_tensor(ModelSource& src, const std::string& file, std::string name, Shape shape, DType dtype,
                  uint64_t offset, uint64_t nbytes, uint32_t file_index, DType source_dtype);

/// Marks a rank-2 tensor [a, b] as stored transposed: it is described (and loaded) as [b, a].
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
