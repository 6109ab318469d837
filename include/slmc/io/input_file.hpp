// Reading an input the toolkit does not own (a source model, a tokenizer file) with pread instead
// of a memory mapping. A mapped file that another process truncates turns the next access to the
// lost pages into SIGBUS; a read of a file that shrank is a short read, reported here as kIoError
// naming the file, the offset and the size the file has now (docs/CLI.md "Failure behaviour").
// The .slm loader (ModelFile) keeps its zero-copy MappedFile: replace a mapped .slm by rename.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "slmc/status.hpp"

namespace slmc {

class InputFile {
 public:
  /// Opens `path` read-only (open_regular_file: never blocks, regular files only) and records its size.
  static Result<std::shared_ptr<const InputFile>> open(const std::string& path);

  /// Wraps bytes the caller keeps alive (fuzzers, tests): no descriptor, no ownership.
  static std::shared_ptr<const InputFile> borrow(const void* data, uint64_t size, std::string name);

  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  /// The size at open; readers validate every offset against it.
  uint64_t size() const noexcept { return size_; }
  const std::string& path() const noexcept { return path_; }
  /// True if [offset, offset + length) lies inside the file as opened (overflow-safe).
  bool contains(uint64_t offset, uint64_t length) const noexcept {
    return offset <= size_ && length <= size_ - offset;
  }

  /// Reads exactly `length` bytes at `offset` into `out` (thread-safe: pread). kOutOfRange when the
  /// range lies outside the file as opened; kIoError when the file shrank since (or the read fails),
  /// naming the file, the offset and the current size.
  Status read(uint64_t offset, void* out, uint64_t length) const;

  /// The bytes [offset, offset + length) as a string (headers, JSON, small files).
  Result<std::string> read_string(uint64_t offset, uint64_t length) const;

 private:
  InputFile() = default;
  int fd_ = -1;
  const uint8_t* borrowed_ = nullptr;
  uint64_t size_ = 0;
  std::string path_;
};

}  // namespace slmc
