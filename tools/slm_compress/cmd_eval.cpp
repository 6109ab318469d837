// slm-compress eval | generate | calibrate: run a compressed Llama model from its .slm file.
#include <cmath>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <sstream>

#include "commands.hpp"
#include "common.hpp"
#include "slmc/io/output.hpp"
#include "slmc/io/safe_input.hpp"
#include "slmc/runtime/eval.hpp"
#include "slmc/text/chat.hpp"

namespace slmc::cli {
namespace {

struct RunArgs {
  std::string model, tokenizer, text, reference, prompt, output, split = "eval", system, protocol = "slmc",
              act = "auto", format = "auto";
  int64_t window = 512, max_tokens = 0, steps = 64, decode_tokens = 64, batch = 32;
  double temperature = 0;
  uint64_t seed = 1;
  int threads = 0;
  bool json = false;
  bool gram = false;
  bool bos = false, no_bos = false;
  bool chat = false;
  bool force = false;
  bool no_verify = false;
  // calibrate: differential privacy (docs/FLEET.md §8.3)
  double dp_clip = 0, dp_epsilon = 0, dp_delta = 1e-5;
  int64_t dp_max_doc_tokens = 0;
  uint64_t dp_seed = 0;
};

/// The model's own tokenizer, or the --tokenizer override (any source Tokenizer::load reads).
Result<std::unique_ptr<Tokenizer>> model_tokenizer(const LlamaModel& m, const RunArgs& a) {
  if (!a.tokenizer.empty()) return Tokenizer::load(a.tokenizer, m.config().vocab);
  const TokenizerData& d = m.file().header().tokenizer;
  if (d.empty()) {
    return make_error(ErrorCode::kNotFound, a.model + ": the file holds no tokenizer (converted from a source "
                                                      "without one): pass --tokenizer");
  }
  if (d.size() > m.config().vocab) {
    return make_error(ErrorCode::kInvalidFormat, a.model + ": the tokenizer has " + std::to_string(d.size()) +
                                                     " tokens, more than the " + std::to_string(m.config().vocab) +
                                                     " embedding rows");
  }
  return Tokenizer::create(d, a.model);
}

/// BOS id to start with: the tokenizer's add-BOS flag unless --bos / --no-bos; -1 for none.
int32_t start_bos(const Tokenizer& tok, const RunArgs& a) {
  const bool add = a.bos || (!a.no_bos && tok.data().add_bos);
  return add ? tok.bos() : -1;
}

/// Run-time options from the common flags; --act is checked here (a usage error).
Result<LlamaOptions> llama_options(const RunArgs& a) {
  LlamaOptions lo;
  lo.num_threads = a.threads;
  lo.verify_checksums = !a.no_verify;
  const std::optional<ActMode> mode = act_mode_from_name(a.act);
  if (!mode) return make_error(ErrorCode::kInvalidArgument, "--act '" + a.act + "': valid: auto, fp32, int8, int8-row");
  lo.act_mode = *mode;
  return lo;
}

Result<std::string> read_text(const std::string& path) { return read_input_file(path); }

Result<TextSplit> parse_split(const std::string& s) {
  if (s == "eval") return TextSplit::kEvaluation;
  if (s == "calibration") return TextSplit::kCalibration;
  if (s == "all") return TextSplit::kAll;
  return make_error(ErrorCode::kInvalidArgument, "--split '" + s + "': valid: eval, calibration, all");
}

int run_eval(const RunArgs& a) {
  // The model's kind decides: an encoder compares embeddings, a decoder scores text.
  if (is_encoder_file(a.model)) {
    return run_encoder_eval(a.model, a.reference, a.text, a.act, a.threads, a.no_verify, a.batch, a.json);
  }
  auto split = parse_split(a.split);
  if (!split.ok()) return fail(split.status());
  const bool llamacpp = a.protocol == "llamacpp";
  if (!llamacpp && a.protocol != "slmc") {
    return fail_usage("--protocol '" + a.protocol + "': valid: slmc, llamacpp");
  }
  auto lo = llama_options(a);
  if (!lo.ok()) return fail_usage(lo.status().message());
  auto model = LlamaModel::load(a.model, *lo);
  if (!model.ok()) return fail(model.status());
  std::unique_ptr<LlamaModel> reference;
  if (!a.reference.empty()) {
    auto r = LlamaModel::load(a.reference, *lo);
    if (!r.ok()) return fail(r.status());
    reference = std::move(*r);
  }
  auto tok = model_tokenizer(**model, a);
  if (!tok.ok()) return fail(tok.status());
  auto text = read_text(a.text);
  if (!text.ok()) return fail(text.status());
  // The llama.cpp protocol reads the whole text as it is (--split does not apply).
  const std::vector<int32_t> tokens = llamacpp ? llamacpp_tokens(**tok, *text, start_bos(**tok, a), a.max_tokens)
                                               : protocol_tokens(**tok, *text, *split, a.max_tokens);
  const std::string what = llamacpp ? std::string("the text") : "the " + a.split + " split";
  if (tokens.size() < 2) {
    return fail(make_error(ErrorCode::kInvalidFormat, a.text + ": " + what + " holds " + std::to_string(tokens.size()) +
                                                          " tokens; eval needs at least 2 (is the text empty?)"));
  }
  if (llamacpp && static_cast<int64_t>(tokens.size()) < a.window) {
    return fail(make_error(ErrorCode::kInvalidFormat, a.text + ": " + what + " holds " + std::to_string(tokens.size()) +
                                                          " tokens, fewer than one window of " +
                                                          std::to_string(a.window) + " (--protocol llamacpp)"));
  }
  EvalOptions eo;
  eo.protocol = llamacpp ? EvalProtocol::kLlamaCpp : EvalProtocol::kSlmc;
  eo.bos = start_bos(**tok, a);
  eo.window = a.window;
  eo.decode_tokens = a.decode_tokens;
  auto r = evaluate(**model, reference.get(), tokens, eo);
  if (!r.ok()) return fail(r.status());
  if (a.json) {
    Json j{{"model", a.model}, {"text", a.text}, {"protocol", a.protocol},
           {"split", llamacpp ? Json(nullptr) : Json(a.split)}, {"window", a.window}, {"tokens", r->tokens},
           {"nll", r->nll}, {"perplexity", r->perplexity}, {"prefill_tokens_per_s", r->prefill_tokens_per_s},
           {"decode_tokens_per_s", r->decode_tokens_per_s}};
    if (reference) {
      j["reference"] = {{"model", a.reference}, {"nll", r->reference_nll}, {"perplexity", r->reference_perplexity}};
      j["delta_ppl_percent"] = 100.0 * (r->perplexity / r->reference_perplexity - 1.0);
      j["kl"] = r->kl;
      j["top1_agreement"] = r->top1_agreement;
    }
    std::cout << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
    return kExitOk;
  }
  std::cout << a.model << ": " << r->tokens << " tokens ("
            << (llamacpp ? std::string("llamacpp protocol, second half of each window") : a.split + " split")
            << ", windows of " << a.window << ")\n  perplexity " << fmt("%.4f", r->perplexity) << " (nll " << fmt("%.4f", r->nll) << " nats/token)\n";
  if (reference) {
    std::cout << "  reference  " << fmt("%.4f", r->reference_perplexity) << ", delta "
              << fmt("%+.2f%%", 100.0 * (r->perplexity / r->reference_perplexity - 1.0)) << ", KL "
              << fmt("%.5f", r->kl) << " nats/token, top-1 agreement " << fmt("%.2f%%", 100.0 * r->top1_agreement)
              << "\n";
  }
  std::cout << "  prefill " << fmt("%.0f", r->prefill_tokens_per_s) << " tokens/s, decode "
            << fmt("%.0f", r->decode_tokens_per_s) << " tokens/s\n";
  return kExitOk;
}

int run_generate(const RunArgs& a) {
  if (!(a.temperature >= 0) || std::isinf(a.temperature)) {
    return fail_usage("--temperature must be a finite number >= 0 (0: greedy), not " + std::to_string(a.temperature));
  }
  auto lo = llama_options(a);
  if (!lo.ok()) return fail_usage(lo.status().message());
  auto model = LlamaModel::load(a.model, *lo);
  if (!model.ok()) return fail(model.status());
  LlamaModel& m = **model;
  auto tok = model_tokenizer(m, a);
  if (!tok.ok()) return fail(tok.status());
  const Tokenizer& tk = **tok;
  const int32_t bos = start_bos(tk, a);
  EncodeOptions eopt;
  eopt.add_bos = bos >= 0;
  std::string prompt = a.prompt;
  if (a.chat) {
    // The stored chat template: --system (or the template's default) and --prompt as the user's
    // message, then the assistant's header; its special tokens are parsed as tokens.
    auto tmpl = parse_chat_template(tk.data().chat_template, a.model);
    if (!tmpl.ok()) return fail(tmpl.status());
    std::vector<ChatMessage> messages;
    if (!a.system.empty()) messages.push_back({"system", a.system});
    messages.push_back({"user", a.prompt});
    prompt = render_chat(*tmpl, messages);
    eopt.parse_special = true;
  } else if (!a.system.empty()) {
    return fail_usage("--system needs --chat");
  }
  std::vector<int32_t> ids = tk.encode(prompt, eopt);
  if (bos >= 0 && (ids.empty() || ids[0] != bos)) ids.insert(ids.begin(), bos);  // --bos on a tokenizer without add-BOS
  if (ids.empty()) {
    return fail_usage("the prompt is empty and the tokenizer adds no BOS: give --prompt or --bos");
  }
  if (a.steps < 0 || a.steps > m.config().context ||
      static_cast<int64_t>(ids.size()) > m.config().context - a.steps) {
    return fail_usage("prompt (" + std::to_string(ids.size()) + " tokens) plus -n " + std::to_string(a.steps) +
                      " exceeds the context length " + std::to_string(m.config().context));
  }
  std::vector<float> logits(static_cast<size_t>(m.config().vocab));
  Status s = m.forward(ids.data(), static_cast<int64_t>(ids.size()), logits.data(), /*last_only=*/true);
  if (!s.ok()) return fail(s);
  std::mt19937_64 rng(a.seed);
  std::string out;
  int32_t prev = ids.back();
  std::vector<int32_t> generated;
  for (int64_t step = 0; step < a.steps; ++step) {
    int32_t next;
    if (a.temperature <= 0) {
      next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    } else {
      std::vector<double> p(logits.size());
      const double mx = *std::max_element(logits.begin(), logits.end());
      for (size_t i = 0; i < p.size(); ++i) p[i] = std::exp((logits[i] - mx) / a.temperature);
      next = static_cast<int32_t>(std::discrete_distribution<size_t>(p.begin(), p.end())(rng));
    }
    if (tk.is_end_of_generation(next) || (next == tk.bos() && tk.bos() >= 0)) break;
    generated.push_back(next);
    out += tk.decode(prev, next);
    prev = next;
    s = m.forward(&next, 1, logits.data());
    if (!s.ok()) return fail(s);
  }
  if (a.json) {
    Json j{{"prompt", prompt}, {"prompt_tokens", ids}, {"tokens", generated}, {"text", sanitize_utf8(out)}};
    std::cout << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  } else {
    std::cout << (a.chat ? std::string() : a.prompt) << out << "\n";
  }
  return kExitOk;
}

int run_calibrate(const RunArgs& a) {
  auto split = parse_split(a.split);
  if (!split.ok()) return fail(split.status());
  if (a.format != "auto" && a.format != "json" && a.format != "binary") {
    return fail_usage("--format '" + a.format + "': valid: auto, json, binary");
  }
  // auto: JSON for a name ending in .json, the binary form for any other.
  const bool binary = a.format == "binary" ||
                      (a.format == "auto" && !(a.output.size() >= 5 && a.output.compare(a.output.size() - 5, 5, ".json") == 0));
  std::vector<std::string> inputs{a.model, a.text};
  if (!a.tokenizer.empty()) inputs.push_back(a.tokenizer);
  if (Status s = check_output_path(a.output, inputs, OutputKind::kFile, a.force); !s.ok()) return fail_usage(s.message());
  auto lo = llama_options(a);
  if (!lo.ok()) return fail_usage(lo.status().message());
  if (is_encoder_file(a.model)) {
    // An encoder: every paragraph of the split is one input (cut to the model's max_seq_length).
    BertOptions bo;
    bo.num_threads = lo->num_threads;
    bo.act_mode = lo->act_mode;
    bo.verify_checksums = lo->verify_checksums;
    auto model = BertModel::load(a.model, bo);
    if (!model.ok()) return fail(model.status());
    auto tok = encoder_tokenizer(**model);
    if (!tok.ok()) return fail(tok.status());
    auto text = read_text(a.text);
    if (!text.ok()) return fail(text.status());
    std::vector<std::string> paragraphs = split_paragraphs(*text);
    const size_t cut = paragraphs.size() / 5;
    if (*split == TextSplit::kCalibration) paragraphs.resize(cut);
    if (*split == TextSplit::kEvaluation) paragraphs.erase(paragraphs.begin(), paragraphs.begin() + static_cast<std::ptrdiff_t>(cut));
    if (paragraphs.empty()) {
      return fail(make_error(ErrorCode::kInvalidFormat, a.text + ": the " + a.split + " split holds no paragraph"));
    }
    auto cal = calibrate_encoder(**model, **tok, paragraphs, a.gram, a.batch);
    if (!cal.ok()) return fail(cal.status());
    const std::string bytes = binary ? calibration_to_binary(*cal) : calibration_to_json(*cal) + "\n";
    if (Status s = write_file_atomic(a.output, bytes); !s.ok()) return fail(s);
    if (a.json) {
      std::cout << Json{{"output", a.output}, {"format", binary ? "binary" : "json"}, {"bytes", bytes.size()},
                        {"paragraphs", paragraphs.size()}, {"tensors", cal->tensors.size()}}.dump(2) << "\n";
    } else {
      std::cout << "wrote " << a.output << ": " << cal->tensors.size() << " linear layers, " << paragraphs.size()
                << " paragraphs (" << a.split << " split)\n";
    }
    return kExitOk;
  }
  auto model = LlamaModel::load(a.model, *lo);
  if (!model.ok()) return fail(model.status());
  auto tok = model_tokenizer(**model, a);
  if (!tok.ok()) return fail(tok.status());
  auto text = read_text(a.text);
  if (!text.ok()) return fail(text.status());
  // Every paragraph is a document: no calibration window crosses a document boundary, so the
  // statistics of separate texts merge exactly (calibrate-merge, docs/FLEET.md §8).
  const std::vector<std::vector<int32_t>> docs = protocol_documents(**tok, *text, *split, a.max_tokens);
  size_t token_count = 0;
  for (const auto& d : docs) token_count += d.size();
  if (token_count < 2) {
    return fail(make_error(ErrorCode::kInvalidFormat, a.text + ": the " + a.split + " split holds " +
                                                          std::to_string(token_count) +
                                                          " tokens; calibrate needs at least 2 (is the text empty?)"));
  }
  std::optional<CalibrationPrivacy> privacy;
  if (a.dp_clip != 0 || a.dp_epsilon != 0 || a.dp_max_doc_tokens != 0) {
    if (!(a.dp_clip > 0) || std::isinf(a.dp_clip) || a.dp_max_doc_tokens <= 0) {
      return fail_usage("private calibration needs --dp-clip C > 0 and --dp-max-doc-tokens L > 0");
    }
    if (a.dp_epsilon != 0 && !(a.dp_epsilon > 0 && a.dp_epsilon < 1)) {
      return fail_usage("--dp-epsilon must be in (0, 1) (or 0: clipping only)");
    }
    if (!(a.dp_delta > 0 && a.dp_delta < 1)) return fail_usage("--dp-delta must be in (0, 1)");
    privacy = CalibrationPrivacy{a.dp_clip, a.dp_max_doc_tokens, a.dp_epsilon, a.dp_delta, a.dp_seed};
  }
  CalibrationPrivacyReport pr;
  auto cal = calibrate_documents(**model, docs, a.window, a.gram, start_bos(**tok, a), privacy ? &*privacy : nullptr,
                                 &pr);
  if (!cal.ok()) return fail(cal.status());
  const std::string bytes = binary ? calibration_to_binary(*cal) : calibration_to_json(*cal) + "\n";
  if (Status s = write_file_atomic(a.output, bytes); !s.ok()) return fail(s);
  if (a.json) {
    std::cout << Json{{"output", a.output}, {"format", binary ? "binary" : "json"}, {"bytes", bytes.size()},
                      {"tokens", token_count}, {"documents", docs.size()}, {"tensors", cal->tensors.size()},
                      {"privacy", privacy ? Json{{"clip_norm", a.dp_clip}, {"max_document_tokens", a.dp_max_doc_tokens},
                                                 {"epsilon", a.dp_epsilon}, {"delta", a.dp_epsilon > 0 ? Json(a.dp_delta) : Json(nullptr)},
                                                 {"rows_per_document", pr.rows_per_document}, {"layers", pr.layers},
                                                 {"sensitivity", pr.sensitivity}, {"sigma", pr.sigma},
                                                 {"rows_clipped", pr.rows_clipped},
                                                 {"documents_truncated", pr.documents_truncated}}
                                          : Json(nullptr)}}.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  } else {
    std::cout << "wrote " << a.output << ": " << cal->tensors.size() << " linear layers, " << token_count
              << " tokens in " << docs.size() << " documents (" << a.split << " split)\n";
    if (privacy) {
      std::cout << "privacy: rows clipped to L2 norm " << a.dp_clip << " (" << pr.rows_clipped << " clipped), documents cut to "
                << a.dp_max_doc_tokens << " tokens; "
                << (a.dp_epsilon > 0 ? "Gaussian noise sigma " + fmt("%.6g", pr.sigma) + " for (epsilon, delta) = (" +
                                           fmt("%g", a.dp_epsilon) + ", " + fmt("%g", a.dp_delta) + ") per document"
                                     : std::string("no noise (--dp-epsilon 0)"))
                << "\n";
    }
  }
  return kExitOk;
}

void common_options(CLI::App* sub, RunArgs& a) {
  sub->add_option("model", a.model, ".slm file of a Llama-architecture model")->required();
  sub->add_option("--tokenizer", a.tokenizer,
                  "Tokenizer override (default: the one stored in the model): a .slm, GGUF, tokenizer.json or "
                  "llama2.c tokenizer.bin");
  auto* bos = sub->add_flag("--bos", a.bos, "Start with BOS even if the tokenizer does not add one");
  sub->add_flag("--no-bos", a.no_bos, "Start without BOS even if the tokenizer adds one")->excludes(bos);
  sub->add_option("--threads", a.threads, "Threads (default: all cores)")->check(CLI::NonNegativeNumber);
  sub->add_option("--act", a.act,
                  "Activations of quantized layers: auto (each encoding's default), fp32 (weights dequantized "
                  "in registers), int8 (integer dot products, a scale per 32 activations), int8-row (a scale per row)")
      ->capture_default_str();
  sub->add_flag("--json", a.json, "Print one JSON document to stdout");
  sub->add_flag("--no-verify", a.no_verify, "Skip the checksum pass over the model at load (exit 5 on a corrupted file otherwise)");
}

}  // namespace

Command add_eval(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  CLI::App* sub = app.add_subcommand("eval", "Perplexity on text (and KL, top-1 agreement against a reference), "
                                            "prefill and decode speed");
  common_options(sub, *a);
  sub->add_option("--text", a->text, "UTF-8 text; paragraphs separated by blank lines")->required();
  sub->add_option("--reference", a->reference, "Reference .slm (e.g. the fp32 conversion) for KL and top-1");
  sub->add_option("--protocol", a->protocol,
                  "slmc (every token scored once) or llamacpp (llama-perplexity's chunks: whole text, second "
                  "half of each window scored)")
      ->capture_default_str();
  sub->add_option("--split", a->split, "eval (all but the first 20% of paragraphs), calibration, all")
      ->capture_default_str();
  sub->add_option("--window", a->window, "Tokens per scoring window, BOS included")->capture_default_str();
  sub->add_option("--max-tokens", a->max_tokens, "Score at most this many tokens (0: all)")->capture_default_str();
  sub->add_option("--decode-tokens", a->decode_tokens, "Tokens generated to time decoding")->capture_default_str();
  sub->add_option("--batch", a->batch, "Encoders: sentences per forward pass")->capture_default_str();
  return {sub, [a] { return run_eval(*a); }};
}

Command add_generate(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  CLI::App* sub = app.add_subcommand("generate", "Continue a prompt (greedy, or sampled with --temperature)");
  common_options(sub, *a);
  sub->add_option("--prompt", a->prompt, "Prompt text (empty: start from BOS)");
  sub->add_option("-n,--steps", a->steps, "Tokens to generate")->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_option("--temperature", a->temperature, "0 = greedy")->capture_default_str();
  sub->add_option("--seed", a->seed, "Sampling seed")->capture_default_str();
  sub->add_flag("--chat", a->chat,
                "Wrap --prompt as a user message in the model's chat template (ChatML or Llama-3 headers) and "
                "print the assistant's reply");
  sub->add_option("--system", a->system, "With --chat: the system message (default: the template's own, if any)");
  return {sub, [a] { return run_generate(*a); }};
}

Command add_calibrate(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  a->split = "calibration";
  CLI::App* sub = app.add_subcommand("calibrate", "Record per-input-channel activation statistics of every linear "
                                                 "layer (for convert --calibration)");
  common_options(sub, *a);
  sub->add_option("--text", a->text, "UTF-8 text; paragraphs separated by blank lines")->required();
  sub->add_option("-o,--output", a->output, "Output statistics file (written atomically)")->required();
  sub->add_option("--format", a->format,
                  "auto (JSON for a name ending in .json, else binary), json, binary (for --gram at real size)")
      ->capture_default_str();
  sub->add_flag("--force", a->force, "Replace an existing output that is not a regular file");
  sub->add_option("--split", a->split, "calibration (first 20% of paragraphs), eval, all")->capture_default_str();
  sub->add_option("--window", a->window, "Tokens per window, BOS included")->capture_default_str();
  sub->add_option("--max-tokens", a->max_tokens, "Use at most this many tokens (0: all)")->capture_default_str();
  sub->add_flag("--gram", a->gram, "Also record each layer's input Gram matrix (K*(K+1)/2 values, K <= " +
                                       std::to_string(kMaxGramChannels) +
                                       "): error-compensating search=weighted quantization");
  sub->add_option("--dp-clip", a->dp_clip, "Private calibration: clip every activation row to this L2 norm");
  sub->add_option("--dp-max-doc-tokens", a->dp_max_doc_tokens, "Private calibration: tokens kept per document");
  sub->add_option("--dp-epsilon", a->dp_epsilon, "Private calibration: Gaussian noise for this epsilon in (0, 1) "
                                                 "per document (0: clipping only)");
  sub->add_option("--dp-delta", a->dp_delta, "Private calibration: delta (default 1e-5)");
  sub->add_option("--dp-seed", a->dp_seed, "Noise seed for tests (default: unpredictable)");
  return {sub, [a] { return run_calibrate(*a); }};
}

}  // namespace slmc::cli
