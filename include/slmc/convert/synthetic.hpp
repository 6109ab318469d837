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
};

/// Writes `dir`/model.safetensors and `dir`/config.json (Hugging Face Llama naming, creating
/// `dir` if needed).
Status write_synthetic_llama(const std::string& dir, const SyntheticLlamaConfig& config);

}  // namespace slmc
