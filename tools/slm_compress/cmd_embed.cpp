// slm-compress embed: sentence embeddings from an encoder .slm file (BERT family), and the encoder
// half of `eval` (run_encoder_eval, called by cmd_eval.cpp when the model is an encoder).
#include <iomanip>
#include <iostream>
#include <sstream>

#include "commands.hpp"
#include "common.hpp"
#include "slmc/io/safe_input.hpp"
#include "slmc/io/model_source.hpp"
#include "slmc/runtime/bert.hpp"

namespace slmc::cli {
namespace {

struct EmbedArgs {
  std::string model, text, prompt, act = "auto";
  bool prompt_given = false, json = false, no_verify = false;
  int64_t batch = 32;
  int threads = 0;
};

Result<BertOptions> bert_options(const std::string& act, int threads, bool no_verify) {
  BertOptions o;
  o.num_threads = threads;
  o.verify_checksums = !no_verify;
  const std::optional<ActMode> mode = act_mode_from_name(act);
  if (!mode) return make_error(ErrorCode::kInvalidArgument, "--act '" + act + "': valid: auto, fp32, int8, int8-row");
  o.act_mode = *mode;
  return o;
}

int run_embed(const EmbedArgs& a) {
  if (a.text.empty() == !a.prompt_given) return fail_usage("give exactly one of --text FILE and --prompt S");
  if (a.batch <= 0) return fail_usage("--batch must be positive");
  auto options = bert_options(a.act, a.threads, a.no_verify);
  if (!options.ok()) return fail_usage(options.status().message());
  std::vector<std::string> texts;
  if (a.prompt_given) {
    texts.push_back(a.prompt);
  } else {
    auto lines = read_sentence_lines(a.text);
    if (!lines.ok()) return fail(lines.status());
    texts = std::move(*lines);
  }
  auto model = BertModel::load(a.model, *options);
  if (!model.ok()) return fail(model.status());
  auto tok = encoder_tokenizer(**model);
  if (!tok.ok()) return fail(tok.status());
  std::vector<float> embeddings;
  EmbedTimings t;
  if (Status s = embed_texts(**model, **tok, texts, a.batch, embeddings, &t); !s.ok()) return fail(s);
  const int64_t dim = (*model)->config().dim;
  const double per_s = t.seconds > 0 ? static_cast<double>(texts.size()) / t.seconds : 0.0;
  if (a.json) {
    // Shortest round-trip text of each float (%.9g), so the values read back exactly.
    std::ostringstream out;
    out << "{\"embeddings\": [";
    char buf[32];
    for (size_t i = 0; i < texts.size(); ++i) {
      out << (i ? ",\n  [" : "\n  [");
      for (int64_t k = 0; k < dim; ++k) {
        std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(embeddings[i * dim + k]));
        out << (k ? "," : "") << buf;
      }
      out << "]";
    }
    Json rest{{"model", a.model},
              {"sentences", texts.size()},
              {"dim", dim},
              {"pooling", pooling_name((*model)->config().pooling)},
              {"normalized", (*model)->config().normalize},
              {"batch", a.batch},
              {"threads", a.threads},
              {"tokens", t.tokens},
              {"seconds", t.seconds},
              {"sentences_per_s", per_s},
              {"latency_ms", t.batch_seconds_mean * 1e3},
              {"ms_per_sentence", per_s > 0 ? 1e3 / per_s : 0.0}};
    std::string tail = rest.dump();
    out << "\n], " << tail.substr(1) << "\n";
    std::cout << out.str();
  } else {
    for (size_t i = 0; i < texts.size(); ++i) {
      for (int64_t k = 0; k < dim; ++k) {
        std::cout << (k ? " " : "") << std::setprecision(6) << embeddings[i * dim + k];
      }
      std::cout << "\n";
    }
    std::cerr << texts.size() << " sentences, " << t.tokens << " tokens in " << fmt("%.3f", t.seconds) << " s: "
              << fmt("%.1f", per_s) << " sentences/s, " << fmt("%.2f", t.batch_seconds_mean * 1e3)
              << " ms per batch of up to " << a.batch << "\n";
  }
  return kExitOk;
}

}  // namespace

Result<std::vector<std::string>> read_sentence_lines(const std::string& path) {
  SLMC_ASSIGN_OR_RETURN(const std::string text, read_input_file(path));
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    lines.push_back(line);
  }
  if (lines.empty()) return make_error(ErrorCode::kInvalidFormat, path + ": holds no non-empty line (one input per line)");
  return lines;
}

bool is_encoder_file(const std::string& path) {
  auto file = ModelFile::open(path);
  if (!file.ok()) return false;
  auto it = (*file)->header().architecture.find(kKeyArchitecture);
  return it != (*file)->header().architecture.end() && it->second.text == "bert";
}

int run_encoder_eval(const std::string& model_path, const std::string& reference_path, const std::string& text_path,
                     const std::string& act, int threads, bool no_verify, int64_t batch, bool json) {
  if (reference_path.empty()) {
    return fail_usage("eval of an encoder needs --reference (e.g. the fp32 conversion) to compare embeddings");
  }
  if (batch <= 0) return fail_usage("--batch must be positive");
  auto options = bert_options(act, threads, no_verify);
  if (!options.ok()) return fail_usage(options.status().message());
  auto texts = read_sentence_lines(text_path);
  if (!texts.ok()) return fail(texts.status());
  if (texts->size() < 2) {
    return fail(make_error(ErrorCode::kInvalidFormat, text_path + ": holds 1 sentence; encoder eval needs at least 2 "
                                                                  "(nearest-neighbour agreement)"));
  }
  auto model = BertModel::load(model_path, *options);
  if (!model.ok()) return fail(model.status());
  auto reference = BertModel::load(reference_path, *options);
  if (!reference.ok()) return fail(reference.status());
  if ((*reference)->config().dim != (*model)->config().dim) {
    return fail(make_error(ErrorCode::kInvalidArgument, reference_path + ": embeddings of " +
                                                            std::to_string((*reference)->config().dim) +
                                                            " values, the model's have " +
                                                            std::to_string((*model)->config().dim)));
  }
  auto tok = encoder_tokenizer(**model);
  if (!tok.ok()) return fail(tok.status());
  std::vector<float> mine, theirs;
  EmbedTimings t, rt;
  if (Status s = embed_texts(**model, **tok, *texts, batch, mine, &t); !s.ok()) return fail(s);
  if (Status s = embed_texts(**reference, **tok, *texts, batch, theirs, &rt); !s.ok()) return fail(s);
  const int64_t n = static_cast<int64_t>(texts->size());
  const EncoderEvalResult r = compare_embeddings(mine, theirs, n, (*model)->config().dim);
  const double per_s = t.seconds > 0 ? static_cast<double>(n) / t.seconds : 0.0;
  const double ref_per_s = rt.seconds > 0 ? static_cast<double>(n) / rt.seconds : 0.0;
  if (json) {
    Json j{{"model", model_path},
           {"reference", reference_path},
           {"text", text_path},
           {"kind", "encoder"},
           {"sentences", n},
           {"tokens", t.tokens},
           {"mean_cosine", r.mean_cosine},
           {"min_cosine", r.min_cosine},
           {"worst_sentence", r.worst_sentence},
           {"neighbour_agreement", r.neighbour_agreement},
           {"batch", batch},
           {"sentences_per_s", per_s},
           {"reference_sentences_per_s", ref_per_s}};
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << "sentences            " << n << " (" << t.tokens << " tokens)\n"
              << "mean cosine          " << fmt("%.6f", r.mean_cosine) << "\n"
              << "min cosine           " << fmt("%.6f", r.min_cosine) << " (line " << r.worst_sentence + 1
              << " of the non-empty lines)\n"
              << "neighbour agreement  " << fmt("%.2f", 100 * r.neighbour_agreement) << " %\n"
              << "sentences/s          " << fmt("%.1f", per_s) << " (reference " << fmt("%.1f", ref_per_s)
              << "), batch " << batch << "\n";
  }
  return kExitOk;
}

Command add_embed(CLI::App& app) {
  auto a = std::make_shared<EmbedArgs>();
  CLI::App* sub = app.add_subcommand("embed", "Sentence embeddings with an encoder model (BERT family)");
  sub->add_option("model", a->model, ".slm file of an encoder (e.g. all-MiniLM-L6-v2)")->required();
  sub->add_option("--text", a->text, "UTF-8 file, one input per line (empty lines skipped)");
  sub->add_option("--prompt", a->prompt, "One input text")->each([a](const std::string&) { a->prompt_given = true; });
  sub->add_option("--batch", a->batch, "Sentences per forward pass")->capture_default_str();
  sub->add_option("--threads", a->threads, "Threads (default: all cores)")->check(CLI::NonNegativeNumber);
  sub->add_option("--act", a->act,
                  "Activations of quantized layers: auto (each encoding's default), fp32, int8")
      ->capture_default_str();
  sub->add_flag("--json", a->json,
                "Print {\"embeddings\": [[...], ...], ...timings} (default: one line of numbers per input)");
  sub->add_flag("--no-verify", a->no_verify, "Skip the checksum pass over the model at load");
  return {sub, [a] { return run_embed(*a); }};
}

}  // namespace slmc::cli
