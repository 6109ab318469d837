// Safe input opening (include/slmc/io/safe_input.hpp).
#include "slmc/io/safe_input.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace slmc {
namespace {
const char* kind_of(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISCHR(m) || S_ISBLK(m)) return "a device";
  return "not a regular file";
}
}  // namespace

Result<int> open_regular_file(const std::string& path, uint64_t* size) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return make_error(ErrorCode::kIoError, path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return make_error(ErrorCode::kIoError, path + ": cannot stat: " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(ErrorCode::kIoError, path + ": is " + std::string(kind_of(st.st_mode)) +
                                               ", not a regular file; inputs must be regular files");
  }
  // Regular files ignore O_NONBLOCK for reads; clear it anyway so later reads behave normally.
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  if (size != nullptr) *size = static_cast<uint64_t>(st.st_size);
  return fd;
}

Result<std::string> read_input_file(const std::string& path, uint64_t max_bytes) {
  uint64_t bytes = 0;
  SLMC_ASSIGN_OR_RETURN(int fd, open_regular_file(path, &bytes));
  if (bytes > max_bytes) {
    ::close(fd);
    return make_error(ErrorCode::kOutOfRange, path + ": " + std::to_string(bytes) + " bytes, more than the " +
                                                  std::to_string(max_bytes) + " this input may have");
  }
  std::string out;
  out.reserve(static_cast<size_t>(bytes));
  char buf[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      return make_error(ErrorCode::kIoError, path + ": read failed: " + std::strerror(e));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes) {  // the file grew while being read
      ::close(fd);
      return make_error(ErrorCode::kOutOfRange, path + ": more than the " + std::to_string(max_bytes) +
                                                    " bytes this input may have");
    }
  }
  ::close(fd);
  return out;
}

Status check_json_depth(std::string_view text, const std::string& where, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) {
        return make_error(ErrorCode::kInvalidFormat, where + ": JSON nested deeper than " +
                                                         std::to_string(max_depth) + " levels (at byte " +
                                                         std::to_string(i) + ")");
      }
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return Status::ok_status();
}

}  // namespace slmc
