// Owning, 64-byte aligned byte buffers: what compressors produce and the file writer streams out.
// Buffers of 1 MiB and more are anonymous memory maps, returned to the system when freed: tensors
// are converted one at a time, and heap-allocated buffers of that size would stay in the process
// (glibc raises its mmap threshold after the first free), holding the converter's peak memory at
// several tensors' worth.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string_view>

#include "slmc/status.hpp"

namespace slmc {

inline constexpr size_t kBufferAlignment = 64;

/// The library allocates through allocate() / copy_of(), which report running out of memory as a
/// Status (kOutOfMemory); no slmc API lets std::bad_alloc from an AlignedBuffer escape. The sized
/// constructors are a convenience for applications and tests that treat that as fatal: they throw.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  /// `size` bytes, zero-initialized; kOutOfMemory naming the size and `what` when memory runs out.
  static Result<AlignedBuffer> allocate(size_t size, std::string_view what = {});
  /// A copy of `size` bytes at `src`; kOutOfMemory as allocate().
  static Result<AlignedBuffer> copy_of(const void* src, size_t size, std::string_view what = {});

  /// `size` bytes, zero-initialized. Throws std::bad_alloc when memory runs out.
  explicit AlignedBuffer(size_t size);
  AlignedBuffer(const void* src, size_t size) : AlignedBuffer(size) {
    if (size) std::memcpy(data_.get(), src, size);
  }
  AlignedBuffer(AlignedBuffer&&) noexcept = default;
  AlignedBuffer& operator=(AlignedBuffer&&) noexcept = default;
  AlignedBuffer clone() const { return AlignedBuffer(data_.get(), size_); }

  uint8_t* data() noexcept { return data_.get(); }
  const uint8_t* data() const noexcept { return data_.get(); }
  size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  template <typename T>
  T* as() noexcept { return reinterpret_cast<T*>(data_.get()); }
  template <typename T>
  const T* as() const noexcept { return reinterpret_cast<const T*>(data_.get()); }

 private:
  struct Free {
    size_t mapped_bytes;  ///< > 0: an anonymous map of this many bytes, else malloc'd (always set
                          ///< explicitly: no initializer, so the deleter stays default-constructible)
    void operator()(uint8_t* p) const noexcept;
  };
  struct NoThrow {};
  AlignedBuffer(size_t size, NoThrow) noexcept;  // empty (size 0) when memory runs out

  std::unique_ptr<uint8_t, Free> data_{nullptr, Free{0}};
  size_t size_ = 0;
};

}  // namespace slmc
