#include "slmc/runtime/eval.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <random>

namespace slmc {

std::vector<std::string> split_paragraphs(const std::string& text) {
  std::vector<std::string> out;
  std::string current;
  size_t start = 0;
  auto flush = [&] {
    while (!current.empty() && (current.back() == '\n' || current.back() == ' ' || current.back() == '\r')) current.pop_back();
    size_t b = current.find_first_not_of(" \n\r");
    if (b != std::string::npos) out.push_back(current.substr(b));
    current.clear();
  };
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) {
      flush();
    } else {
      if (!current.empty()) current += '\n';
      current += line;
    }
    start = end + 1;
  }
  flush();
  return out;
}

std::vector<int32_t> protocol_tokens(const Tokenizer& tok, const std::string& text, TextSplit split,
                                     int64_t max_tokens) {
  const std::vector<std::string> paragraphs = split_paragraphs(text);
  const size_t calib = paragraphs.size() / 5;  // first 20% (rounded down)
  size_t begin = 0, end = paragraphs.size();
  if (split == TextSplit::kCalibration) end = calib;
  if (split == TextSplit::kEvaluation) begin = calib;
  std::vector<int32_t> ids;
  if (tok.kind() == TokenizerKind::kLlama2c) {
    // llama2.c protocol: each paragraph encoded with the dummy prefix, joined by two <0x0A> tokens.
    const int32_t newline = 0x0A + 3;
    for (size_t p = begin; p < end; ++p) {
      if (p > begin) {
        ids.push_back(newline);
        ids.push_back(newline);
      }
      std::vector<int32_t> t = tok.encode(paragraphs[p], false, false);
      ids.insert(ids.end(), t.begin(), t.end());
      if (max_tokens > 0 && static_cast<int64_t>(ids.size()) >= max_tokens) break;
    }
  } else {
    // Real tokenizers: the selected paragraphs joined by a blank line, tokenized whole as the
    // model's tokenizer does (no BOS: the windows add it).
    std::string joined;
    for (size_t p = begin; p < end; ++p) {
      if (p > begin) joined += "\n\n";
      joined += paragraphs[p];
      if (max_tokens > 0 && static_cast<int64_t>(joined.size()) > 8 * max_tokens + 1024) break;
    }
    ids = tok.encode(joined, false, false);
  }
  if (max_tokens > 0 && static_cast<int64_t>(ids.size()) > max_tokens) ids.resize(static_cast<size_t>(max_tokens));
  return ids;
}

std::vector<std::vector<int32_t>> protocol_documents(const Tokenizer& tok, const std::string& text, TextSplit split,
                                                    int64_t max_tokens) {
  const std::vector<std::string> paragraphs = split_paragraphs(text);
  const size_t calib = paragraphs.size() / 5;  // first 20% (rounded down), as protocol_tokens
  size_t begin = 0, end = paragraphs.size();
  if (split == TextSplit::kCalibration) end = calib;
  if (split == TextSplit::kEvaluation) begin = calib;
  std::vector<std::vector<int32_t>> docs;
  int64_t total = 0;
  for (size_t p = begin; p < end; ++p) {
    if (max_tokens > 0 && total >= max_tokens) break;
    std::vector<int32_t> t = tok.encode(paragraphs[p], false, false);
    if (max_tokens > 0 && total + static_cast<int64_t>(t.size()) > max_tokens) {
      t.resize(static_cast<size_t>(max_tokens - total));
    }
    total += static_cast<int64_t>(t.size());
    if (!t.empty()) docs.push_back(std::move(t));
  }
  return docs;
}

std::vector<int32_t> llamacpp_tokens(const Tokenizer& tok, const std::string& text, int32_t bos, int64_t max_tokens) {
  std::vector<int32_t> ids = tok.encode(text, false, false);
  if (bos >= 0) ids.insert(ids.begin(), bos);
  if (max_tokens > 0 && static_cast<int64_t>(ids.size()) > max_tokens) ids.resize(static_cast<size_t>(max_tokens));
  return ids;
}

namespace {

// log-softmax of one logits row into out (double precision for the sums).
void log_softmax(const float* logits, int64_t n, std::vector<double>& out) {
  out.resize(static_cast<size_t>(n));
  double mx = logits[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, static_cast<double>(logits[i]));
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
  const double lse = mx + std::log(sum);
  for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = static_cast<double>(logits[i]) - lse;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

Result<EvalResult> evaluate(LlamaModel& model, LlamaModel* reference, const std::vector<int32_t>& tokens,
                            const EvalOptions& options) {
  const int64_t vocab = model.config().vocab;
  if (reference && reference->config().vocab != vocab) {
    return make_error(ErrorCode::kInvalidArgument, "reference vocabulary " + std::to_string(reference->config().vocab) +
                                                       " differs from the model's " + std::to_string(vocab));
  }
  if (options.window < 2 || options.window > model.config().context) {
    return make_error(ErrorCode::kInvalidArgument, "window " + std::to_string(options.window) +
                                                       " must be in [2, context length " +
                                                       std::to_string(model.config().context) + "]");
  }
  if (tokens.empty()) return make_error(ErrorCode::kInvalidArgument, "no tokens to evaluate");
  EvalResult r;
  r.has_reference = reference != nullptr;
  // Windows advance by window - 1 tokens. With a BOS, a window is BOS + window - 1 tokens and
  // predicts all of them; without, it starts with the previous window's last token (context only),
  // so every token but the stream's first is predicted exactly once.
  const bool bos = options.bos >= 0;
  const bool llamacpp = options.protocol == EvalProtocol::kLlamaCpp;
  if (options.protocol != EvalProtocol::kSlmc && !llamacpp) {
    return make_error(ErrorCode::kInvalidArgument, "unknown eval protocol " + std::to_string(int(options.protocol)));
  }
  const int64_t per_window = options.window - 1;
  if (!bos && tokens.size() < 2) return make_error(ErrorCode::kInvalidArgument, "fewer than 2 tokens to evaluate");
  if (llamacpp && static_cast<int64_t>(tokens.size()) < options.window) {
    return make_error(ErrorCode::kInvalidArgument, "the llamacpp protocol needs at least one window of " +
                                                       std::to_string(options.window) + " tokens, the text has " +
                                                       std::to_string(tokens.size()));
  }
  std::vector<int32_t> input, targets;
  std::vector<float> logits, ref_logits;
  std::vector<double> lp, lq;
  double nll = 0, ref_nll = 0, kl = 0, prefill_seconds = 0;
  int64_t agree = 0, prefill_tokens = 0;
  // Each window: `input` run from position 0, rows [first, first + targets.size()) scored,
  // row first + t predicting targets[t].
  const size_t windows = llamacpp ? tokens.size() / static_cast<size_t>(options.window) : 0;
  size_t next = bos ? 0 : 1;  // slmc protocol: the next token to predict
  for (size_t w = 0; llamacpp ? w < windows : next < tokens.size(); ++w) {
    int64_t first = 0;
    if (llamacpp) {
      const size_t start = w * static_cast<size_t>(options.window);
      input.assign(tokens.begin() + static_cast<std::ptrdiff_t>(start),
                   tokens.begin() + static_cast<std::ptrdiff_t>(start + static_cast<size_t>(options.window)));
      if (bos) input[0] = options.bos;
      first = options.window / 2;
      targets.assign(input.begin() + first + 1, input.end());
    } else {
      const size_t start = next;
      const size_t count = std::min(tokens.size() - start, static_cast<size_t>(per_window));
      // input = BOS (or the previous token) + the first count-1 tokens; row t predicts tokens[start + t].
      input.assign(1, bos ? options.bos : tokens[start - 1]);
      input.insert(input.end(), tokens.begin() + static_cast<std::ptrdiff_t>(start),
                   tokens.begin() + static_cast<std::ptrdiff_t>(start + count) - 1);
      targets.assign(tokens.begin() + static_cast<std::ptrdiff_t>(start),
                     tokens.begin() + static_cast<std::ptrdiff_t>(start + count));
      next += static_cast<size_t>(per_window);
    }
    const int64_t n = static_cast<int64_t>(input.size());
    logits.resize(static_cast<size_t>(n * vocab));
    model.reset();
    const auto t0 = std::chrono::steady_clock::now();
    SLMC_RETURN_IF_ERROR(model.forward(input.data(), n, logits.data()));
    prefill_seconds += seconds_since(t0);
    prefill_tokens += n;
    if (reference) {
      ref_logits.resize(logits.size());
      reference->reset();
      SLMC_RETURN_IF_ERROR(reference->forward(input.data(), n, ref_logits.data()));
    }
    const int64_t scored = static_cast<int64_t>(targets.size());
    for (int64_t s = 0; s < scored; ++s) {
      const int64_t t = first + s;
      const int32_t target = targets[static_cast<size_t>(s)];
      log_softmax(&logits[static_cast<size_t>(t * vocab)], vocab, lq);
      nll -= lq[static_cast<size_t>(target)];
      if (reference) {
        log_softmax(&ref_logits[static_cast<size_t>(t * vocab)], vocab, lp);
        ref_nll -= lp[static_cast<size_t>(target)];
        double k = 0;
        size_t am_p = 0, am_q = 0;
        for (size_t i = 0; i < lp.size(); ++i) {
          k += std::exp(lp[i]) * (lp[i] - lq[i]);
          if (lp[i] > lp[am_p]) am_p = i;
          if (lq[i] > lq[am_q]) am_q = i;
        }
        kl += std::max(0.0, k);
        agree += am_p == am_q;
      }
    }
    r.tokens += scored;
  }
  if (r.tokens == 0) {
    return make_error(ErrorCode::kInvalidArgument, "window " + std::to_string(options.window) + " scores no token");
  }
  r.nll = nll / static_cast<double>(r.tokens);
  r.perplexity = std::exp(r.nll);
  if (reference) {
    r.reference_nll = ref_nll / static_cast<double>(r.tokens);
    r.reference_perplexity = std::exp(r.reference_nll);
    r.kl = kl / static_cast<double>(r.tokens);
    r.top1_agreement = static_cast<double>(agree) / static_cast<double>(r.tokens);
  }
  r.prefill_tokens_per_s = prefill_seconds > 0 ? static_cast<double>(prefill_tokens) / prefill_seconds : 0;
  // Decode speed: greedy generation from BOS, one token at a time.
  if (options.decode_tokens > 0) {
    const int64_t steps = std::min(options.decode_tokens, model.config().context);
    model.reset();
    logits.resize(static_cast<size_t>(vocab));
    int32_t token = bos ? options.bos : tokens[0];
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t s = 0; s < steps; ++s) {
      SLMC_RETURN_IF_ERROR(model.forward(&token, 1, logits.data()));
      token = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
    const double sec = seconds_since(t0);
    r.decode_tokens_per_s = sec > 0 ? static_cast<double>(steps) / sec : 0;
  }
  return r;
}

namespace {
struct CalibrationSums {
  double clip_norm = 0;  // > 0: rows are clipped to this L2 norm
  int64_t rows_clipped = 0;
  std::vector<float> clipped;
  std::map<std::string, std::vector<double>> sum_sq;
  std::map<std::string, double> rows;
  // Gram matrices (upper triangles in K x K buffers) when requested.
  bool gram = false;
  std::map<std::string, std::vector<double>> sum_xx;
  // The previous call's input and its X^T X: q/k/v (and gate/up) read the same input, so the
  // product is computed once and added to each.
  std::vector<float> last_x;
  std::vector<double> last_xx;
};
void observe(CalibrationSums* s, const std::string& weight, const float* x, int64_t n, int64_t k) {
  if (s->clip_norm > 0) {
    s->clipped.assign(x, x + n * k);
    for (int64_t r = 0; r < n; ++r) {
      float* row = s->clipped.data() + r * k;
      double norm2 = 0;
      for (int64_t j = 0; j < k; ++j) norm2 += static_cast<double>(row[j]) * row[j];
      const double norm = std::sqrt(norm2);
      if (norm > s->clip_norm) {
        // Scaled strictly inside the bound (float rounding must not push a row over it).
        const float f = static_cast<float>(s->clip_norm / norm * (1.0 - 1e-6));
        for (int64_t j = 0; j < k; ++j) row[j] *= f;
        ++s->rows_clipped;
      }
    }
    x = s->clipped.data();
  }
  std::vector<double>& acc = s->sum_sq[weight];
  acc.resize(static_cast<size_t>(k), 0.0);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < k; ++j) {
      const double v = x[r * k + j];
      acc[static_cast<size_t>(j)] += v * v;
    }
  }
  s->rows[weight] += static_cast<double>(n);
  if (!s->gram || k > kMaxGramChannels) return;
  const size_t kk = static_cast<size_t>(k) * static_cast<size_t>(k), nk = static_cast<size_t>(n * k);
  const bool same = s->last_x.size() == nk && s->last_xx.size() == kk &&
                    std::memcmp(s->last_x.data(), x, nk * sizeof(float)) == 0;
  if (!same) {
    s->last_x.assign(x, x + nk);
    s->last_xx.assign(kk, 0.0);
    for (int64_t r = 0; r < n; ++r) {
      const float* xr = x + r * k;
      for (int64_t i = 0; i < k; ++i) {
        const double xi = xr[i];
        if (xi == 0) continue;
        double* row = s->last_xx.data() + i * k;
        for (int64_t j = i; j < k; ++j) row[j] += xi * static_cast<double>(xr[j]);
      }
    }
  }
  std::vector<double>& g = s->sum_xx[weight];
  g.resize(kk, 0.0);
  for (size_t i = 0; i < kk; ++i) g[i] += s->last_xx[i];
}

Calibration finish_calibration(CalibrationSums& sums);

}  // namespace

Result<Calibration> calibrate(LlamaModel& model, const std::vector<int32_t>& tokens, int64_t window, bool gram,
                              int32_t bos) {
  if (tokens.empty()) return make_error(ErrorCode::kInvalidArgument, "no calibration tokens");
  return calibrate_documents(model, std::vector<std::vector<int32_t>>{tokens}, window, gram, bos);
}

Result<Calibration> calibrate_documents(LlamaModel& model, const std::vector<std::vector<int32_t>>& all_documents,
                                        int64_t window, bool gram, int32_t bos, const CalibrationPrivacy* privacy,
                                        CalibrationPrivacyReport* report) {
  if (window < 2 || window > model.config().context) {
    return make_error(ErrorCode::kInvalidArgument, "window " + std::to_string(window) + " out of range");
  }
  CalibrationPrivacyReport pr;
  const std::vector<std::vector<int32_t>>* docs = &all_documents;
  std::vector<std::vector<int32_t>> truncated;
  if (privacy != nullptr) {
    const CalibrationPrivacy& p = *privacy;
    if (!(p.clip_norm > 0) || std::isinf(p.clip_norm)) {
      return make_error(ErrorCode::kInvalidArgument, "privacy: the clipping norm must be a finite number > 0");
    }
    if (p.max_document_tokens <= 0) {
      return make_error(ErrorCode::kInvalidArgument, "privacy: the tokens per document must be bounded (> 0)");
    }
    if (p.epsilon != 0 && !(p.epsilon > 0 && p.epsilon < 1)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "privacy: epsilon must be in (0, 1) (the classical Gaussian mechanism's range), or 0 for "
                        "clipping only");
    }
    if (p.epsilon > 0 && !(p.delta > 0 && p.delta < 1)) {
      return make_error(ErrorCode::kInvalidArgument, "privacy: delta must be in (0, 1)");
    }
    truncated = all_documents;
    for (auto& d : truncated) {
      if (static_cast<int64_t>(d.size()) > p.max_document_tokens) {
        d.resize(static_cast<size_t>(p.max_document_tokens));
        ++pr.documents_truncated;
      }
    }
    docs = &truncated;
  }
  const std::vector<std::vector<int32_t>>& documents = *docs;
  size_t total = 0;
  for (const auto& d : documents) total += d.size();
  if (total == 0) return make_error(ErrorCode::kInvalidArgument, "no calibration tokens");
  CalibrationSums sums;
  sums.gram = gram;
  if (privacy != nullptr) sums.clip_norm = privacy->clip_norm;
  model.set_linear_observer(
      [&sums](const std::string& weight, const float* x, int64_t n, int64_t k) { observe(&sums, weight, x, n, k); });
  std::vector<int32_t> input;
  Status status;
  // The windows of evaluate(), inside each document: BOS (or the document's previous token)
  // first, window - 1 new tokens each; no window holds tokens of two documents.
  for (const std::vector<int32_t>& tokens : documents) {
    for (size_t start = bos >= 0 ? 0 : 1; start < tokens.size() && status.ok();
         start += static_cast<size_t>(window - 1)) {
      const size_t count = std::min(tokens.size() - start, static_cast<size_t>(window - 1));
      input.assign(1, bos >= 0 ? bos : tokens[start - 1]);
      input.insert(input.end(), tokens.begin() + static_cast<std::ptrdiff_t>(start),
                   tokens.begin() + static_cast<std::ptrdiff_t>(start + count));
      model.reset();
      status = model.forward(input.data(), static_cast<int64_t>(input.size()), nullptr);
    }
  }
  model.set_linear_observer(nullptr);
  SLMC_RETURN_IF_ERROR(status);
  if (sums.rows.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "no calibration window: every document has a single token and no BOS starts the windows");
  }
  if (privacy != nullptr) {
    // One document adds at most R rows to each observed layer: its tokens, plus the row that
    // starts each of its windows (BOS, or without BOS the first token read twice).
    const int64_t l = privacy->max_document_tokens, per_window = window - 1;
    const int64_t rows = l + (l + per_window - 1) / per_window;
    const double c2 = privacy->clip_norm * privacy->clip_norm;
    // Per row: the vector (x_j^2)_j has L2 norm <= ||x||^2 <= C^2, and so has x x^T (its upper
    // triangle, less); the count moves by 1 per row.
    int64_t layers = 0, gram_layers = 0;
    for (const auto& [name, acc] : sums.sum_sq) {
      ++layers;
      if (sums.sum_xx.count(name) != 0) ++gram_layers;
    }
    const double r = static_cast<double>(rows);
    pr.rows_per_document = rows;
    pr.layers = layers;
    pr.sensitivity = std::sqrt(static_cast<double>(layers + gram_layers) * (r * c2) * (r * c2) +
                               static_cast<double>(layers) * r * r);
    pr.rows_clipped = sums.rows_clipped;
    if (privacy->epsilon > 0) {
      pr.sigma = pr.sensitivity * std::sqrt(2.0 * std::log(1.25 / privacy->delta)) / privacy->epsilon;
      std::mt19937_64 rng(privacy->seed != 0 ? privacy->seed : (uint64_t{std::random_device{}()} << 32) ^ std::random_device{}());
      std::normal_distribution<double> noise(0.0, pr.sigma);
      for (auto& [name, acc] : sums.sum_sq) {
        for (double& v : acc) v += noise(rng);
        double& count = sums.rows[name];
        // A noisy count below one row would blow the means up; clamping is post-processing.
        count = std::max(1.0, count + noise(rng));
        auto g = sums.sum_xx.find(name);
        if (g != sums.sum_xx.end()) {
          const size_t k = acc.size();
          for (size_t i = 0; i < k; ++i) {
            for (size_t j = i; j < k; ++j) g->second[i * k + j] += noise(rng);
          }
        }
      }
      // Means of squares are >= 0: clamp what the noise pushed below (post-processing).
      for (auto& [name, acc] : sums.sum_sq) {
        for (double& v : acc) v = std::max(0.0, v);
      }
    }
  }
  if (report != nullptr) *report = pr;
  return finish_calibration(sums);
}

Result<Calibration> calibrate_encoder(BertModel& model, const Tokenizer& tokenizer,
                                      const std::vector<std::string>& texts, bool gram, int64_t batch) {
  if (texts.empty()) return make_error(ErrorCode::kInvalidArgument, "no calibration texts");
  if (batch <= 0) return make_error(ErrorCode::kInvalidArgument, "batch size must be positive");
  CalibrationSums sums;
  sums.gram = gram;
  model.set_linear_observer(
      [&sums](const std::string& weight, const float* x, int64_t n, int64_t k) { observe(&sums, weight, x, n, k); });
  std::vector<float> unused;
  const Status status = embed_texts(model, tokenizer, texts, batch, unused);
  model.set_linear_observer(nullptr);
  SLMC_RETURN_IF_ERROR(status);
  return finish_calibration(sums);
}

namespace {

Calibration finish_calibration(CalibrationSums& sums) {
  Calibration cal;
  for (auto& [name, acc] : sums.sum_sq) {
    CalibrationEntry e;
    e.count = sums.rows[name];
    e.mean_sq.resize(acc.size());
    for (size_t j = 0; j < acc.size(); ++j) e.mean_sq[j] = static_cast<float>(acc[j] / e.count);
    auto g = sums.sum_xx.find(name);
    if (g != sums.sum_xx.end()) {
      const size_t k = acc.size();
      e.gram.resize(k * k);
      for (size_t i = 0; i < k; ++i) {
        for (size_t j = i; j < k; ++j) e.gram[i * k + j] = e.gram[j * k + i] = static_cast<float>(g->second[i * k + j] / e.count);
      }
    }
    cal.tensors.emplace(name, std::move(e));
  }
  return cal;
}

}  // namespace

}  // namespace slmc
