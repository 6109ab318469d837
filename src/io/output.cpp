// Safe outputs (include/slmc/io/output.hpp).
#include "slmc/io/output.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <atomic>
#include <mutex>
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
  // A name the file system cannot hold fails now, not after the whole conversion.
  {
    std::string trimmed = output;
    while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
    const size_t slash = trimmed.find_last_of('/');
    const std::string base = slash == std::string::npos ? trimmed : trimmed.substr(slash + 1);
    long name_max = ::pathconf(parent_of(trimmed).c_str(), _PC_NAME_MAX);
    if (name_max <= 0) name_max = 255;
    if (static_cast<long>(base.size()) > name_max) {
      return make_error(ErrorCode::kInvalidArgument, output.substr(0, 80) + "...: the file name is " +
                                                         std::to_string(base.size()) + " bytes, longer than the " +
                                                         std::to_string(name_max) + " its file system allows");
    }
  }
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

// ---- temporary-file registry for signal handlers: fixed slots, async-signal-safe to read ----
namespace {
constexpr int kTempSlots = 64;
constexpr size_t kTempPathMax = 4096;
char g_temp_paths[kTempSlots][kTempPathMax];
volatile sig_atomic_t g_temp_used[kTempSlots];
std::mutex g_temp_mutex;

int register_temp(const std::string& path) {
  if (path.size() >= kTempPathMax) return -1;
  std::lock_guard<std::mutex> lock(g_temp_mutex);
  for (int i = 0; i < kTempSlots; ++i) {
    if (!g_temp_used[i]) {
      std::memcpy(g_temp_paths[i], path.c_str(), path.size() + 1);
      // The handler reads the slot as soon as the flag is set: the path must be complete first.
      std::atomic_signal_fence(std::memory_order_seq_cst);
      g_temp_used[i] = 1;
      return i;
    }
  }
  return -1;
}
void unregister_temp(int slot) {
  if (slot < 0) return;
  std::lock_guard<std::mutex> lock(g_temp_mutex);
  g_temp_used[slot] = 0;
}
int slot_of(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_temp_mutex);
  for (int i = 0; i < kTempSlots; ++i) {
    if (g_temp_used[i] && path == g_temp_paths[i]) return i;
  }
  return -1;
}
extern "C" void slmc_cleanup_handler(int sig) {
  for (int i = 0; i < kTempSlots; ++i) {
    if (g_temp_used[i]) {
      // unlink is async-signal-safe; a registered directory (AtomicDirectory) is emptied by
      // rmdir failing harmlessly: its files are registered one by one while being written.
      if (::unlink(g_temp_paths[i]) != 0) ::rmdir(g_temp_paths[i]);
    }
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}
}  // namespace

void install_signal_cleanup() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = slmc_cleanup_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &sa, nullptr);
  });
}

Result<TempFile> TempFile::create(const std::string& destination) {
  TempFile t;
  t.destination_ = destination;
  const size_t slash = destination.find_last_of('/');
  t.dir_ = slash == std::string::npos ? "." : (slash == 0 ? "/" : destination.substr(0, slash));
  const mode_t mask = ::umask(0);
  ::umask(mask);
#if defined(O_TMPFILE)
  // SLMC_TEST_NO_O_TMPFILE: a test hook that forces the named fallback (file systems without
  // O_TMPFILE), so its signal cleanup can be tested here.
  if (std::getenv("SLMC_TEST_NO_O_TMPFILE") == nullptr) {
    t.fd_ = ::open(t.dir_.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666 & ~mask);
    if (t.fd_ >= 0) return t;
  }
#endif
  const std::string base = slash == std::string::npos ? destination : destination.substr(slash + 1);
  // Named: ".slmc.tmp-<pid>-XXXXXX" (independent of the destination's name, which may be up to
  // NAME_MAX long). A process killed outright (SIGKILL) cannot remove its file; the next writer in
  // the same directory removes the ones whose process no longer exists.
  (void)base;
  const std::string prefix = ".slmc.tmp-";
  if (DIR* d = ::opendir(t.dir_.c_str())) {
    while (dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name.compare(0, prefix.size(), prefix) != 0) continue;
      const long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
      if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
        ::unlinkat(::dirfd(d), name.c_str(), 0);
      }
    }
    ::closedir(d);
  }
  std::string tmpl = t.dir_ + "/" + prefix + std::to_string(::getpid()) + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  t.fd_ = ::mkostemp(buf.data(), O_CLOEXEC);
  if (t.fd_ < 0) {
    return make_error(ErrorCode::kIoError, destination + ": cannot create a temporary file beside it: " +
                                               std::strerror(errno));
  }
  // mkstemp makes the file 0600; give it the mode a plain create would (0666 less the umask).
  ::fchmod(t.fd_, 0666 & ~mask);
  t.temp_path_ = buf.data();
  register_temp(t.temp_path_);
  return t;
}

TempFile::TempFile(TempFile&& o) noexcept
    : destination_(std::move(o.destination_)), dir_(std::move(o.dir_)), temp_path_(std::move(o.temp_path_)),
      fd_(o.fd_), done_(o.done_) {
  o.fd_ = -1;
  o.done_ = true;
}

TempFile::~TempFile() { discard(); }

void TempFile::discard() noexcept {
  if (done_) return;
  done_ = true;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!temp_path_.empty()) {
    ::unlink(temp_path_.c_str());
    unregister_temp(slot_of(temp_path_));
  }
}

std::string TempFile::describe() const {
  // The destination first: a user knows that name, not the temporary's.
  return destination_ + (temp_path_.empty() ? " (anonymous temporary)" : " (temporary " + temp_path_ + ")");
}

Status TempFile::commit() {
  if (done_) return make_error(ErrorCode::kInternal, destination_ + ": temporary file already committed or discarded");
  auto failed = [&](const std::string& what, int e) {
    discard();
    return make_error(ErrorCode::kIoError, destination_ + ": " + what + ": " + std::strerror(e));
  };
  if (::fsync(fd_) != 0) return failed("fsync failed", errno);
  if (temp_path_.empty()) {
    // Anonymous: give it a unique name beside the destination, then rename it over (linkat cannot
    // replace an existing file). Only this instant leaves a name that a SIGKILL could strand.
    std::string linked;
    for (int attempt = 0; attempt < 100; ++attempt) {
      char suffix[32];
      std::snprintf(suffix, sizeof suffix, ".tmp-%d-%d", static_cast<int>(::getpid()), attempt);
      linked = dir_ + "/.slmc" + suffix;
      const std::string proc = "/proc/self/fd/" + std::to_string(fd_);
      if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, linked.c_str(), AT_SYMLINK_FOLLOW) == 0) break;
      if (errno != EEXIST) return failed("cannot link the temporary file", errno);
      linked.clear();
    }
    if (linked.empty()) return failed("cannot link the temporary file", EEXIST);
    temp_path_ = linked;
    register_temp(temp_path_);
  }
  if (::close(fd_) != 0) {
    fd_ = -1;
    return failed("close failed", errno);
  }
  fd_ = -1;
  if (::rename(temp_path_.c_str(), destination_.c_str()) != 0) return failed("rename failed", errno);
  unregister_temp(slot_of(temp_path_));
  done_ = true;
  return fsync_path(dir_, true);
}

Status write_file_atomic(const std::string& path, const std::string& bytes) {
  SLMC_ASSIGN_OR_RETURN(TempFile tmp, TempFile::create(path));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t w = ::write(tmp.fd(), bytes.data() + done, bytes.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return make_error(ErrorCode::kIoError, path + ": write failed: " + std::strerror(errno));
    done += static_cast<size_t>(w);
  }
  return tmp.commit();
}

Result<AtomicDirectory> AtomicDirectory::create(const std::string& destination, bool replace) {
  std::string tmpl = destination;
  while (tmpl.size() > 1 && tmpl.back() == '/') tmpl.pop_back();
  const std::string parent = parent_of(tmpl);
  // ".slmc.dir-<pid>-XXXXXX": short whatever the destination's length. A process killed outright
  // (SIGKILL) cannot remove its directory; the next one created beside it removes those whose
  // process no longer exists, as TempFile does for files.
  const std::string prefix = ".slmc.dir-";
  if (DIR* d = ::opendir(parent.c_str())) {
    std::vector<std::string> stale;
    while (dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name.compare(0, prefix.size(), prefix) != 0) continue;
      char* end = nullptr;
      const long pid = std::strtol(name.c_str() + prefix.size(), &end, 10);
      if (pid > 0 && end && *end == '-' && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
        stale.push_back(parent + "/" + name);
      }
    }
    ::closedir(d);
    for (const std::string& s : stale) remove_tree(s);
  }
  tmpl = parent + "/" + prefix + std::to_string(::getpid()) + "-XXXXXX";
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
  register_temp(buf.data());
  return AtomicDirectory(destination, std::string(buf.data()), replace);
}

AtomicDirectory::AtomicDirectory(AtomicDirectory&& o) noexcept
    : destination_(std::move(o.destination_)), temp_(std::move(o.temp_)), replace_(o.replace_), committed_(o.committed_) {
  o.committed_ = true;  // the moved-from object owns nothing
}

AtomicDirectory::~AtomicDirectory() {
  if (!committed_ && !temp_.empty()) {
    remove_tree(temp_);
    unregister_temp(slot_of(temp_));
  }
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
  unregister_temp(slot_of(temp_));
  if (!aside.empty()) remove_tree(aside);
  return fsync_path(parent_of(destination_), true);
}

}  // namespace slmc
