// Format detection, open_model (including sharded safetensors) and float conversions.
#include "slmc/io/model_source.hpp"

#include "slmc/arch/naming.hpp"

#include <algorithm>
#include <set>
#include <sys/stat.h>

#include "io/llama2c_internal.hpp"
#include "io/reader_util.hpp"
#include "io/safetensors_internal.hpp"
#include "slmc/check.hpp"
#include "slmc/half.hpp"
#include <cstring>
#include "slmc/io/hash.hpp"

namespace slmc {

using io_detail::quote;

std::string_view source_format_name(SourceFormat format) noexcept {
  switch (format) {
    case SourceFormat::kSafetensors: return "safetensors";
    case SourceFormat::kSafetensorsIndex: return "safetensors-index";
    case SourceFormat::kGguf: return "gguf";
    case SourceFormat::kLlama2c: return "llama2c";
  }
  return "invalid";
}

const SourceTensor* ModelSource::find(std::string_view name) const noexcept {
  const int64_t i = index_of(name);
  return i < 0 ? nullptr : &tensors_[static_cast<size_t>(i)];
}

int64_t ModelSource::index_of(std::string_view name) const noexcept {
  for (size_t i = 0; i < tensors_.size(); ++i) {
    if (tensors_[i].name == name) return static_cast<int64_t>(i);
  }
  return -1;
}

Result<SourceFormat> detect_format(const uint8_t* data, uint64_t head_size, uint64_t size, const std::string& name) {
  head_size = std::min(head_size, size);
  if (head_size >= 4 && std::memcmp(data, "GGUF", 4) == 0) return SourceFormat::kGguf;
  if (head_size >= 8 && (std::memcmp(data, "SLMCFILE", 8) == 0)) {
    return make_error(ErrorCode::kUnsupported, name + ": is an .slm model file, not a source model (open it with ModelFile)");
  }
  if (head_size >= 9) {
    const uint64_t n = io_detail::load_le<uint64_t>(data);
    if (n >= 2 && n <= size - 8 && data[8] == '{') return SourceFormat::kSafetensors;
  }
  // A JSON document: a sharded safetensors index.
  uint64_t i = 0;
  while (i < head_size && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t')) ++i;
  if (i < head_size && data[i] == '{') return SourceFormat::kSafetensorsIndex;
  if (head_size >= 28 && io_detail::llama2c_config(data, size)) return SourceFormat::kLlama2c;
  if (head_size >= 8) {
    // Looks like a safetensors header length but the JSON is not where it should be.
    const uint64_t n = io_detail::load_le<uint64_t>(data);
    if (n > size - 8 && n < (uint64_t{1} << 32)) {  // llama2.c headers read as u64 are >= 2^32
      return make_error(ErrorCode::kOutOfRange, name + ": safetensors header length " + std::to_string(n) +
                                                    " goes beyond the end of the file (" + std::to_string(size) +
                                                    " bytes)");
    }
  }
  return make_error(ErrorCode::kInvalidFormat,
                    name + ": cannot detect the model format (not safetensors, GGUF, a safetensors index or a "
                           "llama2.c checkpoint of consistent size)");
}

namespace {

std::string dir_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

bool is_plain_file_name(const std::string& f) {
  return !f.empty() && f != "." && f != ".." && f.find('/') == std::string::npos && f.find('\0') == std::string::npos;
}

Result<std::unique_ptr<ModelSource>> open_index(std::shared_ptr<const InputFile> index, const OpenOptions& options) {
  using nlohmann::json;
  const std::string& iname = index->path();
  if (index->size() > (uint64_t{1} << 30)) {
    return make_error(ErrorCode::kOutOfRange, iname + ": " + std::to_string(index->size()) +
                                                  " bytes, more than a safetensors index may have (1 GiB)");
  }
  SLMC_ASSIGN_OR_RETURN(const std::string text, index->read_string(0, index->size()));
  const char* b = text.data();
  SLMC_ASSIGN_OR_RETURN(json j, io_detail::parse_json_strict(b, b + text.size(), iname));
  if (!j.is_object()) return make_error(ErrorCode::kInvalidFormat, iname + ": index is not a JSON object");
  auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object() || wm->empty()) {
    return make_error(ErrorCode::kInvalidFormat, iname + ": no weight_map object (not a safetensors index)");
  }
  std::map<std::string, std::string> weight_map;
  std::set<std::string> shards;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it.value().is_string() || !is_plain_file_name(it.value().get<std::string>())) {
      return make_error(ErrorCode::kInvalidFormat,
                        iname + ": weight_map entry for tensor " + quote(it.key()) + " is not a plain file name");
    }
    weight_map[it.key()] = it.value().get<std::string>();
    shards.insert(it.value().get<std::string>());
  }
  auto src = std::make_unique<ModelSource>();
  src->format_ = SourceFormat::kSafetensorsIndex;
  const std::string dir = dir_of(iname);
  std::string iname_base = iname.substr(iname.find_last_of('/') == std::string::npos ? 0 : iname.find_last_of('/') + 1);
  if (auto md = j.find("metadata"); md != j.end() && md->is_object()) {
    for (auto it = md->begin(); it != md->end(); ++it) {
      src->metadata_["safetensors.index." + it.key()] =
          it.value().is_string() ? MetaValue::string(it.value().get<std::string>()) : MetaValue::json(it.value().dump());
    }
  }
  src->files_.push_back(SourceFileInfo{iname_base, iname, "", index->size(), SourceFormat::kSafetensorsIndex});
  src->inputs_.push_back(std::move(index));
  for (const std::string& shard : shards) {  // sorted: deterministic tensor order
    const std::string path = dir + "/" + shard;
    auto opened = InputFile::open(path);
    if (!opened.ok()) return opened.status().with_context(iname + ": shard " + quote(shard));
    auto mapped = std::move(opened).value();
    const uint32_t file_index = static_cast<uint32_t>(src->files_.size());
    const size_t first = src->tensors_.size();
    SLMC_RETURN_IF_ERROR(io_detail::parse_safetensors_into(*src, *mapped, file_index));
    for (size_t t = first; t < src->tensors_.size(); ++t) {
      auto it = weight_map.find(src->tensors_[t].name);
      if (it == weight_map.end() || it->second != shard) {
        return make_error(ErrorCode::kInvalidFormat, path + ": tensor " + quote(src->tensors_[t].name) +
                                                         " is not mapped to this shard by " + iname);
      }
    }
    src->files_.push_back(SourceFileInfo{shard, path, "", mapped->size(), SourceFormat::kSafetensors});
    src->inputs_.push_back(std::move(mapped));
  }
  std::set<std::string> seen;
  for (const auto& t : src->tensors_) {
    if (!seen.insert(t.name).second) {
      return make_error(ErrorCode::kInvalidFormat, iname + ": tensor " + quote(t.name) + " appears in two shards");
    }
  }
  for (const auto& [name, shard] : weight_map) {
    if (!seen.count(name)) {
      return make_error(ErrorCode::kInvalidFormat,
                        iname + ": tensor " + quote(name) + " is mapped to " + shard + " but that shard lacks it");
    }
  }
  SLMC_RETURN_IF_ERROR(io_detail::finish_safetensors(*src, dir, true));
  (void)options;
  return src;
}

}  // namespace

Result<std::unique_ptr<ModelSource>> open_model(const std::string& path_in, const OpenOptions& options) {
  std::string path = path_in;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    struct stat s2 {};
    if (::stat((path + "/model.safetensors.index.json").c_str(), &s2) == 0) {
      path += "/model.safetensors.index.json";
    } else if (::stat((path + "/model.safetensors").c_str(), &s2) == 0) {
      path += "/model.safetensors";
    } else {
      return make_error(ErrorCode::kNotFound,
                        path + ": directory holds neither model.safetensors.index.json nor model.safetensors");
    }
  }
  SLMC_ASSIGN_OR_RETURN(auto file, InputFile::open(path));
  uint8_t head[kDetectBytes];
  const uint64_t head_size = std::min<uint64_t>(file->size(), kDetectBytes);
  SLMC_RETURN_IF_ERROR(file->read(0, head, head_size));
  SLMC_ASSIGN_OR_RETURN(SourceFormat format, detect_format(head, head_size, file->size(), path));
  Result<std::unique_ptr<ModelSource>> src = make_error(ErrorCode::kInternal, "unreachable");
  switch (format) {
    case SourceFormat::kSafetensors: src = open_safetensors(file, dir_of(path)); break;
    case SourceFormat::kSafetensorsIndex: src = open_index(file, options); break;
    case SourceFormat::kGguf: src = open_gguf(file); break;
    case SourceFormat::kLlama2c: src = open_llama2c(file); break;
  }
  if (!src.ok()) return src;
  // One naming per architecture: GGUF Llama-family names become Hugging Face names.
  for (size_t i = 0; i < (*src)->tensors_.size(); ++i) (*src)->origins_[i].source_name = (*src)->tensors_[i].name;
  SLMC_RETURN_IF_ERROR(canonicalize_tensor_names(**src).with_context(path));
  if (options.hash_files) {
    for (auto& f : (*src)->files_) {
      SLMC_ASSIGN_OR_RETURN(f.sha256, sha256_file_hex(f.path));
    }
  }
  return src;
}

namespace {
/// Dequantizes `blocks` GGUF blocks of 32 values into out[32 * blocks].
void dequantize_blocks(DType type, const uint8_t* in, uint64_t blocks, float* out) {
  for (uint64_t b = 0; b < blocks; ++b, out += 32) {
    if (type == DType::kQ8_0) {
      const uint8_t* blk = in + b * 34;
      const float d = fp16_to_fp32(io_detail::load_le<uint16_t>(blk));
      for (int j = 0; j < 32; ++j) out[j] = d * static_cast<float>(static_cast<int8_t>(blk[2 + j]));
    } else if (type == DType::kQ4_0) {
      const uint8_t* blk = in + b * 18;
      const float d = fp16_to_fp32(io_detail::load_le<uint16_t>(blk));
      for (int j = 0; j < 16; ++j) {
        out[j] = d * static_cast<float>((blk[2 + j] & 0x0f) - 8);
        out[j + 16] = d * static_cast<float>((blk[2 + j] >> 4) - 8);
      }
    } else {  // Q4_1
      const uint8_t* blk = in + b * 20;
      const float d = fp16_to_fp32(io_detail::load_le<uint16_t>(blk));
      const float m = fp16_to_fp32(io_detail::load_le<uint16_t>(blk + 2));
      for (int j = 0; j < 16; ++j) {
        out[j] = d * static_cast<float>(blk[4 + j] & 0x0f) + m;
        out[j + 16] = d * static_cast<float>(blk[4 + j] >> 4) + m;
      }
    }
  }
}

}  // namespace

namespace {

/// Bytes read per step by load_f32 when it converts: whole GGUF blocks (18, 20, 34 bytes) and
/// whole elements of every float dtype.
constexpr uint64_t kLoadChunkBytes = uint64_t{18 * 20 * 34} << 9;  // 6.0 MiB

/// Transposes a row-major [a, b] array of `es`-byte elements into [b, a].
void transpose_bytes(const uint8_t* in, uint8_t* out, int64_t a, int64_t b, uint64_t es) {
  for (int64_t i = 0; i < a; ++i) {
    for (int64_t j = 0; j < b; ++j) {
      std::memcpy(out + (static_cast<uint64_t>(j) * a + i) * es, in + (static_cast<uint64_t>(i) * b + j) * es, es);
    }
  }
}

}  // namespace

Result<TensorView> ModelSource::load(size_t i, AlignedBuffer& storage) const {
  SLMC_CHECK(i < tensors_.size(), "ModelSource::load: index %zu of %zu", i, tensors_.size());
  const SourceTensor& t = tensors_[i];
  const TensorOrigin& o = origins_[i];
  const std::string what = "tensor " + quote(t.name);
  SLMC_ASSIGN_OR_RETURN(storage, AlignedBuffer::allocate(static_cast<size_t>(t.nbytes), what));
  const InputFile& file = *inputs_[o.file_index];
  if (!o.transposed) {
    SLMC_RETURN_IF_ERROR(file.read(o.offset, storage.data(), t.nbytes).with_context(what));
  } else {
    SLMC_ASSIGN_OR_RETURN(AlignedBuffer stored, AlignedBuffer::allocate(static_cast<size_t>(t.nbytes), what));
    SLMC_RETURN_IF_ERROR(file.read(o.offset, stored.data(), t.nbytes).with_context(what));
    // Described as [b, a]; stored as [a, b].
    transpose_bytes(stored.data(), storage.data(), t.shape[1], t.shape[0], io_detail::element_bytes(t.dtype));
  }
  TensorView v;
  v.name = t.name;
  v.shape = t.shape;
  v.dtype = t.dtype;
  v.data = t.nbytes ? storage.data() : nullptr;
  v.nbytes = t.nbytes;
  return v;
}

Status ModelSource::load_f32(size_t i, float* out) const {
  SLMC_CHECK(i < tensors_.size(), "ModelSource::load_f32: index %zu of %zu", i, tensors_.size());
  const SourceTensor& t = tensors_[i];
  const TensorOrigin& o = origins_[i];
  const std::string what = "tensor " + quote(t.name);
  if (!is_weight_dtype(t.dtype)) {
    return make_error(ErrorCode::kUnsupported, what + ": dtype " + std::string(dtype_name(t.dtype)) +
                                                   " is not a weight type");
  }
  const int64_t n = t.shape.numel();
  if (n == 0) return Status::ok_status();
  if (o.transposed) {  // GPT-2 Conv1D (float dtypes): the whole tensor, then transposed
    AlignedBuffer bytes;
    SLMC_ASSIGN_OR_RETURN(TensorView v, load(i, bytes));
    return tensor_to_f32(v, out);
  }
  const InputFile& file = *inputs_[o.file_index];
  if (t.dtype == DType::kF32) return file.read(o.offset, out, t.nbytes).with_context(what);
  const DTypeTraits& traits = dtype_traits(t.dtype);
  const uint64_t unit_bytes = traits.block_bytes, unit_values = static_cast<uint64_t>(traits.block_size);
  const uint64_t units = t.nbytes / unit_bytes;
  const uint64_t units_per_chunk = std::max<uint64_t>(1, kLoadChunkBytes / unit_bytes);
  SLMC_ASSIGN_OR_RETURN(AlignedBuffer chunk, AlignedBuffer::allocate(static_cast<size_t>(std::min(units, units_per_chunk) * unit_bytes), what));
  for (uint64_t u = 0; u < units; u += units_per_chunk) {
    const uint64_t count = std::min(units_per_chunk, units - u);
    SLMC_RETURN_IF_ERROR(file.read(o.offset + u * unit_bytes, chunk.data(), count * unit_bytes).with_context(what));
    TensorView part;
    part.name = t.name;
    part.shape = Shape{static_cast<int64_t>(count * unit_values)};
    part.dtype = t.dtype;
    part.data = chunk.data();
    part.nbytes = count * unit_bytes;
    SLMC_RETURN_IF_ERROR(tensor_to_f32(part, out + u * unit_values));
  }
  return Status::ok_status();
}

Result<AlignedBuffer> ModelSource::load_f32(size_t i) const {
  SLMC_CHECK(i < tensors_.size(), "ModelSource::load_f32: index %zu of %zu", i, tensors_.size());
  const SourceTensor& t = tensors_[i];
  SLMC_ASSIGN_OR_RETURN(AlignedBuffer out, AlignedBuffer::allocate(static_cast<size_t>(t.shape.numel()) * sizeof(float),
                                                                   "tensor " + quote(t.name) + " as fp32"));
  SLMC_RETURN_IF_ERROR(load_f32(i, out.as<float>()));
  return out;
}

bool is_weight_dtype(DType d) noexcept {
  return d == DType::kF32 || d == DType::kF16 || d == DType::kBF16 || d == DType::kF64 || d == DType::kQ8_0 ||
         d == DType::kQ4_0 || d == DType::kQ4_1;
}

Status tensor_to_f32(const TensorView& t, float* out) {
  SLMC_RETURN_IF_ERROR(t.validate());
  const size_t n = static_cast<size_t>(t.shape.numel());
  switch (t.dtype) {
    case DType::kF32: std::memcpy(out, t.data, n * sizeof(float)); return Status::ok_status();
    case DType::kF16: convert_fp16_to_fp32(t.data_as<uint16_t>(), out, n); return Status::ok_status();
    case DType::kBF16: convert_bf16_to_fp32(t.data_as<uint16_t>(), out, n); return Status::ok_status();
    case DType::kF64:
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(t.data_as<double>()[i]);
      return Status::ok_status();
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kQ4_1:
      dequantize_blocks(t.dtype, static_cast<const uint8_t*>(t.data), n / 32, out);
      return Status::ok_status();
    default:
      return make_error(ErrorCode::kUnsupported, "tensor " + quote(t.name) + ": dtype " +
                                                     std::string(dtype_name(t.dtype)) + " is not a weight type");
  }
}

Result<EncodedMatrixView> dense_float_view(const TensorView& t) {
  EncodedMatrixView v;
  switch (t.dtype) {
    case DType::kF32: v.encoding.value_type = ValueType::kF32; break;
    case DType::kF16: v.encoding.value_type = ValueType::kF16; break;
    case DType::kBF16: v.encoding.value_type = ValueType::kBF16; break;
    default:
      return make_error(ErrorCode::kUnsupported, "tensor " + quote(t.name) + ": dtype " +
                                                     std::string(dtype_name(t.dtype)) + " has no dense float encoding");
  }
  SLMC_RETURN_IF_ERROR(t.validate());
  v.rows = t.shape.rows();
  v.cols = t.shape.cols();
  v.segments[static_cast<size_t>(SegmentRole::kValues)] = SegmentView{t.data, t.nbytes};
  return v;
}

Result<EncodedMatrix> encode_dense_float(const TensorView& t, ValueType value_type) {
  SLMC_RETURN_IF_ERROR(t.validate());
  if (value_type != ValueType::kF32 && value_type != ValueType::kF16 && value_type != ValueType::kBF16) {
    return make_error(ErrorCode::kInvalidArgument, "tensor " + quote(t.name) + ": target is not a float value type");
  }
  const size_t n = static_cast<size_t>(t.shape.numel());
  std::vector<float> f32;
  const float* src = nullptr;
  if (t.dtype == DType::kF32) {
    src = t.data_as<float>();
  } else {
    if (!is_weight_dtype(t.dtype)) {
      return make_error(ErrorCode::kUnsupported, "tensor " + quote(t.name) + ": dtype " +
                                                     std::string(dtype_name(t.dtype)) + " is not a float type");
    }
    f32.resize(n);
    SLMC_RETURN_IF_ERROR(tensor_to_f32(t, f32.data()));
    src = f32.data();
  }
  EncodedMatrix m;
  m.rows = t.shape.rows();
  m.cols = t.shape.cols();
  m.encoding.value_type = value_type;
  AlignedBuffer& values = m.segment(SegmentRole::kValues);
  if (value_type == ValueType::kF32) {
    SLMC_ASSIGN_OR_RETURN(values, AlignedBuffer::copy_of(src, n * 4, "tensor '" + t.name + "'"));
  } else {
    SLMC_ASSIGN_OR_RETURN(values, AlignedBuffer::allocate(n * 2, "tensor '" + t.name + "'"));
    if (value_type == ValueType::kF16) {
      convert_fp32_to_fp16(src, values.as<uint16_t>(), n);
    } else {
      convert_fp32_to_bf16(src, values.as<uint16_t>(), n);
    }
  }
  return m;
}

}  // namespace slmc
