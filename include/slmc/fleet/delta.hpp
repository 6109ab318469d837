// Deltas between two .slm files: an update that turns OLD into NEW byte for byte, shipping only
// what OLD does not already hold. docs/FLEET.md specifies the `.slmdelta` format; the reference
// implementation is src/fleet/delta.cpp.
//
//   write_delta(OLD, NEW) -> U     segments of NEW found in OLD (checksum, size, then the bytes)
//                                  are referenced by their OLD offset; changed ones travel as
//                                  zstd(NEW xor OLD) or zstd(NEW - OLD) against the same tensor's
//                                  old segment, as zstd(NEW) or raw, whichever is smallest; NEW's header travels
//                                  too (zstd with OLD's header as a prefix dictionary)
//   apply_delta(OLD, U) -> NEW     checks U's checksums and OLD's identity (size + whole-file
//                                  xxh64) before anything is written, streams NEW into a temporary
//                                  beside the destination (memory: a few MiB, whatever the tensor
//                                  sizes), verifies NEW's preamble, header and every segment's
//                                  xxh64 and NEW's whole-file xxh64, then renames it into place
//
// Errors are Status values (no exceptions cross this API). A delta for another base is
// kChecksumMismatch with nothing written; a truncated or malformed delta is kInvalidFormat (or
// kChecksumMismatch when only its checksum tells). A signature that does not verify is
// kChecksumMismatch too; a missing or malformed signature file kIoError / kInvalidFormat.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "slmc/fleet/signature.hpp"
#include "slmc/status.hpp"

namespace slmc {

inline constexpr char kDeltaMagic[8] = {'S', 'L', 'M', 'D', 'E', 'L', 'T', 'A'};
inline constexpr uint16_t kDeltaFormatMajor = 1;
inline constexpr uint16_t kDeltaFormatMinor = 0;
inline constexpr uint64_t kDeltaPreambleBytes = 128;
inline constexpr uint64_t kDeltaOpBytes = 56;
/// Largest OLD range a `zstd_prefix` op may use as its dictionary (it is held in memory by apply).
inline constexpr uint64_t kDeltaMaxPrefixBytes = uint64_t{64} << 20;
/// zstd frames in a delta may not need a window above 2^kDeltaMaxWindowLog bytes (apply's memory).
inline constexpr int kDeltaMaxWindowLog = 24;

/// What an op does to produce its range of NEW (stored in files: values never reused).
enum class DeltaOpKind : uint8_t {
  kZero = 0,     ///< new_len zero bytes (padding between segments)
  kCopy = 1,     ///< OLD[old_offset, +new_len)
  kLiteral = 2,  ///< the payload, decoded
  kXor = 3,      ///< OLD[old_offset, +new_len) xor the decoded payload
  kAdd = 4,      ///< OLD[old_offset, +new_len) plus the decoded payload, byte by byte modulo 256
};

/// How an op's payload is stored (stored in files: values never reused).
enum class DeltaCodec : uint8_t {
  kNone = 0,        ///< no payload (kZero, kCopy)
  kRaw = 1,         ///< the bytes as they are
  kZstd = 2,        ///< one zstd frame
  kZstdPrefix = 3,  ///< one zstd frame compressed with OLD[old_offset, +old_len) as a raw prefix dictionary
};

std::string_view delta_op_kind_name(DeltaOpKind kind) noexcept;
std::string_view delta_codec_name(DeltaCodec codec) noexcept;

struct DeltaOptions {
  int zstd_level = 19;  ///< 1..19; diff must use the same level to predict the delta's exact size
  bool force = false;   ///< replace an existing output that is not a regular file (check_output_path)
};

/// How one range of NEW travels: a tensor segment, NEW's header (preamble + FlatBuffers + padding)
/// or the zero padding between segments.
struct DeltaItem {
  std::string tensor;  ///< the first tensor of NEW owning the segment; empty for header / padding
  std::string what;    ///< segment role ("values", "scales", ...), "header" or "padding"
  DeltaOpKind kind = DeltaOpKind::kZero;
  DeltaCodec codec = DeltaCodec::kNone;
  uint64_t bytes = 0;    ///< bytes of NEW produced
  uint64_t shipped = 0;  ///< payload bytes in the delta
};

struct DeltaStats {
  uint64_t delta_bytes = 0;     ///< the whole .slmdelta file
  uint64_t old_file_bytes = 0;
  uint64_t new_file_bytes = 0;
  uint64_t payload_bytes = 0;   ///< sum of the ops' payloads
  uint64_t copied_bytes = 0;    ///< bytes of NEW referenced from OLD
  uint64_t xor_bytes = 0;       ///< bytes of NEW shipped as a xor against OLD
  uint64_t add_bytes = 0;       ///< bytes of NEW shipped as a bytewise difference from OLD
  uint64_t literal_bytes = 0;   ///< bytes of NEW shipped whole (raw or compressed)
  uint64_t zero_bytes = 0;      ///< padding
  uint64_t changed_segment_bytes = 0;  ///< NEW segment bytes not found in OLD (what xor/literal ops carry)
  uint64_t op_count = 0;        ///< ops in the delta (consecutive copies are merged into one)
  std::vector<DeltaItem> items;  ///< one per segment, header or padding, in NEW's byte order
};

/// Writes the delta from `old_path` to `new_path` at `out_path` (atomically: temporary beside it,
/// renamed when complete; an output naming an input is refused). Both inputs are loaded with every
/// segment checksum verified. `stats`, when given, receives what was written.
Status write_delta(const std::string& old_path, const std::string& new_path, const std::string& out_path,
                   const DeltaOptions& options = {}, DeltaStats* stats = nullptr);

/// Exactly what write_delta would write (same code, a counting sink), without writing anything:
/// `delta_bytes` is the size of the delta write_delta produces with the same options.
Result<DeltaStats> measure_delta(const std::string& old_path, const std::string& new_path,
                                 const DeltaOptions& options = {});

struct ApplyOptions {
  bool force = false;  ///< replace an existing output that is not a regular file
  /// When set, the delta must carry a valid Ed25519 signature by this key (docs/FLEET.md §6):
  /// it is checked after the delta's checksums and before its op table, the base or any output
  /// is touched. The payloads are hashed again as apply uses them and must be the signed bytes,
  /// so a delta rewritten during apply is refused before the rename.
  std::optional<PublicKey> public_key;
  std::string signature_path;  ///< empty: the delta's path + ".sig"
  /// Called after each op is reconstructed and checked, with NEW's bytes done and its size (an
  /// updater's progress bar). Nothing is visible at the output until apply_delta returns OK.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

struct ApplyStats {
  uint64_t new_file_bytes = 0;
  uint64_t new_xxh64 = 0;          ///< whole-file xxh64 of the output
  uint64_t op_count = 0;
  uint64_t segments_verified = 0;  ///< distinct segments of NEW whose xxh64 was checked
  bool signature_verified = false;  ///< ApplyOptions::public_key was given and the signature held
  std::string signer_key_id;        ///< its key id
};

/// Reconstructs NEW from `old_path` and the delta at `delta_path` into `out_path`. Nothing is
/// written unless the delta's checksums (and signature, with ApplyOptions::public_key), OLD's
/// identity and every checksum of the result match.
Status apply_delta(const std::string& old_path, const std::string& delta_path, const std::string& out_path,
                   const ApplyOptions& options = {}, ApplyStats* stats = nullptr);

}  // namespace slmc
