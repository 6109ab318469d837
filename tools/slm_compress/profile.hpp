// Device profiles: named JSON templates (profiles/*.json, compiled into the tool) that give a
// fleet of different devices consistent output: target ISA, weight memory budget, activation
// mode, row interleave, the recipe / preferred encodings and (version 2) the release gates.
// Format: docs/CLI.md, "Device profiles".
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "slmc/convert/converter.hpp"
#include "slmc/convert/recipe.hpp"
#include "slmc/io/model_source.hpp"
#include "slmc/status.hpp"
#include "slmc/text/tokenizer.hpp"

namespace slmc::cli {

/// The profile's "gates" object (format version 2): what a release of this profile must meet.
/// Unset: no gate. Command options (release --max-size, --max-kl, --max-dppl, --min-tok-s)
/// override them.
struct ProfileGates {
  std::optional<uint64_t> max_size;      ///< "max_size_bytes": the .slm file's tensor bytes
  std::optional<double> max_kl;          ///< "max_kl": KL against the fp32 conversion, nats/token
  std::optional<double> max_delta_ppl;   ///< "max_delta_ppl_percent": perplexity increase, percent
  std::optional<double> min_decode_tps;  ///< "min_decode_tokens_per_s": bench --e2e decode median
};

struct DeviceProfile {
  std::string name;
  std::string description;
  std::string isa;                         ///< scalar, avx2, avxvnni, avx512, neon, neon_dotprod
  std::optional<uint64_t> memory_budget;   ///< acts as --max-size unless that is given
  std::string activation_mode = "int8";    ///< fp32 or int8
  RowLayout row_layout = RowLayout::kRows; ///< applied to dense int8/int4 schemes left at rows
  std::string recipe;                      ///< preset name or recipe file, used without --recipe
  std::vector<std::string> rules;          ///< "GLOB=SCHEME" rules, after --rule, before the recipe
  ProfileGates gates;                      ///< version 2 only
  std::string json;                        ///< the profile as loaded (stored in the file's metadata)

  /// The size gate: gates.max_size_bytes, else the memory budget.
  std::optional<uint64_t> size_gate() const { return gates.max_size ? gates.max_size : memory_budget; }
};

/// The profile format versions this tool reads (1: no gates; 2: adds "gates").
inline constexpr int kProfileVersionMin = 1, kProfileVersionMax = 2;

std::vector<std::string> builtin_profile_names();
/// A built-in profile by name, or a profile JSON file by path.
Result<DeviceProfile> load_profile(const std::string& name_or_path);
Result<DeviceProfile> parse_profile_json(const std::string& text, const std::string& origin);

/// Applies the profile's row layout to every dense int8/int4 scheme of `recipe` left at plain rows.
void apply_row_layout(Recipe& recipe, RowLayout layout);

/// What a device profile decides of a conversion; `convert --profile P` and `release --profile P`
/// both build their options here. The recipe is `recipe_name` if given, else the profile's, else
/// w4; `rules` come first, then the profile's rules, then the recipe's; then the profile's row
/// layout, its size gate (size_gate()) and the slmc.profile / slmc.profile.name metadata.
/// `profile` may be null (no profile).
Result<ConvertOptions> profile_convert_options(const DeviceProfile* profile, const std::string& recipe_name,
                                               const std::vector<std::string>& rules);

/// Reads the tokenizer file `path` for `source` (convert --tokenizer): the source's token
/// embedding's rows bound the vocabulary.
Result<TokenizerData> load_tokenizer_for(const ModelSource& source, const std::string& path);

}  // namespace slmc::cli
