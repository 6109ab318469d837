// Measuring what compression costs on real text: perplexity, KL divergence and top-1 agreement
// against a reference model, prefill/decode speed; and calibration statistics for
// search=weighted and prune=wanda.
//
// Text protocol (docs/EVAL.md): the file is split into paragraphs at blank lines. The first 20% of
// the paragraphs (rounded down) are the calibration split, the rest the evaluation split, so
// calibration and evaluation never see the same text. With a llama2.c tokenizer each paragraph is
// encoded llama2.c-style (dummy-prefix space, no BOS) and paragraphs are joined with two newline
// byte tokens <0x0A>; with any other tokenizer the split's paragraphs are joined by a blank line and
// tokenized whole, as the model's tokenizer does. The token stream is scored in windows of
// `window` tokens that advance by window - 1: each window starts with BOS when the tokenizer adds
// one (EvalOptions::bos), else with the previous window's last token, and predicts the rest.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "slmc/convert/converter.hpp"
#include "slmc/runtime/bert.hpp"
#include "slmc/runtime/llama.hpp"
#include "slmc/runtime/tokenizer.hpp"
#include "slmc/status.hpp"

namespace slmc {

enum class TextSplit : uint8_t { kAll = 0, kCalibration = 1, kEvaluation = 2 };

/// Paragraphs of a text (split at blank lines, trimmed, empty ones dropped).
std::vector<std::string> split_paragraphs(const std::string& text);
/// The token stream of a split of `text` per the protocol above, at most `max_tokens` (<= 0: all).
std::vector<int32_t> protocol_tokens(const Tokenizer& tok, const std::string& text, TextSplit split,
                                     int64_t max_tokens);

/// How the token stream is cut into windows and which positions are scored (docs/EVAL.md).
enum class EvalProtocol : uint8_t {
  /// slmc's: windows advance by window - 1 and every token but the first is predicted once (above).
  kSlmc = 0,
  /// llama-perplexity's: the stream (the whole text tokenized as is, BOS first when the tokenizer
  /// adds one) is cut into floor(size / window) disjoint chunks; a chunk's first token is replaced
  /// by BOS when the tokenizer adds one; only positions window/2 .. window-2 are scored, each
  /// predicting the next token of the chunk (window - window/2 - 1 per chunk).
  kLlamaCpp = 1,
};

struct EvalOptions {
  int64_t window = 512;       ///< tokens per window, BOS included (<= the model's context)
  int64_t decode_tokens = 64; ///< tokens generated one at a time to measure decode speed
  int32_t bos = -1;           ///< BOS id that starts every window; -1: none (see above)
  EvalProtocol protocol = EvalProtocol::kSlmc;
};

/// The documents of a split for calibration: every paragraph (blank-line separated) of the split
/// is one document, tokenized alone (no BOS), empty ones dropped; at most `max_tokens` in all
/// (<= 0: no limit; the last document is cut).
std::vector<std::vector<int32_t>> protocol_documents(const Tokenizer& tok, const std::string& text, TextSplit split,
                                                    int64_t max_tokens);

/// The llama.cpp protocol's token stream: `text` tokenized whole and unchanged (no paragraph
/// split; special tokens not parsed), with BOS first when `bos` >= 0, at most `max_tokens`.
std::vector<int32_t> llamacpp_tokens(const Tokenizer& tok, const std::string& text, int32_t bos, int64_t max_tokens);

struct EvalResult {
  int64_t tokens = 0;          ///< predicted tokens
  double nll = 0;              ///< mean negative log-likelihood (nats/token)
  double perplexity = 0;       ///< exp(nll)
  bool has_reference = false;
  double reference_nll = 0;
  double reference_perplexity = 0;
  double kl = 0;               ///< mean KL(P_reference || P_model) per token (nats)
  double top1_agreement = 0;   ///< fraction of positions whose argmax agrees with the reference
  double prefill_tokens_per_s = 0;
  double decode_tokens_per_s = 0;
};

/// Scores `tokens` with `model` (and `reference`, nullable, the same vocabulary).
Result<EvalResult> evaluate(LlamaModel& model, LlamaModel* reference, const std::vector<int32_t>& tokens,
                            const EvalOptions& options);

/// Layers with more input channels than this get no Gram matrix (K^2 values each).
inline constexpr int64_t kMaxGramChannels = 2048;

/// Per-input-channel mean squared activation of every linear layer over `tokens` (same windows),
/// keyed by weight name: the calibration format of `convert --calibration`. With `gram`, also the
/// Gram matrix mean(x x^T) of every layer with K <= kMaxGramChannels (error compensation for
/// search=weighted, docs/QUANT.md).
Result<Calibration> calibrate(LlamaModel& model, const std::vector<int32_t>& tokens, int64_t window,
                              bool gram = false, int32_t bos = -1);
/// Differential privacy for statistics that leave a device (docs/FLEET.md §8.3). Unit: one
/// document (a paragraph of the calibration text). Every activation row is clipped to L2 norm
/// `clip_norm`; documents are cut to `max_document_tokens`; with `epsilon` > 0 the Gaussian
/// mechanism adds noise of standard deviation sigma = sensitivity * sqrt(2 ln(1.25 / delta)) /
/// epsilon to every sum (mean_sq, Gram, and the row count) before the means are formed, where
/// sensitivity = sqrt(M ((R C^2)^2 (1 + gram) + R^2)) for M observed layers and R = the rows one
/// document can contribute per layer (its tokens plus one starting row per window).
struct CalibrationPrivacy {
  double clip_norm = 0;              ///< C > 0: rows with a larger L2 norm are scaled down to it
  int64_t max_document_tokens = 0;   ///< L > 0: tokens kept per document
  double epsilon = 0;                ///< 0 < epsilon < 1 adds noise; 0: clipping only
  double delta = 1e-5;               ///< 0 < delta < 1
  uint64_t seed = 0;                 ///< 0: from std::random_device (noise must not be predictable)
};

/// What a private calibration did (for reports and the manifest of a contribution).
struct CalibrationPrivacyReport {
  int64_t rows_per_document = 0;  ///< R
  int64_t layers = 0;             ///< M
  double sensitivity = 0;         ///< L2 sensitivity of the released sums
  double sigma = 0;               ///< noise standard deviation (0: none)
  int64_t rows_clipped = 0;
  int64_t documents_truncated = 0;
};

/// calibrate() over several documents whose windows never cross a document boundary: each
/// document is cut into windows of its own (BOS, or its previous token, then window - 1 tokens).
/// Statistics of documents D1..Dn equal the count-weighted merge (merge_calibrations) of the
/// statistics of any partition of them, up to summation order and the stored precision.
/// With `privacy`, rows are clipped and noise added as CalibrationPrivacy says; `report`
/// (nullable) receives what was done.
Result<Calibration> calibrate_documents(LlamaModel& model, const std::vector<std::vector<int32_t>>& documents,
                                        int64_t window, bool gram = false, int32_t bos = -1,
                                        const CalibrationPrivacy* privacy = nullptr,
                                        CalibrationPrivacyReport* report = nullptr);

/// The same statistics for an encoder: every text of `texts` is one input ([CLS] ... [SEP], cut to
/// the model's max_seq_length), run `batch` texts per forward pass.
Result<Calibration> calibrate_encoder(BertModel& model, const Tokenizer& tokenizer,
                                      const std::vector<std::string>& texts, bool gram = false, int64_t batch = 32);

}  // namespace slmc
