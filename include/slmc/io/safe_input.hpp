// Opening inputs safely (docs/CLI.md "Failure behaviour"): only regular files are read, and
// opening never blocks (a FIFO or device given as an input is refused at once, not waited on);
// JSON text is checked for nesting depth before any parser (or dumper) recurses into it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "slmc/status.hpp"

namespace slmc {

/// Deepest JSON nesting any input may have (arrays and objects); real files need a handful.
inline constexpr int kMaxJsonDepth = 64;

/// Opens `path` read-only with O_NONBLOCK, refuses anything but a regular file, returns the
/// descriptor (the caller closes it) and, when `size` is given, the file's size at opening.
/// kIoError naming the path and what it is.
Result<int> open_regular_file(const std::string& path, uint64_t* size = nullptr);

/// The bytes of a regular file of at most `max_bytes` (kOutOfRange above it).
Result<std::string> read_input_file(const std::string& path, uint64_t max_bytes = uint64_t{1} << 30);

/// kInvalidFormat when `text`, read as JSON, nests arrays/objects deeper than `max_depth`
/// (brackets inside strings do not count). Linear time, no recursion.
Status check_json_depth(std::string_view text, const std::string& where, int max_depth = kMaxJsonDepth);

}  // namespace slmc
