#include "slmc/io/mapped_file.hpp"

#include "slmc/io/safe_input.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace slmc {

Result<std::shared_ptr<const MappedFile>> MappedFile::open(const std::string& path) {
  // Never blocks: a FIFO, device or directory is refused before anything waits on it.
  uint64_t size = 0;
  SLMC_ASSIGN_OR_RETURN(const int fd, open_regular_file(path, &size));
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->path_ = path;
  file->size_ = size;
  if (file->size_ > 0) {
    void* p = ::mmap(nullptr, file->size_, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      return make_error(ErrorCode::kIoError, path + ": mmap of " + std::to_string(file->size_) +
                                                 " bytes failed: " + std::strerror(err));
    }
    file->data_ = static_cast<const uint8_t*>(p);
    file->mapped_ = true;
  }
  ::close(fd);  // the mapping keeps the file alive
  return std::shared_ptr<const MappedFile>(std::move(file));
}

std::shared_ptr<const MappedFile> MappedFile::borrow(const void* data, uint64_t size, std::string name) {
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->data_ = static_cast<const uint8_t*>(data);
  file->size_ = size;
  file->path_ = std::move(name);
  return file;
}

MappedFile::~MappedFile() {
  if (mapped_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace slmc
