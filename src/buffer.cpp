// AlignedBuffer's allocation (include/slmc/buffer.hpp).
#include "slmc/buffer.hpp"

#include <sys/mman.h>

#include <cstdint>
#include <string>

namespace slmc {
namespace {
constexpr size_t kMapThreshold = size_t{1} << 20;
}  // namespace

AlignedBuffer::AlignedBuffer(size_t size, NoThrow) noexcept {
  if (size == 0) return;
  if (size > SIZE_MAX - kBufferAlignment) return;
  const size_t rounded = (size + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
  if (rounded >= kMapThreshold) {
    // Page-aligned (so 64-byte aligned) and zero-filled by the kernel.
    void* p = ::mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;
    data_ = std::unique_ptr<uint8_t, Free>(static_cast<uint8_t*>(p), Free{rounded});
  } else {
    void* p = std::aligned_alloc(kBufferAlignment, rounded);
    if (!p) return;
    std::memset(p, 0, rounded);
    data_ = std::unique_ptr<uint8_t, Free>(static_cast<uint8_t*>(p), Free{0});
  }
  size_ = size;
}

AlignedBuffer::AlignedBuffer(size_t size) : AlignedBuffer(size, NoThrow{}) {
  if (size_ != size) throw std::bad_alloc();
}

Result<AlignedBuffer> AlignedBuffer::allocate(size_t size, std::string_view what) {
  AlignedBuffer b(size, NoThrow{});
  if (b.size_ != size) {
    std::string msg = "cannot allocate " + std::to_string(size) + " bytes";
    if (!what.empty()) msg += std::string(" (") + std::string(what) + ")";
    return make_error(ErrorCode::kOutOfMemory, msg);
  }
  return b;
}

Result<AlignedBuffer> AlignedBuffer::copy_of(const void* src, size_t size, std::string_view what) {
  SLMC_ASSIGN_OR_RETURN(AlignedBuffer b, allocate(size, what));
  if (size) std::memcpy(b.data(), src, size);
  return b;
}

void AlignedBuffer::Free::operator()(uint8_t* p) const noexcept {
  if (mapped_bytes > 0) {
    ::munmap(p, mapped_bytes);
  } else {
    std::free(p);
  }
}

}  // namespace slmc
