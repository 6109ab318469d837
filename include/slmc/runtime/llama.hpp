// A small, readable Llama-architecture inference engine that runs a .slm file through the
// library's kernels: RMSNorm, RoPE in the layout the file records (interleaved pairs for llama2.c
// and GGUF, rotate-half for Hugging Face weights), grouped-query attention with a KV cache, SwiGLU
// feed-forward and a tied (or separate) classifier. Every linear layer and the embedding lookup go
// through slmc::linear / slmc::gather_rows on the weights as the file maps them, whatever encoding
// it holds: dense layers through the dense kernels, CSR / BSR / N:M / bitmask layers through the
// sparse kernels (nothing is decoded or repacked at load; LlamaModel::load_stats() says so);
// everything else through the SIMD ops of slmc/kernels/ops.hpp, with attention parallel across
// (query row, head) pairs (docs/KERNELS.md, "Forward-pass ops").
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "slmc/buffer.hpp"
#include "slmc/format/model_file.hpp"
#include "slmc/kernels/linear.hpp"
#include "slmc/status.hpp"

namespace slmc {

struct LlamaConfig {
  std::string arch = "llama";  ///< general.architecture: llama, mistral or qwen2
  int64_t dim = 0;
  int64_t hidden_dim = 0;
  int64_t layers = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t vocab = 0;
  int64_t context = 0;
  double rms_eps = 1e-5;
  double rope_base = 10000.0;
  bool rope_interleaved = true;  ///< pairs (2i, 2i+1); false: rotate-half pairs (i, i + d/2)
  /// Per-pair rotation frequency: base^(-2i/d), divided by the scaling the file records
  /// (<arch>.rope.scaling.*: llama3 or linear; GGUF's rope_freqs.weight).
  std::vector<double> rope_inv_freq;
  int64_t head_dim() const noexcept { return heads ? dim / heads : 0; }
  int64_t kv_dim() const noexcept { return head_dim() * kv_heads; }
};

struct LlamaOptions {
  int num_threads = 0;           ///< <= 0: all cores
  ActMode act_mode = ActMode::kAuto;  ///< for quantized weights (float weights always run fp32)
  int64_t max_context = 0;       ///< longest context allowed; <= 0: the model's context length
                                 ///< (the KV cache grows with the positions actually used)
  /// Recompute every segment's xxh64 at load (kChecksumMismatch names the tensor): one pass over
  /// the file at memory speed. Off only where the file is known good and load time matters.
  bool verify_checksums = true;
};

/// What load() did with the weights: every linear layer (embedding and classifier included; a
/// tied classifier counts once) runs on the bytes of the mapping, dense or sparse; only rank-1
/// tensors stored in a non-f32 encoding (norms, biases) are decoded into owned memory.
struct LlamaLoadStats {
  int64_t dense_matrices = 0;       ///< linear weights in a dense encoding
  int64_t sparse_matrices = 0;      ///< linear weights in CSR, BSR, N:M or bitmask
  uint64_t mapped_matrix_bytes = 0;   ///< bytes of those weights' segments, read in place
  uint64_t mapped_sparse_bytes = 0;   ///< the sparse ones' share of mapped_matrix_bytes
  /// Bytes load() allocated for copies of weights: every decoded tensor is counted here, and today
  /// only norms and biases stored in a non-f32 encoding are (a few KiB); a matrix never is.
  uint64_t owned_weight_bytes = 0;
};

class LlamaModel {
 public:
  /// Loads and validates a .slm file holding a Llama-family model (general.architecture "llama",
  /// "mistral" or "qwen2"; canonical tensor names; optional q/k/v/o biases; tied or separate
  /// lm_head; RoPE scaling llama3 or linear). Other architectures are kUnsupported, naming them.
  /// Errors name the missing key or tensor.
  static Result<std::unique_ptr<LlamaModel>> load(const std::string& path, const LlamaOptions& options = {});

  const LlamaConfig& config() const noexcept { return config_; }
  const ModelFile& file() const noexcept { return *file_; }
  const LlamaLoadStats& load_stats() const noexcept { return load_stats_; }

  /// Forgets the KV cache (next forward starts at position 0).
  void reset() noexcept { pos_ = 0; }
  int64_t position() const noexcept { return pos_; }

  /// Runs `count` tokens at positions position() .. position()+count-1 (prefill when count > 1,
  /// decode when 1) and appends them to the KV cache. logits: count x vocab floats (may be null
  /// to skip the classifier, e.g. for calibration); only the last row is computed when
  /// `last_only`.
  Status forward(const int32_t* tokens, int64_t count, float* logits, bool last_only = false);

  /// Observer of every linear layer's input, for calibration: called with the weight name, the
  /// input rows X[n x K]. Null: no observation.
  using LinearObserver = std::function<void(const std::string& weight, const float* x, int64_t n, int64_t k)>;
  void set_linear_observer(LinearObserver fn) { observer_ = std::move(fn); }

 private:
  struct Linear {
    std::string name;
    EncodedMatrixView view;
    const float* bias = nullptr;  ///< one per output row (Qwen2's q/k/v), or null
    ActMode mode = ActMode::kAuto;  ///< act_mode_for_layer(options.act_mode, encoding), checked at load
  };
  struct Layer {
    const float* attn_norm = nullptr;
    const float* ffn_norm = nullptr;
    Linear wq, wk, wv, wo, w_gate, w_up, w_down;
  };

  LlamaModel() = default;
  Status run_linear(const Linear& w, const float* x, int64_t n, float* y);
  /// Linear layers that read the same input, run side by side on two threads with one-thread
  /// contexts (decode on two threads: one fork for q/k/v and one for gate/up instead of one per
  /// layer); `split` is the first layer of the second thread's share. Same bits as run_linear
  /// (linear() results do not depend on the thread count).
  Status run_linear_pair(const Linear* const* ws, float* const* ys, int count, int split, const float* x, int64_t n);

  std::unique_ptr<ModelFile> file_;
  LlamaConfig config_;
  LlamaOptions options_;
  LinearContext ctx_;
  LinearContext pair_ctx_[2];  ///< one-thread contexts of run_linear_pair
  Linear embed_, classifier_;
  const float* final_norm_ = nullptr;
  std::vector<Layer> layers_;
  std::vector<AlignedBuffer> owned_norms_;  ///< norms stored in a non-f32 encoding, decoded
  LlamaLoadStats load_stats_;
  void reserve_positions(int64_t positions);
  std::vector<std::vector<float>> layer_keys_, layer_values_;  ///< per layer: [positions][kv_dim]
  std::vector<float> rope_cos_, rope_sin_;                     ///< [positions][head_dim / 2]
  int64_t cached_positions_ = 0;  ///< positions the KV cache and RoPE tables hold (grows on demand)
  int64_t max_context_ = 0;
  int64_t pos_ = 0;
  std::vector<float> x_, xb_, q_, k_, v_, att_, hb_, hb2_, scores_;
  LinearObserver observer_;
};

}  // namespace slmc
