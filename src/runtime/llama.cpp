// Llama inference on a .slm file (include/slmc/runtime/llama.hpp).
#include "slmc/decode.hpp"
#include "slmc/runtime/llama.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>

#include "runtime/act_rules.hpp"
#include "slmc/kernels/ops.hpp"
#include "slmc/parallel.hpp"
#include "slmc/sparse/layout.hpp"
#include "slmc/quant/dequantize.hpp"

namespace slmc {
namespace {

Result<double> arch_number(const ModelHeader& h, const std::string& key, std::optional<double> fallback) {
  auto it = h.architecture.find(key);
  if (it == h.architecture.end()) {
    if (fallback) return *fallback;
    return make_error(ErrorCode::kInvalidFormat, "architecture key '" + key + "' is missing");
  }
  const std::string& text = it->second.text;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || !std::isfinite(v)) {
    return make_error(ErrorCode::kInvalidFormat, "architecture key '" + key + "' = '" + text + "' is not a number");
  }
  return v;
}


}  // namespace

Result<std::unique_ptr<LlamaModel>> LlamaModel::load(const std::string& path, const LlamaOptions& options) {
  LoadOptions load;
  load.verify_checksums = options.verify_checksums;
  SLMC_ASSIGN_OR_RETURN(std::unique_ptr<ModelFile> file, ModelFile::open(path, load));
  std::unique_ptr<LlamaModel> m(new LlamaModel());
  m->file_ = std::move(file);
  m->options_ = options;
  m->ctx_.set_num_threads(options.num_threads);
  m->ctx_.set_check_sparse_contents(false);  // ModelFile::open validated every tensor
  for (LinearContext& pc : m->pair_ctx_) {
    pc.set_num_threads(1);
    pc.set_check_sparse_contents(false);
  }
  const ModelHeader& h = m->file_->header();
  auto err = [&](const Status& s) { return s.with_context(path); };
  // Per-layer activation modes the recipe stored (convert --act-rule), used where the run asks auto.
  SLMC_ASSIGN_OR_RETURN(const std::vector<ActRule> act_rules, runtime_detail::stored_act_rules(h, path));

  auto arch_it = h.architecture.find(kKeyArchitecture);
  const std::string arch = arch_it == h.architecture.end() ? std::string() : arch_it->second.text;
  if (arch != "llama" && arch != "mistral" && arch != "qwen2") {
    return err(make_error(ErrorCode::kUnsupported, "general.architecture is '" + (arch.empty() ? "missing" : arch) +
                                                       "'; this runtime runs the Llama family: llama (SmolLM2, "
                                                       "TinyLlama, Llama-3), mistral, qwen2"));
  }
  LlamaConfig& c = m->config_;
  c.arch = arch;
  const std::string k = arch + ".";
  // Dimensions and counts are whole numbers below 2^53 (2.5 layers or 1e30 heads are errors
  // naming the key, not truncated or converted with undefined behaviour).
  auto num = [&](const std::string& key, std::optional<double> fallback = std::nullopt) -> Result<int64_t> {
    auto v = arch_number(h, key, fallback);
    if (!v.ok()) return err(v.status());
    if (*v != std::floor(*v) || std::fabs(*v) > 9007199254740992.0) {
      return err(make_error(ErrorCode::kInvalidFormat, "architecture key '" + key + "' = '" +
                                                           h.architecture.at(key).text + "' is not a whole number"));
    }
    return static_cast<int64_t>(*v);
  };
  SLMC_ASSIGN_OR_RETURN(c.dim, num(k + "embedding_length"));
  SLMC_ASSIGN_OR_RETURN(c.hidden_dim, num(k + "feed_forward_length"));
  SLMC_ASSIGN_OR_RETURN(c.layers, num(k + "block_count"));
  SLMC_ASSIGN_OR_RETURN(c.heads, num(k + "attention.head_count"));
  SLMC_ASSIGN_OR_RETURN(c.kv_heads, num(k + "attention.head_count_kv", static_cast<double>(c.heads)));
  SLMC_ASSIGN_OR_RETURN(c.context, num(k + "context_length", 2048.0));
  {
    auto eps = arch_number(h, k + "attention.layer_norm_rms_epsilon", 1e-5);
    if (!eps.ok()) return err(eps.status());
    c.rms_eps = *eps;
    auto base = arch_number(h, k + "rope.freq_base", 10000.0);
    if (!base.ok()) return err(base.status());
    c.rope_base = *base;
  }
  auto layout = h.architecture.find(rope_layout_key(arch));
  c.rope_interleaved = layout == h.architecture.end() || layout->second.text != kRopeRotateHalf;
  if (c.dim <= 0 || c.heads <= 0 || c.kv_heads <= 0 || c.dim % c.heads != 0 || c.heads % c.kv_heads != 0 ||
      c.head_dim() % 2 != 0 || c.layers <= 0 || c.hidden_dim <= 0 || c.context <= 0 || c.layers > 4096 ||
      c.dim > (1 << 20) || c.hidden_dim > (1 << 22)) {
    return err(make_error(ErrorCode::kInvalidFormat, "inconsistent Llama dimensions: dim " + std::to_string(c.dim) +
                                                         ", heads " + std::to_string(c.heads) + ", kv heads " +
                                                         std::to_string(c.kv_heads) + ", layers " +
                                                         std::to_string(c.layers)));
  }

  // RoPE frequencies: base^(-2i/d), scaled as the file says (Llama-3's per-frequency factors,
  // GGUF's rope_freqs.weight, or linear position scaling).
  const int64_t half_dim = c.head_dim() / 2;
  c.rope_inv_freq.resize(static_cast<size_t>(half_dim));
  for (int64_t i = 0; i < half_dim; ++i) {
    c.rope_inv_freq[static_cast<size_t>(i)] =
        std::pow(c.rope_base, -2.0 * static_cast<double>(i) / static_cast<double>(c.head_dim()));
  }
  if (auto st = h.architecture.find(k + "rope.scaling.type"); st != h.architecture.end() && st->second.text != "none" &&
                                                              st->second.text != "default") {
    const std::string type = st->second.text;
    auto factor = arch_number(h, k + "rope.scaling.factor", std::nullopt);
    if (!factor.ok()) return err(factor.status());
    if (!(*factor > 0)) return err(make_error(ErrorCode::kInvalidFormat, k + "rope.scaling.factor must be positive"));
    if (type == "linear") {
      for (double& f : c.rope_inv_freq) f /= *factor;
    } else if (type == "llama3") {
      auto lo = arch_number(h, k + "rope.scaling.low_freq_factor", 1.0);
      auto hi = arch_number(h, k + "rope.scaling.high_freq_factor", 4.0);
      auto orig = arch_number(h, k + "rope.scaling.original_context_length", 8192.0);
      if (!lo.ok() || !hi.ok() || !orig.ok() || !(*hi > *lo) || !(*orig > 0)) {
        return err(make_error(ErrorCode::kInvalidFormat, "inconsistent Llama-3 RoPE scaling keys"));
      }
      const double low_wavelen = *orig / *lo, high_wavelen = *orig / *hi;
      for (double& f : c.rope_inv_freq) {
        const double wavelen = 2.0 * M_PI / f;
        if (wavelen < high_wavelen) continue;  // high frequencies: unchanged
        if (wavelen > low_wavelen) {
          f /= *factor;
        } else {
          const double smooth = (*orig / wavelen - *lo) / (*hi - *lo);
          f = (1.0 - smooth) * f / *factor + smooth * f;
        }
      }
    } else {
      return err(make_error(ErrorCode::kUnsupported, "RoPE scaling type '" + type +
                                                         "' is not supported (llama3, linear)"));
    }
  }

  auto find = [&](const std::string& name) -> const StoredTensor* { return m->file_->find(name); };
  std::set<const StoredTensor*> counted;  // load_stats_: a tied embedding and classifier count once
  // `lookup`: the embedding table, read by gather_rows only (any act mode).
  auto linear_of = [&](const std::string& name, int64_t rows, int64_t cols, Linear& out, bool lookup = false) -> Status {
    const StoredTensor* t = find(name);
    if (!t) return make_error(ErrorCode::kNotFound, path + ": tensor '" + name + "' is missing");
    if (t->view.rows != rows || t->view.cols != cols) {
      return make_error(ErrorCode::kInvalidFormat, path + ": tensor '" + name + "' is " + std::to_string(t->view.rows) +
                                                       "x" + std::to_string(t->view.cols) + ", expected " +
                                                       std::to_string(rows) + "x" + std::to_string(cols));
    }
    out.name = name;
    out.view = t->view;  // in the mapping: dense and sparse layers alike run where they lie
    const Status checked = is_sparse_format(t->view.encoding.format)
                               ? Status()  // ModelFile::open ran validate_sparse_matrix on it
                               : validate_dense_weights(out.view);
    SLMC_RETURN_IF_ERROR(checked.with_context(path + ": tensor '" + name + "'"));
    // The model-wide mode resolved for this layer once; a mode its kernels lack fails here,
    // naming the tensor (e.g. --act int8 on a 2:4 layer), not at the first token.
    out.mode = act_mode_for_layer(act_mode_with_rules(options.act_mode, act_rules, name), t->view.encoding);
    if (!lookup) {
      SLMC_RETURN_IF_ERROR(check_act_mode(t->view.encoding, out.mode).with_context(path + ": tensor '" + name + "'"));
    }
    if (counted.insert(t).second) {
      const bool sparse = is_sparse_format(t->view.encoding.format);
      uint64_t bytes = 0;
      for (const SegmentRecord& seg : t->segments) bytes += seg.size;
      LlamaLoadStats& st = m->load_stats_;
      (sparse ? st.sparse_matrices : st.dense_matrices) += 1;
      st.mapped_matrix_bytes += bytes;
      if (sparse) st.mapped_sparse_bytes += bytes;
    }
    return Status::ok_status();
  };
  auto vector_of = [&](const std::string& name, int64_t length, const float** out) -> Status {
    const StoredTensor* t = find(name);
    if (!t) return make_error(ErrorCode::kNotFound, path + ": tensor '" + name + "' is missing");
    if (t->shape.numel() != length) {
      return make_error(ErrorCode::kInvalidFormat, path + ": tensor '" + name + "' has " +
                                                       std::to_string(t->shape.numel()) + " elements, expected " +
                                                       std::to_string(length));
    }
    if (t->view.encoding.value_type == ValueType::kF32 && t->view.encoding.format == SparseFormat::kDense) {
      *out = t->view.segment(SegmentRole::kValues).as<float>();
      return Status::ok_status();
    }
    AlignedBuffer buf(static_cast<size_t>(length) * sizeof(float));
    Status s = decode(t->view, buf.as<float>());
    SLMC_RETURN_IF_ERROR(s.with_context(path + ": tensor '" + name + "'"));
    *out = buf.as<float>();
    m->load_stats_.owned_weight_bytes += buf.size();
    m->owned_norms_.push_back(std::move(buf));
    return Status::ok_status();
  };
  auto norm_of = [&](const std::string& name, const float** out) { return vector_of(name, c.dim, out); };
  // Optional biases (Qwen2's q/k/v): a bias tensor next to a weight, one value per output row.
  auto bias_of = [&](const std::string& weight, Linear& l) -> Status {
    const std::string name = weight.substr(0, weight.size() - std::string("weight").size()) + "bias";
    if (!find(name)) return Status::ok_status();
    return vector_of(name, l.view.rows, &l.bias);
  };

  if (const StoredTensor* rf = find("rope_freqs.weight")) {
    // GGUF's Llama-3 per-frequency factors: theta_i = pos * base^(-2i/d) / rope_freqs[i].
    if (rf->shape.numel() != half_dim) {
      return err(make_error(ErrorCode::kInvalidFormat, "tensor 'rope_freqs.weight' has " +
                                                           std::to_string(rf->shape.numel()) + " values, expected " +
                                                           std::to_string(half_dim)));
    }
    std::vector<float> factors(static_cast<size_t>(half_dim));
    Status s = decode(rf->view, factors.data());
    SLMC_RETURN_IF_ERROR(s.with_context(path + ": tensor 'rope_freqs.weight'"));
    for (int64_t i = 0; i < half_dim; ++i) {
      if (!(factors[static_cast<size_t>(i)] > 0)) {
        return err(make_error(ErrorCode::kInvalidFormat, "rope_freqs.weight[" + std::to_string(i) + "] is not positive"));
      }
      c.rope_inv_freq[static_cast<size_t>(i)] /= factors[static_cast<size_t>(i)];
    }
  }
  const StoredTensor* embed = find("model.embed_tokens.weight");
  if (!embed) return err(make_error(ErrorCode::kNotFound, "tensor 'model.embed_tokens.weight' is missing"));
  c.vocab = embed->view.rows;
  SLMC_RETURN_IF_ERROR(linear_of("model.embed_tokens.weight", c.vocab, c.dim, m->embed_, /*lookup=*/true));
  if (find("lm_head.weight")) {
    SLMC_RETURN_IF_ERROR(linear_of("lm_head.weight", c.vocab, c.dim, m->classifier_));
  } else {
    SLMC_RETURN_IF_ERROR(linear_of("model.embed_tokens.weight", c.vocab, c.dim, m->classifier_));
  }
  SLMC_RETURN_IF_ERROR(norm_of("model.norm.weight", &m->final_norm_));
  m->layers_.resize(static_cast<size_t>(c.layers));
  for (int64_t l = 0; l < c.layers; ++l) {
    Layer& L = m->layers_[static_cast<size_t>(l)];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    SLMC_RETURN_IF_ERROR(norm_of(p + "input_layernorm.weight", &L.attn_norm));
    SLMC_RETURN_IF_ERROR(norm_of(p + "post_attention_layernorm.weight", &L.ffn_norm));
    SLMC_RETURN_IF_ERROR(linear_of(p + "self_attn.q_proj.weight", c.dim, c.dim, L.wq));
    SLMC_RETURN_IF_ERROR(linear_of(p + "self_attn.k_proj.weight", c.kv_dim(), c.dim, L.wk));
    SLMC_RETURN_IF_ERROR(linear_of(p + "self_attn.v_proj.weight", c.kv_dim(), c.dim, L.wv));
    SLMC_RETURN_IF_ERROR(linear_of(p + "self_attn.o_proj.weight", c.dim, c.dim, L.wo));
    SLMC_RETURN_IF_ERROR(linear_of(p + "mlp.gate_proj.weight", c.hidden_dim, c.dim, L.w_gate));
    SLMC_RETURN_IF_ERROR(linear_of(p + "mlp.up_proj.weight", c.hidden_dim, c.dim, L.w_up));
    SLMC_RETURN_IF_ERROR(linear_of(p + "mlp.down_proj.weight", c.dim, c.hidden_dim, L.w_down));
    for (Linear* l : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) {
      SLMC_RETURN_IF_ERROR(bias_of(l->name, *l));
    }
  }

  m->max_context_ = options.max_context > 0 ? std::min(options.max_context, c.context) : c.context;
  m->layer_keys_.resize(static_cast<size_t>(c.layers));
  m->layer_values_.resize(static_cast<size_t>(c.layers));
  return m;
}

void LlamaModel::reserve_positions(int64_t positions) {
  // The KV cache and RoPE tables grow with the positions actually used (doubling, capped at the
  // context length), so a model with a long context costs memory only for what a run needs.
  if (positions <= cached_positions_) return;
  const LlamaConfig& c = config_;
  const int64_t cap = std::min(max_context_, std::max(positions, 2 * cached_positions_));
  const size_t per_layer = static_cast<size_t>(cap * c.kv_dim());
  for (size_t l = 0; l < layer_keys_.size(); ++l) {
    layer_keys_[l].resize(per_layer, 0.0f);
    layer_values_[l].resize(per_layer, 0.0f);
  }
  const int64_t half = c.head_dim() / 2;
  rope_cos_.resize(static_cast<size_t>(cap * half));
  rope_sin_.resize(static_cast<size_t>(cap * half));
  for (int64_t pos = cached_positions_; pos < cap; ++pos) {
    for (int64_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(pos) * c.rope_inv_freq[static_cast<size_t>(i)];
      rope_cos_[static_cast<size_t>(pos * half + i)] = static_cast<float>(std::cos(angle));
      rope_sin_[static_cast<size_t>(pos * half + i)] = static_cast<float>(std::sin(angle));
    }
  }
  cached_positions_ = cap;
}

Status LlamaModel::run_linear(const Linear& w, const float* x, int64_t n, float* y) {
  if (observer_) observer_(w.name, x, n, w.view.cols);
  return linear(ctx_, x, n, w.view, w.bias, y, w.mode);
}

Status LlamaModel::run_linear_pair(const Linear* const* ws, float* const* ys, int count, int split, const float* x,
                                   int64_t n) {
  Status status[2];
  parallel_region(2, 2, [&](int th, int nth) {
    const int b = nth == 1 ? 0 : (th == 0 ? 0 : split), e = nth == 1 ? count : (th == 0 ? split : count);
    for (int i = b; i < e && status[th].ok(); ++i) {
      const Linear& w = *ws[i];
      status[th] = linear(pair_ctx_[th], x, n, w.view, w.bias, ys[i], w.mode);
    }
  });
  return status[0].ok() ? status[1] : status[0];
}

Status LlamaModel::forward(const int32_t* tokens, int64_t count, float* logits, bool last_only) {
  const LlamaConfig& c = config_;
  if (count <= 0) return make_error(ErrorCode::kInvalidArgument, "forward: count must be positive");
  if (pos_ + count > max_context_) {
    return make_error(ErrorCode::kOutOfRange, "forward: positions " + std::to_string(pos_) + ".." +
                                                  std::to_string(pos_ + count - 1) + " exceed the context length " +
                                                  std::to_string(max_context_));
  }
  reserve_positions(pos_ + count);
  std::vector<int64_t> ids(static_cast<size_t>(count));
  for (int64_t t = 0; t < count; ++t) {
    if (tokens[t] < 0 || tokens[t] >= c.vocab) {
      return make_error(ErrorCode::kOutOfRange, "forward: token id " + std::to_string(tokens[t]) +
                                                    " outside the vocabulary [0, " + std::to_string(c.vocab) + ")");
    }
    ids[static_cast<size_t>(t)] = tokens[t];
  }
  const int64_t dim = c.dim, kv_dim = c.kv_dim(), hd = c.head_dim(), half = hd / 2, hidden = c.hidden_dim;
  const size_t n = static_cast<size_t>(count);
  const int threads = ctx_.num_threads();
  x_.resize(n * dim);
  xb_.resize(n * dim);
  q_.resize(n * dim);
  k_.resize(n * kv_dim);
  v_.resize(n * kv_dim);
  att_.resize(n * dim);
  hb_.resize(n * hidden);
  hb2_.resize(n * hidden);
  scores_.resize(static_cast<size_t>(std::max(threads, 1)) * static_cast<size_t>(pos_ + count));
  // ModelFile::open validated a sparse table already: no per-call pass over it.
  SLMC_RETURN_IF_ERROR(gather_rows(embed_.view, ids.data(), count, x_.data(), /*check_sparse_contents=*/false));

  const float eps = static_cast<float>(c.rms_eps);
  const ops::Kernels K = ops::Kernels::active();  // resolved once: the free functions lock per call
  // Row-wise ops over `rows` rows of `width` values: one parallel region when there is enough
  // work to pay for the fork (prefill), on the calling thread otherwise (decode). Each row is
  // computed by one thread with the same code, so the split never changes a bit.
  auto for_rows = [&](int64_t rows, int64_t width, auto&& fn) {
    if (rows < 2 || rows * width < (int64_t{1} << 14)) {
      fn(int64_t{0}, rows);
      return;
    }
    parallel_for(rows, 1, threads, fn);
  };
  // x += delta (when given), then out = rmsnorm(x) · w, row by row.
  auto add_norm = [&](const float* delta, const float* w, int64_t first, float* out) {
    for_rows(count - first, dim, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        float* xr = &x_[static_cast<size_t>((first + r) * dim)];
        if (delta) K.add(xr, delta + (first + r) * dim, dim);
        K.rmsnorm(xr, w, dim, eps, out + r * dim);
      }
    });
  };

  const int64_t group = c.heads / c.kv_heads;
  const float inv_sqrt = 1.0f / std::sqrt(static_cast<float>(hd));
  const int64_t positions = pos_ + count;
  const int64_t items = count * c.heads;  // attention rows: (query t, head h)
  // Causal attention work in multiply-adds; below ~64K a fork costs more than it saves.
  const int64_t attention_work = (count * pos_ + count * (count + 1) / 2) * c.heads * hd * 2;
  const int attention_threads = attention_work < (int64_t{1} << 16) ? 1 : threads;
  // Decode on exactly two threads: layers that share an input run one per thread (q | k, v and
  // gate | up), two forks per layer fewer. Not with an observer (calibration is not thread-safe),
  // not for prefill (each GEMM splits evenly by itself; q | k+v would not).
  const bool pair_linears = threads == 2 && count < 4 && !observer_;
  for (int64_t l = 0; l < c.layers; ++l) {
    Layer& L = layers_[static_cast<size_t>(l)];
    float* kc = layer_keys_[static_cast<size_t>(l)].data();
    float* vc = layer_values_[static_cast<size_t>(l)].data();
    // The previous layer's FFN output joins the residual stream here (layer 0: nothing to add).
    add_norm(l == 0 ? nullptr : xb_.data(), L.attn_norm, 0, xb_.data());
    if (pair_linears) {
      const Linear* ws[] = {&L.wq, &L.wk, &L.wv};
      float* ys[] = {q_.data(), k_.data(), v_.data()};
      SLMC_RETURN_IF_ERROR(run_linear_pair(ws, ys, 3, 1, xb_.data(), count));
    } else {
      SLMC_RETURN_IF_ERROR(run_linear(L.wq, xb_.data(), count, q_.data()));
      SLMC_RETURN_IF_ERROR(run_linear(L.wk, xb_.data(), count, k_.data()));
      SLMC_RETURN_IF_ERROR(run_linear(L.wv, xb_.data(), count, v_.data()));
    }
    for (int64_t t = 0; t < count; ++t) {
      const int64_t pos = pos_ + t;
      const float* cs = &rope_cos_[static_cast<size_t>(pos * half)];
      const float* sn = &rope_sin_[static_cast<size_t>(pos * half)];
      K.rope(&q_[t * dim], c.heads, hd, cs, sn, c.rope_interleaved);
      K.rope(&k_[t * kv_dim], c.kv_heads, hd, cs, sn, c.rope_interleaved);
    }
    std::memcpy(kc + pos_ * kv_dim, k_.data(), sizeof(float) * n * kv_dim);
    std::memcpy(vc + pos_ * kv_dim, v_.data(), sizeof(float) * n * kv_dim);
    // Causal grouped-query attention, query t sees positions 0 .. pos_ + t. Rows (t, h) go to the
    // threads cyclically (row i to thread i mod T), which balances the causal triangle; each row
    // is computed whole by one thread in a fixed order, so the thread count changes no bit.
    parallel_region(attention_threads, static_cast<int>(std::min<int64_t>(items, 1 << 20)), [&](int th, int nth) {
      float* scores = &scores_[static_cast<size_t>(th) * static_cast<size_t>(positions)];
      for (int64_t i = th; i < items; i += nth) {
        const int64_t t = i / c.heads, h = i % c.heads;
        const int64_t len = pos_ + t + 1;
        const int64_t kv_off = (h / group) * hd;
        K.dot_rows(&q_[t * dim + h * hd], kc + kv_off, kv_dim, len, hd, inv_sqrt, scores);
        K.softmax(scores, len);
        K.weighted_sum_rows(scores, vc + kv_off, kv_dim, len, hd, &att_[t * dim + h * hd]);
      }
    });
    SLMC_RETURN_IF_ERROR(run_linear(L.wo, att_.data(), count, xb_.data()));
    add_norm(xb_.data(), L.ffn_norm, 0, xb_.data());
    if (pair_linears) {
      const Linear* ws[] = {&L.w_gate, &L.w_up};
      float* ys[] = {hb_.data(), hb2_.data()};
      SLMC_RETURN_IF_ERROR(run_linear_pair(ws, ys, 2, 1, xb_.data(), count));
    } else {
      SLMC_RETURN_IF_ERROR(run_linear(L.w_gate, xb_.data(), count, hb_.data()));
      SLMC_RETURN_IF_ERROR(run_linear(L.w_up, xb_.data(), count, hb2_.data()));
    }
    for_rows(count, hidden, [&](int64_t b, int64_t e) {  // SwiGLU: silu(gate) * up
      K.silu_mul(&hb_[static_cast<size_t>(b * hidden)], &hb2_[static_cast<size_t>(b * hidden)], (e - b) * hidden,
                    &hb_[static_cast<size_t>(b * hidden)]);
    });
    SLMC_RETURN_IF_ERROR(run_linear(L.w_down, hb_.data(), count, xb_.data()));
  }
  pos_ += count;
  const int64_t first = last_only ? count - 1 : 0;
  if (logits == nullptr) {
    // The residual stream still owes the last layer's FFN output (kept for a later logits call).
    K.add(x_.data(), xb_.data(), static_cast<int64_t>(n) * dim);
    return Status::ok_status();
  }
  // The last residual add, for every row (x_ stays the complete hidden state), then the final
  // norm of the rows whose logits are wanted.
  if (first > 0) {
    for_rows(first, dim, [&](int64_t b, int64_t e) { K.add(&x_[b * dim], &xb_[b * dim], (e - b) * dim); });
  }
  add_norm(xb_.data(), final_norm_, first, xb_.data());
  return run_linear(classifier_, xb_.data(), count - first, logits);
}

}  // namespace slmc
