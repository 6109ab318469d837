// safetensors reader: 8-byte little-endian header length N, N bytes of JSON, then the byte buffer.
// Every tensor entry is {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]} with offsets
// relative to the byte buffer; "__metadata__" is a string -> string map.
#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "io/reader_util.hpp"
#include "io/safetensors_internal.hpp"
#include "slmc/io/hash.hpp"
#include "slmc/io/safe_input.hpp"

namespace slmc {
namespace io_detail {
namespace {

using nlohmann::json;

/// Bound on the JSON header (the reference implementation uses 100 MB as well).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

std::optional<DType> safetensors_dtype(const std::string& s) {
  static const std::pair<const char*, DType> kMap[] = {
      {"F32", DType::kF32}, {"F16", DType::kF16}, {"BF16", DType::kBF16}, {"F64", DType::kF64},
      {"I8", DType::kI8},   {"U8", DType::kU8},   {"I16", DType::kI16},   {"I32", DType::kI32},
      {"I64", DType::kI64}, {"BOOL", DType::kBool}};
  for (const auto& [name, d] : kMap) {
    if (s == name) return d;
  }
  return std::nullopt;
}

Status bad(const std::string& file, const std::string& what, ErrorCode code = ErrorCode::kInvalidFormat) {
  return make_error(code, file + ": " + what);
}

}  // namespace

namespace {

/// A SAX pass that only looks for duplicate keys (at any depth), in linear time. (nlohmann's
/// callback parser, used before, rescans an object's members at the end of each child object:
/// quadratic in a header with 200,000 tensors.)
struct DuplicateKeyFinder : nlohmann::json_sax<json> {
  std::vector<std::set<std::string>> keys;
  std::string duplicate;
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    keys.emplace_back();
    return true;
  }
  bool key(string_t& k) override {
    if (!keys.back().insert(k).second && duplicate.empty()) duplicate = k;
    return duplicate.empty();  // stop at the first duplicate
  }
  bool end_object() override {
    keys.pop_back();
    return true;
  }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }
};

}  // namespace

Result<json> parse_json_strict(const char* begin, const char* end, const std::string& file) {
  // Depth first: nlohmann's dump and comparisons recurse, so deep nesting never gets in.
  SLMC_RETURN_IF_ERROR(check_json_depth(std::string_view(begin, static_cast<size_t>(end - begin)), file));
  // Duplicate keys are an error at every depth (nlohmann would silently keep the last one).
  DuplicateKeyFinder finder;
  const bool parsed = json::sax_parse(begin, end, &finder, nlohmann::detail::input_format_t::json, /*strict=*/true);
  if (!finder.duplicate.empty()) return bad(file, "duplicate key " + quote(finder.duplicate) + " in the JSON header");
  if (!parsed) return bad(file, "header is not valid JSON (or not valid UTF-8)");
  json j = json::parse(begin, end, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return bad(file, "header is not valid JSON (or not valid UTF-8)");
  return j;
}

Status parse_safetensors_into(ModelSource& src, const InputFile& file, uint32_t file_index) {
  const std::string& name = file.path();
  if (file.size() < 8) return bad(name, "truncated: " + std::to_string(file.size()) + " bytes, no header length");
  uint8_t length_bytes[8];
  SLMC_RETURN_IF_ERROR(file.read(0, length_bytes, 8));
  const uint64_t n = load_le<uint64_t>(length_bytes);
  if (n > kMaxHeaderBytes) {
    return bad(name, "header length " + std::to_string(n) + " exceeds the limit of " + std::to_string(kMaxHeaderBytes),
               ErrorCode::kOutOfRange);
  }
  if (n > file.size() - 8) {
    return bad(name, "header length " + std::to_string(n) + " goes beyond the end of the file (" +
                         std::to_string(file.size()) + " bytes)",
               ErrorCode::kOutOfRange);
  }
  SLMC_ASSIGN_OR_RETURN(const std::string header_text, file.read_string(8, n));
  const char* hbegin = header_text.data();
  SLMC_ASSIGN_OR_RETURN(json header, parse_json_strict(hbegin, hbegin + n, name));
  if (!header.is_object()) return bad(name, "header is not a JSON object");

  const uint64_t buffer = 8 + n;  // file offset of the byte buffer
  const uint64_t buffer_size = file.size() - 8 - n;

  struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
    uint64_t begin, end;
  };
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& key = it.key();
    const json& v = it.value();
    if (key == "__metadata__") {
      if (!v.is_object()) return bad(name, "__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        src.metadata_[m.key()] = m.value().is_string() ? MetaValue::string(m.value().get<std::string>())
                                                       : MetaValue::json(m.value().dump());
      }
      continue;
    }
    const std::string where = "tensor " + quote(key);
    if (key.empty()) return bad(name, "tensor with an empty name");
    if (!v.is_object()) return bad(name, where + ": entry is not an object");
    auto dt = v.find("dtype");
    auto sh = v.find("shape");
    auto off = v.find("data_offsets");
    if (dt == v.end() || sh == v.end() || off == v.end()) {
      return bad(name, where + ": needs dtype, shape and data_offsets");
    }
    if (!dt->is_string()) return bad(name, where + ": dtype is not a string");
    const std::string dname = dt->get<std::string>();
    std::optional<DType> dtype = safetensors_dtype(dname);
    if (!dtype) {
      return bad(name, "unsupported safetensors dtype " + quote(dname) + " in " + where, ErrorCode::kUnsupported);
    }
    if (!sh->is_array()) return bad(name, where + ": shape is not an array");
    std::vector<int64_t> dims;
    for (const json& d : *sh) {
      if (!d.is_number_unsigned()) return bad(name, where + ": shape " + sh->dump() + " has a non-integer or negative dimension");
      const uint64_t u = d.get<uint64_t>();
      if (u > static_cast<uint64_t>(kMaxTensorElements)) {
        return bad(name, where + ": dimension " + std::to_string(u) + " is too large", ErrorCode::kOutOfRange);
      }
      dims.push_back(static_cast<int64_t>(u));
    }
    Shape shape(std::move(dims));
    Status s = shape.validate();
    if (!s.ok()) return s.with_context(name + ": " + where);
    if (!off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned()) {
      return bad(name, where + ": data_offsets must be two non-negative integers");
    }
    const uint64_t b = (*off)[0].get<uint64_t>(), e = (*off)[1].get<uint64_t>();
    if (b > e || e > buffer_size) {
      return bad(name, where + ": data_offsets [" + std::to_string(b) + ", " + std::to_string(e) +
                           ") outside the byte buffer of " + std::to_string(buffer_size) + " bytes",
                 ErrorCode::kOutOfRange);
    }
    auto need = dtype_byte_size(*dtype, shape.numel());
    if (!need.ok()) return need.status().with_context(name + ": " + where);
    if (*need != e - b) {
      return bad(name, where + ": " + dname + " " + shape.to_string() + " needs " + std::to_string(*need) +
                           " bytes but data_offsets give " + std::to_string(e - b));
    }
    entries.push_back(Entry{key, *dtype, std::move(shape), b, e});
  }

  // Non-overlapping byte ranges (empty tensors overlap nothing).
  std::vector<const Entry*> order;
  for (const auto& e : entries) {
    if (e.end > e.begin) order.push_back(&e);
  }
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->name < b->name;
  });
  for (size_t i = 1; i < order.size(); ++i) {
    if (order[i]->begin < order[i - 1]->end) {
      return bad(name, "tensors " + quote(order[i - 1]->name) + " and " + quote(order[i]->name) +
                           " overlap in the byte buffer");
    }
  }
  // File order: sorted by offset (the JSON object itself is unordered).
  std::vector<const Entry*> by_offset;
  for (const auto& e : entries) by_offset.push_back(&e);
  std::stable_sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->name < b->name;
  });
  for (const Entry* e : by_offset) {
    SLMC_RETURN_IF_ERROR(add_tensor(src, name, e->name, e->shape, e->dtype, buffer + e->begin, e->end - e->begin,
                                    file_index, e->dtype));
  }
  return Status::ok_status();
}

namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_gpt2_conv1d_name(const std::string& n) {
  return ends_with(n, "attn.c_attn.weight") || ends_with(n, "attn.c_proj.weight") ||
         ends_with(n, "mlp.c_fc.weight") || ends_with(n, "mlp.c_proj.weight");
}

void put_json(Metadata& m, const std::string& key, const json& v) {
  if (v.is_null()) return;
  if (v.is_string()) {
    m[key] = MetaValue::string(v.get<std::string>());
  } else {
    m[key] = MetaValue::json(v.dump());
  }
}

/// Architecture keys from a Hugging Face config.json. Every key read here must have its JSON type
/// (null counts as absent): a count is a non-negative integer, a number is finite, model_type a
/// string, rope_scaling an object; anything else is kInvalidFormat naming the file and the key
/// (a wrong type used to travel into the .slm and fail, or be misread, at run time).
Status architecture_from_config(const json& cfg, Metadata& arch, const std::string& path) {
  enum class Want { kCount, kNumber, kString, kObject, kAny };
  auto typed = [&](const json& obj, const std::string& where, const char* k, Want want) -> Result<json> {
    auto it = obj.find(k);
    if (it == obj.end() || it->is_null()) return json();
    const json& v = *it;
    const char* expected = nullptr;
    switch (want) {
      case Want::kCount:
        if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0)) expected = "a non-negative integer";
        break;
      case Want::kNumber:
        if (!v.is_number() || !std::isfinite(v.get<double>())) expected = "a finite number";
        break;
      case Want::kString:
        if (!v.is_string()) expected = "a string";
        break;
      case Want::kObject:
        if (!v.is_object()) expected = "an object";
        break;
      case Want::kAny: break;
    }
    if (expected) {
      std::string shown = v.dump(-1, ' ', false, json::error_handler_t::replace);
      if (shown.size() > 60) shown = shown.substr(0, 60) + "...";
      return make_error(ErrorCode::kInvalidFormat,
                        path + ": " + quote(where + k) + " is " + shown + ", not " + expected);
    }
    return v;
  };
  auto get = [&](const char* k, Want want) { return typed(cfg, "", k, want); };
  SLMC_ASSIGN_OR_RETURN(const json mt, get("model_type", Want::kString));
  if (!mt.is_string()) return Status::ok_status();
  const std::string a = mt.get<std::string>();
  arch[kKeyArchitecture] = MetaValue::string(a);
  if (a == "gpt2") {
    SLMC_ASSIGN_OR_RETURN(const json n_positions, get("n_positions", Want::kCount));
    SLMC_ASSIGN_OR_RETURN(const json n_embd, get("n_embd", Want::kCount));
    SLMC_ASSIGN_OR_RETURN(json inner, get("n_inner", Want::kCount));
    SLMC_ASSIGN_OR_RETURN(const json n_layer, get("n_layer", Want::kCount));
    SLMC_ASSIGN_OR_RETURN(const json n_head, get("n_head", Want::kCount));
    SLMC_ASSIGN_OR_RETURN(const json eps, get("layer_norm_epsilon", Want::kNumber));
    SLMC_ASSIGN_OR_RETURN(const json vocab, get("vocab_size", Want::kCount));
    put_json(arch, "gpt2.context_length", n_positions);
    put_json(arch, "gpt2.embedding_length", n_embd);
    if (inner.is_null() && n_embd.is_number_integer()) inner = 4 * n_embd.get<int64_t>();
    put_json(arch, "gpt2.feed_forward_length", inner);
    put_json(arch, "gpt2.block_count", n_layer);
    put_json(arch, "gpt2.attention.head_count", n_head);
    put_json(arch, "gpt2.attention.layer_norm_epsilon", eps);
    put_json(arch, "gpt2.vocab_size", vocab);
    return Status::ok_status();
  }
  if (a == "bert") {
    // BERT-family encoders (BertModel): learned absolute positions, token types, post-LayerNorm
    // blocks. hidden_act and position_embedding_type are recorded so the runtime can refuse what
    // it does not implement by name.
    SLMC_ASSIGN_OR_RETURN(const json context, get("max_position_embeddings", Want::kCount));
    SLMC_ASSIGN_OR_RETURN(const json hidden, get("hidden_size", Want::kCount));
    SLMC_ASSIGN_OR_RETURN(const json ffn, get("intermediate_size", Want::kCount));
    SLMC_ASSIGN_OR_RETURN(const json layers, get("num_hidden_layers", Want::kCount));
    SLMC_ASSIGN_OR_RETURN(const json heads, get("num_attention_heads", Want::kCount));
    SLMC_ASSIGN_OR_RETURN(const json eps, get("layer_norm_eps", Want::kNumber));
    SLMC_ASSIGN_OR_RETURN(const json vocab, get("vocab_size", Want::kCount));
    SLMC_ASSIGN_OR_RETURN(const json types, get("type_vocab_size", Want::kCount));
    SLMC_ASSIGN_OR_RETURN(const json act, get("hidden_act", Want::kString));
    SLMC_ASSIGN_OR_RETURN(const json positions, get("position_embedding_type", Want::kString));
    put_json(arch, "bert.context_length", context);
    put_json(arch, "bert.embedding_length", hidden);
    put_json(arch, "bert.feed_forward_length", ffn);
    put_json(arch, "bert.block_count", layers);
    put_json(arch, "bert.attention.head_count", heads);
    put_json(arch, "bert.attention.layer_norm_epsilon", eps.is_null() ? json(1e-12) : eps);
    put_json(arch, "bert.vocab_size", vocab);
    put_json(arch, "bert.token_type_count", types);
    put_json(arch, "bert.hidden_act", act.is_null() ? json("gelu") : act);
    put_json(arch, "bert.position_embedding_type", positions.is_null() ? json("absolute") : positions);
    return Status::ok_status();
  }
  // Llama-family configs (llama, mistral, qwen2, ...): Hugging Face stores q/k in rotate-half order.
  SLMC_ASSIGN_OR_RETURN(const json context, get("max_position_embeddings", Want::kCount));
  SLMC_ASSIGN_OR_RETURN(const json hidden, get("hidden_size", Want::kCount));
  SLMC_ASSIGN_OR_RETURN(const json ffn, get("intermediate_size", Want::kCount));
  SLMC_ASSIGN_OR_RETURN(const json layers, get("num_hidden_layers", Want::kCount));
  SLMC_ASSIGN_OR_RETURN(const json heads, get("num_attention_heads", Want::kCount));
  SLMC_ASSIGN_OR_RETURN(const json kv, get("num_key_value_heads", Want::kCount));
  SLMC_ASSIGN_OR_RETURN(const json eps, get("rms_norm_eps", Want::kNumber));
  SLMC_ASSIGN_OR_RETURN(const json theta, get("rope_theta", Want::kNumber));
  SLMC_ASSIGN_OR_RETURN(const json vocab, get("vocab_size", Want::kCount));
  SLMC_ASSIGN_OR_RETURN(const json scaling, get("rope_scaling", Want::kObject));
  put_json(arch, a + ".context_length", context);
  put_json(arch, a + ".embedding_length", hidden);
  put_json(arch, a + ".feed_forward_length", ffn);
  put_json(arch, a + ".block_count", layers);
  put_json(arch, a + ".attention.head_count", heads);
  put_json(arch, a + ".attention.head_count_kv", kv.is_null() ? heads : kv);
  put_json(arch, a + ".attention.layer_norm_rms_epsilon", eps);
  if (!hidden.is_null()) put_json(arch, a + ".rope.freq_base", theta.is_null() ? json(10000.0) : theta);
  put_json(arch, a + ".vocab_size", vocab);
  if (!heads.is_null()) arch[rope_layout_key(a)] = MetaValue::string(kRopeRotateHalf);
  // Llama-3's RoPE scaling (rope_type "llama3"), as GGUF names the keys; other types are recorded
  // so the runtime can refuse them by name.
  if (scaling.is_object()) {
    const std::string where = "rope_scaling.";
    SLMC_ASSIGN_OR_RETURN(json type, typed(scaling, where, "rope_type", Want::kString));
    if (type.is_null()) {
      SLMC_ASSIGN_OR_RETURN(type, typed(scaling, where, "type", Want::kString));
    }
    SLMC_ASSIGN_OR_RETURN(const json factor, typed(scaling, where, "factor", Want::kNumber));
    SLMC_ASSIGN_OR_RETURN(const json low, typed(scaling, where, "low_freq_factor", Want::kNumber));
    SLMC_ASSIGN_OR_RETURN(const json high, typed(scaling, where, "high_freq_factor", Want::kNumber));
    SLMC_ASSIGN_OR_RETURN(const json original, typed(scaling, where, "original_max_position_embeddings", Want::kCount));
    put_json(arch, a + ".rope.scaling.type", type);
    put_json(arch, a + ".rope.scaling.factor", factor);
    put_json(arch, a + ".rope.scaling.low_freq_factor", low);
    put_json(arch, a + ".rope.scaling.high_freq_factor", high);
    put_json(arch, a + ".rope.scaling.original_context_length", original);
  }
  return Status::ok_status();
}

std::string dir_config_path(const std::string& dir) { return (dir.empty() ? std::string(".") : dir) + "/config.json"; }

Result<std::optional<json>> read_config_json(const std::string& dir) {
  const std::string path = dir_config_path(dir);
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return std::optional<json>();  // absent: names decide
  SLMC_ASSIGN_OR_RETURN(const std::string text, read_input_file(path, kMaxHeaderBytes));
  SLMC_ASSIGN_OR_RETURN(json cfg, parse_json_strict(text.data(), text.data() + text.size(), path));
  if (!cfg.is_object()) return make_error(ErrorCode::kInvalidFormat, path + ": not a JSON object");
  return std::optional<json>(std::move(cfg));
}

/// The sentence-transformers configuration of a directory (modules.json, 1_Pooling/config.json or
/// the folder modules.json names, sentence_bert_config.json), as architecture keys of an encoder:
/// "<arch>.pooling_type" ("mean" or "cls"; other modes are recorded and refused by the runtime),
/// "<arch>.normalize" (a Normalize module follows the pooling) and "<arch>.max_seq_length". Absent
/// files leave the keys absent (the runtime then pools by mean, unnormalized). Wrong JSON types are
/// kInvalidFormat naming the file and the key.
Status sentence_transformers_config(const std::string& dir, const std::string& a, Metadata& arch) {
  const std::string base = dir.empty() ? std::string(".") : dir;
  auto read_object = [](const std::string& path) -> Result<std::optional<json>> {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return std::optional<json>();
    SLMC_ASSIGN_OR_RETURN(const std::string text, read_input_file(path, 1u << 20));
    SLMC_ASSIGN_OR_RETURN(json j, parse_json_strict(text.data(), text.data() + text.size(), path));
    return std::optional<json>(std::move(j));
  };
  std::string pooling_dir = "1_Pooling";
  bool normalize = false;
  SLMC_ASSIGN_OR_RETURN(std::optional<json> modules, read_object(base + "/modules.json"));
  if (modules) {
    if (!modules->is_array()) return bad(base + "/modules.json", "not a JSON array of modules");
    for (const json& m : *modules) {
      if (!m.is_object() || !m.contains("type") || !m["type"].is_string()) {
        return bad(base + "/modules.json", "module " + m.dump().substr(0, 80) + " has no \"type\" string");
      }
      const std::string type = m["type"].get<std::string>();
      const json path = m.contains("path") ? m["path"] : json("");
      if (!path.is_string()) return bad(base + "/modules.json", "module '" + type + "': \"path\" is not a string");
      const std::string p = path.get<std::string>();
      if (type == "sentence_transformers.models.Pooling") {
        if (p.empty() || p.find('/') != std::string::npos || p == "." || p == "..") {
          return bad(base + "/modules.json", "Pooling module path '" + p + "' is not a plain folder name");
        }
        pooling_dir = p;
      }
      if (type == "sentence_transformers.models.Normalize") normalize = true;
    }
    arch[a + ".normalize"] = MetaValue::json(normalize ? "true" : "false");
  }
  const std::string pooling_path = base + "/" + pooling_dir + "/config.json";
  SLMC_ASSIGN_OR_RETURN(std::optional<json> pooling, read_object(pooling_path));
  if (pooling) {
    if (!pooling->is_object()) return bad(pooling_path, "not a JSON object");
    std::vector<std::string> modes;
    for (const char* k : {"pooling_mode_cls_token", "pooling_mode_mean_tokens", "pooling_mode_max_tokens",
                          "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
                          "pooling_mode_lasttoken"}) {
      auto it = pooling->find(k);
      if (it == pooling->end() || it->is_null()) continue;
      if (!it->is_boolean()) return bad(pooling_path, std::string("'") + k + "' is " + it->dump() + ", not true or false");
      if (it->get<bool>()) modes.push_back(k + std::string_view("pooling_mode_").size());
    }
    // Newer files say it in one string: "pooling_mode": "mean".
    if (auto it = pooling->find("pooling_mode"); it != pooling->end() && !it->is_null()) {
      if (!it->is_string()) return bad(pooling_path, "'pooling_mode' is " + it->dump() + ", not a string");
      modes.assign(1, it->get<std::string>());
    }
    std::string mode;
    for (const std::string& m : modes) mode += (mode.empty() ? "" : "+") + m;
    if (mode == "mean_tokens" || mode == "mean") mode = "mean";
    if (mode == "cls_token" || mode == "cls") mode = "cls";
    if (mode.empty()) return bad(pooling_path, "names no pooling mode");
    arch[a + ".pooling_type"] = MetaValue::string(mode);
  }
  SLMC_ASSIGN_OR_RETURN(std::optional<json> sbert, read_object(base + "/sentence_bert_config.json"));
  if (sbert && sbert->is_object()) {
    auto it = sbert->find("max_seq_length");
    if (it != sbert->end() && !it->is_null()) {
      if (!it->is_number_unsigned() || it->get<uint64_t>() == 0) {
        return bad(base + "/sentence_bert_config.json", "'max_seq_length' is " + it->dump() + ", not a positive integer");
      }
      arch[a + ".max_seq_length"] = MetaValue::json(it->dump());
    }
  }
  return Status::ok_status();
}

}  // namespace

Status finish_safetensors(ModelSource& src, const std::string& dir, bool look_for_config) {
  std::optional<json> cfg;
  if (look_for_config) {
    SLMC_ASSIGN_OR_RETURN(cfg, read_config_json(dir));
    // A Hugging Face directory's tokenizer.json (and tokenizer_config.json) travels with the model.
    const std::string tok = (dir.empty() ? std::string(".") : dir) + "/tokenizer.json";
    struct stat st {};
    if (::lstat(tok.c_str(), &st) == 0) {
      auto t = read_hf_tokenizer(tok);
      if (t.ok()) {
        src.tokenizer_ = std::move(*t);
      } else if (t.status().code() == ErrorCode::kUnsupported) {
        src.warnings_.push_back(t.status().message() + "; the model is converted without a tokenizer");
      } else {
        return t.status();
      }
    }
  }
  bool gpt2 = false;
  if (cfg) {
    src.metadata_["hf.config"] = MetaValue::json(cfg->dump());
    SLMC_RETURN_IF_ERROR(architecture_from_config(*cfg, src.architecture_, dir_config_path(dir)));
    auto mt = cfg->find("model_type");
    gpt2 = mt != cfg->end() && mt->is_string() && mt->get<std::string>() == "gpt2";
    if (mt != cfg->end() && mt->is_string() && mt->get<std::string>() == "bert") {
      SLMC_RETURN_IF_ERROR(sentence_transformers_config(dir, "bert", src.architecture_));
    }
  } else {
    for (const auto& t : src.tensors_) gpt2 = gpt2 || is_gpt2_conv1d_name(t.name);
    if (gpt2) src.architecture_[kKeyArchitecture] = MetaValue::string("gpt2");
  }
  if (gpt2) {
    // GPT-2 Conv1D stores [in, out] (y = x W + b): transpose to nn.Linear's [out, in].
    for (size_t i = 0; i < src.tensors_.size(); ++i) {
      if (!is_gpt2_conv1d_name(src.tensors_[i].name)) continue;
      const DType d = src.tensors_[i].dtype;
      if (d != DType::kF32 && d != DType::kF16 && d != DType::kBF16 && d != DType::kF64) {
        return make_error(ErrorCode::kUnsupported, "tensor " + quote(src.tensors_[i].name) +
                                                       ": GPT-2 Conv1D weight of non-float dtype " +
                                                       std::string(dtype_name(d)));
      }
      SLMC_RETURN_IF_ERROR(transpose_2d(src, i));
    }
  }
  return Status::ok_status();
}

}  // namespace io_detail

Result<std::unique_ptr<ModelSource>> open_safetensors(std::shared_ptr<const InputFile> file, const std::string& dir) {
  auto src = std::make_unique<ModelSource>();
  src->format_ = SourceFormat::kSafetensors;
  SLMC_RETURN_IF_ERROR(io_detail::parse_safetensors_into(*src, *file, 0));
  std::string fname = file->path();
  const size_t slash = fname.find_last_of('/');
  if (slash != std::string::npos) fname = fname.substr(slash + 1);
  src->files_.push_back(SourceFileInfo{fname, file->path(), "", file->size(), SourceFormat::kSafetensors});
  src->inputs_.push_back(std::move(file));
  SLMC_RETURN_IF_ERROR(io_detail::finish_safetensors(*src, dir, !dir.empty()));
  return src;
}

}  // namespace slmc
