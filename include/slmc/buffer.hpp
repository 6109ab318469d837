// Owning, 64-byte aligned byte buffers: what compressors produce and the file writer streams out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

namespace slmc {

inline constexpr size_t kBufferAlignment = 64;

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  /// `size` bytes, zero-initialized. Throws std::bad_alloc when memory runs out.
  explicit AlignedBuffer(size_t size) : size_(size) {
    if (size == 0) return;
    const size_t rounded = (size + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
    void* p = std::aligned_alloc(kBufferAlignment, rounded);
    if (!p) throw std::bad_alloc();
    std::memset(p, 0, rounded);
    data_.reset(static_cast<uint8_t*>(p));
  }
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
    void operator()(uint8_t* p) const noexcept { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> data_;
  size_t size_ = 0;
};

}  // namespace slmc
