// Read-only memory mapping of a whole file: the zero-copy backing store of the .slm loader. Works
// on read-only file systems (PROT_READ, MAP_SHARED of an O_RDONLY descriptor). A mapped file that
// is truncated while mapped raises SIGBUS on the next access to a lost page, so only files slmc
// writes (and replaces by rename) are mapped; source models are read with InputFile (pread).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "slmc/status.hpp"

namespace slmc {

class MappedFile {
 public:
  /// Maps `path` read-only. An empty file maps to data() == nullptr, size() == 0.
  static Result<std::shared_ptr<const MappedFile>> open(const std::string& path);

  /// Wraps bytes the caller keeps alive (fuzzers, tests): no mapping, no ownership.
  static std::shared_ptr<const MappedFile> borrow(const void* data, uint64_t size, std::string name);

  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const noexcept { return data_; }
  uint64_t size() const noexcept { return size_; }
  const std::string& path() const noexcept { return path_; }
  /// True if [offset, offset + length) lies inside the file (overflow-safe).
  bool contains(uint64_t offset, uint64_t length) const noexcept {
    return offset <= size_ && length <= size_ - offset;
  }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  bool mapped_ = false;
  std::string path_;
};

}  // namespace slmc
