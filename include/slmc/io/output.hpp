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

/// Creates a temporary file for `destination` in its directory (".NAME.tmp-XXXXXX", mkstemp:
/// unpredictable, O_EXCL, never through a planted link); returns its descriptor and path.
Result<int> create_temp_beside(const std::string& destination, std::string* temp_path);
/// fsyncs and closes `fd`, renames `temp_path` onto `destination`, fsyncs the directory; on any
/// failure the temporary file is removed and nothing is left at `destination`.
Status commit_temp(int fd, const std::string& temp_path, const std::string& destination);
/// The whole of `bytes` at `path`, atomically (create_temp_beside + write + commit_temp).
Status write_file_atomic(const std::string& path, const std::string& bytes);

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
