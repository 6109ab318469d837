// Safe outputs: checks on an output path before anything is written, and a directory that appears
// at its destination only when complete (written beside it, then renamed).
//
// Policy (docs/CLI.md "Outputs"): an output that names one of the command's inputs (same file,
// through any path or link) is refused always; an existing output that is not what the command
// writes (a device, FIFO, socket, symlink, or a directory where a file is written, and the
// reverse) is refused unless `force`, and then replaced, never written through.
#pragma once

#include <string>
#include <vector>

#include "slmc/status.hpp"

namespace slmc {

enum class OutputKind { kFile, kDirectory };

/// kInvalidArgument naming the path and what is there when the output may not be written.
Status check_output_path(const std::string& output, const std::vector<std::string>& inputs, OutputKind kind,
                         bool force);

/// Writes `bytes` to `path` (created with O_EXCL: the path must not exist) and fsyncs it.
Status write_new_file(const std::string& path, const std::string& bytes);

/// A file being written for `destination`, in its directory, that appears there only at commit().
/// Where the file system supports it the file is anonymous (O_TMPFILE) until commit() links it in,
/// so nothing is left behind even if the process is killed (SIGKILL, out of memory); elsewhere it
/// is ".NAME.tmp-XXXXXX" (mkstemp: unpredictable, O_EXCL, never through a planted link),
/// registered so that install_signal_cleanup()'s handler removes it on SIGINT, SIGTERM or SIGHUP.
/// The destructor removes it unless commit() succeeded.
class TempFile {
 public:
  static Result<TempFile> create(const std::string& destination);
  TempFile(TempFile&& other) noexcept;
  TempFile& operator=(TempFile&&) = delete;
  TempFile(const TempFile&) = delete;
  ~TempFile();

  int fd() const noexcept { return fd_; }
  /// For messages: "<destination> (temporary <name>)", or "<destination> (anonymous temporary)".
  std::string describe() const;
  /// fsyncs, closes, puts the file at the destination (rename over whatever regular file is
  /// there), fsyncs the directory. On failure the temporary is removed and the destination
  /// untouched.
  Status commit();

 private:
  TempFile() = default;
  void discard() noexcept;
  std::string destination_, dir_, temp_path_;  ///< temp_path_ empty: anonymous
  int fd_ = -1;
  bool done_ = false;
};

/// The whole of `bytes` at `path`, atomically (TempFile + write + commit).
Status write_file_atomic(const std::string& path, const std::string& bytes);

/// Installs (once) handlers for SIGINT, SIGTERM and SIGHUP that remove every registered named
/// temporary file (TempFile, AtomicDirectory) and then die of the same signal. For programs (the
/// CLI); a library user that wants this calls it too.
void install_signal_cleanup();

/// A directory built at a unique temporary path in the destination's parent directory
/// (DEST.tmp-XXXXXX) and renamed onto DEST by commit(). The destructor removes the temporary
/// directory and everything in it unless commit() succeeded. An existing DEST is replaced only
/// when `replace` (it is moved aside, the new directory renamed in, the old one removed).
class AtomicDirectory {
 public:
  static Result<AtomicDirectory> create(const std::string& destination, bool replace);
  AtomicDirectory(AtomicDirectory&& other) noexcept;
  AtomicDirectory& operator=(AtomicDirectory&&) = delete;
  AtomicDirectory(const AtomicDirectory&) = delete;
  ~AtomicDirectory();

  /// The temporary directory to write into.
  const std::string& path() const noexcept { return temp_; }
  /// fsyncs the directory, renames it onto the destination and fsyncs the parent.
  Status commit();

 private:
  AtomicDirectory(std::string destination, std::string temp, bool replace)
      : destination_(std::move(destination)), temp_(std::move(temp)), replace_(replace) {}
  std::string destination_, temp_;
  bool replace_ = false;
  bool committed_ = false;
};

}  // namespace slmc
