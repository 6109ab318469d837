// AlignedBuffer's allocation (include/slmc/buffer.hpp).
#include "slmc/buffer.hpp"

#include <sys/mman.h>

namespace slmc {
namespace {
constexpr size_t kMapThreshold = size_t{1} << 20;
}  // namespace

AlignedBuffer::AlignedBuffer(size_t size) : size_(size) {
  if (size == 0) return;
  const size_t rounded = (size + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
  if (rounded >= kMapThreshold) {
    // Page-aligned (so 64-byte aligned) and zero-filled by the kernel.
    void* p = ::mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    data_ = std::unique_ptr<uint8_t, Free>(static_cast<uint8_t*>(p), Free{rounded});
    return;
  }
  void* p = std::aligned_alloc(kBufferAlignment, rounded);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, rounded);
  data_ = std::unique_ptr<uint8_t, Free>(static_cast<uint8_t*>(p), Free{0});
}

void AlignedBuffer::Free::operator()(uint8_t* p) const noexcept {
  if (mapped_bytes > 0) {
    ::munmap(p, mapped_bytes);
  } else {
    std::free(p);
  }
}

}  // namespace slmc
