// The conversion pipeline behind `slm-compress convert`: source model -> plan (recipe) ->
// compressors -> .slm writer, with per-tensor error statistics, budgets (gates) and an optional
// size target that picks, per tensor, among the recipe's candidate schemes.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "slmc/convert/recipe.hpp"
#include "slmc/encoding.hpp"
#include "slmc/io/model_source.hpp"
#include "slmc/status.hpp"

namespace slmc {

/// Per-input-channel activation statistics of one linear layer (format "slmc-calibration" v1).
struct CalibrationEntry {
  std::vector<float> mean_sq;  ///< K values: mean of x_j^2 over the calibration tokens
  double count = 0;            ///< number of tokens
  /// Optional (empty when absent): the K x K Gram matrix mean(x x^T), row-major and symmetric;
  /// its diagonal is mean_sq. search=weighted uses it for error compensation (docs/QUANT.md).
  std::vector<float> gram;
};

/// {"format": "slmc-calibration", "version": 1, "tensors": {"<weight name>": {"mean_sq": [...],
/// "count": N, "gram": [...]}}}; keyed by the weight tensor's name. "gram" is optional and holds
/// the upper triangle of the Gram matrix row by row (K (K + 1) / 2 values: G[0][0..K), G[1][1..K),
/// ...).
struct Calibration {
  std::map<std::string, CalibrationEntry> tensors;
};
/// Reads either form below, told apart by the binary magic.
Result<Calibration> load_calibration(const std::string& path);
Result<Calibration> parse_calibration_json(std::string_view json, const std::string& origin);
std::string calibration_to_json(const Calibration& calibration);

/// The binary form, for statistics at real size (a Gram matrix per layer: SmolLM2-135M holds
/// ~65 M values, ~1 GB as JSON): little-endian, "SLMCCAL1", u32 version = 1, u32 flags = 0, u64
/// tensor count, then per tensor u32 name bytes, u32 flags (1: has Gram), u64 K, f64 count, the
/// name zero-padded to 4 bytes, K fp32 mean_sq, and with a Gram matrix its upper triangle row by
/// row (K (K + 1) / 2 fp32); last, the xxh64 of every byte before it. Tensors in name order, so
/// equal statistics give equal bytes. The reader checks the checksum first and every size
/// against the bytes present (docs/CLI.md "Calibration statistics").
bool is_calibration_binary(std::string_view bytes) noexcept;
std::string calibration_to_binary(const Calibration& calibration);
Result<Calibration> parse_calibration_binary(std::string_view bytes, const std::string& origin);

/// Compresses one fp32 matrix W[rows x cols] with a scheme. `calibration` (nullable) supplies the
/// importance for search=weighted and the norms for prune=wanda (an error when those need it and
/// it is null); with a Gram matrix, dense unpruned search=weighted schemes also get error
/// compensation. The result's stats compare the decoded matrix with W (pruning + quantization).
Result<EncodedMatrix> encode_with_scheme(const std::string& name, const float* w, int64_t rows, int64_t cols,
                                         const Scheme& scheme, const CalibrationEntry* calibration,
                                         int num_threads = 0);

struct ConvertOptions {
  Recipe recipe;
  std::optional<uint64_t> max_size;      ///< gate: total encoded bytes must not exceed it
  std::optional<double> max_rel_error;   ///< gate: every tensor's relative error must not exceed it
  std::optional<uint64_t> target_size;   ///< choose candidates to minimize error within this size
  const Calibration* calibration = nullptr;
  Metadata metadata;                     ///< extra free-form metadata (--metadata K=V)
  /// Tokenizer stored in the file instead of the source's (convert --tokenizer); empty: the
  /// source's, if any.
  TokenizerData tokenizer;
  int num_threads = 0;
  bool dry_run = false;                  ///< plan, compress and measure; write nothing at the output
  /// Called after each tensor of the final pass: (done, total, tensor name).
  std::function<void(size_t, size_t, const std::string&)> progress;
};

struct TensorReport {
  std::string name;
  std::vector<int64_t> shape;
  std::string scheme;            ///< the scheme as applied (canonical string); "skipped" if skipped
  std::string source_dtype;
  uint64_t bytes_in = 0;         ///< bytes in the source file
  uint64_t bytes_out = 0;        ///< encoded bytes (all segments, before file-level deduplication)
  double bits_per_weight = 0;
  double rel_error = 0;
  double sqnr_db = 0;
  double max_abs_error = 0;
  double sparsity = 0;
  bool transposed = false;
  std::string note;              ///< why a tensor was skipped, or which candidate rule chose it
};

struct ConvertReport {
  std::string source;
  std::string output;            ///< empty for a dry run
  std::vector<TensorReport> tensors;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;        ///< sum of tensors' bytes_out
  uint64_t weights = 0;          ///< number of weights converted
  double bits_per_weight = 0;    ///< 8 * bytes_out / weights
  uint64_t file_size = 0;        ///< size of the .slm file (dry run: the size it would have)
  std::vector<std::string> gate_failures;  ///< empty when every budget held
  /// Things the user should know that did not stop the conversion: the source's warnings (e.g. a
  /// tokenizer slmc cannot read), rules from --rule or a recipe file that match no tensor.
  std::vector<std::string> warnings;
  std::string recipe_json;
};

/// Converts `source` to a .slm file at `output`. Returns the report even when a gate fails (then
/// `gate_failures` is non-empty and nothing is written); errors are returned for bad input (a
/// tensor that cannot be encoded with its scheme, missing calibration, I/O failures), and nothing
/// is left at `output` then either.
Result<ConvertReport> convert_model(const ModelSource& source, const std::string& source_name,
                                    const std::string& output, const ConvertOptions& options);

}  // namespace slmc
