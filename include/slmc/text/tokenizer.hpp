// Tokenizers behind one interface, and the data they are made of.
//
// TokenizerData is what a .slm file stores (schema table TokenizerData, docs/FORMAT.md) and what
// the readers extract from a source: GGUF metadata (tokenizer.ggml.*), a Hugging Face
// tokenizer.json (+ tokenizer_config.json), or a llama2.c tokenizer.bin. Tokenizer::create turns
// it into one of three implementations (docs/TOKENIZERS.md):
//
//   kByteBpe   byte-level BPE (GPT-2, SmolLM2, Llama-3, Qwen2): a pre-tokenizer splits the text
//              (TokenizerData::pre names its rules), each piece's bytes become the 256 "byte
//              characters", then merges are applied in rank order.
//   kSpm       SentencePiece-style BPE (Llama-2, TinyLlama, Mistral; GGUF model "llama"): spaces
//              become U+2581, an optional dummy prefix, merges by score, <0xNN> byte fallback.
//   kLlama2c   llama2.c's tokenizer.bin: kSpm with spaces kept as ' ' and the byte tokens at ids
//              3..258 (the protocol and figures of docs/EVAL.md for stories260K).
//
// Input text is UTF-8. Policy for invalid UTF-8: every maximal invalid subsequence is replaced by
// U+FFFD before tokenizing (as Python's bytes.decode(errors="replace") does), so encode never fails.
// Encoding is O(n log n) in the input length; a Tokenizer is immutable and thread-safe to share.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "slmc/status.hpp"

namespace slmc {

/// Stored in files: values are stable and never reused.
enum class TokenizerKind : uint8_t { kNone = 0, kLlama2c = 1, kSpm = 2, kByteBpe = 3, kWordPiece = 4 };
std::string_view tokenizer_kind_name(TokenizerKind kind) noexcept;

/// Token types as GGUF numbers them (tokenizer.ggml.token_type); stored in files.
enum class TokenType : uint8_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,      ///< special tokens (<|im_start|>, </s>): matched in text only with parse_special
  kUserDefined = 4,  ///< added tokens: always matched in text as a whole
  kUnused = 5,
  kByte = 6,         ///< <0xNN> byte-fallback tokens
};

/// Everything a tokenizer is made of. Empty vectors mean "absent" (scores, token_types).
struct TokenizerData {
  TokenizerKind kind = TokenizerKind::kNone;
  /// Pre-tokenizer of kByteBpe, by its GGUF name (tokenizer.ggml.pre): "gpt2", "smollm",
  /// "llama3" (= "llama-bpe"), "qwen2"; see pretokenizer_names().
  std::string pre;
  std::vector<std::string> tokens;
  std::vector<float> scores;           ///< kSpm / kLlama2c: merge priority (higher first)
  std::vector<uint8_t> token_types;    ///< TokenType per token
  std::vector<std::string> merges;     ///< kByteBpe: "left right", rank = index
  int32_t bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1;
  /// Further end-of-generation tokens (e.g. <|endoftext|> beside <|im_end|>), sorted.
  std::vector<int32_t> eog_ids;
  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = false;  ///< kSpm: prepend U+2581 to the text ("dummy prefix")
  std::string normalizer;         ///< empty: none
  std::string chat_template;      ///< Jinja text from the source, verbatim (may be empty)

  bool empty() const noexcept { return kind == TokenizerKind::kNone; }
  int64_t size() const noexcept { return static_cast<int64_t>(tokens.size()); }
  /// Structural checks: array lengths agree, ids within [0, size), known kind and pre-tokenizer,
  /// token types valid. `where` prefixes the message (file name).
  Status validate(const std::string& where) const;
};

/// Pre-tokenizer names kByteBpe understands (GGUF tokenizer.ggml.pre values).
std::vector<std::string> pretokenizer_names();

struct EncodeOptions {
  bool add_bos = false;
  bool add_eos = false;
  /// Match control tokens (<|im_start|>, ...) written in the text. User-defined added tokens are
  /// always matched; other text never becomes a control token.
  bool parse_special = false;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  /// Validates `data` completely (TokenizerData::validate, then every merge names known tokens
  /// and yields a known token, byte tokens present) and builds the tokenizer. kInvalidFormat names
  /// the bad entry.
  static Result<std::unique_ptr<Tokenizer>> create(TokenizerData data, const std::string& where = "tokenizer");
  /// The tokenizer stored in or beside a file, detected from its content: a .slm file, a GGUF file,
  /// a Hugging Face tokenizer.json (tokenizer_config.json beside it is read too) or a directory
  /// holding one, or a llama2.c tokenizer.bin. `vocab_size` > 0: the tokenizer must not have more
  /// tokens than the model's embedding has rows.
  static Result<std::unique_ptr<Tokenizer>> load(const std::string& path, int64_t vocab_size = 0);
  /// Parses the bytes of a llama2.c tokenizer.bin; `name` is used in errors.
  static Result<std::unique_ptr<Tokenizer>> parse(const uint8_t* data, size_t size, const std::string& name,
                                                  int64_t vocab_size = 0);

  const TokenizerData& data() const noexcept { return data_; }
  TokenizerKind kind() const noexcept { return data_.kind; }
  int64_t vocab_size() const noexcept { return data_.size(); }
  int32_t bos() const noexcept { return data_.bos_id; }
  int32_t eos() const noexcept { return data_.eos_id; }
  /// EOS and the other end-of-generation tokens.
  bool is_end_of_generation(int32_t id) const noexcept;
  const std::string& piece(int32_t id) const { return data_.tokens[static_cast<size_t>(id)]; }

  /// Token ids of `text`.
  virtual std::vector<int32_t> encode(std::string_view text, const EncodeOptions& options) const = 0;
  /// Shorthand: encode(text, {bos, eos, false}).
  std::vector<int32_t> encode(std::string_view text, bool bos, bool eos) const {
    EncodeOptions o;
    o.add_bos = bos;
    o.add_eos = eos;
    return encode(text, o);
  }
  /// The bytes token `id` stands for (byte-level characters mapped back to bytes, U+2581 to a
  /// space, <0xNN> to its byte). Control tokens give their text. Out of range: empty.
  virtual std::string token_bytes(int32_t id) const = 0;
  /// The text of token `id` when it follows `prev` in generated output: token_bytes, with the
  /// dummy-prefix space removed from the first token after BOS (kSpm with add_space_prefix, and
  /// kLlama2c).
  std::string decode(int32_t prev, int32_t id) const;
  /// The text of a whole id sequence (bytes concatenated; the dummy prefix removed as above).
  std::string decode(const std::vector<int32_t>& ids) const;

  /// The id of a token's exact text, or -1.
  virtual int32_t find(std::string_view piece) const = 0;

 protected:
  explicit Tokenizer(TokenizerData data) : data_(std::move(data)) {}
  TokenizerData data_;
};

/// A Hugging Face tokenizer.json (byte-level BPE: ByteLevel, Digits + ByteLevel, or the Llama-3 /
/// Qwen2 Split + ByteLevel pre-tokenizers), with tokenizer_config.json beside it when present (BOS /
/// EOS / UNK / PAD by text, add_bos_token / add_eos_token, chat_template). Validated like
/// Tokenizer::create; anything slmc does not implement (normalizers, other models) is
/// kUnsupported, naming it.
Result<TokenizerData> read_hf_tokenizer(const std::string& tokenizer_json_path);
/// The tokenizer.json and tokenizer_config.json texts of a byte-level BPE tokenizer (what
/// `export --format hf` writes); kUnsupported for other kinds.
Status write_hf_tokenizer(const TokenizerData& data, std::string* tokenizer_json, std::string* tokenizer_config_json);

/// Replaces every invalid UTF-8 subsequence of `text` by U+FFFD (returns `text` unchanged when it
/// is valid).
std::string sanitize_utf8(std::string_view text);

}  // namespace slmc
