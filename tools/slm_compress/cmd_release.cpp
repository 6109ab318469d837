// slm-compress release: one .slm per device profile from one source, evaluated against the fp32
// conversion, gated, with deltas from the previous release, described by a (signed) manifest
// (slmc/fleet/manifest.hpp; docs/FLEET.md §7).
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <optional>
#include <set>

#include "commands.hpp"
#include "common.hpp"
#include "profile.hpp"
#include "slmc/arch/naming.hpp"
#include "slmc/convert/converter.hpp"
#include "slmc/cpu.hpp"
#include "slmc/fleet/delta.hpp"
#include "slmc/fleet/manifest.hpp"
#include "slmc/fleet/signature.hpp"
#include "slmc/format/model_file.hpp"
#include "slmc/io/model_source.hpp"
#include "slmc/io/output.hpp"
#include "slmc/io/safe_input.hpp"
#include "slmc/runtime/eval.hpp"
#include "slmc/version.hpp"

namespace slmc::cli {
namespace {

struct ReleaseArgs {
  std::string source, output, text, previous, sign_key, tokenizer, release = "release";
  std::vector<std::string> profiles;
  double max_kl = -1, max_dppl = -1;
  int64_t max_tokens = 4096, window = 256;
  int level = 19, threads = 0;
  bool json = false, force = false;
};

std::string base_name(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const size_t slash = p.find_last_of('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

std::string dir_name(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

/// Names used inside file names: letters, digits, '.', '_' and '-' only.
bool is_safe_name(const std::string& s) {
  if (s.empty() || s == "." || s == "..") return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

std::string sha256_hex_of(const std::string& path, uint64_t* size) {
  auto d = sha256_of_file(path, size);
  if (!d.ok()) return {};
  static const char kHex[] = "0123456789abcdef";
  std::string s;
  for (uint8_t b : *d) {
    s += kHex[b >> 4];
    s += kHex[b & 15];
  }
  return s;
}

/// What `convert --profile P [--tokenizer T]` does to the options (cmd_convert.cpp).
Result<ConvertOptions> profile_options(const DeviceProfile& profile, const ModelSource& source,
                                       const std::string& tokenizer, int threads) {
  Result<Recipe> recipe = load_recipe(profile.recipe.empty() ? "w4" : profile.recipe);
  if (!recipe.ok()) return recipe.status();
  size_t position = 0;
  for (const std::string& rule : profile.rules) SLMC_RETURN_IF_ERROR(add_rule(*recipe, rule, position++));
  if (profile.row_layout != RowLayout::kRows) apply_row_layout(*recipe, profile.row_layout);
  ConvertOptions opts;
  opts.recipe = *recipe;
  opts.num_threads = threads;
  opts.max_size = profile.memory_budget;
  opts.metadata["slmc.profile"] = MetaValue::json(profile.json);
  opts.metadata["slmc.profile.name"] = MetaValue::string(profile.name);
  if (!tokenizer.empty()) {
    int64_t rows = 0;  // the token embedding's rows bound the vocabulary
    for (const SourceTensor& t : source.tensors()) {
      if (tensor_role(t.name) == TensorRole::kEmbedding && t.shape.rank() == 2 &&
          t.name.find("position") == std::string::npos && t.name.find("wpe") == std::string::npos &&
          t.name.find("token_type") == std::string::npos) {
        rows = t.shape.rows();
        break;
      }
    }
    SLMC_ASSIGN_OR_RETURN(auto tok, Tokenizer::load(tokenizer, rows));
    opts.tokenizer = tok->data();
  }
  return opts;
}

int run_release(const ReleaseArgs& a) {
  // --- everything that can be checked before the work ------------------------------------------
  if (a.profiles.empty()) return fail_usage("release: give at least one --profile");
  if (!is_safe_name(a.release)) {
    return fail_usage("--release '" + a.release + "': use letters, digits, '.', '_' and '-' (it names files)");
  }
  if (a.level < 1 || a.level > 19) return fail_usage("--level " + std::to_string(a.level) + ": valid: 1..19");
  for (double v : {a.max_kl, a.max_dppl}) {
    if (std::isnan(v) || std::isinf(v)) return fail_usage("--max-kl / --max-dppl must be finite numbers");
  }
  if ((a.max_kl >= 0 || a.max_dppl >= 0) && a.text.empty()) {
    return fail_usage("--max-kl and --max-dppl need --text (the evaluation text)");
  }
  if (a.window < 2 || a.max_tokens < 0) return fail_usage("--window must be >= 2 and --max-tokens >= 0");
  std::vector<DeviceProfile> profiles;
  std::set<std::string> names;
  for (const std::string& p : a.profiles) {
    auto prof = load_profile(p);
    if (!prof.ok()) return fail(prof.status());
    if (!is_safe_name(prof->name)) return fail_usage("profile '" + prof->name + "': its name cannot name a file");
    if (!names.insert(prof->name).second) return fail_usage("profile '" + prof->name + "' is given twice");
    profiles.push_back(*prof);
  }
  std::optional<PrivateKey> key;
  if (!a.sign_key.empty()) {
    auto k = load_private_key(a.sign_key);
    if (!k.ok()) return fail(k.status());
    key = *k;
  }
  std::optional<ManifestCheck> previous;
  if (!a.previous.empty()) {
    // The previous release's files must be what its manifest says before deltas rest on them.
    auto prev = verify_manifest(a.previous, nullptr);
    if (!prev.ok()) return fail(prev.status());
    previous = *prev;
  }
  std::string text;
  if (!a.text.empty()) {
    auto t = read_input_file(a.text);
    if (!t.ok()) return fail(t.status());
    text = std::move(*t);
  }
  auto source = open_model(a.source);
  if (!source.ok()) return fail(source.status());
  {
    std::vector<std::string> inputs{a.source, a.text, a.previous, a.sign_key, a.tokenizer};
    for (const SourceFileInfo& f : (*source)->files()) inputs.push_back(f.path);
    if (Status s = check_output_path(a.output, inputs, OutputKind::kDirectory, a.force); !s.ok()) {
      return fail_usage(s.message());
    }
  }
  auto dir = AtomicDirectory::create(a.output, a.force);
  if (!dir.ok()) return fail(dir.status());
  const std::string tmp = dir->path();

  // --- one .slm per profile -------------------------------------------------------------------
  Json entries = Json::array();
  std::vector<std::string> gate_failures;
  std::vector<std::string> model_paths;
  for (const DeviceProfile& prof : profiles) {
    auto opts = profile_options(prof, **source, a.tokenizer, a.threads);
    if (!opts.ok()) return fail(opts.status().with_context("profile '" + prof.name + "'"));
    Progress progress("release " + prof.name);
    opts->progress = [&](size_t done, size_t total, const std::string& name) { progress.update(done, total, name); };
    const std::string file = prof.name + ".slm";
    auto report = convert_model(**source, a.source, tmp + "/" + file, *opts);
    if (!report.ok()) return fail(report.status().with_context("profile '" + prof.name + "'"));
    for (const std::string& g : report->gate_failures) gate_failures.push_back("profile '" + prof.name + "': " + g);
    model_paths.push_back(tmp + "/" + file);
    Json e;
    e["profile"] = prof.name;
    e["isa"] = prof.isa;
    e["activation_mode"] = prof.activation_mode;
    e["model"] = {{"file", file}, {"size", report->file_size}};
    e["recipe"] = Json::parse(report->recipe_json);
    e["bits_per_weight"] = json_number(report->bits_per_weight);
    e["gates"] = {{"max_size", prof.memory_budget ? Json(*prof.memory_budget) : Json(nullptr)},
                  {"max_kl", a.max_kl >= 0 ? Json(a.max_kl) : Json(nullptr)},
                  {"max_delta_ppl_percent", a.max_dppl >= 0 ? Json(a.max_dppl) : Json(nullptr)}};
    entries.push_back(e);
  }
  if (!gate_failures.empty()) {
    for (const std::string& g : gate_failures) std::cerr << "slm-compress: gate exceeded: " << terminal_safe(g) << "\n";
    std::cerr << "slm-compress: release failed; nothing written at " << terminal_safe(a.output) << "\n";
    return kExitGate;
  }

  // --- quality (and speed where the profile's ISA runs here) against the fp32 conversion -------
  Json eval_json = nullptr;
  if (!a.text.empty()) {
    const std::string ref_path = tmp + "/.reference-fp32.slm";
    auto fp32 = load_recipe("fp32");
    if (!fp32.ok()) return fail(fp32.status());
    DeviceProfile none;
    auto ro = profile_options(none, **source, a.tokenizer, a.threads);
    if (!ro.ok()) return fail(ro.status());
    ConvertOptions ref_opts = *ro;
    ref_opts.recipe = *fp32;
    ref_opts.max_size.reset();
    ref_opts.metadata.clear();
    auto ref_report = convert_model(**source, a.source, ref_path, ref_opts);
    if (!ref_report.ok()) return fail(ref_report.status().with_context("the fp32 reference"));
    LlamaOptions lo;
    lo.num_threads = a.threads;
    auto reference = LlamaModel::load(ref_path, lo);
    if (!reference.ok()) return fail(reference.status().with_context("the fp32 reference"));
    const TokenizerData& td = (*reference)->file().header().tokenizer;
    if (td.empty()) {
      return fail(make_error(ErrorCode::kNotFound, a.source + ": no tokenizer to evaluate with: pass --tokenizer"));
    }
    auto tok = Tokenizer::create(td, a.source);
    if (!tok.ok()) return fail(tok.status());
    const std::vector<int32_t> tokens = protocol_tokens(**tok, text, TextSplit::kEvaluation, a.max_tokens);
    if (tokens.size() < 2) {
      return fail(make_error(ErrorCode::kInvalidFormat, a.text + ": the eval split holds " +
                                                            std::to_string(tokens.size()) + " tokens; need at least 2"));
    }
    uint64_t text_size = 0;
    eval_json = {{"text", base_name(a.text)},
                 {"text_sha256", sha256_hex_of(a.text, &text_size)},
                 {"split", "eval"},
                 {"tokens", tokens.size()},
                 {"window", a.window},
                 {"reference", "fp32 conversion of the source"},
                 {"reference_perplexity", nullptr}};
    EvalOptions eo;
    eo.window = std::min<int64_t>(a.window, (*reference)->config().context);
    eo.bos = td.add_bos ? (*tok)->bos() : -1;
    eo.decode_tokens = 32;
    for (size_t i = 0; i < profiles.size(); ++i) {
      const DeviceProfile& prof = profiles[i];
      auto model = LlamaModel::load(model_paths[i], lo);
      if (!model.ok()) return fail(model.status());
      // Speed only natively: the profile's ISA compiled in and runnable on this CPU, forced for
      // the run; anything else is recorded as not measured (never from an emulator).
      const std::optional<Isa> isa = isa_from_name(prof.isa);
      const auto& compiled = compiled_isas();
      const bool native = isa && cpu_supports(*isa) &&
                          std::find(compiled.begin(), compiled.end(), *isa) != compiled.end();
      auto run = [&]() -> Result<EvalResult> {
        if (!native) return evaluate(**model, reference->get(), tokens, eo);
        ScopedIsaOverride force_isa(*isa);
        return evaluate(**model, reference->get(), tokens, eo);
      };
      Result<EvalResult> r = run();
      if (!r.ok()) return fail(r.status().with_context("profile '" + prof.name + "'"));
      const double dppl = 100.0 * (r->perplexity / r->reference_perplexity - 1.0);
      eval_json["reference_perplexity"] = r->reference_perplexity;
      Json& e = entries[i];
      e["quality"] = {{"kl", r->kl},
                      {"perplexity", r->perplexity},
                      {"delta_ppl_percent", dppl},
                      {"top1_agreement", r->top1_agreement}};
      if (native) {
        e["speed"] = {{"measured", true}, {"isa", prof.isa}, {"decode_tokens_per_s", r->decode_tokens_per_s},
                      {"how", "eval decode timing, 32 tokens, this machine"}};
      } else {
        e["speed"] = {{"measured", false},
                      {"isa", prof.isa},
                      {"reason", "the profile's ISA '" + prof.isa + "' does not run natively on this machine"}};
      }
      if (a.max_kl >= 0 && !(r->kl <= a.max_kl)) {
        gate_failures.push_back("profile '" + prof.name + "': KL " + fmt("%.6g", r->kl) + " nats/token > --max-kl " +
                                fmt("%.6g", a.max_kl));
      }
      if (a.max_dppl >= 0 && !(dppl <= a.max_dppl)) {
        gate_failures.push_back("profile '" + prof.name + "': delta perplexity " + fmt("%.4g", dppl) +
                                " % > --max-dppl " + fmt("%.4g", a.max_dppl) + " %");
      }
    }
    reference->reset();
    ::unlink(ref_path.c_str());
  } else {
    for (Json& e : entries) {
      e["quality"] = nullptr;
      e["speed"] = {{"measured", false}, {"reason", "no --text given"}};
    }
  }
  if (!gate_failures.empty()) {
    for (const std::string& g : gate_failures) std::cerr << "slm-compress: gate exceeded: " << terminal_safe(g) << "\n";
    std::cerr << "slm-compress: release failed; nothing written at " << terminal_safe(a.output) << "\n";
    return kExitGate;
  }

  // --- hashes, format versions, deltas from the previous release, signatures -------------------
  for (size_t i = 0; i < profiles.size(); ++i) {
    Json& e = entries[i];
    const std::string file = e["model"]["file"];
    uint64_t size = 0;
    e["model"]["sha256"] = sha256_hex_of(model_paths[i], &size);
    auto mf = ModelFile::open(model_paths[i]);
    if (!mf.ok()) return fail(mf.status());
    const int major = (*mf)->header().format_major, minor = (*mf)->header().format_minor;
    e["format_version"] = std::to_string(major) + "." + std::to_string(minor);
    e["min_library_version"] = min_library_version_for_format(major, minor);
    e["delta"] = nullptr;
    if (previous) {
      for (const ManifestFile& pf : previous->files) {
        if (pf.profile != profiles[i].name || pf.role != "model") continue;
        const std::string prev_release = is_safe_name(previous->release) ? previous->release : "previous";
        const std::string dfile = profiles[i].name + ".from-" + prev_release + ".slmdelta";
        DeltaOptions dopt;
        dopt.zstd_level = a.level;
        DeltaStats ds;
        const std::string base = dir_name(a.previous) + "/" + pf.file;
        if (Status s = write_delta(base, model_paths[i], tmp + "/" + dfile, dopt, &ds); !s.ok()) {
          return fail(s.with_context("profile '" + profiles[i].name + "'"));
        }
        uint64_t dsize = 0;
        e["delta"] = {{"file", dfile},
                      {"size", ds.delta_bytes},
                      {"sha256", sha256_hex_of(tmp + "/" + dfile, &dsize)},
                      {"from_release", previous->release},
                      {"base_file", pf.file},
                      {"base_sha256", pf.sha256},
                      {"signature", nullptr}};
      }
    }
    if (key) {
      auto s = sign_file(model_paths[i], *key, tmp + "/" + file + ".sig");
      if (!s.ok()) return fail(s.status());
      e["model"]["signature"] = file + ".sig";
      if (!e["delta"].is_null()) {
        const std::string dfile = e["delta"]["file"];
        auto ds = sign_file(tmp + "/" + dfile, *key, tmp + "/" + dfile + ".sig");
        if (!ds.ok()) return fail(ds.status());
        e["delta"]["signature"] = dfile + ".sig";
      }
    } else {
      e["model"]["signature"] = nullptr;
    }
  }
  Json sources = Json::array();
  for (const SourceFileInfo& f : (*source)->files()) {
    sources.push_back({{"name", f.name}, {"sha256", f.sha256}, {"size", f.size},
                       {"format", std::string(source_format_name(f.format))}});
  }
  Json manifest;
  manifest["format"] = kManifestFormat;
  manifest["version"] = kManifestVersion;
  manifest["release"] = a.release;
  manifest["producer"] = "slm-compress";
  manifest["producer_version"] = kVersionString;
  manifest["source"] = {{"name", base_name(a.source)}, {"files", sources}};
  manifest["evaluation"] = eval_json;
  manifest["previous"] = previous ? Json{{"release", previous->release}, {"manifest", base_name(a.previous)}}
                                  : Json(nullptr);
  manifest["signed_by"] = key ? Json(key->public_key.key_id()) : Json(nullptr);
  manifest["profiles"] = entries;
  const std::string manifest_text = manifest.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
  if (Status s = write_new_file(tmp + "/manifest.json", manifest_text); !s.ok()) return fail(s);
  if (key) {
    auto s = sign_file(tmp + "/manifest.json", *key, tmp + "/manifest.json.sig");
    if (!s.ok()) return fail(s.status());
  }
  // Nothing appears at DIR before everything above succeeded.
  if (Status s = dir->commit(); !s.ok()) return fail(s);

  if (a.json) {
    std::cout << manifest.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  } else {
    std::cout << "wrote " << terminal_safe(a.output) << "/manifest.json" << (key ? " (signed)" : "") << ": release "
              << a.release << ", " << profiles.size() << " profile(s)\n";
    for (const Json& e : entries) {
      std::cout << "  " << e["profile"].get<std::string>() << ": " << e["model"]["file"].get<std::string>() << " "
                << e["model"]["size"].get<uint64_t>() << " bytes";
      if (!e["quality"].is_null()) {
        std::cout << ", KL " << fmt("%.5f", e["quality"]["kl"].get<double>()) << ", dPPL "
                  << fmt("%+.2f%%", e["quality"]["delta_ppl_percent"].get<double>());
      }
      if (e["speed"]["measured"].get<bool>()) {
        std::cout << ", decode " << fmt("%.0f", e["speed"]["decode_tokens_per_s"].get<double>()) << " tok/s";
      }
      if (!e["delta"].is_null()) std::cout << ", delta " << e["delta"]["size"].get<uint64_t>() << " bytes";
      std::cout << "\n";
    }
  }
  return kExitOk;
}

}  // namespace

Command add_release(CLI::App& app) {
  auto a = std::make_shared<ReleaseArgs>();
  CLI::App* sub = app.add_subcommand("release", "Convert one .slm per device profile, evaluate and gate them, "
                                                "and write a release directory with a (signed) manifest");
  sub->add_option("source", a->source, "Source model (as for convert)")->required();
  sub->add_option("--profile", a->profiles, "Device profile, built-in name or JSON file (repeatable)")->required();
  sub->add_option("-o,--output", a->output, "The release directory to write (appears only when complete)")->required();
  sub->add_option("--text", a->text, "Evaluation text: KL and delta perplexity against the fp32 conversion");
  sub->add_option("--max-tokens", a->max_tokens, "Evaluation tokens (default 4096; 0: the whole eval split)");
  sub->add_option("--window", a->window, "Evaluation window (default 256)");
  sub->add_option("--max-kl", a->max_kl, "Gate: KL (nats/token) of every profile; exit 4 above it");
  sub->add_option("--max-dppl", a->max_dppl, "Gate: perplexity increase in percent; exit 4 above it");
  sub->add_option("--previous", a->previous, "The previous release's manifest: write a delta per profile from it");
  sub->add_option("--sign", a->sign_key, "Sign every file and the manifest with this private key");
  sub->add_option("--tokenizer", a->tokenizer, "Tokenizer to store in every file (as convert --tokenizer)");
  sub->add_option("--release", a->release, "The release's name (letters, digits, '.', '_', '-'; default 'release')");
  sub->add_option("--level", a->level, "zstd level of the deltas, 1..19 (default 19)");
  sub->add_option("--threads", a->threads, "Threads (default: all cores)")->check(CLI::NonNegativeNumber);
  sub->add_flag("--json", a->json, "Print the manifest to stdout");
  sub->add_flag("--force", a->force, "Replace an existing release directory");
  return {sub, [a] { return run_release(*a); }};
}

}  // namespace slmc::cli
