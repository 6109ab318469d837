// A deterministic, Llama-shaped synthetic model: the built-in default input of `make demo` and
// of tests that need a model of a chosen size. Weights are heavy-tailed (Student-t, 4 degrees of
// freedom, scaled by 1/sqrt(K)) with a few outlier input channels, as in trained LLMs; norms are
// near 1. The same config gives the same bytes on every machine (own RNG, no std distributions).
#pragma once

#include <cstdint>
#include <string>

#include "slmc/status.hpp"

namespace slmc {

struct SyntheticLlamaConfig {
  int dim = 256;
  int hidden_dim = 688;
  int layers = 4;
  int heads = 8;
  int kv_heads = 4;
  int vocab = 2048;
  int context = 512;
  double outlier_channel_fraction = 0.01;  ///< input channels scaled by outlier_scale
  double outlier_scale = 8.0;
  uint64_t seed = 1;
  /// Model family written into config.json: "llama", "mistral" (the same tensors) or "qwen2"
  /// (q/k/v biases).
  std::string arch = "llama";
  bool tied = true;               ///< false: a separate lm_head.weight
  double rope_theta = 10000.0;
  /// > 0: Llama-3's RoPE scaling (rope_scaling.rope_type "llama3") with this factor, low/high
  /// frequency factors 1 and 4 and original_max_position_embeddings = context / 4.
  double rope_scaling_factor = 0;
};

/// Writes `dir`/model.safetensors and `dir`/config.json (Hugging Face naming of the family,
/// creating `dir` if needed). The default config's bytes never change.
Status write_synthetic_llama(const std::string& dir, const SyntheticLlamaConfig& config);

}  // namespace slmc
