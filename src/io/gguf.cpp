// GGUF v2/v3 reader (little-endian files only).
//
//   u32 magic "GGUF", u32 version, u64 tensor_count, u64 kv_count,
//   kv_count x { string key, u32 type, value },
//   tensor_count x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset },
//   padding to general.alignment (default 32), tensor data.
// A string is u64 length + bytes. ne[0] is the innermost (contiguous) dimension, so the row-major
// shape is ne reversed: a 2-D weight ne = [K, M] becomes [M, K].
#include <algorithm>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/reader_util.hpp"
#include "text/tokenizer_internal.hpp"
#include "slmc/half.hpp"

namespace slmc {
namespace {

using io_detail::quote;
using nlohmann::json;

enum GgufType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32v = 6, kBoolT = 7, kString = 8, kArray = 9,
  kU64 = 10, kI64 = 11, kF64v = 12,
};
constexpr uint32_t kMaxNesting = 4;

// ggml_type values (stable in the GGUF spec).
enum GgmlType : uint32_t { kGgmlF32 = 0, kGgmlF16 = 1, kGgmlQ4_0 = 2, kGgmlQ4_1 = 3, kGgmlQ8_0 = 8, kGgmlBF16 = 30 };

const char* ggml_type_name(uint32_t t) {
  static const char* kNames[] = {"F32",  "F16",  "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1",
                                 "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS",
                                 "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64",
                                 "IQ1_M", "BF16"};
  return t < sizeof(kNames) / sizeof(kNames[0]) ? kNames[t] : nullptr;
}

/// Sequential reads of the header through a window of the file (pread, never a mapping).
class Cursor {
 public:
  explicit Cursor(const InputFile& file) : file_(file) {}
  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return file_.size() - pos_; }

  Status need(uint64_t n, const char* what) const {
    if (n > remaining()) {
      return make_error(ErrorCode::kInvalidFormat, file_.path() + ": truncated at byte " + std::to_string(pos_) +
                                                       " reading " + what + " (" + std::to_string(n) + " bytes needed, " +
                                                       std::to_string(remaining()) + " left)");
    }
    return Status::ok_status();
  }
  template <typename T>
  Result<T> read(const char* what) {
    SLMC_RETURN_IF_ERROR(need(sizeof(T), what));
    uint8_t bytes[sizeof(T)];
    SLMC_RETURN_IF_ERROR(fetch(bytes, sizeof(T)));
    return io_detail::load_le<T>(bytes);
  }
  Result<std::string> read_string(const char* what) {
    SLMC_ASSIGN_OR_RETURN(uint64_t n, read<uint64_t>(what));
    if (n > remaining()) {
      return make_error(ErrorCode::kOutOfRange, file_.path() + ": " + what + " length " + std::to_string(n) +
                                                    " at byte " + std::to_string(pos_) + " goes beyond the end of the file");
    }
    std::string s(static_cast<size_t>(n), '\0');
    SLMC_RETURN_IF_ERROR(fetch(s.data(), n));
    return s;
  }

 private:
  static constexpr uint64_t kWindow = uint64_t{1} << 20;
  /// Copies the next n bytes (n <= remaining()) and advances.
  Status fetch(void* out, uint64_t n) {
    if (n > kWindow) {
      SLMC_RETURN_IF_ERROR(file_.read(pos_, out, n));
    } else {
      if (pos_ < window_start_ || pos_ + n > window_start_ + window_.size()) {
        window_.resize(static_cast<size_t>(std::min(kWindow, remaining())));
        SLMC_RETURN_IF_ERROR(file_.read(pos_, window_.data(), window_.size()));
        window_start_ = pos_;
      }
      if (n) std::memcpy(out, window_.data() + (pos_ - window_start_), static_cast<size_t>(n));
    }
    pos_ += n;
    return Status::ok_status();
  }
  const InputFile& file_;
  uint64_t pos_ = 0;
  std::vector<uint8_t> window_;
  uint64_t window_start_ = 0;
};

uint64_t min_value_bytes(uint32_t type) {
  switch (type) {
    case kU8: case kI8: case kBoolT: return 1;
    case kU16: case kI16: return 2;
    case kU32: case kI32: case kF32v: return 4;
    case kU64: case kI64: case kF64v: case kString: return 8;
    case kArray: return 12;
    default: return 0;
  }
}

Result<json> read_value(Cursor& c, uint32_t type, const std::string& file, const std::string& key, uint32_t depth) {
  auto bad_type = [&]() {
    return make_error(ErrorCode::kInvalidFormat,
                      file + ": metadata key " + quote(key) + " has unknown value type " + std::to_string(type));
  };
  switch (type) {
    case kU8: { SLMC_ASSIGN_OR_RETURN(uint8_t v, c.read<uint8_t>("u8 value")); return json(v); }
    case kI8: { SLMC_ASSIGN_OR_RETURN(int8_t v, c.read<int8_t>("i8 value")); return json(v); }
    case kU16: { SLMC_ASSIGN_OR_RETURN(uint16_t v, c.read<uint16_t>("u16 value")); return json(v); }
    case kI16: { SLMC_ASSIGN_OR_RETURN(int16_t v, c.read<int16_t>("i16 value")); return json(v); }
    case kU32: { SLMC_ASSIGN_OR_RETURN(uint32_t v, c.read<uint32_t>("u32 value")); return json(v); }
    case kI32: { SLMC_ASSIGN_OR_RETURN(int32_t v, c.read<int32_t>("i32 value")); return json(v); }
    case kU64: { SLMC_ASSIGN_OR_RETURN(uint64_t v, c.read<uint64_t>("u64 value")); return json(v); }
    case kI64: { SLMC_ASSIGN_OR_RETURN(int64_t v, c.read<int64_t>("i64 value")); return json(v); }
    case kF32v: {
      SLMC_ASSIGN_OR_RETURN(float v, c.read<float>("f32 value"));
      return std::isfinite(v) ? json(static_cast<double>(v)) : json(std::to_string(v));
    }
    case kF64v: {
      SLMC_ASSIGN_OR_RETURN(double v, c.read<double>("f64 value"));
      return std::isfinite(v) ? json(v) : json(std::to_string(v));
    }
    case kBoolT: {
      SLMC_ASSIGN_OR_RETURN(uint8_t v, c.read<uint8_t>("bool value"));
      if (v > 1) {
        return make_error(ErrorCode::kInvalidFormat, file + ": metadata key " + quote(key) + ": bool value " +
                                                         std::to_string(v) + " is not 0 or 1");
      }
      return json(v == 1);
    }
    case kString: {
      SLMC_ASSIGN_OR_RETURN(std::string s, c.read_string("string value"));
      // UTF-8 is checked at the door: metadata travels into .slm files, JSON reports and terminals.
      if (!io_detail::is_valid_utf8(s)) {
        return make_error(ErrorCode::kInvalidFormat,
                          file + ": metadata key " + quote(key) + ": a string value is not valid UTF-8");
      }
      return json(std::move(s));
    }
    case kArray: {
      if (depth >= kMaxNesting) {
        return make_error(ErrorCode::kInvalidFormat, file + ": metadata key " + quote(key) + ": arrays nested deeper than " +
                                                         std::to_string(kMaxNesting));
      }
      SLMC_ASSIGN_OR_RETURN(uint32_t etype, c.read<uint32_t>("array element type"));
      SLMC_ASSIGN_OR_RETURN(uint64_t n, c.read<uint64_t>("array length"));
      const uint64_t min = min_value_bytes(etype);
      if (min == 0) {
        return make_error(ErrorCode::kInvalidFormat, file + ": metadata key " + quote(key) +
                                                         " has unknown array element type " + std::to_string(etype));
      }
      if (n > c.remaining() / min) {
        return make_error(ErrorCode::kOutOfRange, file + ": metadata key " + quote(key) + ": array length " +
                                                      std::to_string(n) + " exceeds what the file can hold");
      }
      json arr = json::array();
      for (uint64_t i = 0; i < n; ++i) {
        SLMC_ASSIGN_OR_RETURN(json v, read_value(c, etype, file, key, depth + 1));
        arr.push_back(std::move(v));
      }
      return arr;
    }
    default: return bad_type();
  }
}

Status bad(const std::string& file, const std::string& what, ErrorCode code = ErrorCode::kInvalidFormat) {
  return make_error(code, file + ": " + what);
}

// Architectures whose GGUF q/k use NeoX (rotate-half) RoPE; llama.cpp's llama_rope_type.
bool is_neox_arch(const std::string& a) {
  static const char* kNeox[] = {"falcon", "gptneox", "qwen", "qwen2", "qwen2moe", "phi2", "phi3", "gemma",
                                "gemma2", "stablelm", "starcoder2", "olmo2", "openelm", "bert", "nomic-bert"};
  for (const char* n : kNeox) {
    if (a == n) return true;
  }
  return false;
}

/// The tokenizer of GGUF metadata (tokenizer.ggml.*, tokenizer.chat_template), or an empty one
/// when the file has no tokenizer.ggml.model. Types are checked here, contents by
/// Tokenizer::create.
Result<TokenizerData> gguf_tokenizer(const std::map<std::string, json>& kvs, const std::string& file) {
  TokenizerData d;
  auto it = kvs.find("tokenizer.ggml.model");
  if (it == kvs.end()) return d;
  auto bad_key = [&](const std::string& key, const std::string& what) {
    return make_error(ErrorCode::kInvalidFormat, file + ": " + key + " " + what);
  };
  if (!it->second.is_string()) return bad_key(it->first, "is not a string");
  const std::string model = it->second.get<std::string>();
  if (model == "gpt2") d.kind = TokenizerKind::kByteBpe;
  else if (model == "llama") d.kind = TokenizerKind::kSpm;
  else if (model == "bert") d.kind = TokenizerKind::kWordPiece;
  else {
    return make_error(ErrorCode::kUnsupported, file + ": tokenizer.ggml.model '" + model +
                                                   "' is not supported (gpt2, llama)");
  }
  auto strings = [&](const char* key, std::vector<std::string>& out, bool required) -> Status {
    auto k = kvs.find(key);
    if (k == kvs.end()) return required ? bad_key(key, "is missing") : Status::ok_status();
    if (!k->second.is_array()) return bad_key(key, "is not an array");
    out.reserve(k->second.size());
    for (const json& v : k->second) {
      if (!v.is_string()) return bad_key(key, "[" + std::to_string(out.size()) + "] is not a string");
      out.push_back(v.get<std::string>());
    }
    return Status::ok_status();
  };
  auto id = [&](const char* key, int32_t& out) -> Status {
    auto k = kvs.find(key);
    if (k == kvs.end()) return Status::ok_status();
    if (!k->second.is_number_integer()) return bad_key(key, "is not an integer");
    const int64_t v = k->second.get<int64_t>();
    if (v < 0 || v > INT32_MAX) return bad_key(key, "= " + std::to_string(v) + " is out of range");
    out = static_cast<int32_t>(v);
    return Status::ok_status();
  };
  auto flag = [&](const char* key, bool& out) -> Status {
    auto k = kvs.find(key);
    if (k == kvs.end()) return Status::ok_status();
    if (!k->second.is_boolean()) return bad_key(key, "is not a bool");
    out = k->second.get<bool>();
    return Status::ok_status();
  };
  SLMC_RETURN_IF_ERROR(strings("tokenizer.ggml.tokens", d.tokens, true));
  SLMC_RETURN_IF_ERROR(strings("tokenizer.ggml.merges", d.merges, false));
  if (auto k = kvs.find("tokenizer.ggml.scores"); k != kvs.end()) {
    if (!k->second.is_array()) return bad_key(k->first, "is not an array");
    for (const json& v : k->second) {
      if (!v.is_number()) return bad_key(k->first, "[" + std::to_string(d.scores.size()) + "] is not a number");
      d.scores.push_back(v.get<float>());
    }
  }
  if (auto k = kvs.find("tokenizer.ggml.token_type"); k != kvs.end()) {
    if (!k->second.is_array()) return bad_key(k->first, "is not an array");
    for (const json& v : k->second) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 6) {
        return bad_key(k->first, "[" + std::to_string(d.token_types.size()) + "] = " + v.dump() + " is not a token type (0-6)");
      }
      d.token_types.push_back(static_cast<uint8_t>(v.get<int64_t>()));
    }
  }
  if (auto k = kvs.find("tokenizer.ggml.pre"); k != kvs.end()) {
    if (!k->second.is_string()) return bad_key(k->first, "is not a string");
    d.pre = k->second.get<std::string>();
  } else if (d.kind == TokenizerKind::kByteBpe) {
    d.pre = "default";  // what llama.cpp uses for a byte-level vocabulary without a pre-tokenizer name
  }
  SLMC_RETURN_IF_ERROR(id("tokenizer.ggml.bos_token_id", d.bos_id));
  SLMC_RETURN_IF_ERROR(id("tokenizer.ggml.eos_token_id", d.eos_id));
  SLMC_RETURN_IF_ERROR(id("tokenizer.ggml.unknown_token_id", d.unk_id));
  SLMC_RETURN_IF_ERROR(id("tokenizer.ggml.padding_token_id", d.pad_id));
  for (const char* key : {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    int32_t v = -1;
    SLMC_RETURN_IF_ERROR(id(key, v));
    if (v >= 0) d.eog_ids.push_back(v);
  }
  // llama.cpp's defaults: SentencePiece vocabularies add BOS and the dummy prefix, byte-level ones
  // neither, unless the file says otherwise.
  d.add_bos = d.kind == TokenizerKind::kSpm;
  d.add_space_prefix = d.kind == TokenizerKind::kSpm;
  SLMC_RETURN_IF_ERROR(flag("tokenizer.ggml.add_bos_token", d.add_bos));
  SLMC_RETURN_IF_ERROR(flag("tokenizer.ggml.add_eos_token", d.add_eos));
  SLMC_RETURN_IF_ERROR(flag("tokenizer.ggml.add_space_prefix", d.add_space_prefix));
  if (auto k = kvs.find("tokenizer.chat_template"); k != kvs.end()) {
    if (!k->second.is_string()) return bad_key(k->first, "is not a string");
    d.chat_template = k->second.get<std::string>();
  }
  text::add_end_of_generation_by_name(d);
  // Full validation (merges name known tokens, ids in range) now, so a bad tokenizer fails the
  // conversion, not a later run.
  SLMC_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> check, Tokenizer::create(d, file));
  return check->data();
}

}  // namespace

namespace {

struct GgufHeader {
  uint32_t version = 0;
  uint64_t n_tensors = 0;
  std::map<std::string, json> kvs;
  std::map<std::string, uint32_t> kv_types;
};

/// Reads the preamble and every metadata KV; leaves `c` at the first tensor info.
Result<GgufHeader> read_gguf_header(Cursor& c, const std::string& fname) {
  GgufHeader h;
  SLMC_ASSIGN_OR_RETURN(uint32_t magic, c.read<uint32_t>("magic"));
  if (magic != 0x46554747u) return bad(fname, "not a GGUF file (bad magic)");
  SLMC_ASSIGN_OR_RETURN(h.version, c.read<uint32_t>("version"));
  if (h.version != 2 && h.version != 3) {
    return bad(fname, "GGUF version " + std::to_string(h.version) + " is not supported (only 2 and 3)",
               ErrorCode::kUnsupported);
  }
  SLMC_ASSIGN_OR_RETURN(h.n_tensors, c.read<uint64_t>("tensor count"));
  SLMC_ASSIGN_OR_RETURN(uint64_t n_kv, c.read<uint64_t>("metadata count"));
  // Every KV needs >= 13 bytes (8 key length + 4 type + 1 value), every tensor info >= 24.
  if (n_kv > c.remaining() / 13) {
    return bad(fname, "metadata count " + std::to_string(n_kv) + " exceeds what the file can hold",
               ErrorCode::kOutOfRange);
  }
  if (h.n_tensors > c.remaining() / 24) {
    return bad(fname, "tensor count " + std::to_string(h.n_tensors) + " exceeds what the file can hold",
               ErrorCode::kOutOfRange);
  }
  for (uint64_t i = 0; i < n_kv; ++i) {
    SLMC_ASSIGN_OR_RETURN(std::string key, c.read_string("metadata key"));
    if (key.empty() || !io_detail::is_valid_utf8(key)) {
      return bad(fname, "metadata key " + quote(key) + " is empty or not valid UTF-8");
    }
    SLMC_ASSIGN_OR_RETURN(uint32_t type, c.read<uint32_t>("metadata value type"));
    SLMC_ASSIGN_OR_RETURN(json value, read_value(c, type, fname, key, 0));
    if (h.kvs.count(key)) return bad(fname, "duplicate metadata key " + quote(key));
    h.kv_types[key] = type;
    h.kvs.emplace(std::move(key), std::move(value));
  }
  return h;
}

}  // namespace

Result<TokenizerData> read_gguf_tokenizer(std::shared_ptr<const InputFile> file) {
  Cursor c(*file);
  SLMC_ASSIGN_OR_RETURN(GgufHeader h, read_gguf_header(c, file->path()));
  return gguf_tokenizer(h.kvs, file->path());
}

Result<std::unique_ptr<ModelSource>> open_gguf(std::shared_ptr<const InputFile> file) {
  const std::string& fname = file->path();
  Cursor c(*file);
  SLMC_ASSIGN_OR_RETURN(GgufHeader header, read_gguf_header(c, fname));
  const uint32_t version = header.version;
  const uint64_t n_tensors = header.n_tensors;
  std::map<std::string, json>& kvs = header.kvs;
  std::map<std::string, uint32_t>& kv_types = header.kv_types;
  auto src = std::make_unique<ModelSource>();
  src->format_ = SourceFormat::kGguf;

  uint64_t alignment = 32;
  if (auto it = kvs.find("general.alignment"); it != kvs.end()) {
    if (kv_types["general.alignment"] != kU32) return bad(fname, "general.alignment is not a u32");
    alignment = it->second.get<uint64_t>();
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
      return bad(fname, "general.alignment " + std::to_string(alignment) + " is not a power of two");
    }
  }

  struct Info {
    std::string name;
    std::vector<int64_t> dims;  // row-major
    uint32_t type;
    uint64_t offset, nbytes;
  };
  std::vector<Info> infos;
  std::set<std::string> names;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    SLMC_ASSIGN_OR_RETURN(std::string name, c.read_string("tensor name"));
    if (name.empty() || !io_detail::is_valid_utf8(name)) {
      return bad(fname, "tensor name " + quote(name) + " is empty or not valid UTF-8");
    }
    if (!names.insert(name).second) return bad(fname, "duplicate tensor name " + quote(name));
    const std::string where = "tensor " + quote(name);
    SLMC_ASSIGN_OR_RETURN(uint32_t n_dims, c.read<uint32_t>("tensor rank"));
    if (n_dims > 4) {
      return bad(fname, where + " has " + std::to_string(n_dims) + " dimensions (at most 4)", ErrorCode::kOutOfRange);
    }
    std::vector<int64_t> dims(n_dims);
    for (uint32_t d = 0; d < n_dims; ++d) {
      SLMC_ASSIGN_OR_RETURN(uint64_t ne, c.read<uint64_t>("tensor dimension"));
      if (ne > static_cast<uint64_t>(kMaxTensorElements)) {
        return bad(fname, where + ": dimension " + std::to_string(ne) + " is too large", ErrorCode::kOutOfRange);
      }
      dims[n_dims - 1 - d] = static_cast<int64_t>(ne);  // innermost first -> row-major
    }
    SLMC_ASSIGN_OR_RETURN(uint32_t type, c.read<uint32_t>("tensor type"));
    SLMC_ASSIGN_OR_RETURN(uint64_t offset, c.read<uint64_t>("tensor offset"));
    Shape shape(dims);
    Status s = shape.validate();
    if (!s.ok()) return s.with_context(fname + ": " + where);
    DType dt;
    switch (type) {
      case kGgmlF32: dt = DType::kF32; break;
      case kGgmlF16: dt = DType::kF16; break;
      case kGgmlBF16: dt = DType::kBF16; break;
      case kGgmlQ8_0: dt = DType::kQ8_0; break;
      case kGgmlQ4_0: dt = DType::kQ4_0; break;
      case kGgmlQ4_1: dt = DType::kQ4_1; break;
      default: {
        const char* tn = ggml_type_name(type);
        return bad(fname, "unsupported GGUF type " + (tn ? std::string(tn) : std::to_string(type)) + " in " + where,
                   ErrorCode::kUnsupported);
      }
    }
    if (dtype_traits(dt).block_size > 1 && (dims.empty() || dims.back() % 32 != 0)) {
      return bad(fname, where + ": " + std::string(dtype_name(dt)) + " rows of " +
                            std::to_string(dims.empty() ? 1 : dims.back()) + " are not whole blocks of 32");
    }
    auto nbytes = dtype_byte_size(dt, shape.numel());
    if (!nbytes.ok()) return nbytes.status().with_context(fname + ": " + where);
    if (offset % alignment != 0) {
      return bad(fname, where + ": offset " + std::to_string(offset) + " is not a multiple of the alignment " +
                            std::to_string(alignment));
    }
    infos.push_back(Info{std::move(name), std::move(dims), type, offset, *nbytes});
  }
  const uint64_t data_start = (c.pos() + alignment - 1) / alignment * alignment;
  if (data_start > file->size() && !infos.empty()) {
    return bad(fname, "tensor data would start at " + std::to_string(data_start) + ", past the end of the file",
               ErrorCode::kOutOfRange);
  }
  const uint64_t data_size = data_start <= file->size() ? file->size() - data_start : 0;
  for (const Info& t : infos) {
    if (t.offset > data_size || t.nbytes > data_size - t.offset) {
      return bad(fname, "tensor " + quote(t.name) + ": data [" + std::to_string(t.offset) + ", +" +
                            std::to_string(t.nbytes) + ") goes beyond the end of the file",
                 ErrorCode::kOutOfRange);
    }
  }
  std::vector<const Info*> order;
  for (const Info& t : infos) {
    if (t.nbytes) order.push_back(&t);
  }
  std::sort(order.begin(), order.end(), [](const Info* a, const Info* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < order.size(); ++i) {
    if (order[i]->offset < order[i - 1]->offset + order[i - 1]->nbytes) {
      return bad(fname, "tensors " + quote(order[i - 1]->name) + " and " + quote(order[i]->name) + " overlap");
    }
  }

  for (const Info& t : infos) {
    const uint64_t data = data_start + t.offset;  // file offset
    Shape shape(t.dims);
    if (t.type == kGgmlF32 || t.type == kGgmlF16 || t.type == kGgmlBF16) {
      const DType dt = t.type == kGgmlF32 ? DType::kF32 : t.type == kGgmlF16 ? DType::kF16 : DType::kBF16;
      SLMC_RETURN_IF_ERROR(io_detail::add_tensor(*src, fname, t.name, shape, dt, data, t.nbytes, 0, dt));
      continue;
    }
    // GGUF block types stay raw: ModelSource::load_f32 dequantizes one tensor when a consumer
    // needs it, so opening a quantized model costs no memory beyond its header.
    const DType sdt = t.type == kGgmlQ8_0 ? DType::kQ8_0 : t.type == kGgmlQ4_0 ? DType::kQ4_0 : DType::kQ4_1;
    SLMC_RETURN_IF_ERROR(io_detail::add_tensor(*src, fname, t.name, shape, sdt, data, t.nbytes, 0, sdt));
  }

  // The tokenizer goes into its own structure; its keys are not repeated as metadata.
  // A tokenizer slmc does not implement is a warning (the weights still convert); bad tokenizer
  // data is an error.
  if (auto tok = gguf_tokenizer(kvs, fname); tok.ok()) {
    src->tokenizer_ = std::move(*tok);
  } else if (tok.status().code() == ErrorCode::kUnsupported) {
    src->warnings_.push_back(tok.status().message() + "; the model is converted without a tokenizer (convert "
                                                      "--tokenizer adds one)");
  } else {
    return tok.status();
  }
  if (kvs.count("tokenizer.ggml.model")) {
    for (auto k = kvs.begin(); k != kvs.end();) {
      k = k->first.rfind("tokenizer.ggml.", 0) == 0 || k->first == "tokenizer.chat_template" ? kvs.erase(k) : std::next(k);
    }
  }
  // Metadata: general.architecture and "<arch>.*" are architecture keys, the rest free-form.
  std::string arch;
  if (auto it = kvs.find(kKeyArchitecture); it != kvs.end() && it->second.is_string()) arch = it->second.get<std::string>();
  for (auto& [key, value] : kvs) {
    const bool is_arch = key == kKeyArchitecture || (!arch.empty() && key.rfind(arch + ".", 0) == 0);
    MetaValue mv = value.is_string()
                       ? MetaValue::string(value.get<std::string>())
                       : MetaValue::json(value.dump(-1, ' ', false, json::error_handler_t::replace));
    (is_arch ? src->architecture_ : src->metadata_)[key] = std::move(mv);
  }
  if (!arch.empty() && !src->architecture_.count(rope_layout_key(arch)) &&
      src->architecture_.count(arch + ".rope.dimension_count") + src->architecture_.count(arch + ".rope.freq_base") > 0) {
    src->architecture_[rope_layout_key(arch)] = MetaValue::string(is_neox_arch(arch) ? kRopeRotateHalf : kRopeInterleaved);
  } else if (arch == "llama" && !src->architecture_.count(rope_layout_key(arch))) {
    src->architecture_[rope_layout_key(arch)] = MetaValue::string(kRopeInterleaved);
  }
  src->metadata_["gguf.version"] = MetaValue::json(std::to_string(version));

  std::string base = fname;
  const size_t slash = base.find_last_of('/');
  if (slash != std::string::npos) base = base.substr(slash + 1);
  src->files_.push_back(SourceFileInfo{base, fname, "", file->size(), SourceFormat::kGguf});
  src->inputs_.push_back(std::move(file));
  return src;
}

}  // namespace slmc
