// Pre-tokenizers of byte-level BPE: the split rules of GPT-2's regex and its descendants, written
// out by hand (no regex engine, linear time). Each splits valid UTF-8 text into pieces that BPE then
// encodes separately; the pieces cover the text exactly, in order.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace slmc::text {

enum class PreTokenizer {
  kGpt2,    ///< 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kSmolLm,  ///< every \p{N} alone, then kGpt2 (HF: Digits(individual) + ByteLevel)
  kLlama3,  ///< (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  kQwen2,   ///< kLlama3 with \p{N} one at a time
  /// llama.cpp's fallback ("default"): four splits in sequence, each keeping its matches and the
  /// gaps between them as pieces: runs of [\p{P}$+<=>^~|], then kGpt2, then runs of \p{N}, then
  /// ASCII digit triples [0-9]{3}.
  kDefault,
};

/// The pre-tokenizer of a GGUF tokenizer.ggml.pre name; false when unknown.
bool pretokenizer_from_name(std::string_view name, PreTokenizer* out);

/// Splits `text` (valid UTF-8) into [begin, end) byte ranges.
void pretokenize(PreTokenizer kind, std::string_view text, std::vector<std::pair<size_t, size_t>>& pieces);

}  // namespace slmc::text
