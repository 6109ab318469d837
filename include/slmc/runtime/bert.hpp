// A small, readable BERT-family encoder (general.architecture "bert": all-MiniLM-L6-v2, BERT,
// sentence-transformers models) running a .slm file through the library's kernels: word +
// position + token-type embeddings and LayerNorm, bidirectional multi-head attention, post-
// LayerNorm residual blocks, a GELU (erf) feed-forward layer, then the sentence-transformers
// pooling the file records (mean over the tokens or the [CLS] token; optional L2 normalization).
//
// Every linear layer goes through slmc::linear and the embedding lookups through
// slmc::gather_rows on the weights as the file maps them, whatever encoding it holds (sparse
// layers through the sparse kernels, as in the Llama engine; nothing is decoded at load). A batch of sentences of different lengths runs as one batch:
// the tokens of all sentences are packed row after row (no padding rows are computed) and the
// attention of a token is masked to the tokens of its own sentence, which gives what a padded
// batch with HF's attention mask gives.
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
#include "slmc/text/tokenizer.hpp"

namespace slmc {

enum class Pooling : uint8_t {
  kMean = 0,  ///< mean of the last hidden states over the sentence's tokens ([CLS] and [SEP] included)
  kCls = 1,   ///< the last hidden state of the first token
};
/// "mean" or "cls".
const char* pooling_name(Pooling pooling) noexcept;

struct BertConfig {
  int64_t dim = 0;
  int64_t hidden_dim = 0;  ///< feed-forward width
  int64_t layers = 0;
  int64_t heads = 0;
  int64_t vocab = 0;
  int64_t positions = 0;   ///< rows of the position embedding (max_position_embeddings)
  int64_t token_types = 0;
  double norm_eps = 1e-12;
  Pooling pooling = Pooling::kMean;  ///< bert.pooling_type; absent: mean
  bool normalize = false;            ///< bert.normalize: L2-normalize the pooled vector
  int64_t max_tokens = 0;  ///< longest input incl. [CLS]/[SEP]: bert.max_seq_length, capped by positions
  int64_t head_dim() const noexcept { return heads ? dim / heads : 0; }
};

struct BertOptions {
  int num_threads = 0;                ///< <= 0: all cores
  /// Activations of quantized layers; kAuto is each encoding's default (default_act_mode: int8
  /// with one scale per 32 values for dense int8/int4 weights). BERT's LayerNorm outputs carry a
  /// few outlier channels: one int8 scale per row (kInt8Row) cost all-MiniLM-L6-v2 0.0025 of
  /// embedding cosine (0.99978 -> 0.99735 with int8 g32 weights), one per 32 values 0.0002
  /// (0.99974 -> 0.99953); kFp32 keeps fp32 activations.
  ActMode act_mode = ActMode::kAuto;
  bool verify_checksums = true;       ///< recompute every segment's xxh64 at load
};

class BertModel {
 public:
  /// Loads and validates a .slm file whose general.architecture is "bert" (canonical Hugging Face
  /// BertModel names: embeddings.*, encoder.layer.N.*). Other architectures, activations other
  /// than GELU and non-absolute positions are kUnsupported naming them; a missing tensor or key,
  /// or a shape that disagrees with the keys, is an error naming it.
  static Result<std::unique_ptr<BertModel>> load(const std::string& path, const BertOptions& options = {});

  const BertConfig& config() const noexcept { return config_; }
  const ModelFile& file() const noexcept { return *file_; }

  /// Last hidden states of a batch: `sentences[b]` holds token ids (with [CLS]/[SEP] already
  /// added), 1 <= length <= config().max_tokens; token types are 0. `out` receives sum(lengths) x
  /// dim floats, the sentences' rows one after the other.
  Status encode(const std::vector<std::vector<int32_t>>& sentences, std::vector<float>& out);
  /// Sentence embeddings: encode, then pooling (and normalization) as the file says. `out`
  /// receives sentences.size() x dim floats.
  Status embed(const std::vector<std::vector<int32_t>>& sentences, std::vector<float>& out);

  /// Observer of every linear layer's input, for calibration: the weight name and the input rows
  /// X[n x K] (all tokens of the batch). Null: no observation.
  using LinearObserver = std::function<void(const std::string& weight, const float* x, int64_t n, int64_t k)>;
  void set_linear_observer(LinearObserver fn) { observer_ = std::move(fn); }

 private:
  struct Linear {
    std::string name;
    EncodedMatrixView view;
    const float* bias = nullptr;
    ActMode mode = ActMode::kAuto;  ///< act_mode_for_layer(options.act_mode, encoding), checked at load
  };
  struct Norm {
    const float* weight = nullptr;
    const float* bias = nullptr;
  };
  struct Layer {
    Linear query, key, value, attn_out, ffn_in, ffn_out;
    Norm attn_norm, ffn_norm;
  };

  BertModel() = default;
  Status run_linear(const Linear& w, const float* x, int64_t n, float* y);
  void attention(const std::vector<int64_t>& starts);

  std::unique_ptr<ModelFile> file_;
  BertConfig config_;
  BertOptions options_;
  LinearContext ctx_;
  EncodedMatrixView word_, position_, token_type_;
  std::vector<AlignedBuffer> owned_vectors_;  ///< norms and biases stored in a non-f32 encoding
  Norm embed_norm_;
  std::vector<Layer> layers_;
  std::vector<float> x_, tmp_, q_, k_, v_, att_, hidden_, scores_;
  LinearObserver observer_;
};

/// The encoder input of one text: [CLS] ids [SEP] as the tokenizer adds them, with its ids cut
/// to `max_tokens` - 2 when longer (HF's truncation of a single sequence). Special-token text in
/// the input ("[SEP]") is matched, as HF tokenizers do.
std::vector<int32_t> encoder_input(const Tokenizer& tokenizer, std::string_view text, int64_t max_tokens);

/// The tokenizer stored in an encoder's file; kNotFound when it has none, kInvalidFormat when it
/// has more tokens than the embedding rows.
Result<std::unique_ptr<Tokenizer>> encoder_tokenizer(const BertModel& model);

struct EmbedTimings {
  double seconds = 0;           ///< tokenizing and running every batch (loading excluded)
  double batch_seconds_mean = 0;  ///< mean wall time of one batch: the latency a sentence sees
  int64_t batches = 0;
  int64_t tokens = 0;           ///< tokens run, [CLS]/[SEP] included
};

/// Embeddings of `texts` in order, `batch` texts per forward pass: out = texts.size() x dim.
Status embed_texts(BertModel& model, const Tokenizer& tokenizer, const std::vector<std::string>& texts,
                   int64_t batch, std::vector<float>& out, EmbedTimings* timings = nullptr);

/// Embedding quality of a model against a reference (docs/EVAL.md "Encoders").
struct EncoderEvalResult {
  int64_t sentences = 0;
  double mean_cosine = 0;  ///< cosine similarity of each sentence's two embeddings, averaged
  double min_cosine = 0;
  /// Share of sentences whose most similar other sentence (by cosine) is the same under both
  /// models; ties broken by the lower index. Needs >= 2 sentences.
  double neighbour_agreement = 0;
  int64_t worst_sentence = 0;  ///< index of the minimum cosine
};
/// `a` and `b`: n x dim embeddings of the same sentences.
EncoderEvalResult compare_embeddings(const std::vector<float>& a, const std::vector<float>& b, int64_t n, int64_t dim);

}  // namespace slmc
