// Scheme strings, recipes and presets (include/slmc/convert/recipe.hpp).
#include "slmc/io/safe_input.hpp"
#include "slmc/convert/recipe.hpp"

#include "slmc/arch/naming.hpp"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace slmc {
namespace {

Status scheme_error(std::string_view text, const std::string& what) {
  return make_error(ErrorCode::kInvalidArgument, "scheme '" + std::string(text) + "': " + what);
}

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

bool parse_int(std::string_view s, int64_t lo, int64_t hi, int64_t* out) {
  if (s.empty() || s.size() > 18) return false;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v < lo || v > hi) return false;
  *out = v;
  return true;
}

bool parse_double(std::string_view s, double* out) {
  std::string str(s);
  if (str.empty()) return false;
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(str.c_str(), &end);
  if (errno != 0 || end != str.c_str() + str.size() || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

/// The scheme grammar's keyword for a value type ("fp32", not the file name "f32").
const char* scheme_keyword(ValueType t) {
  switch (t) {
    case ValueType::kF32: return "fp32";
    case ValueType::kF16: return "fp16";
    case ValueType::kBF16: return "bf16";
    case ValueType::kInt8: return "int8";
    case ValueType::kInt4: return "int4";
  }
  return "?";
}

const char* search_name(ScaleSearch s) {
  switch (s) {
    case ScaleSearch::kAbsmax: return "absmax";
    case ScaleSearch::kMse: return "mse";
    case ScaleSearch::kWeighted: return "weighted";
  }
  return "?";
}

std::string format_name(const Encoding& e) {
  switch (e.format) {
    case SparseFormat::kDense: return "dense";
    case SparseFormat::kCsr: return "csr";
    case SparseFormat::kBsr: return "bsr" + std::to_string(e.block_rows) + "x" + std::to_string(e.block_cols);
    case SparseFormat::kNM: return "nm";
    case SparseFormat::kBitmask: return "bitmask";
  }
  return "?";
}

std::string format_double(double v) {
  std::ostringstream os;
  os.precision(6);
  os << v;
  return os.str();
}

constexpr const char* kValidKeys = "group, sym, search, scale_dtype, sparsity, pattern, format, prune, layout";

}  // namespace

std::string Scheme::to_string() const {
  const Encoding& e = encoding;
  std::string s = scheme_keyword(e.value_type);
  std::vector<std::string> keys;
  if (e.is_quantized()) {
    if (e.granularity == Granularity::kGroup) keys.push_back("group=" + std::to_string(e.group_size));
    if (e.granularity == Granularity::kChannel) keys.push_back("group=channel");
    if (e.granularity == Granularity::kTensor) keys.push_back("group=tensor");
    keys.push_back(std::string("sym=") + (e.symmetric ? "true" : "false"));
    keys.push_back(std::string("search=") + search_name(e.search));
    keys.push_back(std::string("scale_dtype=") + (e.scale_dtype == DType::kF16 ? "fp16" : "fp32"));
  }
  if (sparsity > 0) keys.push_back("sparsity=" + format_double(sparsity));
  if (e.nm_m != 0) keys.push_back("pattern=" + std::to_string(e.nm_n) + ":" + std::to_string(e.nm_m));
  if (e.format != SparseFormat::kDense || is_pruned()) keys.push_back("format=" + format_name(e));
  if (is_pruned()) keys.push_back(std::string("prune=") + (prune == PruneScore::kWanda ? "wanda" : "magnitude"));
  if (e.is_quantized() && e.format == SparseFormat::kDense) {
    keys.push_back(std::string("layout=") + (e.layout == RowLayout::kRows ? "rows"
                                             : e.layout == RowLayout::kInterleave4 ? "i4" : "i8"));
  }
  for (size_t i = 0; i < keys.size(); ++i) s += (i == 0 ? ":" : ",") + keys[i];
  return s;
}

Result<Scheme> parse_scheme(std::string_view text) {
  Scheme scheme;
  Encoding& e = scheme.encoding;
  const size_t colon = text.find(':');
  const std::string_view base = text.substr(0, colon);
  if (base == "fp32") {
    e.value_type = ValueType::kF32;
  } else if (base == "fp16") {
    e.value_type = ValueType::kF16;
  } else if (base == "bf16") {
    e.value_type = ValueType::kBF16;
  } else if (base == "int8") {
    e.value_type = ValueType::kInt8;
    e.granularity = Granularity::kChannel;
    e.symmetric = true;
    e.search = ScaleSearch::kAbsmax;
    e.scale_dtype = DType::kF32;
  } else if (base == "int4") {
    e.value_type = ValueType::kInt4;
    e.granularity = Granularity::kGroup;
    e.group_size = 32;
    e.symmetric = true;
    e.search = ScaleSearch::kMse;
    e.scale_dtype = DType::kF16;
  } else {
    return scheme_error(text, "unknown encoding '" + std::string(base) + "'; valid: fp32, fp16, bf16, int8, int4");
  }
  const bool quantized = e.is_quantized();
  bool format_given = false;
  bool layout_given = false;
  if (colon != std::string_view::npos) {
    const std::string_view rest = text.substr(colon + 1);
    if (rest.empty()) return scheme_error(text, "empty key list after ':'");
    std::vector<std::string> seen;
    for (std::string_view kv : split(rest, ',')) {
      const size_t eq = kv.find('=');
      if (eq == std::string_view::npos || eq == 0 || eq + 1 == kv.size()) {
        return scheme_error(text, "'" + std::string(kv) + "' is not key=value; valid keys: " + kValidKeys);
      }
      const std::string key(kv.substr(0, eq));
      const std::string_view value = kv.substr(eq + 1);
      for (const auto& k : seen) {
        if (k == key) return scheme_error(text, "key '" + key + "' given twice");
      }
      seen.push_back(key);
      auto bad_value = [&](const std::string& valid) {
        return scheme_error(text, "invalid " + key + "='" + std::string(value) + "'; valid: " + valid);
      };
      const bool quant_key = key == "group" || key == "sym" || key == "search" || key == "scale_dtype";
      if (quant_key && !quantized) {
        return scheme_error(text, "key '" + key + "' applies to int8 and int4 only");
      }
      if (key == "group") {
        int64_t g = 0;
        if (value == "channel") {
          e.granularity = Granularity::kChannel;
          e.group_size = 0;
        } else if (value == "tensor") {
          if (e.value_type == ValueType::kInt4) return bad_value("16, 32, 64, 128, 256, channel (int4)");
          e.granularity = Granularity::kTensor;
          e.group_size = 0;
        } else if (parse_int(value, 1, 1 << 30, &g)) {
          if (e.value_type == ValueType::kInt4 && g != 16 && g != 32 && g != 64 && g != 128 && g != 256) {
            return bad_value("16, 32, 64, 128, 256, channel (int4)");
          }
          if (g % 16 != 0) return bad_value("a multiple of 16, channel, tensor (int8)");
          e.granularity = Granularity::kGroup;
          e.group_size = static_cast<int32_t>(g);
        } else {
          return bad_value(e.value_type == ValueType::kInt4 ? "16, 32, 64, 128, 256, channel"
                                                            : "a multiple of 16, channel, tensor");
        }
      } else if (key == "sym") {
        if (value == "true") e.symmetric = true;
        else if (value == "false") e.symmetric = false;
        else return bad_value("true, false");
      } else if (key == "search") {
        if (value == "absmax") e.search = ScaleSearch::kAbsmax;
        else if (value == "mse") e.search = ScaleSearch::kMse;
        else if (value == "weighted") e.search = ScaleSearch::kWeighted;
        else return bad_value("absmax, mse, weighted");
      } else if (key == "scale_dtype") {
        if (value == "fp16") e.scale_dtype = DType::kF16;
        else if (value == "fp32") e.scale_dtype = DType::kF32;
        else return bad_value("fp16, fp32");
      } else if (key == "sparsity") {
        double f = 0;
        if (!parse_double(value, &f) || f < 0.0 || f >= 1.0) return bad_value("a number in [0, 1)");
        scheme.sparsity = f;
      } else if (key == "pattern") {
        const size_t c = value.find(':');
        int64_t n = 0, m = 0;
        if (c == std::string_view::npos || !parse_int(value.substr(0, c), 1, 15, &n) ||
            !parse_int(value.substr(c + 1), 2, 16, &m) || n >= m) {
          return bad_value("N:M with 1 <= N < M <= 16, e.g. 2:4");
        }
        e.nm_n = static_cast<uint8_t>(n);
        e.nm_m = static_cast<uint8_t>(m);
      } else if (key == "format") {
        format_given = true;
        if (value == "dense") e.format = SparseFormat::kDense;
        else if (value == "csr") e.format = SparseFormat::kCsr;
        else if (value == "bitmask") e.format = SparseFormat::kBitmask;
        else if (value == "nm") e.format = SparseFormat::kNM;
        else if (value.substr(0, 3) == "bsr") {
          const std::string_view dims = value.substr(3);
          const size_t x = dims.find('x');
          int64_t r = 0, cc = 0;
          if (x == std::string_view::npos || !parse_int(dims.substr(0, x), 1, 64, &r) ||
              !parse_int(dims.substr(x + 1), 1, 64, &cc) || r * cc < 2) {
            return bad_value("dense, csr, bsrRxC (1 <= R, C <= 64, e.g. bsr4x1), bitmask, nm");
          }
          e.format = SparseFormat::kBsr;
          e.block_rows = static_cast<uint8_t>(r);
          e.block_cols = static_cast<uint8_t>(cc);
        } else {
          return bad_value("dense, csr, bsrRxC (e.g. bsr4x1), bitmask, nm");
        }
      } else if (key == "prune") {
        if (value == "magnitude") scheme.prune = PruneScore::kMagnitude;
        else if (value == "wanda") scheme.prune = PruneScore::kWanda;
        else return bad_value("magnitude, wanda");
      } else if (key == "layout") {
        layout_given = true;
        if (value == "rows") e.layout = RowLayout::kRows;
        else if (value == "i4") e.layout = RowLayout::kInterleave4;
        else if (value == "i8") e.layout = RowLayout::kInterleave8;
        else return bad_value("rows, i4, i8");
      } else {
        return scheme_error(text, "unknown key '" + key + "'; valid keys: " + kValidKeys);
      }
    }
  }
  // Cross-key consistency.
  if (e.nm_m != 0 && !format_given) e.format = SparseFormat::kNM;
  if (e.format == SparseFormat::kNM && e.nm_m == 0) {
    return scheme_error(text, "format=nm needs pattern=N:M");
  }
  if (e.nm_m != 0 && scheme.sparsity > 0) {
    return scheme_error(text, "give either sparsity=F or pattern=N:M, not both");
  }
  if (e.nm_m != 0 && e.format != SparseFormat::kNM && e.format != SparseFormat::kDense) {
    return scheme_error(text, "pattern=N:M is stored as format=nm or format=dense");
  }
  if ((e.format == SparseFormat::kCsr || e.format == SparseFormat::kBitmask || e.format == SparseFormat::kBsr) &&
      scheme.sparsity <= 0) {
    return scheme_error(text, "format=" + format_name(e) + " needs sparsity=F > 0");
  }
  if (e.format != SparseFormat::kDense && e.format != SparseFormat::kNM &&
      !(e.value_type == ValueType::kF32 || e.value_type == ValueType::kInt8)) {
    return scheme_error(text, std::string("format=") + format_name(e) + " stores fp32 or int8 values, not " +
                                  scheme_keyword(e.value_type));
  }
  if (e.format == SparseFormat::kNM && e.value_type != ValueType::kF32 && e.value_type != ValueType::kInt8 &&
      e.value_type != ValueType::kInt4) {
    return scheme_error(text, std::string("format=nm stores fp32, int8 or int4 values, not ") +
                                  scheme_keyword(e.value_type));
  }
  if (layout_given && (!quantized || e.format != SparseFormat::kDense)) {
    return scheme_error(text, "layout= applies to dense int8 and int4 only");
  }
  if (e.format != SparseFormat::kDense && quantized && !e.symmetric) {
    return scheme_error(text, "sparse formats store symmetric values: drop sym=false");
  }
  if (e.format != SparseFormat::kDense && quantized && e.granularity == Granularity::kTensor) {
    return scheme_error(text, "sparse formats take group=channel or group=N scales, not group=tensor");
  }
  return scheme;
}

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
