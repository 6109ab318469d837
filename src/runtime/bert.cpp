// BERT-family encoder on a .slm file (include/slmc/runtime/bert.hpp).
#include "slmc/runtime/bert.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "runtime/act_rules.hpp"
#include "slmc/decode.hpp"
#include "slmc/parallel.hpp"
#include "slmc/sparse/layout.hpp"

namespace slmc {
namespace {

/// y = (x - mean) / sqrt(var + eps) * w + b over n values, in double (post-LayerNorm blocks
/// accumulate large residuals; single-precision sums lose digits the reference keeps).
void layer_norm(const float* x, const float* w, const float* b, int64_t n, double eps, float* y) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += x[i];
  const double mean = sum / static_cast<double>(n);
  double var = 0;
  for (int64_t i = 0; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
  const double inv = 1.0 / std::sqrt(var / static_cast<double>(n) + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>((x[i] - mean) * inv) * w[i] + b[i];
}

/// GELU as BERT defines it, the erf form (not the tanh approximation), in place over n values.
/// erf(t) for t >= 0 is Abramowitz & Stegun 7.1.28, 1 - (1 + a1 t + ... + a6 t^6)^-16 (absolute
/// error <= 3e-7, below fp32 rounding of GELU's output), odd for t < 0: only multiplies, adds and
/// one division, so the loop vectorizes where std::erf (a libm call per value) does not; it was
/// 15 % of an int8 MiniLM forward pass.
void gelu_in_place(float* h, size_t n) {
  constexpr float a1 = 0.0705230784f, a2 = 0.0422820123f, a3 = 0.0092705272f, a4 = 0.0001520143f,
                  a5 = 0.0002765672f, a6 = 0.0000430638f;
  for (size_t i = 0; i < n; ++i) {
    const float x = h[i];
    const float t = std::fabs(x) * 0.70710678118654752f;
    float p = 1.0f + t * (a1 + t * (a2 + t * (a3 + t * (a4 + t * (a5 + t * a6)))));
    p *= p;  // p^2
    p *= p;  // p^4
    p *= p;  // p^8
    p *= p;  // p^16 (inf for large t: erf = 1)
    const float erf_abs = 1.0f - 1.0f / p;
    const float erf = std::copysign(erf_abs, x);
    h[i] = 0.5f * x * (1.0f + erf);
  }
}

}  // namespace

const char* pooling_name(Pooling pooling) noexcept { return pooling == Pooling::kCls ? "cls" : "mean"; }

Result<std::unique_ptr<BertModel>> BertModel::load(const std::string& path, const BertOptions& options) {
  LoadOptions load;
  load.verify_checksums = options.verify_checksums;
  SLMC_ASSIGN_OR_RETURN(std::unique_ptr<ModelFile> file, ModelFile::open(path, load));
  std::unique_ptr<BertModel> m(new BertModel());
  m->file_ = std::move(file);
  m->options_ = options;
  m->ctx_.set_num_threads(options.num_threads);
  m->ctx_.set_check_sparse_contents(false);  // ModelFile::open validated every tensor
  const ModelHeader& h = m->file_->header();
  // Per-layer activation modes the recipe stored (convert --act-rule), used where the run asks auto.
  SLMC_ASSIGN_OR_RETURN(const std::vector<ActRule> act_rules, runtime_detail::stored_act_rules(h, path));
  auto fail = [&](ErrorCode code, const std::string& what) { return make_error(code, path + ": " + what); };
  auto key_text = [&](const std::string& key) -> std::optional<std::string> {
    auto it = h.architecture.find(key);
    if (it == h.architecture.end()) return std::nullopt;
    return it->second.text;
  };

  const std::string arch = key_text(kKeyArchitecture).value_or("");
  if (arch != "bert") {
    return fail(ErrorCode::kUnsupported, "general.architecture is '" + (arch.empty() ? "missing" : arch) +
                                             "'; the encoder runtime runs bert (BertModel, all-MiniLM-L6-v2)");
  }
  // Whole numbers below 2^53; anything else names the key.
  auto num = [&](const std::string& key, std::optional<double> fallback) -> Result<double> {
    const std::optional<std::string> text = key_text(key);
    if (!text) {
      if (fallback) return *fallback;
      return fail(ErrorCode::kInvalidFormat, "architecture key '" + key + "' is missing");
    }
    char* end = nullptr;
    const double v = std::strtod(text->c_str(), &end);
    if (end == text->c_str() || *end != '\0' || !std::isfinite(v)) {
      return fail(ErrorCode::kInvalidFormat, "architecture key '" + key + "' = '" + *text + "' is not a number");
    }
    return v;
  };
  auto count = [&](const std::string& key, std::optional<double> fallback) -> Result<int64_t> {
    SLMC_ASSIGN_OR_RETURN(const double v, num(key, fallback));
    if (v != std::floor(v) || v < 0 || v > 9007199254740992.0) {
      return fail(ErrorCode::kInvalidFormat, "architecture key '" + key + "' = '" + key_text(key).value_or("") +
                                                 "' is not a non-negative whole number");
    }
    return static_cast<int64_t>(v);
  };
  BertConfig& c = m->config_;
  SLMC_ASSIGN_OR_RETURN(c.dim, count("bert.embedding_length", std::nullopt));
  SLMC_ASSIGN_OR_RETURN(c.hidden_dim, count("bert.feed_forward_length", std::nullopt));
  SLMC_ASSIGN_OR_RETURN(c.layers, count("bert.block_count", std::nullopt));
  SLMC_ASSIGN_OR_RETURN(c.heads, count("bert.attention.head_count", std::nullopt));
  SLMC_ASSIGN_OR_RETURN(c.norm_eps, num("bert.attention.layer_norm_epsilon", 1e-12));
  if (!(c.norm_eps >= 0)) return fail(ErrorCode::kInvalidFormat, "bert.attention.layer_norm_epsilon is negative");
  if (const auto act = key_text("bert.hidden_act"); act && *act != "gelu") {
    return fail(ErrorCode::kUnsupported, "bert.hidden_act is '" + *act + "'; the encoder runtime implements gelu (erf)");
  }
  if (const auto pos = key_text("bert.position_embedding_type"); pos && *pos != "absolute") {
    return fail(ErrorCode::kUnsupported,
                "bert.position_embedding_type is '" + *pos + "'; the encoder runtime implements absolute");
  }
  if (const auto pool = key_text("bert.pooling_type")) {
    if (*pool == "mean") {
      c.pooling = Pooling::kMean;
    } else if (*pool == "cls") {
      c.pooling = Pooling::kCls;
    } else {
      return fail(ErrorCode::kUnsupported, "bert.pooling_type is '" + *pool + "'; supported: mean, cls");
    }
  }
  if (const auto norm = key_text("bert.normalize")) {
    if (*norm != "true" && *norm != "false") {
      return fail(ErrorCode::kInvalidFormat, "architecture key 'bert.normalize' = '" + *norm + "' is not true or false");
    }
    c.normalize = *norm == "true";
  }
  if (c.dim <= 0 || c.heads <= 0 || c.dim % c.heads != 0 || c.layers <= 0 || c.layers > 4096 || c.hidden_dim <= 0 ||
      c.dim > (1 << 20) || c.hidden_dim > (1 << 22)) {
    return fail(ErrorCode::kInvalidFormat, "inconsistent BERT dimensions: dim " + std::to_string(c.dim) + ", heads " +
                                               std::to_string(c.heads) + ", layers " + std::to_string(c.layers) +
                                               ", feed-forward " + std::to_string(c.hidden_dim));
  }

  auto find = [&](const std::string& name) -> Result<const StoredTensor*> {
    const StoredTensor* t = m->file_->find(name);
    if (!t) return fail(ErrorCode::kNotFound, "tensor '" + name + "' is missing");
    return t;
  };
  // A matrix for linear() / gather_rows(), read where the file maps it: dense encodings through
  // the dense kernels, sparse ones (validated by ModelFile::open) through the sparse kernels;
  // `cols` must match, `rows` too when it is positive.
  auto matrix_of = [&](const std::string& name, int64_t rows, int64_t cols, EncodedMatrixView& view) -> Status {
    SLMC_ASSIGN_OR_RETURN(const StoredTensor* t, find(name));
    if ((rows > 0 && t->view.rows != rows) || t->view.cols != cols) {
      return fail(ErrorCode::kInvalidFormat, "tensor '" + name + "' is " + std::to_string(t->view.rows) + "x" +
                                                 std::to_string(t->view.cols) + ", expected " +
                                                 (rows > 0 ? std::to_string(rows) : std::string("N")) + "x" +
                                                 std::to_string(cols));
    }
    view = t->view;
    if (is_sparse_format(view.encoding.format)) return Status::ok_status();
    return validate_dense_weights(view).with_context(path + ": tensor '" + name + "'");
  };
  auto vector_of = [&](const std::string& name, int64_t length, const float** out) -> Status {
    SLMC_ASSIGN_OR_RETURN(const StoredTensor* t, find(name));
    if (t->shape.numel() != length) {
      return fail(ErrorCode::kInvalidFormat, "tensor '" + name + "' has " + std::to_string(t->shape.numel()) +
                                                 " elements, expected " + std::to_string(length));
    }
    if (t->view.encoding.value_type == ValueType::kF32 && t->view.encoding.format == SparseFormat::kDense) {
      *out = t->view.segment(SegmentRole::kValues).as<float>();
      return Status::ok_status();
    }
    SLMC_ASSIGN_OR_RETURN(AlignedBuffer buf, AlignedBuffer::allocate(static_cast<size_t>(length) * sizeof(float),
                                                                     path + ": tensor '" + name + "'"));
    SLMC_RETURN_IF_ERROR(decode(t->view, buf.as<float>()).with_context(path + ": tensor '" + name + "'"));
    *out = buf.as<float>();
    m->owned_vectors_.push_back(std::move(buf));
    return Status::ok_status();
  };
  auto linear_of = [&](const std::string& stem, int64_t rows, int64_t cols, Linear& l) -> Status {
    l.name = stem + ".weight";
    SLMC_RETURN_IF_ERROR(matrix_of(l.name, rows, cols, l.view));
    // The model-wide mode resolved once; one its kernels lack fails here, naming the tensor.
    l.mode = act_mode_for_layer(act_mode_with_rules(options.act_mode, act_rules, l.name), l.view.encoding);
    SLMC_RETURN_IF_ERROR(check_act_mode(l.view.encoding, l.mode).with_context(path + ": tensor '" + l.name + "'"));
    return vector_of(stem + ".bias", rows, &l.bias);
  };
  auto norm_of = [&](const std::string& stem, Norm& n) -> Status {
    SLMC_RETURN_IF_ERROR(vector_of(stem + ".weight", c.dim, &n.weight));
    return vector_of(stem + ".bias", c.dim, &n.bias);
  };

  SLMC_RETURN_IF_ERROR(matrix_of("embeddings.word_embeddings.weight", 0, c.dim, m->word_));
  SLMC_RETURN_IF_ERROR(matrix_of("embeddings.position_embeddings.weight", 0, c.dim, m->position_));
  SLMC_RETURN_IF_ERROR(matrix_of("embeddings.token_type_embeddings.weight", 0, c.dim, m->token_type_));
  c.vocab = m->word_.rows;
  c.positions = m->position_.rows;
  c.token_types = m->token_type_.rows;
  if (c.vocab <= 0 || c.positions < 3 || c.token_types <= 0) {
    return fail(ErrorCode::kInvalidFormat, "embedding tables with " + std::to_string(c.vocab) + " tokens, " +
                                               std::to_string(c.positions) + " positions, " +
                                               std::to_string(c.token_types) + " token types");
  }
  SLMC_ASSIGN_OR_RETURN(c.max_tokens, count("bert.max_seq_length", static_cast<double>(c.positions)));
  c.max_tokens = std::min(c.max_tokens, c.positions);
  if (c.max_tokens < 3) return fail(ErrorCode::kInvalidFormat, "bert.max_seq_length is below 3");
  SLMC_RETURN_IF_ERROR(norm_of("embeddings.LayerNorm", m->embed_norm_));
  m->layers_.resize(static_cast<size_t>(c.layers));
  for (int64_t l = 0; l < c.layers; ++l) {
    Layer& L = m->layers_[static_cast<size_t>(l)];
    const std::string p = "encoder.layer." + std::to_string(l) + ".";
    SLMC_RETURN_IF_ERROR(linear_of(p + "attention.self.query", c.dim, c.dim, L.query));
    SLMC_RETURN_IF_ERROR(linear_of(p + "attention.self.key", c.dim, c.dim, L.key));
    SLMC_RETURN_IF_ERROR(linear_of(p + "attention.self.value", c.dim, c.dim, L.value));
    SLMC_RETURN_IF_ERROR(linear_of(p + "attention.output.dense", c.dim, c.dim, L.attn_out));
    SLMC_RETURN_IF_ERROR(norm_of(p + "attention.output.LayerNorm", L.attn_norm));
    SLMC_RETURN_IF_ERROR(linear_of(p + "intermediate.dense", c.hidden_dim, c.dim, L.ffn_in));
    SLMC_RETURN_IF_ERROR(linear_of(p + "output.dense", c.dim, c.hidden_dim, L.ffn_out));
    SLMC_RETURN_IF_ERROR(norm_of(p + "output.LayerNorm", L.ffn_norm));
  }
  return m;
}

Status BertModel::run_linear(const Linear& w, const float* x, int64_t n, float* y) {
  if (observer_) observer_(w.name, x, n, w.view.cols);
  return linear(ctx_, x, n, w.view, w.bias, y, w.mode);
}

void BertModel::attention(const std::vector<int64_t>& starts) {
  // q_, k_, v_: one row of dim values per token of all sentences, packed. Sentence s holds rows
  // [starts[s], starts[s + 1]); a token attends to exactly those rows (the padding mask of a packed
  // batch). One task per (sentence, head), each writing its own slice of att_.
  const BertConfig& c = config_;
  const int64_t dim = c.dim, hd = c.head_dim(), sentences = static_cast<int64_t>(starts.size()) - 1;
  int64_t longest = 0;
  for (int64_t s = 0; s < sentences; ++s) longest = std::max(longest, starts[s + 1] - starts[s]);
  const int threads = std::max(1, ctx_.num_threads());
  scores_.resize(static_cast<size_t>(threads * longest));
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const int64_t tasks = sentences * c.heads;
  // Scratch rows are per chunk of tasks: parallel_for hands each thread one contiguous chunk.
  const int64_t per_chunk = (tasks + threads - 1) / threads;
  parallel_for(tasks, per_chunk, threads, [&](int64_t begin, int64_t end) {
    float* scores = &scores_[static_cast<size_t>(begin / per_chunk * longest)];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t s = task / c.heads, h = task % c.heads;
      const int64_t first = starts[s], len = starts[s + 1] - first;
      for (int64_t t = 0; t < len; ++t) {
        const float* q = &q_[static_cast<size_t>((first + t) * dim + h * hd)];
        float max_score = -INFINITY;
        for (int64_t p = 0; p < len; ++p) {
          const float* k = &k_[static_cast<size_t>((first + p) * dim + h * hd)];
          float dot = 0;
          for (int64_t i = 0; i < hd; ++i) dot += q[i] * k[i];
          scores[p] = dot * scale;
          max_score = std::max(max_score, scores[p]);
        }
        double sum = 0;
        for (int64_t p = 0; p < len; ++p) {
          scores[p] = std::exp(scores[p] - max_score);
          sum += scores[p];
        }
        const float inv_sum = static_cast<float>(1.0 / sum);
        float* out = &att_[static_cast<size_t>((first + t) * dim + h * hd)];
        std::fill(out, out + hd, 0.0f);
        for (int64_t p = 0; p < len; ++p) {
          const float a = scores[p] * inv_sum;
          const float* v = &v_[static_cast<size_t>((first + p) * dim + h * hd)];
          for (int64_t i = 0; i < hd; ++i) out[i] += a * v[i];
        }
      }
    }
  });
}

Status BertModel::encode(const std::vector<std::vector<int32_t>>& sentences, std::vector<float>& out) {
  const BertConfig& c = config_;
  if (sentences.empty()) return make_error(ErrorCode::kInvalidArgument, "encode: no sentences");
  std::vector<int64_t> starts(1, 0);
  for (size_t s = 0; s < sentences.size(); ++s) {
    const int64_t len = static_cast<int64_t>(sentences[s].size());
    if (len < 1 || len > c.max_tokens) {
      return make_error(ErrorCode::kOutOfRange, "encode: sentence " + std::to_string(s) + " has " +
                                                    std::to_string(len) + " tokens; 1.." +
                                                    std::to_string(c.max_tokens) + " allowed");
    }
    starts.push_back(starts.back() + len);
  }
  const int64_t n = starts.back(), dim = c.dim;
  std::vector<int64_t> ids(static_cast<size_t>(n)), positions(static_cast<size_t>(n));
  for (size_t s = 0; s < sentences.size(); ++s) {
    for (size_t t = 0; t < sentences[s].size(); ++t) {
      const int32_t id = sentences[s][t];
      if (id < 0 || id >= c.vocab) {
        return make_error(ErrorCode::kOutOfRange, "encode: token id " + std::to_string(id) + " of sentence " +
                                                      std::to_string(s) + " outside the vocabulary [0, " +
                                                      std::to_string(c.vocab) + ")");
      }
      ids[static_cast<size_t>(starts[s]) + t] = id;
      positions[static_cast<size_t>(starts[s]) + t] = static_cast<int64_t>(t);
    }
  }
  const size_t rows = static_cast<size_t>(n);
  x_.resize(rows * dim);
  tmp_.resize(rows * dim);
  q_.resize(rows * dim);
  k_.resize(rows * dim);
  v_.resize(rows * dim);
  att_.resize(rows * dim);
  hidden_.resize(rows * static_cast<size_t>(c.hidden_dim));

  // Embeddings: word + position + token type 0, then LayerNorm.
  SLMC_RETURN_IF_ERROR(gather_rows(word_, ids.data(), n, tmp_.data(), /*check_sparse_contents=*/false));
  SLMC_RETURN_IF_ERROR(gather_rows(position_, positions.data(), n, q_.data(), /*check_sparse_contents=*/false));
  const int64_t type0 = 0;
  SLMC_RETURN_IF_ERROR(gather_rows(token_type_, &type0, 1, k_.data(), /*check_sparse_contents=*/false));
  for (int64_t t = 0; t < n; ++t) {
    float* row = &tmp_[static_cast<size_t>(t * dim)];
    const float* pos = &q_[static_cast<size_t>(t * dim)];
    for (int64_t i = 0; i < dim; ++i) row[i] += pos[i] + k_[static_cast<size_t>(i)];
    layer_norm(row, embed_norm_.weight, embed_norm_.bias, dim, c.norm_eps, &x_[static_cast<size_t>(t * dim)]);
  }

  for (Layer& L : layers_) {
    SLMC_RETURN_IF_ERROR(run_linear(L.query, x_.data(), n, q_.data()));
    SLMC_RETURN_IF_ERROR(run_linear(L.key, x_.data(), n, k_.data()));
    SLMC_RETURN_IF_ERROR(run_linear(L.value, x_.data(), n, v_.data()));
    attention(starts);
    SLMC_RETURN_IF_ERROR(run_linear(L.attn_out, att_.data(), n, tmp_.data()));
    // Post-LayerNorm residual: x = LN(x + attention(x)), then x = LN(x + FFN(x)).
    for (int64_t t = 0; t < n; ++t) {
      float* r = &tmp_[static_cast<size_t>(t * dim)];
      float* x = &x_[static_cast<size_t>(t * dim)];
      for (int64_t i = 0; i < dim; ++i) r[i] += x[i];
      layer_norm(r, L.attn_norm.weight, L.attn_norm.bias, dim, c.norm_eps, x);
    }
    SLMC_RETURN_IF_ERROR(run_linear(L.ffn_in, x_.data(), n, hidden_.data()));
    gelu_in_place(hidden_.data(), rows * static_cast<size_t>(c.hidden_dim));
    SLMC_RETURN_IF_ERROR(run_linear(L.ffn_out, hidden_.data(), n, tmp_.data()));
    for (int64_t t = 0; t < n; ++t) {
      float* r = &tmp_[static_cast<size_t>(t * dim)];
      float* x = &x_[static_cast<size_t>(t * dim)];
      for (int64_t i = 0; i < dim; ++i) r[i] += x[i];
      layer_norm(r, L.ffn_norm.weight, L.ffn_norm.bias, dim, c.norm_eps, x);
    }
  }
  out.assign(x_.begin(), x_.begin() + static_cast<std::ptrdiff_t>(rows * dim));
  return Status::ok_status();
}

Status BertModel::embed(const std::vector<std::vector<int32_t>>& sentences, std::vector<float>& out) {
  std::vector<float> states;
  SLMC_RETURN_IF_ERROR(encode(sentences, states));
  const int64_t dim = config_.dim;
  out.assign(sentences.size() * static_cast<size_t>(dim), 0.0f);
  size_t row = 0;
  for (size_t s = 0; s < sentences.size(); ++s) {
    float* e = &out[s * static_cast<size_t>(dim)];
    const size_t len = sentences[s].size();
    if (config_.pooling == Pooling::kCls) {
      std::copy_n(&states[row * dim], dim, e);
    } else {
      std::vector<double> sum(static_cast<size_t>(dim), 0.0);
      for (size_t t = 0; t < len; ++t) {
        for (int64_t i = 0; i < dim; ++i) sum[static_cast<size_t>(i)] += states[(row + t) * dim + i];
      }
      for (int64_t i = 0; i < dim; ++i) e[i] = static_cast<float>(sum[static_cast<size_t>(i)] / static_cast<double>(len));
    }
    if (config_.normalize) {
      // sentence-transformers' Normalize: x / max(||x||, 1e-12).
      double ss = 0;
      for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(e[i]) * e[i];
      const double norm = std::max(std::sqrt(ss), 1e-12);
      for (int64_t i = 0; i < dim; ++i) e[i] = static_cast<float>(e[i] / norm);
    }
    row += len;
  }
  return Status::ok_status();
}

std::vector<int32_t> encoder_input(const Tokenizer& tokenizer, std::string_view text, int64_t max_tokens) {
  EncodeOptions o;
  o.parse_special = true;
  std::vector<int32_t> ids = tokenizer.encode(text, o);
  const int32_t cls = tokenizer.data().add_bos ? tokenizer.bos() : -1;
  const int32_t sep = tokenizer.data().add_eos ? tokenizer.eos() : -1;
  const int64_t room = max_tokens - (cls >= 0) - (sep >= 0);
  if (static_cast<int64_t>(ids.size()) > room) ids.resize(static_cast<size_t>(std::max<int64_t>(room, 0)));
  if (cls >= 0) ids.insert(ids.begin(), cls);
  if (sep >= 0) ids.push_back(sep);
  return ids;
}

Result<std::unique_ptr<Tokenizer>> encoder_tokenizer(const BertModel& model) {
  const TokenizerData& d = model.file().header().tokenizer;
  const std::string& path = model.file().path();
  if (d.empty()) return make_error(ErrorCode::kNotFound, path + ": the file holds no tokenizer");
  if (d.size() > model.config().vocab) {
    return make_error(ErrorCode::kInvalidFormat, path + ": the tokenizer has " + std::to_string(d.size()) +
                                                     " tokens, more than the " + std::to_string(model.config().vocab) +
                                                     " embedding rows");
  }
  return Tokenizer::create(d, path);
}

Status embed_texts(BertModel& model, const Tokenizer& tokenizer, const std::vector<std::string>& texts, int64_t batch,
                   std::vector<float>& out, EmbedTimings* timings) {
  if (batch <= 0) return make_error(ErrorCode::kInvalidArgument, "batch size must be positive");
  const int64_t dim = model.config().dim;
  out.assign(texts.size() * static_cast<size_t>(dim), 0.0f);
  EmbedTimings t;
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  std::vector<float> part;
  for (size_t first = 0; first < texts.size(); first += static_cast<size_t>(batch)) {
    const auto batch_start = clock::now();
    const size_t last = std::min(texts.size(), first + static_cast<size_t>(batch));
    std::vector<std::vector<int32_t>> inputs;
    for (size_t i = first; i < last; ++i) {
      inputs.push_back(encoder_input(tokenizer, texts[i], model.config().max_tokens));
      t.tokens += static_cast<int64_t>(inputs.back().size());
    }
    SLMC_RETURN_IF_ERROR(model.embed(inputs, part));
    std::copy(part.begin(), part.end(), out.begin() + static_cast<std::ptrdiff_t>(first * dim));
    t.batch_seconds_mean += std::chrono::duration<double>(clock::now() - batch_start).count();
    ++t.batches;
  }
  t.seconds = std::chrono::duration<double>(clock::now() - start).count();
  if (t.batches) t.batch_seconds_mean /= static_cast<double>(t.batches);
  if (timings) *timings = t;
  return Status::ok_status();
}

EncoderEvalResult compare_embeddings(const std::vector<float>& a, const std::vector<float>& b, int64_t n, int64_t dim) {
  EncoderEvalResult r;
  r.sentences = n;
  if (n <= 0) return r;
  auto dot = [&](const std::vector<float>& x, int64_t i, const std::vector<float>& y, int64_t j) {
    double s = 0;
    for (int64_t k = 0; k < dim; ++k) s += static_cast<double>(x[i * dim + k]) * y[j * dim + k];
    return s;
  };
  auto cosine = [&](const std::vector<float>& x, int64_t i, const std::vector<float>& y, int64_t j) {
    const double den = std::sqrt(dot(x, i, x, i) * dot(y, j, y, j));
    return den > 0 ? dot(x, i, y, j) / den : 0.0;
  };
  auto nearest = [&](const std::vector<float>& e, int64_t i) {
    int64_t best = -1;
    double best_sim = -2;
    for (int64_t j = 0; j < n; ++j) {
      if (j == i) continue;
      const double s = cosine(e, i, e, j);
      if (s > best_sim) {
        best_sim = s;
        best = j;
      }
    }
    return best;
  };
  double sum = 0;
  r.min_cosine = 2;
  int64_t agree = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double c = cosine(a, i, b, i);
    sum += c;
    if (c < r.min_cosine) {
      r.min_cosine = c;
      r.worst_sentence = i;
    }
    if (n >= 2 && nearest(a, i) == nearest(b, i)) ++agree;
  }
  r.mean_cosine = sum / static_cast<double>(n);
  r.neighbour_agreement = n >= 2 ? static_cast<double>(agree) / static_cast<double>(n) : 0.0;
  return r;
}

}  // namespace slmc
