// Process exit codes of slm-compress. Stable: CI/CD pipelines gate on them.
#pragma once

#include "slmc/status.hpp"

namespace slmc::cli {

enum ExitCode : int {
  kExitOk = 0,
  kExitInternal = 1,      ///< a bug or an unexpected failure (I/O errors writing the output too)
  kExitUsage = 2,         ///< bad command line (every parse error), unknown recipe/scheme keys
  kExitBadInput = 3,      ///< input unreadable or invalid (malformed, unsupported, non-finite)
  kExitGate = 4,          ///< a size or error budget was exceeded
  kExitVerifyFailed = 5,  ///< checksum or recorded statistics mismatch
};

/// Maps a library error to the exit code a pipeline sees.
inline int exit_code_for(const Status& s) {
  switch (s.code()) {
    case ErrorCode::kOk: return kExitOk;
    case ErrorCode::kInvalidArgument: return kExitUsage;
    case ErrorCode::kIoError:
    case ErrorCode::kInvalidFormat:
    case ErrorCode::kUnsupported:
    case ErrorCode::kOutOfRange:
    case ErrorCode::kNonFinite:
    case ErrorCode::kNotFound: return kExitBadInput;
    case ErrorCode::kChecksumMismatch: return kExitVerifyFailed;
    case ErrorCode::kBudgetExceeded: return kExitGate;
    case ErrorCode::kInternal:
    case ErrorCode::kOutOfMemory: return kExitInternal;
  }
  return kExitInternal;
}

}  // namespace slmc::cli
