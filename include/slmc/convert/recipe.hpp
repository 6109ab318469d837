// Compression recipes: which scheme each tensor gets.
//
// A scheme is a string of the one scheme grammar (`parse_scheme`, slmc/codec.hpp; docs/CLI.md,
// "Schemes"). A recipe is an ordered list of rules `GLOB -> scheme candidates` (first match
// wins; several candidates `A|B|C` give --target-size a choice) plus a default scheme.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "slmc/codec.hpp"
#include "slmc/encoding.hpp"
#include "slmc/status.hpp"

namespace slmc {

struct RecipeRule {
  std::string pattern;           ///< glob over tensor names (fnmatch: * ? [..]; '*' matches '.')
  std::vector<Scheme> candidates;  ///< the first is the default choice
  std::string source;            ///< where the rule came from ("--rule", "recipe w4", "builtin")
};

struct Recipe {
  std::string name;
  std::vector<RecipeRule> rules;
  Scheme default_scheme;
  /// Tensors of rank < 2 (norms, biases) keep fp32 unless a rule names them explicitly.
  bool keep_1d_fp32 = true;

  /// The candidates for a tensor: the first rule whose glob matches, else the default. Rank-1
  /// tensors get fp32 when keep_1d_fp32 and only the default rule would match.
  std::vector<Scheme> candidates_for(std::string_view tensor_name, size_t rank) const;
  /// JSON (slmc-recipe v1) describing the recipe as applied; stored in .slm files.
  std::string to_json() const;
};

/// Names of the built-in presets (int8, w4, w4g128, w8-2:4, w4-2:4, w8-bitmask50, fp16, fp32).
std::vector<std::string> preset_names();
/// A built-in preset by name, or a recipe JSON file by path.
Result<Recipe> load_recipe(const std::string& name_or_path);
/// Parses recipe JSON text; `origin` names it in errors.
Result<Recipe> parse_recipe_json(std::string_view json, const std::string& origin);
/// Parses a command-line rule 'GLOB=SCHEME[|SCHEME...]' and puts it ahead of the recipe's rules
/// (rules given later on the command line come after earlier ones).
Status add_rule(Recipe& recipe, std::string_view rule_text, size_t position);

/// fnmatch-style glob: '*' any run (dots included), '?' one char, [abc] / [!a-z] classes.
bool glob_match(std::string_view pattern, std::string_view text);
/// A recipe rule's pattern against a canonical tensor name: "@ROLE" (embedding, output, norm,
/// attention, mlp, other; slmc/arch/naming.hpp) matches the tensors of that role, anything else
/// is a glob.
bool rule_matches(std::string_view pattern, std::string_view tensor_name);

}  // namespace slmc
