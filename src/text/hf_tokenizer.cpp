// Hugging Face tokenizer.json (+ tokenizer_config.json) to TokenizerData and back
// (include/slmc/text/tokenizer.hpp: read_hf_tokenizer, write_hf_tokenizer).
#include <nlohmann/json.hpp>

#include <fstream>
#include <type_traits>

#include "io/safetensors_internal.hpp"
#include <sys/stat.h>

#include "slmc/io/safe_input.hpp"
#include "slmc/text/tokenizer.hpp"
#include "text/tokenizer_internal.hpp"

namespace slmc {
namespace {

using nlohmann::json;
using ordered_json = nlohmann::ordered_json;

// The split regexes of the pre-tokenizers, as Hugging Face tokenizer.json files spell them.
constexpr const char kLlama3Regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char kQwen2Regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

Status unsupported(const std::string& where, const std::string& what) {
  return make_error(ErrorCode::kUnsupported, where + ": " + what);
}
Status invalid(const std::string& where, const std::string& what) {
  return make_error(ErrorCode::kInvalidFormat, where + ": " + what);
}

std::string type_of(const json& j) {
  if (j.is_null()) return "null";
  auto t = j.find("type");
  return t != j.end() && t->is_string() ? t->get<std::string>() : std::string("?");
}

/// obj[key] as a bool or a string when present and not null, else `fallback`. Any other JSON type
/// is kInvalidFormat naming the file and the key (nlohmann's value() would throw instead).
template <typename T>
Result<T> typed_value(const json& obj, const char* key, T fallback, const std::string& path, const std::string& where) {
  static_assert(std::is_same_v<T, bool> || std::is_same_v<T, std::string>, "bool or string");
  if (!obj.is_object()) return fallback;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if constexpr (std::is_same_v<T, bool>) {
    if (it->is_boolean()) return it->get<bool>();
  } else {
    if (it->is_string()) return it->get<std::string>();
  }
  return invalid(path, "'" + where + key + "' is " + it->dump(-1, ' ', false, json::error_handler_t::replace).substr(0, 60) +
                           (std::is_same_v<T, bool> ? ", not true or false" : ", not a string"));
}

bool is_byte_level(const json& j, bool use_regex) {
  if (type_of(j) != "ByteLevel") return false;
  auto r = j.find("use_regex");
  const bool regex = r == j.end() || (r->is_boolean() && r->get<bool>());  // HF's default: true
  auto p = j.find("add_prefix_space");
  const bool prefix = p != j.end() && p->is_boolean() && p->get<bool>();
  return regex == use_regex && !prefix;
}

/// The GGUF pre-tokenizer name of an HF pre_tokenizer, or an error naming what it is.
Result<std::string> pre_tokenizer_name(const json& p, const std::string& where) {
  if (is_byte_level(p, true)) return std::string("gpt2");
  if (type_of(p) == "Sequence" && p.contains("pretokenizers") && p["pretokenizers"].is_array() &&
      p["pretokenizers"].size() == 2) {
    const json& a = p["pretokenizers"][0];
    const json& b = p["pretokenizers"][1];
    const std::string at = "pre_tokenizer.pretokenizers[0].";
    SLMC_ASSIGN_OR_RETURN(const bool individual_digits, typed_value(a, "individual_digits", false, where, at));
    SLMC_ASSIGN_OR_RETURN(const std::string behavior, typed_value(a, "behavior", std::string(), where, at));
    SLMC_ASSIGN_OR_RETURN(const bool invert, typed_value(a, "invert", false, where, at));
    if (type_of(a) == "Digits" && individual_digits && is_byte_level(b, true)) {
      return std::string("smollm");
    }
    if (type_of(a) == "Split" && is_byte_level(b, false) && a.contains("pattern") && a["pattern"].is_object() &&
        a["pattern"].contains("Regex") && a["pattern"]["Regex"].is_string() && behavior == "Isolated" && !invert) {
      const std::string re = a["pattern"]["Regex"].get<std::string>();
      if (re == kLlama3Regex) return std::string("llama3");
      if (re == kQwen2Regex) return std::string("qwen2");
      return unsupported(where, "pre_tokenizer Split regex '" + re.substr(0, 120) + "' is not one slmc implements");
    }
  }
  return unsupported(where, "pre_tokenizer '" + p.dump().substr(0, 160) +
                                "' is not one slmc implements (ByteLevel; Digits + ByteLevel; the Llama-3 or Qwen2 "
                                "Split + ByteLevel)");
}

/// A token's text from tokenizer_config.json's "bos_token" etc.: a string or {"content": ...};
/// "" when absent or null, an error naming the key for any other JSON value.
Result<std::string> config_token(const json& cfg, const char* key, const std::string& path) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::string();
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) return (*it)["content"].get<std::string>();
  return invalid(path, std::string("'") + key + "' is " + it->dump(-1, ' ', false, json::error_handler_t::replace).substr(0, 60) +
                           ", not a token text or {\"content\": text}");
}

Result<json> read_json_file(const std::string& path) {
  SLMC_ASSIGN_OR_RETURN(const std::string text, read_input_file(path));
  SLMC_ASSIGN_OR_RETURN(json j, io_detail::parse_json_strict(text.data(), text.data() + text.size(), path));
  if (!j.is_object()) return invalid(path, "not a JSON object");
  return j;
}

std::string dir_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

}  // namespace

namespace {

/// A BERT tokenizer.json: WordPiece model, BertNormalizer, BertPreTokenizer, [CLS] $A [SEP].
Result<TokenizerData> read_wordpiece(const json& j, const json& model, const std::string& path) {
  TokenizerData d;
  d.kind = TokenizerKind::kWordPiece;
  d.pre = "bert";
  SLMC_ASSIGN_OR_RETURN(const std::string prefix,
                        typed_value(model, "continuing_subword_prefix", std::string("##"), path, "model."));
  if (prefix != text::kContinuingPrefix) {
    return unsupported(path, "model.continuing_subword_prefix '" + prefix + "' is not supported (##)");
  }
  if (model.contains("max_input_chars_per_word") && !model["max_input_chars_per_word"].is_null()) {
    const json& m = model["max_input_chars_per_word"];
    if (!m.is_number_unsigned() || m.get<uint64_t>() != text::kMaxInputCharsPerWord) {
      return unsupported(path, "model.max_input_chars_per_word " + m.dump().substr(0, 40) + " is not supported (100)");
    }
  }
  const json& norm = j.contains("normalizer") ? j["normalizer"] : json();
  if (type_of(norm) != "BertNormalizer") {
    return unsupported(path, "WordPiece with normalizer '" + type_of(norm) + "' is not supported (BertNormalizer)");
  }
  const std::string at = "normalizer.";
  SLMC_ASSIGN_OR_RETURN(const bool clean, typed_value(norm, "clean_text", true, path, at));
  SLMC_ASSIGN_OR_RETURN(const bool chinese, typed_value(norm, "handle_chinese_chars", true, path, at));
  SLMC_ASSIGN_OR_RETURN(const bool lowercase, typed_value(norm, "lowercase", true, path, at));
  // strip_accents null follows lowercase (HF's rule).
  SLMC_ASSIGN_OR_RETURN(const bool strip, typed_value(norm, "strip_accents", lowercase, path, at));
  std::string flags;
  for (const auto& [on, name] : {std::pair<bool, const char*>{clean, "clean_text"}, {chinese, "handle_chinese_chars"},
                                 {strip, "strip_accents"}, {lowercase, "lowercase"}}) {
    if (on) flags += (flags.empty() ? "" : ",") + std::string(name);
  }
  d.normalizer = flags.empty() ? "bert" : "bert:" + flags;
  if (type_of(j.contains("pre_tokenizer") ? j["pre_tokenizer"] : json()) != "BertPreTokenizer") {
    return unsupported(path, "WordPiece with pre_tokenizer '" + type_of(j.value("pre_tokenizer", json())) +
                                 "' is not supported (BertPreTokenizer)");
  }
  const json& vocab = model.contains("vocab") ? model["vocab"] : json();
  if (!vocab.is_object()) return invalid(path, "model.vocab is not an object");
  std::vector<std::string> tokens(vocab.size());
  std::vector<uint8_t> set(vocab.size(), 0);
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const json& id = it.value();
    if (!id.is_number_unsigned() || id.get<uint64_t>() >= vocab.size()) {
      return invalid(path, "token '" + it.key().substr(0, 64) + "' has the id " + id.dump() + " (ids must be 0.." +
                               std::to_string(vocab.size() - 1) + ")");
    }
    const size_t i = static_cast<size_t>(id.get<uint64_t>());
    if (set[i]) return invalid(path, "id " + std::to_string(i) + " is both '" + tokens[i].substr(0, 64) + "' and '" +
                                         it.key().substr(0, 64) + "'");
    tokens[i] = it.key();
    set[i] = 1;
  }
  d.tokens = std::move(tokens);
  d.token_types.assign(d.tokens.size(), static_cast<uint8_t>(TokenType::kNormal));
  if (j.contains("added_tokens")) {
    if (!j["added_tokens"].is_array()) return invalid(path, "added_tokens is not an array");
    for (const json& a : j["added_tokens"]) {
      if (!a.is_object() || !a.contains("content") || !a["content"].is_string() || !a.contains("id") ||
          !a["id"].is_number_unsigned() || a["id"].get<uint64_t>() >= d.tokens.size() ||
          d.tokens[a["id"].get<size_t>()] != a["content"].get<std::string>()) {
        return invalid(path, "added_tokens entry " + a.dump().substr(0, 100) + " is not a token of the vocabulary");
      }
      SLMC_ASSIGN_OR_RETURN(const bool special, typed_value(a, "special", false, path, "added_tokens[]."));
      d.token_types[a["id"].get<size_t>()] = static_cast<uint8_t>(special ? TokenType::kControl : TokenType::kUserDefined);
    }
  }
  auto id_of = [&](const std::string& text) -> int32_t {
    for (size_t i = 0; i < d.tokens.size(); ++i) {
      if (d.tokens[i] == text) return static_cast<int32_t>(i);
    }
    return -1;
  };
  SLMC_ASSIGN_OR_RETURN(const std::string unk, typed_value(model, "unk_token", std::string("[UNK]"), path, "model."));
  d.unk_id = id_of(unk);
  if (d.unk_id < 0) return invalid(path, "model.unk_token '" + unk + "' is not a token");
  d.pad_id = id_of("[PAD]");
  // [CLS] text [SEP]: TemplateProcessing (single = [CLS] $A [SEP]) or the older BertProcessing.
  const json& post = j.contains("post_processor") ? j["post_processor"] : json();
  std::string cls, sep;
  if (type_of(post) == "TemplateProcessing" && post.contains("single") && post["single"].is_array() &&
      post["single"].size() == 3 && post["single"][0].contains("SpecialToken") &&
      post["single"][1].contains("Sequence") && post["single"][2].contains("SpecialToken")) {
    SLMC_ASSIGN_OR_RETURN(cls, typed_value(post["single"][0]["SpecialToken"], "id", std::string(), path,
                                           "post_processor.single[0].SpecialToken."));
    SLMC_ASSIGN_OR_RETURN(sep, typed_value(post["single"][2]["SpecialToken"], "id", std::string(), path,
                                           "post_processor.single[2].SpecialToken."));
  } else if (type_of(post) == "BertProcessing" && post.contains("cls") && post["cls"].is_array() &&
             !post["cls"].empty() && post["cls"][0].is_string() && post.contains("sep") && post["sep"].is_array() &&
             !post["sep"].empty() && post["sep"][0].is_string()) {
    cls = post["cls"][0].get<std::string>();
    sep = post["sep"][0].get<std::string>();
  } else if (!post.is_null()) {
    return unsupported(path, "WordPiece with post_processor '" + type_of(post) +
                                 "' is not supported (TemplateProcessing [CLS] $A [SEP], BertProcessing)");
  }
  if (!post.is_null()) {
    d.bos_id = id_of(cls);
    d.eos_id = id_of(sep);
    if (d.bos_id < 0 || d.eos_id < 0) {
      return invalid(path, "post_processor adds '" + cls + "' and '" + sep + "', which are not both tokens");
    }
    d.add_bos = d.add_eos = true;
  }
  SLMC_RETURN_IF_ERROR(d.validate(path));
  return d;
}

Result<TokenizerData> read_hf_tokenizer_checked(const std::string& path) {
  SLMC_ASSIGN_OR_RETURN(json j, read_json_file(path));
  const json& model = j.contains("model") ? j["model"] : json();
  if (!model.is_object()) return invalid(path, "has no \"model\" object");
  if (type_of(model) == "WordPiece") return read_wordpiece(j, model, path);
  if (type_of(model) != "BPE") {
    return unsupported(path, "model type '" + type_of(model) + "' is not supported (BPE, WordPiece)");
  }
  SLMC_ASSIGN_OR_RETURN(const bool byte_fallback, typed_value(model, "byte_fallback", false, path, "model."));
  if (byte_fallback) {
    return unsupported(path, "SentencePiece-style BPE (byte_fallback) tokenizer.json files are not read yet; use "
                             "the model's GGUF file");
  }
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(k) && !model[k].is_null() && !(model[k].is_string() && model[k].get<std::string>().empty())) {
      return unsupported(path, std::string("model.") + k + " is not supported");
    }
  }
  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    return unsupported(path, "normalizer '" + type_of(j["normalizer"]) + "' is not supported (byte-level BPE reads "
                                                                           "the text as it is)");
  }
  TokenizerData d;
  d.kind = TokenizerKind::kByteBpe;
  SLMC_ASSIGN_OR_RETURN(d.pre, pre_tokenizer_name(j.value("pre_tokenizer", json()), path));
  SLMC_ASSIGN_OR_RETURN(const bool ignore_merges, typed_value(model, "ignore_merges", false, path, "model."));
  if (ignore_merges != (d.pre == "llama3")) {
    return unsupported(path, std::string("model.ignore_merges = ") + (ignore_merges ? "true" : "false") +
                                 " with the '" + d.pre + "' pre-tokenizer is a combination slmc does not implement");
  }
  if (!j.contains("decoder") || !(j["decoder"].is_null() || type_of(j["decoder"]) == "ByteLevel")) {
    return unsupported(path, "decoder '" + type_of(j["decoder"]) + "' is not supported (ByteLevel)");
  }
  // Vocabulary: ids must be 0..n-1 without gaps once the added tokens are in.
  const json& vocab = model.contains("vocab") ? model["vocab"] : json();
  if (!vocab.is_object()) return invalid(path, "model.vocab is not an object");
  std::vector<std::string> tokens;
  std::vector<uint8_t> set;
  auto place = [&](const std::string& text, const json& idj) -> Status {
    if (!idj.is_number_integer() || idj.get<int64_t>() < 0 || idj.get<int64_t>() >= (int64_t{1} << 24)) {
      return invalid(path, "token '" + text.substr(0, 64) + "' has the id " + idj.dump() + " (not in [0, 2^24))");
    }
    const size_t id = static_cast<size_t>(idj.get<int64_t>());
    if (id >= tokens.size()) {
      tokens.resize(id + 1);
      set.resize(id + 1, 0);
    }
    if (set[id] && tokens[id] != text) {
      return invalid(path, "id " + std::to_string(id) + " is both '" + tokens[id].substr(0, 64) + "' and '" +
                               text.substr(0, 64) + "'");
    }
    tokens[id] = text;
    set[id] = 1;
    return Status::ok_status();
  };
  for (auto it = vocab.begin(); it != vocab.end(); ++it) SLMC_RETURN_IF_ERROR(place(it.key(), it.value()));
  std::vector<uint8_t> types;
  if (j.contains("added_tokens")) {
    if (!j["added_tokens"].is_array()) return invalid(path, "added_tokens is not an array");
    for (const json& a : j["added_tokens"]) {
      if (!a.is_object() || !a.contains("content") || !a["content"].is_string() || !a.contains("id")) {
        return invalid(path, "added_tokens entry " + a.dump().substr(0, 100) + " lacks content or id");
      }
      SLMC_RETURN_IF_ERROR(place(a["content"].get<std::string>(), a["id"]));
      const size_t id = static_cast<size_t>(a["id"].get<int64_t>());
      types.resize(std::max(types.size(), tokens.size()), static_cast<uint8_t>(TokenType::kNormal));
      SLMC_ASSIGN_OR_RETURN(const bool special, typed_value(a, "special", false, path, "added_tokens[]."));
      types[id] = static_cast<uint8_t>(special ? TokenType::kControl : TokenType::kUserDefined);
    }
  }
  for (size_t i = 0; i < set.size(); ++i) {
    if (!set[i]) return invalid(path, "no token has the id " + std::to_string(i) + " (ids must be contiguous)");
  }
  types.resize(tokens.size(), static_cast<uint8_t>(TokenType::kNormal));
  d.tokens = std::move(tokens);
  d.token_types = std::move(types);
  if (model.contains("merges")) {
    if (!model["merges"].is_array()) return invalid(path, "model.merges is not an array");
    d.merges.reserve(model["merges"].size());
    for (const json& m : model["merges"]) {
      if (m.is_string()) {
        d.merges.push_back(m.get<std::string>());
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        d.merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
      } else {
        return invalid(path, "merge " + std::to_string(d.merges.size()) + " is " + m.dump().substr(0, 80) +
                                 ", not \"a b\" or [\"a\", \"b\"]");
      }
    }
  }
  // BOS from the post-processor: TemplateProcessing that starts with a special token.
  std::string bos_text;
  const json& post = j.contains("post_processor") ? j["post_processor"] : json();
  if (type_of(post) == "TemplateProcessing" && post.contains("single") && post["single"].is_array() &&
      !post["single"].empty() && post["single"][0].contains("SpecialToken")) {
    SLMC_ASSIGN_OR_RETURN(bos_text, typed_value(post["single"][0]["SpecialToken"], "id", std::string(), path,
                                                "post_processor.single[0].SpecialToken."));
    d.add_bos = !bos_text.empty();
  } else if (!(post.is_null() || type_of(post) == "ByteLevel")) {
    return unsupported(path, "post_processor '" + type_of(post) + "' is not supported (ByteLevel, TemplateProcessing)");
  }
  auto id_of = [&](const std::string& text) -> int32_t {
    if (text.empty()) return -1;
    for (size_t i = 0; i < d.tokens.size(); ++i) {
      if (d.tokens[i] == text) return static_cast<int32_t>(i);
    }
    return -1;
  };
  // tokenizer_config.json beside: special tokens by text, add-BOS/EOS flags, the chat template.
  const std::string cfg_path = dir_of(path) + "/tokenizer_config.json";
  if (struct stat st {}; ::lstat(cfg_path.c_str(), &st) == 0) {
    SLMC_ASSIGN_OR_RETURN(json cfg, read_json_file(cfg_path));
    SLMC_ASSIGN_OR_RETURN(const std::string cfg_bos, config_token(cfg, "bos_token", cfg_path));
    SLMC_ASSIGN_OR_RETURN(const std::string cfg_eos, config_token(cfg, "eos_token", cfg_path));
    SLMC_ASSIGN_OR_RETURN(const std::string cfg_unk, config_token(cfg, "unk_token", cfg_path));
    SLMC_ASSIGN_OR_RETURN(const std::string cfg_pad, config_token(cfg, "pad_token", cfg_path));
    if (bos_text.empty()) bos_text = cfg_bos;
    d.eos_id = id_of(cfg_eos);
    d.unk_id = id_of(cfg_unk);
    d.pad_id = id_of(cfg_pad);
    SLMC_ASSIGN_OR_RETURN(d.add_bos, typed_value(cfg, "add_bos_token", d.add_bos, cfg_path, ""));
    SLMC_ASSIGN_OR_RETURN(d.add_eos, typed_value(cfg, "add_eos_token", d.add_eos, cfg_path, ""));
    if (cfg.contains("chat_template")) {
      const json& t = cfg["chat_template"];
      if (t.is_string()) {
        d.chat_template = t.get<std::string>();
      } else if (t.is_array()) {  // [{"name": "default", "template": ...}, ...]
        for (const json& e : t) {
          SLMC_ASSIGN_OR_RETURN(const std::string name, typed_value(e, "name", std::string(), cfg_path, "chat_template[]."));
          if (name == "default" && e.contains("template") && e["template"].is_string()) {
            d.chat_template = e["template"].get<std::string>();
          }
        }
      }
    }
  }
  d.bos_id = id_of(bos_text);
  if (d.add_bos && d.bos_id < 0) return invalid(path, "adds BOS '" + bos_text + "', which is not a token");
  text::add_end_of_generation_by_name(d);
  SLMC_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> check, Tokenizer::create(d, path));
  return check->data();
}

}  // namespace

Result<TokenizerData> read_hf_tokenizer(const std::string& path) {
  // Every access above checks its JSON type; this is the net for a shape nobody foresaw, so that a
  // hostile file is an input error, never an exception through the API.
  try {
    return read_hf_tokenizer_checked(path);
  } catch (const json::exception& e) {
    return invalid(path, std::string("unexpected JSON structure: ") + e.what());
  }
}

Status write_hf_tokenizer(const TokenizerData& d, std::string* tokenizer_json, std::string* tokenizer_config_json) {
  if (d.kind != TokenizerKind::kByteBpe) {
    return make_error(ErrorCode::kUnsupported, "a " + std::string(tokenizer_kind_name(d.kind)) +
                                                   " tokenizer has no tokenizer.json form here (byte-level BPE only)");
  }
  ordered_json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  ordered_json added = ordered_json::array();
  for (size_t i = 0; i < d.tokens.size(); ++i) {
    const auto type = d.token_types.empty() ? TokenType::kNormal : static_cast<TokenType>(d.token_types[i]);
    if (type != TokenType::kControl && type != TokenType::kUserDefined) continue;
    added.push_back({{"id", i}, {"content", d.tokens[i]}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", type == TokenType::kControl}});
  }
  j["added_tokens"] = added;
  j["normalizer"] = nullptr;
  auto byte_level = [](bool regex) {
    return ordered_json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", regex}};
  };
  if (d.pre == "gpt2") {
    j["pre_tokenizer"] = byte_level(true);
  } else if (d.pre == "smollm") {
    j["pre_tokenizer"] = {{"type", "Sequence"},
                          {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byte_level(true)}}};
  } else if (d.pre == "llama3" || d.pre == "llama-bpe" || d.pre == "qwen2") {
    const char* re = d.pre == "qwen2" ? kQwen2Regex : kLlama3Regex;
    j["pre_tokenizer"] = {{"type", "Sequence"},
                          {"pretokenizers",
                           {{{"type", "Split"}, {"pattern", {{"Regex", re}}}, {"behavior", "Isolated"}, {"invert", false}},
                            byte_level(false)}}};
  } else {
    return make_error(ErrorCode::kUnsupported, "pre-tokenizer '" + d.pre + "' has no tokenizer.json form here");
  }
  if (d.add_bos && d.bos_id >= 0) {
    const std::string& b = d.tokens[static_cast<size_t>(d.bos_id)];
    j["post_processor"] = {
        {"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", b}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"pair",
         {{{"SpecialToken", {{"id", b}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
          {{"SpecialToken", {{"id", b}, {"type_id", 1}}}}, {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
        {"special_tokens", {{b, {{"id", b}, {"ids", {d.bos_id}}, {"tokens", {b}}}}}}};
  } else {
    j["post_processor"] = byte_level(true);
  }
  j["decoder"] = byte_level(true);
  ordered_json vocab = ordered_json::object();
  for (size_t i = 0; i < d.tokens.size(); ++i) vocab[d.tokens[i]] = i;
  j["model"] = {{"type", "BPE"},          {"dropout", nullptr},          {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr}, {"fuse_unk", false},
                {"byte_fallback", false}, {"ignore_merges", d.pre == "llama3" || d.pre == "llama-bpe"},
                {"vocab", vocab},         {"merges", d.merges}};
  *tokenizer_json = j.dump(1, ' ', false, ordered_json::error_handler_t::strict);
  ordered_json cfg;
  auto token_text = [&](int32_t id) -> ordered_json {
    return id >= 0 ? ordered_json(d.tokens[static_cast<size_t>(id)]) : ordered_json(nullptr);
  };
  cfg["add_bos_token"] = d.add_bos;
  cfg["add_eos_token"] = d.add_eos;
  cfg["bos_token"] = token_text(d.bos_id);
  cfg["eos_token"] = token_text(d.eos_id);
  cfg["unk_token"] = token_text(d.unk_id);
  cfg["pad_token"] = token_text(d.pad_id);
  if (!d.chat_template.empty()) cfg["chat_template"] = d.chat_template;
  cfg["clean_up_tokenization_spaces"] = false;
  cfg["tokenizer_class"] = "PreTrainedTokenizerFast";
  *tokenizer_config_json = cfg.dump(1, ' ', false, ordered_json::error_handler_t::strict);
  return Status::ok_status();
}

}  // namespace slmc
