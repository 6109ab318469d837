// Recipes and presets (include/slmc/convert/recipe.hpp); the scheme grammar is in src/codec.cpp.
#include "slmc/io/safe_input.hpp"
#include "slmc/convert/recipe.hpp"

#include "slmc/arch/naming.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>

namespace slmc {
namespace {

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    parts.push_back(s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
  return parts;
}

}  // namespace

bool glob_match(std::string_view p, std::string_view t) {
  size_t pi = 0, ti = 0, star_p = std::string_view::npos, star_t = 0;
  auto class_match = [&](size_t& i, char c) -> bool {  // p[i] == '['; advances i past ']'
    size_t j = i + 1;
    bool negate = j < p.size() && (p[j] == '!' || p[j] == '^');
    if (negate) ++j;
    bool matched = false;
    bool first = true;
    while (j < p.size() && (first || p[j] != ']')) {
      first = false;
      if (j + 2 < p.size() && p[j + 1] == '-' && p[j + 2] != ']') {
        if (p[j] <= c && c <= p[j + 2]) matched = true;
        j += 3;
      } else {
        if (p[j] == c) matched = true;
        ++j;
      }
    }
    if (j >= p.size()) {  // no closing ']': the '[' is a literal character
      ++i;
      return c == '[';
    }
    i = j + 1;
    return matched != negate;
  };
  while (ti < t.size()) {
    if (pi < p.size() && p[pi] == '*') {
      star_p = pi++;
      star_t = ti;
      continue;
    }
    if (pi < p.size()) {
      size_t next = pi;
      bool ok;
      if (p[pi] == '?') {
        ok = true;
        next = pi + 1;
      } else if (p[pi] == '[') {
        ok = class_match(next, t[ti]);
      } else {
        ok = p[pi] == t[ti];
        next = pi + 1;
      }
      if (ok) {
        pi = next;
        ++ti;
        continue;
      }
    }
    if (star_p == std::string_view::npos) return false;
    pi = star_p + 1;
    ti = ++star_t;
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

bool rule_matches(std::string_view pattern, std::string_view tensor_name) {
  if (!pattern.empty() && pattern[0] == '@') {
    TensorRole role;
    return tensor_role_from_name(pattern.substr(1), &role) && tensor_role(tensor_name) == role;
  }
  return glob_match(pattern, tensor_name);
}

std::vector<Scheme> Recipe::candidates_for(std::string_view tensor_name, size_t rank) const {
  for (const RecipeRule& r : rules) {
    if (rule_matches(r.pattern, tensor_name)) return r.candidates;
  }
  if (keep_1d_fp32 && rank < 2) return {Scheme{}};
  return {default_scheme};
}

std::string Recipe::to_json() const {
  nlohmann::ordered_json j;
  j["format"] = "slmc-recipe";
  j["version"] = 1;
  j["name"] = name;
  j["default"] = default_scheme.to_string();
  j["keep_1d_fp32"] = keep_1d_fp32;
  nlohmann::ordered_json rules_json = nlohmann::ordered_json::array();
  for (const RecipeRule& r : rules) {
    nlohmann::ordered_json rj;
    rj["match"] = r.pattern;
    if (r.candidates.size() == 1) {
      rj["scheme"] = r.candidates[0].to_string();
    } else {
      nlohmann::ordered_json c = nlohmann::ordered_json::array();
      for (const Scheme& s : r.candidates) c.push_back(s.to_string());
      rj["scheme"] = c;
    }
    rules_json.push_back(rj);
  }
  j["rules"] = rules_json;
  return j.dump();
}

namespace {

Result<std::vector<Scheme>> parse_candidates(std::string_view text) {
  std::vector<Scheme> out;
  for (std::string_view part : split(text, '|')) {
    SLMC_ASSIGN_OR_RETURN(Scheme s, parse_scheme(part));
    out.push_back(s);
  }
  return out;
}

struct Preset {
  const char* name;
  const char* default_scheme;
  bool int8_embeddings;  ///< embedding tables and lm_head get int8
};

// Embeddings and the output layer get int8 in the compressed presets: they are the most sensitive
// tensors and, tied, also the classifier (common practice, e.g. llama.cpp keeps them at >= 6 bits).
constexpr Preset kPresets[] = {
    {"fp32", "fp32", false},
    {"fp16", "fp16", false},
    {"int8", "int8", false},
    {"w4", "int4:group=32,search=mse", true},
    {"w4g128", "int4:group=128,search=mse", true},
    {"nl4", "nl4:group=32,search=mse", true},
    {"w8-2:4", "int8:pattern=2:4", true},
    {"w4-2:4", "int4:pattern=2:4", true},
    {"w8-bitmask50", "int8:sparsity=0.5,format=bitmask", true},
};
// Matched by role (slmc/arch/naming.hpp), so every source's naming is covered.
constexpr const char* kEmbeddingAndOutputGlobs[] = {"@embedding", "@output"};

std::string preset_json(const Preset& p) {
  nlohmann::json j;
  j["default"] = p.default_scheme;
  j["rules"] = nlohmann::json::array();
  if (p.int8_embeddings) {
    for (const char* glob : kEmbeddingAndOutputGlobs) j["rules"].push_back({{"match", glob}, {"scheme", "int8"}});
  }
  return j.dump();
}

}  // namespace

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const Preset& p : kPresets) names.emplace_back(p.name);
  return names;
}

Result<Recipe> parse_recipe_json(std::string_view text, const std::string& origin) {
  auto err = [&](const std::string& what) {
    return make_error(ErrorCode::kInvalidArgument, "recipe " + origin + ": " + what);
  };
  if (Status s = check_json_depth(text, "recipe " + origin); !s.ok()) return err(s.message());
  nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return err("not valid JSON");
  if (!j.is_object()) return err("must be a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    if (k != "format" && k != "version" && k != "name" && k != "default" && k != "rules" && k != "keep_1d_fp32") {
      return err("unknown key '" + k + "'; valid: format, version, name, default, rules, keep_1d_fp32");
    }
  }
  if (j.contains("format") && j["format"] != "slmc-recipe") return err("\"format\" must be \"slmc-recipe\"");
  if (j.contains("version") && j["version"] != 1) return err("unsupported \"version\" (this slmc reads 1)");
  Recipe r;
  r.name = j.contains("name") && j["name"].is_string() ? j["name"].get<std::string>() : origin;
  if (!j.contains("default") || !j["default"].is_string()) return err("needs a \"default\" scheme string");
  {
    auto s = parse_scheme(j["default"].get<std::string>());
    if (!s.ok()) return s.status().with_context("recipe " + origin + ": default");
    r.default_scheme = *s;
  }
  if (j.contains("keep_1d_fp32")) {
    if (!j["keep_1d_fp32"].is_boolean()) return err("\"keep_1d_fp32\" must be true or false");
    r.keep_1d_fp32 = j["keep_1d_fp32"].get<bool>();
  }
  if (j.contains("rules")) {
    if (!j["rules"].is_array()) return err("\"rules\" must be an array");
    size_t index = 0;
    for (const auto& rj : j["rules"]) {
      const std::string where = "rule " + std::to_string(index++);
      if (!rj.is_object() || !rj.contains("match") || !rj["match"].is_string() || !rj.contains("scheme")) {
        return err(where + ": needs {\"match\": GLOB, \"scheme\": SCHEME or [SCHEME, ...]}");
      }
      RecipeRule rule;
      rule.pattern = rj["match"].get<std::string>();
      rule.source = "recipe " + r.name;
      std::vector<std::string> texts;
      if (rj["scheme"].is_string()) {
        texts.push_back(rj["scheme"].get<std::string>());
      } else if (rj["scheme"].is_array() && !rj["scheme"].empty()) {
        for (const auto& s : rj["scheme"]) {
          if (!s.is_string()) return err(where + ": scheme list must hold strings");
          texts.push_back(s.get<std::string>());
        }
      } else {
        return err(where + ": \"scheme\" must be a string or a non-empty array of strings");
      }
      for (const std::string& t : texts) {
        auto cands = parse_candidates(t);
        if (!cands.ok()) return cands.status().with_context("recipe " + origin + ": " + where);
        rule.candidates.insert(rule.candidates.end(), cands->begin(), cands->end());
      }
      r.rules.push_back(std::move(rule));
    }
  }
  return r;
}

Result<Recipe> load_recipe(const std::string& name_or_path) {
  for (const Preset& p : kPresets) {
    if (name_or_path == p.name) {
      auto r = parse_recipe_json(preset_json(p), p.name);
      SLMC_CHECK(r.ok(), "built-in preset %s does not parse: %s", p.name, r.status().to_string().c_str());
      r->name = p.name;
      for (auto& rule : r->rules) rule.source = std::string("preset ") + p.name;
      return r;
    }
  }
  auto text = read_input_file(name_or_path, uint64_t{64} << 20);
  if (!text.ok()) {
    std::string names;
    for (const Preset& p : kPresets) names += (names.empty() ? "" : ", ") + std::string(p.name);
    return make_error(ErrorCode::kInvalidArgument, "recipe '" + name_or_path + "' is neither a built-in preset (" +
                                                       names + ") nor a readable file (" + text.status().message() + ")");
  }
  return parse_recipe_json(*text, name_or_path);
}

Status add_rule(Recipe& recipe, std::string_view text, size_t position) {
  const size_t eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0 || eq + 1 == text.size()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "--rule '" + std::string(text) + "': expected GLOB=SCHEME[|SCHEME...], e.g. '*.mlp.*=int4:group=32'");
  }
  auto cands = parse_candidates(text.substr(eq + 1));
  if (!cands.ok()) return cands.status().with_context("--rule '" + std::string(text) + "'");
  RecipeRule rule{std::string(text.substr(0, eq)), std::move(*cands), "--rule"};
  position = std::min(position, recipe.rules.size());
  recipe.rules.insert(recipe.rules.begin() + static_cast<std::ptrdiff_t>(position), std::move(rule));
  return Status::ok_status();
}

}  // namespace slmc
