#include "slmc/io/input_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "slmc/io/safe_input.hpp"

namespace slmc {

Result<std::shared_ptr<const InputFile>> InputFile::open(const std::string& path) {
  uint64_t size = 0;
  SLMC_ASSIGN_OR_RETURN(const int fd, open_regular_file(path, &size));
  std::shared_ptr<InputFile> file(new InputFile());
  file->fd_ = fd;
  file->size_ = size;
  file->path_ = path;
  return std::shared_ptr<const InputFile>(std::move(file));
}

std::shared_ptr<const InputFile> InputFile::borrow(const void* data, uint64_t size, std::string name) {
  std::shared_ptr<InputFile> file(new InputFile());
  file->borrowed_ = static_cast<const uint8_t*>(data);
  file->size_ = size;
  file->path_ = std::move(name);
  return file;
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

Status InputFile::read(uint64_t offset, void* out, uint64_t length) const {
  if (!contains(offset, length)) {
    return make_error(ErrorCode::kOutOfRange, path_ + ": " + std::to_string(length) + " bytes at offset " +
                                                  std::to_string(offset) + " lie outside the file (" +
                                                  std::to_string(size_) + " bytes)");
  }
  if (length == 0) return Status::ok_status();
  if (fd_ < 0) {
    std::memcpy(out, borrowed_ + offset, static_cast<size_t>(length));
    return Status::ok_status();
  }
  auto* dst = static_cast<uint8_t*>(out);
  uint64_t done = 0;
  while (done < length) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(length - done, uint64_t{1} << 30));
    const ssize_t got = ::pread(fd_, dst + done, chunk, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      const int err = errno;
      return make_error(ErrorCode::kIoError, path_ + ": read of " + std::to_string(length) + " bytes at offset " +
                                                 std::to_string(offset) + " failed: " + std::strerror(err));
    }
    if (got == 0) {
      struct stat st {};
      const std::string now = ::fstat(fd_, &st) == 0 ? std::to_string(st.st_size) + " bytes" : "unknown size";
      return make_error(ErrorCode::kIoError, path_ + ": the file shrank while being read (" + std::to_string(size_) +
                                                 " bytes when opened, " + now + " now): no data at offset " +
                                                 std::to_string(offset + done));
    }
    done += static_cast<uint64_t>(got);
  }
  return Status::ok_status();
}

Result<std::string> InputFile::read_string(uint64_t offset, uint64_t length) const {
  if (!contains(offset, length)) {
    return make_error(ErrorCode::kOutOfRange, path_ + ": " + std::to_string(length) + " bytes at offset " +
                                                  std::to_string(offset) + " lie outside the file (" +
                                                  std::to_string(size_) + " bytes)");
  }
  std::string s(static_cast<size_t>(length), '\0');
  SLMC_RETURN_IF_ERROR(read(offset, s.data(), length));
  return s;
}

}  // namespace slmc
