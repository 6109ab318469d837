// Device profiles: named JSON templates (profiles/*.json, compiled into the tool) that give a
// fleet of different devices consistent output: target ISA, weight memory budget, activation
// mode, row interleave and the recipe / preferred encodings.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "slmc/convert/recipe.hpp"
#include "slmc/status.hpp"

namespace slmc::cli {

struct DeviceProfile {
  std::string name;
  std::string description;
  std::string isa;                         ///< scalar, avx2, avxvnni, avx512, neon, neon_dotprod
  std::optional<uint64_t> memory_budget;   ///< acts as --max-size unless that is given
  std::string activation_mode = "int8";    ///< fp32 or int8
  RowLayout row_layout = RowLayout::kRows; ///< applied to dense int8/int4 schemes left at rows
  std::string recipe;                      ///< preset name or recipe file, used without --recipe
  std::vector<std::string> rules;          ///< "GLOB=SCHEME" rules, after --rule, before the recipe
  std::string json;                        ///< the profile as loaded (stored in the file's metadata)
};

std::vector<std::string> builtin_profile_names();
/// A built-in profile by name, or a profile JSON file by path.
Result<DeviceProfile> load_profile(const std::string& name_or_path);
Result<DeviceProfile> parse_profile_json(const std::string& text, const std::string& origin);

/// Applies the profile's row layout to every dense int8/int4 scheme of `recipe` left at plain rows.
void apply_row_layout(Recipe& recipe, RowLayout layout);

}  // namespace slmc::cli
