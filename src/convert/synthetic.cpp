#include "slmc/io/output.hpp"
#include "slmc/convert/synthetic.hpp"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "slmc/convert/safetensors_writer.hpp"

namespace slmc {
namespace {

// splitmix64: tiny, exactly specified, identical everywhere.
struct Rng {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
  double normal() {  // Box-Muller
    const double u1 = uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  double student_t4() {  // t with 4 dof: z / sqrt(chi2_4 / 4)
    double chi2 = 0;
    for (int i = 0; i < 4; ++i) {
      const double z = normal();
      chi2 += z * z;
    }
    return normal() / std::sqrt(chi2 / 4.0);
  }
};

struct Spec {
  std::string name;
  std::vector<int64_t> shape;
  enum Kind { kLinear, kEmbedding, kNorm, kBias } kind;
};

}  // namespace

Status write_synthetic_llama(const std::string& dir, const SyntheticLlamaConfig& c) {
  if (c.dim <= 0 || c.hidden_dim <= 0 || c.layers <= 0 || c.heads <= 0 || c.kv_heads <= 0 || c.vocab <= 0 ||
      c.dim % c.heads != 0 || c.heads % c.kv_heads != 0 ||
      (c.arch != "llama" && c.arch != "mistral" && c.arch != "qwen2") || !(c.rope_scaling_factor >= 0)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "synthetic model: dim, hidden_dim, layers, heads, kv_heads, vocab must be positive, "
                      "dim divisible by heads and heads by kv_heads, arch llama, mistral or qwen2");
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return make_error(ErrorCode::kIoError, dir + ": cannot create directory: " + ec.message());
  const int64_t head_dim = c.dim / c.heads, kv_dim = head_dim * c.kv_heads;
  std::vector<Spec> specs;
  specs.push_back({"model.embed_tokens.weight", {c.vocab, c.dim}, Spec::kEmbedding});
  for (int l = 0; l < c.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    specs.push_back({p + "input_layernorm.weight", {c.dim}, Spec::kNorm});
    specs.push_back({p + "self_attn.q_proj.weight", {c.dim, c.dim}, Spec::kLinear});
    specs.push_back({p + "self_attn.k_proj.weight", {kv_dim, c.dim}, Spec::kLinear});
    specs.push_back({p + "self_attn.v_proj.weight", {kv_dim, c.dim}, Spec::kLinear});
    if (c.arch == "qwen2") {
      specs.push_back({p + "self_attn.q_proj.bias", {c.dim}, Spec::kBias});
      specs.push_back({p + "self_attn.k_proj.bias", {kv_dim}, Spec::kBias});
      specs.push_back({p + "self_attn.v_proj.bias", {kv_dim}, Spec::kBias});
    }
    specs.push_back({p + "self_attn.o_proj.weight", {c.dim, c.dim}, Spec::kLinear});
    specs.push_back({p + "post_attention_layernorm.weight", {c.dim}, Spec::kNorm});
    specs.push_back({p + "mlp.gate_proj.weight", {c.hidden_dim, c.dim}, Spec::kLinear});
    specs.push_back({p + "mlp.up_proj.weight", {c.hidden_dim, c.dim}, Spec::kLinear});
    specs.push_back({p + "mlp.down_proj.weight", {c.dim, c.hidden_dim}, Spec::kLinear});
  }
  specs.push_back({"model.norm.weight", {c.dim}, Spec::kNorm});
  if (!c.tied) specs.push_back({"lm_head.weight", {c.vocab, c.dim}, Spec::kLinear});

  std::vector<SafetensorsEntry> entries;
  for (const Spec& s : specs) entries.push_back({s.name, DType::kF32, s.shape});
  auto produce = [&](size_t i, std::vector<uint8_t>& bytes) -> Status {
    const Spec& s = specs[i];
    Rng rng{c.seed * 0x100000001b3ull + i};
    int64_t n = 1;
    for (int64_t d : s.shape) n *= d;
    std::vector<float> w(static_cast<size_t>(n));
    if (s.kind == Spec::kNorm) {
      for (auto& x : w) x = static_cast<float>(1.0 + 0.05 * rng.normal());
    } else if (s.kind == Spec::kBias) {
      for (auto& x : w) x = static_cast<float>(0.5 * rng.normal());
    } else {
      const int64_t k = s.shape[1];
      // A few outlier input channels per matrix, as trained transformers have.
      std::vector<float> channel(static_cast<size_t>(k), 1.0f);
      for (auto& ch : channel) {
        if (rng.uniform() < c.outlier_channel_fraction) ch = static_cast<float>(c.outlier_scale);
      }
      const double scale = s.kind == Spec::kEmbedding ? 0.5 : 1.0 / std::sqrt(static_cast<double>(k));
      for (int64_t r = 0; r < s.shape[0]; ++r) {
        for (int64_t j = 0; j < k; ++j) {
          w[static_cast<size_t>(r * k + j)] = static_cast<float>(scale * rng.student_t4() * channel[static_cast<size_t>(j)]);
        }
      }
    }
    bytes.resize(w.size() * sizeof(float));
    std::memcpy(bytes.data(), w.data(), bytes.size());
    return Status::ok_status();
  };
  std::map<std::string, std::string> meta{{"format", "pt"}, {"generator", "slmc synthetic llama"}};
  SLMC_RETURN_IF_ERROR(write_safetensors(dir + "/model.safetensors", entries, meta, produce));

  nlohmann::ordered_json cfg;
  cfg["architectures"] = {c.arch == "qwen2" ? "Qwen2ForCausalLM" : c.arch == "mistral" ? "MistralForCausalLM"
                                                                                        : "LlamaForCausalLM"};
  cfg["model_type"] = c.arch;
  cfg["hidden_size"] = c.dim;
  cfg["intermediate_size"] = c.hidden_dim;
  cfg["num_hidden_layers"] = c.layers;
  cfg["num_attention_heads"] = c.heads;
  cfg["num_key_value_heads"] = c.kv_heads;
  cfg["vocab_size"] = c.vocab;
  cfg["max_position_embeddings"] = c.context;
  cfg["rms_norm_eps"] = 1e-5;
  cfg["rope_theta"] = c.rope_theta;
  if (c.rope_scaling_factor > 0) {
    cfg["rope_scaling"] = {{"rope_type", "llama3"},
                           {"factor", c.rope_scaling_factor},
                           {"low_freq_factor", 1.0},
                           {"high_freq_factor", 4.0},
                           {"original_max_position_embeddings", c.context / 4}};
  }
  cfg["tie_word_embeddings"] = c.tied;
  cfg["torch_dtype"] = "float32";
  return write_file_atomic(dir + "/config.json", cfg.dump(2) + "\n");
}

}  // namespace slmc
