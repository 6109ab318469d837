// The .slm model file: writer (streaming, atomic) and loader (mmap, verified, zero-copy views).
// docs/FORMAT.md is the byte-level specification.
//
//   [0, 64)           preamble: magic "SLMCFILE", format version, flatbuffer and data locations
//   [64, 64 + F)      FlatBuffers root table slmc.fb.Model (file identifier "SLMC"), schema/slm.fbs
//   [D, D + S)        data section, D a multiple of 64: tensor segments, each 64-byte aligned,
//                     referenced by 64-bit (offset, size) relative to D
//
// This header does not expose FlatBuffers types: everything is copied into the plain structs below
// at load time (the descriptions are small; tensor data stays in the mapping).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "slmc/codec.hpp"  // encoding_name: the name stored in encodings_used
#include "slmc/encoding.hpp"
#include "slmc/io/mapped_file.hpp"
#include "slmc/io/model_source.hpp"
#include "slmc/status.hpp"
#include "slmc/tensor.hpp"

namespace slmc {

/// Format version written by this library. A reader accepts any minor of its major and rejects a
/// newer major (kUnsupported). Minor versions only add fields.
inline constexpr uint16_t kFormatMajor = 1;
/// The newest minor version this library reads and writes (1.1: the tokenizer; 1.2: value type
/// nl4). The writer stores the lowest minor that describes the file: 1.2 only when it uses nl4.
inline constexpr uint16_t kFormatMinor = 2;
inline constexpr size_t kPreambleBytes = 64;
inline constexpr uint64_t kSegmentAlignment = 64;
inline constexpr char kFileMagic[8] = {'S', 'L', 'M', 'C', 'F', 'I', 'L', 'E'};
/// Upper bound on the flatbuffer (FlatBuffers' own limit is 2 GiB; descriptions are far smaller).
inline constexpr uint64_t kMaxFlatbufferBytes = uint64_t{1} << 30;

/// Everything in the file except the tensors.
struct ModelHeader {
  uint16_t format_major = kFormatMajor;  ///< set by the writer; as read by the loader
  uint16_t format_minor = kFormatMinor;
  std::string producer = "slm-compress";
  std::string producer_version;          ///< the writer fills in kVersionString when empty
  std::vector<SourceFileInfo> sources;   ///< name, sha256, size, format (path is not stored)
  std::string recipe;                    ///< the recipe as applied (JSON text), may be empty
  Metadata architecture;                 ///< GGUF-style keys (general.architecture, llama.*, ...)
  Metadata metadata;                     ///< free-form
  TokenizerData tokenizer;               ///< 1.1; empty() when the file has none
};

/// One distinct encoding used by a file and how many tensors use it.
struct EncodingUse {
  std::string name;
  Encoding encoding;
  uint64_t tensor_count = 0;
};

/// Location and checksum of one stored segment.
struct SegmentRecord {
  SegmentRole role = SegmentRole::kValues;
  uint64_t offset = 0;  ///< relative to the data section
  uint64_t size = 0;
  uint64_t xxh64 = 0;
};

/// A tensor as stored in a loaded file. `view` points into the mapping (64-byte aligned segments).
struct StoredTensor {
  std::string name;
  Shape shape;
  EncodedMatrixView view;  ///< rows = shape.rows(), cols = shape.cols()
  ErrorStats stats;
  DType source_dtype = DType::kF32;
  bool transposed = false;
  std::vector<SegmentRecord> segments;  ///< non-empty segments, sorted by role
};

/// Per-tensor information the writer stores next to the encoded data.
struct TensorInfo {
  std::string name;
  Shape shape;       ///< rows() and cols() must equal the matrix's rows and cols
  ErrorStats stats;
  DType source_dtype = DType::kF32;
  bool transposed = false;
};

/// Streaming writer. Tensors are written to disk as they are added (memory ≈ one tensor); the
/// file appears at `path` only when finish() succeeds (temporary file in the same directory,
/// fsync, rename). If finish() is not reached or fails, nothing is left behind.
///
/// Output is a pure function of the header and the added tensors, in order: no timestamps, no
/// addresses, no hash-map order. Segments with identical bytes are stored once (xxh64 + memcmp).
class ModelFileWriter {
 public:
  static Result<std::unique_ptr<ModelFileWriter>> create(const std::string& path, ModelHeader header);
  /// A writer that lays the file out exactly as create() would and writes nothing: finish()
  /// computes file_size() (--dry-run). Duplicate segments are recognised by equal xxh64 and size
  /// alone (create() also compares the bytes), so a hash collision would count one segment less.
  /// `path` only names the file in messages.
  static Result<std::unique_ptr<ModelFileWriter>> create_sizer(const std::string& path, ModelHeader header);
  ~ModelFileWriter();
  ModelFileWriter(const ModelFileWriter&) = delete;
  ModelFileWriter& operator=(const ModelFileWriter&) = delete;

  /// Validates and appends one tensor. The view's data is only read during the call.
  Status add(const TensorInfo& info, const EncodedMatrixView& matrix);
  /// Writes the header and data, fsyncs and renames to the destination. Call once.
  Status finish();
  /// Removes the temporary files (also done by the destructor if finish() did not succeed).
  void abort() noexcept;

  uint64_t tensor_count() const noexcept;
  uint64_t data_bytes() const noexcept;     ///< data section size so far (after deduplication)
  uint64_t deduplicated_bytes() const noexcept;  ///< bytes not written because they were duplicates
  uint64_t file_size() const noexcept;      ///< the whole file's size, after a successful finish()

 private:
  struct Impl;
  explicit ModelFileWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct LoadOptions {
  bool verify_checksums = false;  ///< recompute every segment's xxh64 at load (reads all data)
};

/// A loaded .slm file. Views stay valid while the ModelFile lives.
class ModelFile {
 public:
  /// Maps `path` read-only and validates everything before returning: preamble, format version,
  /// FlatBuffers Verifier, every segment's bounds and alignment, every shape, every encoding against
  /// its segment sizes (validate_dense_matrix / validate_sparse_matrix).
  static Result<std::unique_ptr<ModelFile>> open(const std::string& path, const LoadOptions& options = {});
  /// Same, on bytes the caller keeps alive (must be 64-byte aligned for zero-copy alignment).
  static Result<std::unique_ptr<ModelFile>> open_mapped(std::shared_ptr<const MappedFile> file,
                                                        const LoadOptions& options = {});

  const ModelHeader& header() const noexcept { return header_; }
  const std::vector<StoredTensor>& tensors() const noexcept { return tensors_; }
  const std::vector<EncodingUse>& encodings_used() const noexcept { return encodings_used_; }
  const std::vector<RowLayout>& row_layouts_used() const noexcept { return row_layouts_used_; }
  /// The tensor named `name`, or nullptr.
  const StoredTensor* find(std::string_view name) const noexcept;
  /// Recomputes every segment's xxh64; kChecksumMismatch names the tensor and segment.
  Status verify() const;
  uint64_t file_size() const noexcept { return file_->size(); }
  uint64_t data_offset() const noexcept { return data_offset_; }
  const std::string& path() const noexcept { return file_->path(); }

 private:
  ModelFile() = default;
  std::shared_ptr<const MappedFile> file_;
  ModelHeader header_;
  std::vector<StoredTensor> tensors_;
  std::vector<EncodingUse> encodings_used_;
  std::vector<RowLayout> row_layouts_used_;
  uint64_t data_offset_ = 0;
};

/// Convenience: writes every tensor of `source` as a dense float encoding of `value_type`
/// (f32: zero-copy from the source when it is f32), with the source's files, architecture and
/// metadata, and `recipe` as the recipe. Non-float tensors are kUnsupported.
Status write_dense_model(const ModelSource& source, const std::string& path, ValueType value_type = ValueType::kF32,
                         const std::string& recipe = "");

}  // namespace slmc
