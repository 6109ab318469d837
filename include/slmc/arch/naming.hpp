// One naming per architecture: source tensor names mapped to canonical (Hugging Face) names, and
// the role of each tensor that recipes and presets match on (docs/CLI.md "Tensor names and roles").
//
// GGUF files name Llama-family tensors their own way (token_embd.weight, blk.0.attn_q.weight);
// open_model renames them to the names the same model has in a Hugging Face checkpoint
// (model.embed_tokens.weight, model.layers.0.self_attn.q_proj.weight), so a recipe, a calibration
// file and the runtime see one name whatever the source. Only names change: data, and the RoPE
// layout of q/k (recorded in "<arch>.rope.layout"), stay as stored.
#pragma once

#include <string>
#include <string_view>

#include "slmc/io/model_source.hpp"
#include "slmc/status.hpp"

namespace slmc {

enum class TensorRole : uint8_t {
  kOther = 0,
  kEmbedding = 1,  ///< token (and position / token-type) embedding tables
  kOutput = 2,     ///< the classifier (lm_head)
  kNorm = 3,       ///< RMSNorm / LayerNorm weights and biases
  kAttention = 4,  ///< q, k, v, o projections
  kMlp = 5,        ///< feed-forward projections
};
std::string_view tensor_role_name(TensorRole role) noexcept;
/// "embedding" -> kEmbedding, ...; false for an unknown name.
bool tensor_role_from_name(std::string_view name, TensorRole* out) noexcept;

/// The role of a tensor by its canonical name.
TensorRole tensor_role(std::string_view canonical_name) noexcept;

/// The canonical name of tensor `name` of a `format` source whose general.architecture is `arch`
/// (empty when unknown). Names without a mapping are returned unchanged.
std::string canonical_tensor_name(std::string_view arch, SourceFormat format, std::string_view name);

/// Renames every tensor of `source` to its canonical name. kInvalidFormat when two tensors would
/// get the same name.
Status canonicalize_tensor_names(ModelSource& source);

}  // namespace slmc
