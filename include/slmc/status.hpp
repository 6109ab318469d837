// Error model: every public operation that can fail on user input returns a Status or Result<T>.
// Codes are stable (they appear in JSON reports and exit-code mappings): never renumber or reuse.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "slmc/check.hpp"

namespace slmc {

enum class ErrorCode : int32_t {
  kOk = 0,
  kInvalidArgument = 1,   ///< a caller-supplied value is wrong (shape mismatch, bad scheme string)
  kIoError = 2,           ///< open/read/write/mmap/rename failed
  kInvalidFormat = 3,     ///< a file's content is malformed (bad header, bad offsets, bad JSON)
  kUnsupported = 4,       ///< valid but not supported here (dtype, format version, ISA)
  kOutOfRange = 5,        ///< a size, offset or index is out of bounds or overflows
  kChecksumMismatch = 6,  ///< stored and recomputed checksums differ
  kNonFinite = 7,         ///< NaN or Inf where finite numbers are required
  kNotFound = 8,          ///< a named tensor or key does not exist
  kInternal = 9,          ///< a bug in slmc: please report it
  kOutOfMemory = 10,      ///< an allocation failed
  kBudgetExceeded = 11,   ///< a size or error budget (gate) was exceeded
};

/// Stable lower-case name of an error code ("invalid_argument"), for reports.
constexpr const char* error_code_name(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kOk: return "ok";
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kIoError: return "io_error";
    case ErrorCode::kInvalidFormat: return "invalid_format";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kOutOfRange: return "out_of_range";
    case ErrorCode::kChecksumMismatch: return "checksum_mismatch";
    case ErrorCode::kNonFinite: return "non_finite";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kInternal: return "internal";
    case ErrorCode::kOutOfMemory: return "out_of_memory";
    case ErrorCode::kBudgetExceeded: return "budget_exceeded";
  }
  return "unknown";
}

/// Success, or an error code with a message that names the operation, file, tensor and value.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok_status() { return Status(); }

  bool ok() const noexcept { return code_ == ErrorCode::kOk; }
  ErrorCode code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }

  /// "invalid_format: model.safetensors: tensor 'w': offsets [0, 12) overlap ..."
  std::string to_string() const {
    if (ok()) return "ok";
    return std::string(error_code_name(code_)) + ": " + message_;
  }

  /// Prefixes context ("reading x.gguf: ") to the message of an error; no-op on success.
  Status with_context(const std::string& context) const {
    if (ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

inline Status make_error(ErrorCode code, std::string message) { return Status(code, std::move(message)); }

/// A value of type T or an error Status. Accessing the value of an error is a bug (SLMC_CHECK).
template <typename T>
class [[nodiscard]] Result {
  static_assert(!std::is_same_v<std::decay_t<T>, Status>, "Result<Status> is not meaningful");

 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    SLMC_CHECK(!status_.ok(), "Result constructed from an ok Status without a value");
  }

  bool ok() const noexcept { return value_.has_value(); }
  const Status& status() const noexcept { return status_; }

  T& value() & {
    SLMC_CHECK(ok(), "value() of an error Result: %s", status_.to_string().c_str());
    return *value_;
  }
  const T& value() const& {
    SLMC_CHECK(ok(), "value() of an error Result: %s", status_.to_string().c_str());
    return *value_;
  }
  T&& value() && {
    SLMC_CHECK(ok(), "value() of an error Result: %s", status_.to_string().c_str());
    return std::move(*value_);
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace slmc

#define SLMC_CONCAT_INNER_(a, b) a##b
#define SLMC_CONCAT_(a, b) SLMC_CONCAT_INNER_(a, b)

/// Returns the Status from the enclosing function if `expr` (a Status) is an error.
#define SLMC_RETURN_IF_ERROR(expr)                         \
  do {                                                     \
    ::slmc::Status slmc_status_ = (expr);                  \
    if (!slmc_status_.ok()) return slmc_status_;           \
  } while (0)

/// `SLMC_ASSIGN_OR_RETURN(auto x, make_x());` declares x from a Result or returns its error.
#define SLMC_ASSIGN_OR_RETURN(lhs, expr) \
  SLMC_ASSIGN_OR_RETURN_IMPL_(SLMC_CONCAT_(slmc_result_, __LINE__), lhs, expr)
#define SLMC_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()
