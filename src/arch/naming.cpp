// Canonical tensor names and roles (include/slmc/arch/naming.hpp).
#include "slmc/arch/naming.hpp"

#include <cstring>
#include <set>

namespace slmc {
namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

// GGUF names of the Llama family (llama, mistral, qwen2, ...; llama.cpp's LLM_TENSOR names) and
// their Hugging Face counterparts. Per-layer names are "blk.N.<gguf>" -> "model.layers.N.<hf>".
struct NamePair {
  const char* gguf;
  const char* hf;
};
constexpr NamePair kGlobalNames[] = {
    {"token_embd", "model.embed_tokens"},
    {"output_norm", "model.norm"},
    {"output", "lm_head"},
};
constexpr NamePair kLayerNames[] = {
    {"attn_norm", "input_layernorm"},     {"attn_q", "self_attn.q_proj"},   {"attn_k", "self_attn.k_proj"},
    {"attn_v", "self_attn.v_proj"},       {"attn_output", "self_attn.o_proj"}, {"ffn_norm", "post_attention_layernorm"},
    {"ffn_gate", "mlp.gate_proj"},        {"ffn_up", "mlp.up_proj"},        {"ffn_down", "mlp.down_proj"},
};
constexpr const char* kLlamaFamily[] = {"llama", "mistral", "qwen2", "granite"};

bool llama_family(std::string_view arch) {
  for (const char* a : kLlamaFamily) {
    if (arch == a) return true;
  }
  return false;
}

/// Splits "stem.weight" / "stem.bias"; false when the name has neither suffix.
bool split_suffix(std::string_view name, std::string_view* stem, std::string_view* suffix) {
  for (std::string_view s : {std::string_view(".weight"), std::string_view(".bias")}) {
    if (ends_with(name, s)) {
      *stem = name.substr(0, name.size() - s.size());
      *suffix = s;
      return true;
    }
  }
  return false;
}

}  // namespace

std::string_view tensor_role_name(TensorRole role) noexcept {
  switch (role) {
    case TensorRole::kOther: return "other";
    case TensorRole::kEmbedding: return "embedding";
    case TensorRole::kOutput: return "output";
    case TensorRole::kNorm: return "norm";
    case TensorRole::kAttention: return "attention";
    case TensorRole::kMlp: return "mlp";
  }
  return "other";
}

bool tensor_role_from_name(std::string_view name, TensorRole* out) noexcept {
  for (TensorRole r : {TensorRole::kOther, TensorRole::kEmbedding, TensorRole::kOutput, TensorRole::kNorm,
                       TensorRole::kAttention, TensorRole::kMlp}) {
    if (tensor_role_name(r) == name) {
      *out = r;
      return true;
    }
  }
  return false;
}

TensorRole tensor_role(std::string_view n) noexcept {
  if (ends_with(n, "embed_tokens.weight") || ends_with(n, "wte.weight") || ends_with(n, "wpe.weight") ||
      ends_with(n, "word_embeddings.weight") || ends_with(n, "position_embeddings.weight") ||
      ends_with(n, "token_type_embeddings.weight")) {
    return TensorRole::kEmbedding;
  }
  if (n == "lm_head.weight") return TensorRole::kOutput;
  if (contains(n, "norm") || contains(n, ".ln_") || contains(n, "LayerNorm")) return TensorRole::kNorm;
  if (contains(n, ".self_attn.") || contains(n, ".attn.") || contains(n, ".attention.")) return TensorRole::kAttention;
  if (contains(n, ".mlp.") || contains(n, ".intermediate.") || contains(n, ".output.dense")) return TensorRole::kMlp;
  return TensorRole::kOther;
}

std::string canonical_tensor_name(std::string_view arch, SourceFormat format, std::string_view name) {
  if (format != SourceFormat::kGguf || !llama_family(arch)) return std::string(name);
  std::string_view stem, suffix;
  if (!split_suffix(name, &stem, &suffix)) return std::string(name);
  for (const NamePair& p : kGlobalNames) {
    if (stem == p.gguf) return std::string(p.hf) + std::string(suffix);
  }
  if (stem.compare(0, 4, "blk.") != 0) return std::string(name);
  const size_t dot = stem.find('.', 4);
  if (dot == std::string_view::npos || dot == 4) return std::string(name);
  const std::string_view layer = stem.substr(4, dot - 4), part = stem.substr(dot + 1);
  for (char c : layer) {
    if (c < '0' || c > '9') return std::string(name);
  }
  for (const NamePair& p : kLayerNames) {
    if (part == p.gguf) return "model.layers." + std::string(layer) + "." + p.hf + std::string(suffix);
  }
  return std::string(name);
}

Status canonicalize_tensor_names(ModelSource& source) {
  std::string arch;
  if (auto it = source.architecture().find(kKeyArchitecture); it != source.architecture().end()) arch = it->second.text;
  std::set<std::string> seen;
  std::vector<std::string> renamed;
  renamed.reserve(source.tensors_.size());
  for (const SourceTensor& t : source.tensors_) {
    std::string n = canonical_tensor_name(arch, source.format(), t.name);
    if (!seen.insert(n).second) {
      return make_error(ErrorCode::kInvalidFormat, "tensor '" + t.name + "' maps to the canonical name '" + n +
                                                       "', which another tensor of the file already has");
    }
    renamed.push_back(std::move(n));
  }
  for (size_t i = 0; i < renamed.size(); ++i) source.tensors_[i].name = std::move(renamed[i]);
  return Status::ok_status();
}

}  // namespace slmc
