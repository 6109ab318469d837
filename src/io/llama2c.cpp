// llama2.c legacy checkpoint (version 0, no magic): 7 little-endian int32
// {dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len}, then fp32 arrays
// token_embedding [vocab, dim], rms_att [L, dim], wq [L, dim, dim], wk [L, kv_dim, dim],
// wv [L, kv_dim, dim], wo [L, dim, dim], rms_ffn [L, dim], w1 [L, hidden, dim], w2 [L, dim, hidden],
// w3 [L, hidden, dim], rms_final [dim], freq_cis_real and freq_cis_imag [seq_len, head_size/2],
// then wcls [vocab, dim] only when vocab_size < 0 (a positive vocab_size means the classifier is
// the token embedding). Tensors get Hugging Face Llama names; q/k stay in llama2.c's interleaved
// RoPE layout, recorded as llama.rope.layout = "interleaved".
#include <cmath>

#include "io/llama2c_internal.hpp"
#include "io/reader_util.hpp"

namespace slmc {
namespace io_detail {

std::optional<Llama2cConfig> llama2c_config(const uint8_t* data, uint64_t size) {
  if (size < 28) return std::nullopt;
  int32_t h[7];
  std::memcpy(h, data, sizeof(h));
  Llama2cConfig c;
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.shared_classifier = h[5] > 0;
  c.vocab_size = h[5] > 0 ? h[5] : (h[5] == INT32_MIN ? 0 : -int64_t{h[5]});
  c.seq_len = h[6];
  // Plausibility: a random file almost never passes these and the exact size check below.
  if (c.dim <= 0 || c.hidden_dim <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 ||
      c.vocab_size <= 0 || c.seq_len <= 0)
    return std::nullopt;
  // Bounds far above any llama2.c model that keep the size arithmetic below 2^60 (no overflow).
  if (c.dim > (1 << 20) || c.hidden_dim > (1 << 22) || c.n_layers > 1024 || c.n_heads > 4096 ||
      c.vocab_size > (1 << 24) || c.seq_len > (1 << 24))
    return std::nullopt;
  if (c.dim % c.n_heads != 0 || c.n_kv_heads > c.n_heads || c.n_heads % c.n_kv_heads != 0) return std::nullopt;
  const int64_t head = c.dim / c.n_heads;
  if (head % 2 != 0) return std::nullopt;
  c.kv_dim = c.dim * c.n_kv_heads / c.n_heads;
  const int64_t L = c.n_layers, d = c.dim, hd = c.hidden_dim, kv = c.kv_dim;
  int64_t floats = c.vocab_size * d + L * d + L * d * d + 2 * L * kv * d + L * d * d + L * d + 3 * L * hd * d + d +
                   c.seq_len * head;  // freq_cis_real + freq_cis_imag: seq_len * head/2 each
  if (!c.shared_classifier) floats += c.vocab_size * d;
  c.expected_bytes = 28 + 4 * static_cast<uint64_t>(floats);
  if (c.expected_bytes != size) return std::nullopt;
  return c;
}

}  // namespace io_detail

Result<std::unique_ptr<ModelSource>> open_llama2c(std::shared_ptr<const InputFile> file) {
  using namespace io_detail;
  const std::string& fname = file->path();
  uint8_t header[28] = {};
  if (file->size() >= sizeof(header)) SLMC_RETURN_IF_ERROR(file->read(0, header, sizeof(header)));
  std::optional<Llama2cConfig> cfg = llama2c_config(header, file->size());
  if (!cfg) {
    return make_error(ErrorCode::kInvalidFormat,
                      fname + ": not a llama2.c checkpoint (header values implausible or file size " +
                          std::to_string(file->size()) + " does not match them)");
  }
  const Llama2cConfig& c = *cfg;
  auto src = std::make_unique<ModelSource>();
  src->format_ = SourceFormat::kLlama2c;
  uint64_t p = 28;  // file offset of the next array
  const int64_t d = c.dim, kv = c.kv_dim, hd = c.hidden_dim, L = c.n_layers;

  // Per-layer arrays are stacked [L, ...]: remember where each starts, then emit layer by layer so
  // that tensors come out in Hugging Face order.
  auto take = [&](int64_t floats) {
    const uint64_t at = p;
    p += 4 * static_cast<uint64_t>(floats);
    return at;
  };
  const uint64_t emb = take(c.vocab_size * d);
  const uint64_t rms_att = take(L * d);
  const uint64_t wq = take(L * d * d);
  const uint64_t wk = take(L * kv * d);
  const uint64_t wv = take(L * kv * d);
  const uint64_t wo = take(L * d * d);
  const uint64_t rms_ffn = take(L * d);
  const uint64_t w1 = take(L * hd * d);
  const uint64_t w2 = take(L * d * hd);
  const uint64_t w3 = take(L * hd * d);
  const uint64_t rms_final = take(d);
  take(c.seq_len * (d / c.n_heads));  // legacy freq_cis_real/imag: not weights
  const uint64_t wcls = c.shared_classifier ? emb : take(c.vocab_size * d);

  auto add = [&](std::string name, Shape shape, uint64_t data) {
    const uint64_t n = 4 * static_cast<uint64_t>(shape.numel());
    return add_tensor(*src, fname, std::move(name), std::move(shape), DType::kF32, data, n, 0, DType::kF32);
  };
  SLMC_RETURN_IF_ERROR(add("model.embed_tokens.weight", Shape{c.vocab_size, d}, emb));
  for (int64_t l = 0; l < L; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    SLMC_RETURN_IF_ERROR(add(pre + "input_layernorm.weight", Shape{d}, rms_att + 4 * l * d));
    SLMC_RETURN_IF_ERROR(add(pre + "self_attn.q_proj.weight", Shape{d, d}, wq + 4 * l * d * d));
    SLMC_RETURN_IF_ERROR(add(pre + "self_attn.k_proj.weight", Shape{kv, d}, wk + 4 * l * kv * d));
    SLMC_RETURN_IF_ERROR(add(pre + "self_attn.v_proj.weight", Shape{kv, d}, wv + 4 * l * kv * d));
    SLMC_RETURN_IF_ERROR(add(pre + "self_attn.o_proj.weight", Shape{d, d}, wo + 4 * l * d * d));
    SLMC_RETURN_IF_ERROR(add(pre + "post_attention_layernorm.weight", Shape{d}, rms_ffn + 4 * l * d));
    SLMC_RETURN_IF_ERROR(add(pre + "mlp.gate_proj.weight", Shape{hd, d}, w1 + 4 * l * hd * d));
    SLMC_RETURN_IF_ERROR(add(pre + "mlp.down_proj.weight", Shape{d, hd}, w2 + 4 * l * d * hd));
    SLMC_RETURN_IF_ERROR(add(pre + "mlp.up_proj.weight", Shape{hd, d}, w3 + 4 * l * hd * d));
  }
  SLMC_RETURN_IF_ERROR(add("model.norm.weight", Shape{d}, rms_final));
  // The classifier: with a shared classifier this aliases the embedding (the .slm writer stores
  // identical data once), so runners find lm_head.weight either way.
  SLMC_RETURN_IF_ERROR(add("lm_head.weight", Shape{c.vocab_size, d}, wcls));

  Metadata& a = src->architecture_;
  auto num = [](int64_t v) { return MetaValue::json(std::to_string(v)); };
  a[kKeyArchitecture] = MetaValue::string("llama");
  a["llama.embedding_length"] = num(d);
  a["llama.feed_forward_length"] = num(hd);
  a["llama.block_count"] = num(L);
  a["llama.attention.head_count"] = num(c.n_heads);
  a["llama.attention.head_count_kv"] = num(c.n_kv_heads);
  a["llama.context_length"] = num(c.seq_len);
  a["llama.vocab_size"] = num(c.vocab_size);
  a["llama.rope.dimension_count"] = num(d / c.n_heads);
  // llama2.c's run.c hard-codes these two.
  a["llama.attention.layer_norm_rms_epsilon"] = MetaValue::json("1e-05");
  a["llama.rope.freq_base"] = MetaValue::json("10000.0");
  a[rope_layout_key("llama")] = MetaValue::string(kRopeInterleaved);
  src->metadata_["llama2c.version"] = MetaValue::json("0");
  src->metadata_["llama2c.shared_classifier"] = MetaValue::json(c.shared_classifier ? "true" : "false");

  std::string base = fname;
  const size_t slash = base.find_last_of('/');
  if (slash != std::string::npos) base = base.substr(slash + 1);
  src->files_.push_back(SourceFileInfo{base, fname, "", file->size(), SourceFormat::kLlama2c});
  src->inputs_.push_back(std::move(file));
  return src;
}

}  // namespace slmc
