// Safe outputs (include/slmc/io/output.hpp).
#include "slmc/io/output.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace slmc {
namespace {

std::string parent_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

const char* kind_of(mode_t m) {
  if (S_ISREG(m)) return "a regular file";
  if (S_ISDIR(m)) return "a directory";
  if (S_ISLNK(m)) return "a symbolic link";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISCHR(m) || S_ISBLK(m)) return "a device";
  return "a special file";
}

Status fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(ErrorCode::kIoError, path + ": open for fsync failed: " + std::strerror(errno));
  const int r = ::fsync(fd);
  const int e = errno;
  ::close(fd);
  if (r != 0 && !(directory && e == EINVAL)) {
    return make_error(ErrorCode::kIoError, path + ": fsync failed: " + std::strerror(e));
  }
  return Status::ok_status();
}

/// Removes a directory tree we created (no symlinks are followed: unlinkat on entries).
void remove_tree(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (d) {
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.push_back(e->d_name);
    }
    ::closedir(d);
    for (const std::string& n : names) {
      const std::string child = path + "/" + n;
      struct stat st {};
      if (::lstat(child.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        remove_tree(child);
      } else {
        ::unlink(child.c_str());
      }
    }
  }
  ::rmdir(path.c_str());
}

}  // namespace

Status check_output_path(const std::string& output, const std::vector<std::string>& inputs, OutputKind kind,
                         bool force) {
  if (output.empty()) return make_error(ErrorCode::kInvalidArgument, "the output path is empty");
  struct stat out {};
  if (::lstat(output.c_str(), &out) != 0) {
    if (errno == ENOENT) return Status::ok_status();
    return make_error(ErrorCode::kInvalidArgument, output + ": cannot inspect the output path: " + std::strerror(errno));
  }
  // The same file as an input, through any name (stat follows links on both sides).
  struct stat target {};
  const bool resolves = ::stat(output.c_str(), &target) == 0;
  for (const std::string& in : inputs) {
    struct stat st {};
    if (resolves && ::stat(in.c_str(), &st) == 0 && st.st_dev == target.st_dev && st.st_ino == target.st_ino) {
      return make_error(ErrorCode::kInvalidArgument, output + ": the output is the input '" + in +
                                                         "'; write to another path");
    }
  }
  const bool expected = kind == OutputKind::kFile ? S_ISREG(out.st_mode) : S_ISDIR(out.st_mode);
  if (!expected && !force) {
    return make_error(ErrorCode::kInvalidArgument,
                      output + ": exists and is " + kind_of(out.st_mode) + ", not " +
                          (kind == OutputKind::kFile ? "a regular file" : "a directory") +
                          "; refusing to replace it (--force replaces it)");
  }
  if (kind == OutputKind::kDirectory && S_ISDIR(out.st_mode) && !force) {
    return make_error(ErrorCode::kInvalidArgument,
                      output + ": the directory exists; refusing to replace it (--force replaces it)");
  }
  return Status::ok_status();
}

Status write_new_file(const std::string& path, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return make_error(ErrorCode::kIoError, path + ": cannot create: " + std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int e = errno;
      ::close(fd);
      return make_error(ErrorCode::kIoError, path + ": write failed: " + std::strerror(e));
    }
    done += static_cast<size_t>(w);
  }
  const bool synced = ::fsync(fd) == 0;
  const int e = errno;
  if (::close(fd) != 0 || !synced) {
    return make_error(ErrorCode::kIoError, path + ": write failed: " + std::strerror(synced ? errno : e));
  }
  return Status::ok_status();
}

Result<int> create_temp_beside(const std::string& destination, std::string* temp_path) {
  const size_t slash = destination.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : destination.substr(0, slash));
  const std::string base = slash == std::string::npos ? destination : destination.substr(slash + 1);
  std::string tmpl = dir + "/." + base + ".tmp-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  const int fd = ::mkostemp(buf.data(), O_CLOEXEC);
  if (fd < 0) {
    return make_error(ErrorCode::kIoError, destination + ": cannot create a temporary file beside it: " +
                                               std::strerror(errno));
  }
  // mkstemp makes the file 0600; give it the mode a plain create would (0666 less the umask).
  const mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(fd, 0666 & ~mask);
  *temp_path = buf.data();
  return fd;
}

Status commit_temp(int fd, const std::string& temp_path, const std::string& destination) {
  const bool synced = ::fsync(fd) == 0;
  const int e = errno;
  const bool closed = ::close(fd) == 0;
  if (!synced || !closed) {
    ::unlink(temp_path.c_str());
    return make_error(ErrorCode::kIoError, destination + ": write failed: " + std::strerror(synced ? errno : e));
  }
  if (::rename(temp_path.c_str(), destination.c_str()) != 0) {
    const int re = errno;
    ::unlink(temp_path.c_str());
    return make_error(ErrorCode::kIoError, destination + ": rename failed: " + std::strerror(re));
  }
  return fsync_path(parent_of(destination), true);
}

Status write_file_atomic(const std::string& path, const std::string& bytes) {
  std::string tmp;
  SLMC_ASSIGN_OR_RETURN(int fd, create_temp_beside(path, &tmp));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return make_error(ErrorCode::kIoError, path + ": write failed: " + std::strerror(e));
    }
    done += static_cast<size_t>(w);
  }
  return commit_temp(fd, tmp, path);
}

Result<AtomicDirectory> AtomicDirectory::create(const std::string& destination, bool replace) {
  std::string tmpl = destination;
  while (tmpl.size() > 1 && tmpl.back() == '/') tmpl.pop_back();
  tmpl += ".tmp-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    return make_error(ErrorCode::kIoError, destination + ": cannot create a temporary directory beside it: " +
                                               std::strerror(errno));
  }
  // mkdtemp makes the directory 0700; give it the mode a mkdir would (0777 less the umask).
  const mode_t mask = ::umask(0);
  ::umask(mask);
  ::chmod(buf.data(), 0777 & ~mask);
  return AtomicDirectory(destination, std::string(buf.data()), replace);
}

AtomicDirectory::AtomicDirectory(AtomicDirectory&& o) noexcept
    : destination_(std::move(o.destination_)), temp_(std::move(o.temp_)), replace_(o.replace_), committed_(o.committed_) {
  o.committed_ = true;  // the moved-from object owns nothing
}

AtomicDirectory::~AtomicDirectory() {
  if (!committed_ && !temp_.empty()) remove_tree(temp_);
}

Status AtomicDirectory::commit() {
  SLMC_RETURN_IF_ERROR(fsync_path(temp_, true));
  std::string aside;
  struct stat st {};
  if (::lstat(destination_.c_str(), &st) == 0) {
    if (!replace_) return make_error(ErrorCode::kInvalidArgument, destination_ + ": exists; refusing to replace it");
    // Move the old entry aside (never write through it), put the new directory in, remove the old.
    std::string tmpl = temp_ + ".old-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr) {
      return make_error(ErrorCode::kIoError, destination_ + ": cannot move the old entry aside: " + std::strerror(errno));
    }
    aside = std::string(buf.data()) + "/old";
    if (::rename(destination_.c_str(), aside.c_str()) != 0) {
      const int e = errno;
      ::rmdir(buf.data());
      return make_error(ErrorCode::kIoError, destination_ + ": cannot move the old entry aside: " + std::strerror(e));
    }
    aside = buf.data();
  }
  if (::rename(temp_.c_str(), destination_.c_str()) != 0) {
    const int e = errno;
    if (!aside.empty()) ::rename((aside + "/old").c_str(), destination_.c_str());  // put the old one back
    if (!aside.empty()) remove_tree(aside);
    return make_error(ErrorCode::kIoError, destination_ + ": rename failed: " + std::strerror(e));
  }
  committed_ = true;
  if (!aside.empty()) remove_tree(aside);
  return fsync_path(parent_of(destination_), true);
}

}  // namespace slmc
