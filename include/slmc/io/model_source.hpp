// Readers for source model files: safetensors (single file or sharded), GGUF v2/v3 and llama2.c
// checkpoints. The format is detected from the content, never from the file extension.
//
// Every reader reads its file's header with pread (InputFile) and validates every offset, size,
// shape and dtype before a tensor is described; errors name the file and the tensor. Tensor data
// stays in the file until ModelSource::load / load_f32 reads one tensor: source files are not
// ours, and a mapping of a file that shrinks while it is read would turn the next access into
// SIGBUS, where a read is a clear error (kIoError naming the file and the offset). Peak memory
// of a consumer that loads one tensor at a time is that tensor, not the model. GPT-2 Conv1D
// weights are transposed from [in, out] to [out, in] as they are loaded; GGUF Q8_0/Q4_0/Q4_1
// blocks are dequantized by load_f32.
//
// All linear weights come out as row-major [M out, K in] (nn.Linear convention).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "slmc/buffer.hpp"
#include "slmc/dtype.hpp"
#include "slmc/encoding.hpp"
#include "slmc/io/input_file.hpp"
#include "slmc/status.hpp"
#include "slmc/tensor.hpp"
#include "slmc/text/tokenizer.hpp"

namespace slmc {

enum class SourceFormat : uint8_t {
  kSafetensors = 0,
  kSafetensorsIndex = 1,  ///< model.safetensors.index.json + shards
  kGguf = 2,
  kLlama2c = 3,
};
std::string_view source_format_name(SourceFormat format) noexcept;

/// A metadata value: a plain string, or JSON text (numbers, booleans, arrays, objects).
struct MetaValue {
  enum class Kind : uint8_t { kString = 0, kJson = 1 };
  Kind kind = Kind::kString;
  std::string text;

  static MetaValue string(std::string s) { return MetaValue{Kind::kString, std::move(s)}; }
  static MetaValue json(std::string s) { return MetaValue{Kind::kJson, std::move(s)}; }
  bool operator==(const MetaValue& o) const noexcept { return kind == o.kind && text == o.text; }
  bool operator!=(const MetaValue& o) const noexcept { return !(*this == o); }
};
/// Sorted by key, so iteration (and everything written from it) is deterministic.
using Metadata = std::map<std::string, MetaValue>;

/// Architecture keys, named as GGUF names them. `arch` is general.architecture ("llama", "gpt2").
inline constexpr const char* kKeyArchitecture = "general.architecture";
/// The RoPE layout of the stored q/k weights: "<arch>.rope.layout" = kRopeInterleaved (llama2.c,
/// GGUF: rotation pairs (2i, 2i+1)) or kRopeRotateHalf (Hugging Face: pairs (i, i + d/2)).
/// Readers never permute q/k; this key says what is stored.
inline std::string rope_layout_key(std::string_view arch) { return std::string(arch) + ".rope.layout"; }
inline constexpr const char* kRopeInterleaved = "interleaved";
inline constexpr const char* kRopeRotateHalf = "rotate_half";

/// One file a model was read from.
struct SourceFileInfo {
  std::string name;    ///< file name without directory
  std::string path;    ///< path as opened
  std::string sha256;  ///< 64 lower-case hex digits
  uint64_t size = 0;
  SourceFormat format = SourceFormat::kSafetensors;
};

/// A tensor of a source model as the file's header describes it (the data is read by
/// ModelSource::load). `shape` is the shape handed out (transposed for GPT-2 Conv1D weights);
/// `nbytes` is the exact byte size of shape x dtype.
struct SourceTensor {
  std::string name;
  Shape shape;
  DType dtype = DType::kF32;
  uint64_t nbytes = 0;
};

/// Where a tensor came from (parallel to ModelSource::tensors()).
struct TensorOrigin {
  uint32_t file_index = 0;         ///< index into ModelSource::files()
  uint64_t offset = 0;             ///< byte offset of the tensor's data in that file
  DType source_dtype = DType::kF32;  ///< dtype in the source file (e.g. kQ4_0 before dequantization)
  bool transposed = false;         ///< stored [in, out] in the source, transposed on load
  std::string source_name;         ///< the name in the source file (open_model renames GGUF tensors)
};

struct OpenOptions {
  /// Compute the SHA-256 of every source file (reads each file once more). Off for fuzzing.
  bool hash_files = true;
};

/// A model read from one or more files. Immutable after open.
class ModelSource {
 public:
  SourceFormat format() const noexcept { return format_; }
  /// Tensors in file order (sharded: shard by shard), as described by the headers. Names are unique.
  const std::vector<SourceTensor>& tensors() const noexcept { return tensors_; }
  const std::vector<TensorOrigin>& origins() const noexcept { return origins_; }
  /// The tensor named `name`, or nullptr.
  const SourceTensor* find(std::string_view name) const noexcept;
  /// Index of the tensor named `name` in tensors(), or -1.
  int64_t index_of(std::string_view name) const noexcept;

  /// Reads tensor `i` (its dtype, transposed where the origin says so) into `storage` (allocated
  /// here, aligned) and returns a view of it. kIoError naming the file and offset if the file
  /// shrank since it was opened; kOutOfMemory naming the tensor.
  Result<TensorView> load(size_t i, AlignedBuffer& storage) const;
  /// Tensor `i` as fp32 into `out` (tensors()[i].shape.numel() floats): F32 read in place,
  /// F16/BF16/F64 converted and GGUF blocks dequantized chunk by chunk, so the only buffer of the
  /// tensor's size is `out`. kUnsupported for non-weight dtypes.
  Status load_f32(size_t i, float* out) const;
  /// Tensor `i` as fp32 in a new aligned buffer.
  Result<AlignedBuffer> load_f32(size_t i) const;
  /// Free-form metadata preserved from the source (safetensors __metadata__, GGUF KVs that are not
  /// architecture keys, config.json as "hf.config").
  const Metadata& metadata() const noexcept { return metadata_; }
  /// GGUF-style architecture keys (general.architecture, llama.block_count, ...).
  const Metadata& architecture() const noexcept { return architecture_; }
  const std::vector<SourceFileInfo>& files() const noexcept { return files_; }
  /// The tokenizer the source carries (GGUF tokenizer.ggml.*, tokenizer.json beside safetensors),
  /// validated; empty() when it has none. Its keys are not repeated in metadata().
  const TokenizerData& tokenizer() const noexcept { return tokenizer_; }
  /// What the reader could not use but did not need to fail for (e.g. a tokenizer of a kind slmc
  /// does not implement: the model is read without it).
  const std::vector<std::string>& warnings() const noexcept { return warnings_; }

  // --- construction (used by the readers in src/io) ---
  ModelSource() = default;
  ModelSource(const ModelSource&) = delete;
  ModelSource& operator=(const ModelSource&) = delete;
  SourceFormat format_ = SourceFormat::kSafetensors;
  std::vector<SourceTensor> tensors_;
  std::vector<TensorOrigin> origins_;
  Metadata metadata_;
  Metadata architecture_;
  std::vector<SourceFileInfo> files_;
  TokenizerData tokenizer_;
  std::vector<std::string> warnings_;
  /// The open files, parallel to files_ (TensorOrigin::file_index indexes both).
  std::vector<std::shared_ptr<const InputFile>> inputs_;
};

/// Detects the format of `path` from its content and opens it. Tensor names are canonical
/// (slmc/arch/naming.hpp: GGUF Llama-family names become Hugging Face names). `path` may be a safetensors file,
/// a model.safetensors.index.json, a GGUF file, a llama2.c checkpoint, or a directory holding
/// model.safetensors.index.json or model.safetensors.
Result<std::unique_ptr<ModelSource>> open_model(const std::string& path, const OpenOptions& options = {});

/// Format-specific entry points (open_model dispatches to these). `file` is already open; its path
/// is used in error messages. They do not hash files and do not look at neighbouring files
/// (except open_safetensors, which reads config.json beside `file` when `dir` is non-empty).
Result<std::unique_ptr<ModelSource>> open_safetensors(std::shared_ptr<const InputFile> file,
                                                      const std::string& dir = "");
Result<std::unique_ptr<ModelSource>> open_gguf(std::shared_ptr<const InputFile> file);
Result<std::unique_ptr<ModelSource>> open_llama2c(std::shared_ptr<const InputFile> file);
/// The tokenizer of a GGUF file from its metadata alone (no tensor is read); empty() when the file
/// has none.
Result<TokenizerData> read_gguf_tokenizer(std::shared_ptr<const InputFile> file);

/// How many leading bytes detect_format looks at.
inline constexpr uint64_t kDetectBytes = 4096;
/// Detected format of a file of `file_size` bytes from its first min(file_size, kDetectBytes)
/// bytes `head` (`head_size` of them), or kUnsupported / kInvalidFormat.
Result<SourceFormat> detect_format(const uint8_t* head, uint64_t head_size, uint64_t file_size,
                                   const std::string& name);

/// True for the dtypes whose tensors are weights: floats (F32, F16, BF16, F64) and GGUF's block
/// types (Q8_0, Q4_0, Q4_1), which readers hand out as raw blocks (zero-copy, not dequantized).
bool is_weight_dtype(DType dtype) noexcept;

/// The in-memory tensor's values as fp32 into `out` (shape.numel() floats): F32 copied,
/// F16/BF16/F64 converted, GGUF blocks dequantized (w = d*q for Q8_0 and Q4_0 with q = u - 8,
/// d*u + m for Q4_1). ModelSource::load_f32 applies it chunk by chunk.
Status tensor_to_f32(const TensorView& tensor, float* out);

/// Converts a weight tensor (float or GGUF block dtype) to a dense float EncodedMatrix of `value_type`
/// (kF32, kF16 or kBF16): rows = shape.rows(), cols = shape.cols(). Non-float dtypes are
/// kUnsupported. This copies; for F32 -> F32 prefer dense_float_view (zero-copy).
Result<EncodedMatrix> encode_dense_float(const TensorView& tensor, ValueType value_type = ValueType::kF32);

/// Zero-copy EncodedMatrixView of a tensor whose dtype is F32, F16 or BF16.
Result<EncodedMatrixView> dense_float_view(const TensorView& tensor);

}  // namespace slmc
