// llama2.c header parsing, shared by the reader and format detection.
#pragma once

#include <cstdint>
#include <optional>

namespace slmc::io_detail {

struct Llama2cConfig {
  int64_t dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0, seq_len = 0;
  int64_t kv_dim = 0;
  bool shared_classifier = true;
  uint64_t expected_bytes = 0;
};

/// The header of a legacy llama2.c checkpoint (`header`: the file's first 28 bytes) if it is
/// plausible and the file size `size` matches it exactly; nullopt otherwise.
std::optional<Llama2cConfig> llama2c_config(const uint8_t* header, uint64_t size);

}  // namespace slmc::io_detail
