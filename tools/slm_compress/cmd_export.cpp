// slm-compress export: a .slm file's weights, decoded, back to safetensors (fp32 or fp16), for
// debugging and for round trips through other tools; --format hf writes a Hugging Face model
// directory (model.safetensors, config.json, tokenizer.json, tokenizer_config.json).
#include <cmath>
#include <cstring>
#include <iostream>

#include "commands.hpp"
#include "common.hpp"
#include "slmc/convert/safetensors_writer.hpp"
#include "slmc/format/model_file.hpp"
#include "slmc/half.hpp"
#include "slmc/io/output.hpp"
#include "slmc/text/tokenizer.hpp"

namespace slmc::cli {
namespace {

struct ExportArgs {
  std::string path, output, dtype = "fp32", format = "safetensors";
  bool json = false, force = false, no_verify = false;
};

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

/// GGUF / llama2.c q and k rows (RoPE pairs (2i, 2i+1) of each head) in Hugging Face's order (pairs
/// (i, i + d/2)): HF row h*d + i is stored row h*d + 2i, HF row h*d + d/2 + i is h*d + 2i + 1.
void interleaved_to_rotate_half(const float* in, int64_t heads, int64_t head_dim, int64_t cols, float* out) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      std::memcpy(out + (h * head_dim + i) * cols, in + (h * head_dim + 2 * i) * cols, sizeof(float) * cols);
      std::memcpy(out + (h * head_dim + half + i) * cols, in + (h * head_dim + 2 * i + 1) * cols, sizeof(float) * cols);
    }
  }
}

Result<int64_t> arch_int(const ModelHeader& h, const std::string& key) {
  auto it = h.architecture.find(key);
  if (it == h.architecture.end()) return make_error(ErrorCode::kNotFound, "architecture key '" + key + "' is missing");
  char* end = nullptr;
  const double v = std::strtod(it->second.text.c_str(), &end);
  if (end == it->second.text.c_str() || !std::isfinite(v) || v < 0 || v > 1e12 || v != std::floor(v)) {
    return make_error(ErrorCode::kInvalidFormat, "architecture key '" + key + "' = '" + it->second.text +
                                                     "' is not a count");
  }
  return static_cast<int64_t>(v);
}

double arch_double(const ModelHeader& h, const std::string& key, double fallback) {
  auto it = h.architecture.find(key);
  if (it == h.architecture.end()) return fallback;
  char* end = nullptr;
  const double v = std::strtod(it->second.text.c_str(), &end);
  return end == it->second.text.c_str() || !std::isfinite(v) ? fallback : v;
}

/// A Hugging Face Llama directory: HF names (already canonical), q/k in rotate-half order,
/// config.json with transformers' field names, the tokenizer as tokenizer.json.
int export_hf(const ExportArgs& a, const ModelFile& f, DType dtype) {
  const ModelHeader& h = f.header();
  auto arch_it = h.architecture.find(kKeyArchitecture);
  const std::string arch = arch_it == h.architecture.end() ? "" : arch_it->second.text;
  if (arch != "llama" && arch != "mistral" && arch != "qwen2") {
    return fail(make_error(ErrorCode::kUnsupported, a.path + ": --format hf exports the Llama family (llama, mistral, "
                                                             "qwen2); this model is '" + arch + "'"));
  }
  const std::string k = arch + ".";
  int64_t v[5];
  const std::string keys[5] = {k + "embedding_length", k + "feed_forward_length", k + "block_count",
                               k + "attention.head_count", k + "context_length"};
  for (int i = 0; i < 5; ++i) {
    auto r = arch_int(h, keys[i]);
    if (!r.ok()) return fail(r.status().with_context(a.path));
    v[i] = *r;
  }
  const int64_t dim = v[0], heads = v[3];
  int64_t kv_heads = heads;
  if (h.architecture.count(k + "attention.head_count_kv")) {
    auto r = arch_int(h, k + "attention.head_count_kv");
    if (!r.ok()) return fail(r.status().with_context(a.path));
    kv_heads = *r;
  }
  if (heads <= 0 || kv_heads <= 0 || dim % heads != 0 || (dim / heads) % 2 != 0) {
    return fail(make_error(ErrorCode::kInvalidFormat, a.path + ": inconsistent head counts"));
  }
  const int64_t head_dim = dim / heads;
  auto layout = h.architecture.find(rope_layout_key(arch));
  const bool interleaved = layout == h.architecture.end() || layout->second.text != kRopeRotateHalf;
  const StoredTensor* embed = f.find("model.embed_tokens.weight");
  if (!embed) return fail(make_error(ErrorCode::kNotFound, a.path + ": tensor 'model.embed_tokens.weight' is missing"));
  const bool tied = f.find("lm_head.weight") == nullptr;

  Json cfg;
  cfg["architectures"] = {arch == "qwen2" ? "Qwen2ForCausalLM" : arch == "mistral" ? "MistralForCausalLM"
                                                                                    : "LlamaForCausalLM"};
  cfg["model_type"] = arch;
  cfg["hidden_size"] = dim;
  cfg["intermediate_size"] = v[1];
  cfg["num_hidden_layers"] = v[2];
  cfg["num_attention_heads"] = heads;
  cfg["num_key_value_heads"] = kv_heads;
  cfg["head_dim"] = head_dim;
  cfg["hidden_act"] = "silu";
  cfg["max_position_embeddings"] = v[4];
  cfg["rms_norm_eps"] = arch_double(h, k + "attention.layer_norm_rms_epsilon", 1e-5);
  cfg["rope_theta"] = arch_double(h, k + "rope.freq_base", 10000.0);
  if (auto st = h.architecture.find(k + "rope.scaling.type"); st != h.architecture.end()) {
    cfg["rope_scaling"] = {{"rope_type", st->second.text},
                           {"factor", arch_double(h, k + "rope.scaling.factor", 1.0)}};
    if (st->second.text == "llama3") {
      cfg["rope_scaling"]["low_freq_factor"] = arch_double(h, k + "rope.scaling.low_freq_factor", 1.0);
      cfg["rope_scaling"]["high_freq_factor"] = arch_double(h, k + "rope.scaling.high_freq_factor", 4.0);
      cfg["rope_scaling"]["original_max_position_embeddings"] =
          static_cast<int64_t>(arch_double(h, k + "rope.scaling.original_context_length", 8192.0));
    }
  }
  if (f.find("rope_freqs.weight")) {
    std::cerr << "slm-compress: warning: GGUF's rope_freqs.weight has no config.json form; it is exported as a "
                 "tensor and the config carries no rope_scaling\n";
  }
  cfg["vocab_size"] = embed->view.rows;
  cfg["tie_word_embeddings"] = tied;
  if (arch == "llama") {
    cfg["attention_bias"] = f.find("model.layers.0.self_attn.q_proj.bias") != nullptr;
    cfg["mlp_bias"] = false;
  }
  cfg["torch_dtype"] = dtype == DType::kF32 ? "float32" : "float16";
  const TokenizerData& tok = h.tokenizer;
  if (tok.bos_id >= 0) cfg["bos_token_id"] = tok.bos_id;
  if (tok.eos_id >= 0) cfg["eos_token_id"] = tok.eos_id;

  std::string tokenizer_json, tokenizer_config;
  std::string tokenizer_note;
  if (tok.empty()) {
    tokenizer_note = "the file holds no tokenizer";
  } else if (Status s = write_hf_tokenizer(tok, &tokenizer_json, &tokenizer_config); !s.ok()) {
    tokenizer_note = s.message();
  }
  if (!tokenizer_note.empty()) std::cerr << "slm-compress: warning: no tokenizer.json written: " << tokenizer_note << "\n";

  auto dir = AtomicDirectory::create(a.output, a.force);
  if (!dir.ok()) return fail(dir.status());
  std::vector<SafetensorsEntry> entries;
  for (const StoredTensor& t : f.tensors()) entries.push_back({t.name, dtype, t.shape.dims()});
  std::map<std::string, std::string> meta{{"format", "pt"}};
  std::vector<float> decoded, permuted;
  Status s = write_safetensors(dir->path() + "/model.safetensors", entries, meta,
                               [&](size_t i, std::vector<uint8_t>& bytes) -> Status {
    const StoredTensor& t = f.tensors()[i];
    decoded.resize(static_cast<size_t>(t.shape.numel()));
    SLMC_RETURN_IF_ERROR(decode(t.view, decoded.data()).with_context(a.path + ": tensor '" + t.name + "'"));
    const float* src = decoded.data();
    const bool q = ends_with(t.name, "self_attn.q_proj.weight") || ends_with(t.name, "self_attn.q_proj.bias");
    const bool k = ends_with(t.name, "self_attn.k_proj.weight") || ends_with(t.name, "self_attn.k_proj.bias");
    if (interleaved && (q || k)) {
      const int64_t nh = q ? heads : kv_heads;
      const int64_t rows = t.shape.rank() == 1 ? t.shape.numel() : t.shape.rows();  // a bias: one value per row
      if (rows != nh * head_dim) {
        return make_error(ErrorCode::kInvalidFormat, a.path + ": tensor '" + t.name + "' has " + std::to_string(rows) +
                                                         " rows, expected " + std::to_string(nh * head_dim));
      }
      permuted.resize(decoded.size());
      interleaved_to_rotate_half(decoded.data(), nh, head_dim, t.shape.numel() / rows, permuted.data());
      src = permuted.data();
    }
    if (dtype == DType::kF32) {
      bytes.resize(decoded.size() * 4);
      std::memcpy(bytes.data(), src, bytes.size());
    } else {
      bytes.resize(decoded.size() * 2);
      convert_fp32_to_fp16(src, reinterpret_cast<uint16_t*>(bytes.data()), decoded.size());
    }
    return Status::ok_status();
  });
  if (s.ok()) s = write_new_file(dir->path() + "/config.json", cfg.dump(2, ' ', false, Json::error_handler_t::replace) + "\n");
  if (s.ok() && !tokenizer_json.empty()) s = write_new_file(dir->path() + "/tokenizer.json", tokenizer_json + "\n");
  if (s.ok() && !tokenizer_config.empty()) {
    s = write_new_file(dir->path() + "/tokenizer_config.json", tokenizer_config + "\n");
  }
  if (s.ok()) s = dir->commit();
  if (!s.ok()) return fail(s);
  if (a.json) {
    Json j{{"input", a.path}, {"output", a.output}, {"format", "hf"}, {"dtype", a.dtype}, {"tensors", entries.size()},
           {"tokenizer", tokenizer_note.empty()}, {"qk_unpermuted", interleaved}};
    std::cout << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  } else {
    std::cout << "wrote " << a.output << "/: " << entries.size() << " tensors as " << a.dtype
              << (interleaved ? " (q/k rows in Hugging Face's rotate-half order)" : "") << ", config.json"
              << (tokenizer_note.empty() ? ", tokenizer.json, tokenizer_config.json" : "") << "\n";
  }
  return kExitOk;
}

int run_export(const ExportArgs& a) {
  DType dtype;
  if (a.dtype == "fp32") dtype = DType::kF32;
  else if (a.dtype == "fp16") dtype = DType::kF16;
  else return fail_usage("--dtype '" + a.dtype + "': valid: fp32, fp16");
  if (a.format != "safetensors" && a.format != "hf") return fail_usage("--format '" + a.format + "': valid: safetensors, hf");
  if (Status s = check_output_path(a.output, {a.path}, a.format == "hf" ? OutputKind::kDirectory : OutputKind::kFile,
                                   a.force);
      !s.ok()) {
    return fail_usage(s.message());
  }
  LoadOptions load;
  load.verify_checksums = !a.no_verify;  // a corrupted file is exit 5, not silently exported
  auto file = ModelFile::open(a.path, load);
  if (!file.ok()) return fail(file.status());
  const ModelFile& f = **file;
  if (a.format == "hf") return export_hf(a, f, dtype);
  std::vector<SafetensorsEntry> entries;
  for (const StoredTensor& t : f.tensors()) entries.push_back({t.name, dtype, t.shape.dims()});
  std::map<std::string, std::string> meta{{"format", "pt"}, {"exported_from", a.path},
                                          {"producer", f.header().producer + " " + f.header().producer_version}};
  for (const auto& [k, v] : f.header().architecture) meta[k] = v.text;
  std::vector<float> decoded;
  Status s = write_safetensors(a.output, entries, meta, [&](size_t i, std::vector<uint8_t>& bytes) -> Status {
    const StoredTensor& t = f.tensors()[i];
    decoded.resize(static_cast<size_t>(t.shape.numel()));
    SLMC_RETURN_IF_ERROR(decode(t.view, decoded.data()).with_context(a.path + ": tensor '" + t.name + "'"));
    if (dtype == DType::kF32) {
      bytes.resize(decoded.size() * 4);
      std::memcpy(bytes.data(), decoded.data(), bytes.size());
    } else {
      bytes.resize(decoded.size() * 2);
      convert_fp32_to_fp16(decoded.data(), reinterpret_cast<uint16_t*>(bytes.data()), decoded.size());
    }
    return Status::ok_status();
  });
  if (!s.ok()) return fail(s);
  if (a.json) {
    Json j{{"input", a.path}, {"output", a.output}, {"dtype", a.dtype}, {"tensors", entries.size()}};
    std::cout << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  } else {
    std::cout << "wrote " << a.output << ": " << entries.size() << " tensors as " << a.dtype << "\n";
  }
  return kExitOk;
}

}  // namespace

Command add_export(CLI::App& app) {
  auto a = std::make_shared<ExportArgs>();
  CLI::App* sub = app.add_subcommand("export", "Decode a .slm file's weights back to safetensors");
  sub->add_option("file", a->path, ".slm file")->required();
  sub->add_option("-o,--output", a->output, "Output .safetensors file (--format hf: a directory)")->required();
  sub->add_option("--format", a->format,
                  "safetensors: one file, names and layout as stored; hf: a Hugging Face model directory "
                  "(model.safetensors with q/k in HF's rotate-half order, config.json, tokenizer.json)")
      ->capture_default_str();
  sub->add_option("--dtype", a->dtype, "fp32 or fp16")->capture_default_str();
  sub->add_flag("--force", a->force, "Replace an existing output that is not a regular file (or, for hf, a directory)");
  sub->add_flag("--json", a->json, "Print one JSON document to stdout");
  sub->add_flag("--no-verify", a->no_verify, "Skip the checksum pass over the input");
  return {sub, [a] { return run_export(*a); }};
}

}  // namespace slmc::cli
