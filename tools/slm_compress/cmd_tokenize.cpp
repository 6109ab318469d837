// slm-compress tokenize: text to token ids (and --decode: ids to text) with a model's tokenizer.
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.hpp"
#include "common.hpp"
#include "slmc/io/safe_input.hpp"
#include "slmc/text/tokenizer.hpp"

namespace slmc::cli {
namespace {

struct TokenizeArgs {
  std::string model, text, prompt;
  bool prompt_given = false;
  bool json = false, jsonl = false, decode = false, bos = false, no_bos = false, no_parse_special = false;
};

Result<std::string> read_file_bytes(const std::string& path) { return read_input_file(path); }

/// Ids from a JSON list or whitespace-separated integers.
Result<std::vector<int32_t>> parse_ids(const std::string& text, const std::string& where, int64_t vocab) {
  std::vector<int32_t> ids;
  auto add = [&](long long v, const std::string& token) -> Status {
    if (v < 0 || v >= vocab) {
      return make_error(ErrorCode::kInvalidArgument, where + ": token id " + token + " is outside the vocabulary [0, " +
                                                         std::to_string(vocab) + ")");
    }
    ids.push_back(static_cast<int32_t>(v));
    return Status::ok_status();
  };
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '[') {
    if (Status s = check_json_depth(text, where); !s.ok()) return s;
    Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_array()) {
      return make_error(ErrorCode::kInvalidArgument, where + ": not a JSON list of token ids");
    }
    for (const Json& v : j) {
      if (!v.is_number_integer()) {
        return make_error(ErrorCode::kInvalidArgument, where + ": " + v.dump() + " is not an integer token id");
      }
      SLMC_RETURN_IF_ERROR(add(v.get<long long>(), v.dump()));
    }
    return ids;
  }
  std::istringstream in(text);
  std::string token;
  while (in >> token) {
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(token.c_str(), &end, 10);
    if (end == token.c_str() || *end != '\0' || errno == ERANGE) {
      return make_error(ErrorCode::kInvalidArgument, where + ": '" + token + "' is not an integer token id");
    }
    SLMC_RETURN_IF_ERROR(add(v, token));
  }
  return ids;
}

int run_tokenize(const TokenizeArgs& a) {
  if (a.text.empty() == !a.prompt_given) return fail_usage("give exactly one of --text FILE and --prompt S");
  std::string input = a.prompt;
  if (!a.text.empty()) {
    auto bytes = read_file_bytes(a.text);
    if (!bytes.ok()) return fail(bytes.status());
    input = std::move(*bytes);
  }
  auto tok = Tokenizer::load(a.model);
  if (!tok.ok()) return fail(tok.status());
  const Tokenizer& t = **tok;
  if (a.decode) {
    auto ids = parse_ids(input, a.text.empty() ? "--prompt" : a.text, t.vocab_size());
    if (!ids.ok()) return fail(ids.status());
    const std::string text = t.decode(*ids);
    if (a.json) {
      std::cout << Json{{"text", sanitize_utf8(text)}, {"count", ids->size()}}.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
    } else {
      std::cout << text << "\n";
    }
    return kExitOk;
  }
  EncodeOptions o;
  o.add_bos = a.bos || (!a.no_bos && t.data().add_bos);
  o.add_eos = t.data().add_eos;
  o.parse_special = !a.no_parse_special;
  auto encode = [&](const std::string& text) {
    std::vector<int32_t> ids = t.encode(text, o);
    if (o.add_bos && t.bos() >= 0 && (ids.empty() || ids[0] != t.bos())) ids.insert(ids.begin(), t.bos());
    return ids;
  };
  if (a.jsonl) {
    // One JSON string per input line, one {"ids", "count"} object per output line.
    std::istringstream lines(input);
    std::string line;
    for (int64_t number = 1; std::getline(lines, line); ++number) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) continue;
      Json j = check_json_depth(line, "").ok() ? Json::parse(line, nullptr, /*allow_exceptions=*/false)
                                               : Json(Json::value_t::discarded);
      if (j.is_discarded() || !j.is_string()) {
        return fail(make_error(ErrorCode::kInvalidFormat, (a.text.empty() ? std::string("--prompt") : a.text) +
                                                              ":" + std::to_string(number) + ": not a JSON string"));
      }
      const std::vector<int32_t> ids = encode(j.get<std::string>());
      std::cout << Json{{"ids", ids}, {"count", ids.size()}}.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
    }
    if (!std::cout.flush()) return fail(make_error(ErrorCode::kIoError, "stdout: write failed"));
    return kExitOk;
  }
  const std::vector<int32_t> ids = encode(input);
  if (a.json) {
    std::cout << Json{{"ids", ids}, {"count", ids.size()}}.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
  } else {
    for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
    std::cout << "\n";
  }
  if (!std::cout.flush()) return fail(make_error(ErrorCode::kIoError, "stdout: write failed"));
  return kExitOk;
}

}  // namespace

Command add_tokenize(CLI::App& app) {
  auto a = std::make_shared<TokenizeArgs>();
  CLI::App* sub = app.add_subcommand("tokenize", "Token ids of a text with a model's tokenizer (--decode: ids to text)");
  sub->add_option("model", a->model, "A .slm file with a tokenizer, a GGUF file, or a llama2.c tokenizer.bin")
      ->required();
  sub->add_option("--text", a->text, "Read the text (or, with --decode, the ids) from this file");
  sub->add_option("--prompt", a->prompt, "The text (or, with --decode, the ids) itself")
      ->each([a](const std::string&) { a->prompt_given = true; });
  sub->add_flag("--jsonl", a->jsonl,
                "Batch mode: every input line is a JSON string; print one {\"ids\", \"count\"} line per input");
  sub->add_flag("--decode", a->decode, "Read token ids (a JSON list or whitespace-separated) and print their text");
  auto* bos = sub->add_flag("--bos", a->bos, "Add BOS even if the tokenizer does not");
  sub->add_flag("--no-bos", a->no_bos, "No BOS even if the tokenizer adds one")->excludes(bos);
  sub->add_flag("--no-parse-special", a->no_parse_special,
                "Treat control-token text (<|im_start|>, ...) in the input as plain text");
  sub->add_flag("--json", a->json, "Print {\"ids\": [...], \"count\": N} (--decode: {\"text\": ...})");
  return {sub, [a] { return run_tokenize(*a); }};
}

}  // namespace slmc::cli
