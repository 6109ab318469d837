// Content hashes used by the model file format: SHA-256 of source files (OpenSSL libcrypto) and
// XXH64 (seed 0) of .slm data segments.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "slmc/status.hpp"

namespace slmc {

/// `size` bytes as 2 * size lower-case hex digits (digests, key ids): the one hex printer of the
/// library and the tool.
std::string hex_string(const void* data, size_t size);

/// SHA-256 of `size` bytes as 64 lower-case hex digits.
std::string sha256_hex(const void* data, size_t size);

/// SHA-256 of a whole file, read with read(2) in chunks (does not grow the resident set), as 64
/// lower-case hex digits; `size` (optional) receives the number of bytes hashed.
Result<std::string> sha256_file_hex(const std::string& path, uint64_t* size = nullptr);

/// XXH64 with seed 0.
uint64_t xxh64(const void* data, size_t size) noexcept;

/// Streaming XXH64 (seed 0) for data that arrives in pieces.
class Xxh64Stream {
 public:
  Xxh64Stream();
  ~Xxh64Stream();
  Xxh64Stream(const Xxh64Stream&) = delete;
  Xxh64Stream& operator=(const Xxh64Stream&) = delete;
  void update(const void* data, size_t size) noexcept;
  uint64_t digest() const noexcept;

 private:
  void* state_;
};

}  // namespace slmc
