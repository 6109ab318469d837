// slm-compress release: one .slm per device profile from one source, evaluated against the fp32
// conversion, gated, with deltas from the previous release, described by a (signed) manifest
// (slmc/fleet/manifest.hpp; docs/FLEET.md §7).
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <memory>
#include <optional>
#include <set>

#include "commands.hpp"
#include "common.hpp"
#include "profile.hpp"
#include "slmc/convert/converter.hpp"
#include "slmc/cpu.hpp"
#include "slmc/fleet/delta.hpp"
#include "slmc/fleet/manifest.hpp"
#include "slmc/fleet/signature.hpp"
#include "slmc/format/model_file.hpp"
#include "slmc/io/hash.hpp"
#include "slmc/io/model_source.hpp"
#include "slmc/io/output.hpp"
#include "slmc/io/safe_input.hpp"
#include "slmc/kernels/linear.hpp"
#include "slmc/parallel.hpp"
#include "slmc/runtime/e2e.hpp"
#include "slmc/runtime/eval.hpp"
#include "slmc/version.hpp"

namespace slmc::cli {
namespace {

struct ReleaseArgs {
  std::string source, output, text, previous, sign_key, tokenizer, release = "release";
  std::vector<std::string> profiles;
  // Gate overrides: empty = the profile's gate, "off" = none, else the bound for every profile.
  std::string max_size, max_kl, max_dppl, min_tok_s;
  int64_t max_tokens = 4096, window = 256;
  int64_t prompt_tokens = 512, gen_tokens = 128;  // speed: bench --e2e's pp and tg tests
  int repetitions = 3;
  int level = 19, threads = 0;
  bool json = false, force = false;
};

/// A gate override: nullopt = not given (the profile's gate applies); a value = the bound, where
/// an empty inner optional means "off" (no gate).
using GateOverride = std::optional<std::optional<double>>;

Result<GateOverride> parse_gate_option(const std::string& text, const char* option) {
  if (text.empty()) return GateOverride{};
  if (text == "off") return GateOverride{std::optional<double>{}};
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size() && std::isfinite(v) && v >= 0) return GateOverride{v};
  } catch (const std::exception&) {
  }
  return make_error(ErrorCode::kInvalidArgument,
                    std::string(option) + " '" + text + "': expected a finite number >= 0, or 'off'");
}

/// The gates a profile is released under: its own, each overridden by the command's option.
ProfileGates effective_gates(const DeviceProfile& p, const std::optional<std::optional<uint64_t>>& max_size,
                             const GateOverride& max_kl, const GateOverride& max_dppl, const GateOverride& min_tps) {
  ProfileGates g = p.gates;
  g.max_size = max_size ? *max_size : p.size_gate();
  if (max_kl) g.max_kl = *max_kl;
  if (max_dppl) g.max_delta_ppl = *max_dppl;
  if (min_tps) g.min_decode_tps = *min_tps;
  return g;
}

Json optional_json(const std::optional<double>& v) { return v ? Json(*v) : Json(nullptr); }

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

int run_release(const ReleaseArgs& a) {
  // --- everything that can be checked before the work ------------------------------------------
  if (a.profiles.empty()) return fail_usage("release: give at least one --profile");
  if (!is_safe_name(a.release)) {
    return fail_usage("--release '" + a.release + "': use letters, digits, '.', '_' and '-' (it names files)");
  }
  if (a.level < 1 || a.level > 19) return fail_usage("--level " + std::to_string(a.level) + ": valid: 1..19");
  if (a.window < 2 || a.max_tokens < 0) return fail_usage("--window must be >= 2 and --max-tokens >= 0");
  if (a.prompt_tokens < 0 || a.gen_tokens < 0) return fail_usage("--prompt-tokens and --gen-tokens must be >= 0");
  if (a.repetitions < 0 || a.repetitions > 1000) return fail_usage("--repetitions must be in 0..1000 (0: no speed)");
  std::optional<std::optional<uint64_t>> max_size;
  if (a.max_size == "off") {
    max_size = std::optional<uint64_t>{};
  } else if (!a.max_size.empty()) {
    auto v = parse_size(a.max_size);
    if (!v) return fail_usage("--max-size '" + a.max_size + "': expected bytes (e.g. 20MB, 1.5GiB) or 'off'");
    max_size = std::optional<uint64_t>{*v};
  }
  GateOverride over[3];
  const char* over_names[3] = {"--max-kl", "--max-dppl", "--min-tok-s"};
  const std::string* over_text[3] = {&a.max_kl, &a.max_dppl, &a.min_tok_s};
  for (int i = 0; i < 3; ++i) {
    auto g = parse_gate_option(*over_text[i], over_names[i]);
    if (!g.ok()) return fail_usage(g.status().message());
    over[i] = *g;
  }
  std::vector<DeviceProfile> profiles;
  std::vector<ProfileGates> gates;
  std::set<std::string> names;
  for (const std::string& p : a.profiles) {
    auto prof = load_profile(p);
    if (!prof.ok()) return fail(prof.status());
    if (!is_safe_name(prof->name)) return fail_usage("profile '" + prof->name + "': its name cannot name a file");
    if (!names.insert(prof->name).second) return fail_usage("profile '" + prof->name + "' is given twice");
    const ProfileGates g = effective_gates(*prof, max_size, over[0], over[1], over[2]);
    // A gate that cannot be checked must not pass silently.
    if ((g.max_kl || g.max_delta_ppl) && a.text.empty()) {
      return fail_usage("profile '" + prof->name + "': its KL / delta-perplexity gate needs --text (the evaluation "
                        "text), or --max-kl off / --max-dppl off");
    }
    if (g.min_decode_tps && (a.gen_tokens == 0 || a.repetitions == 0)) {
      return fail_usage("profile '" + prof->name + "': its min decode tok/s gate needs --gen-tokens > 0 and "
                        "--repetitions > 0, or --min-tok-s off");
    }
    if (!prof->activation_mode.empty() && !act_mode_from_name(prof->activation_mode)) {
      return fail_usage("profile '" + prof->name + "': activation_mode '" + prof->activation_mode + "'");
    }
    profiles.push_back(*prof);
    gates.push_back(g);
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
  TokenizerData tokenizer;
  if (!a.tokenizer.empty()) {
    auto t = load_tokenizer_for(**source, a.tokenizer);
    if (!t.ok()) return fail(t.status());
    tokenizer = std::move(*t);
  }
  auto dir = AtomicDirectory::create(a.output, a.force);
  if (!dir.ok()) return fail(dir.status());
  const std::string tmp = dir->path();
  auto gate_exit = [&](const std::vector<std::string>& failures) {
    for (const std::string& g : failures) std::cerr << "slm-compress: gate exceeded: " << terminal_safe(g) << "\n";
    std::cerr << "slm-compress: release failed; nothing written at " << terminal_safe(a.output) << "\n";
    return kExitGate;
  };

  // --- one .slm per profile, as convert --profile P writes it (profile_convert_options) ---------
  Json entries = Json::array();
  std::vector<std::string> gate_failures;
  std::vector<std::string> model_paths;
  for (size_t i = 0; i < profiles.size(); ++i) {
    const DeviceProfile& prof = profiles[i];
    auto opts = profile_convert_options(&prof, "", {});
    if (!opts.ok()) return fail(opts.status().with_context("profile '" + prof.name + "'"));
    opts->max_size = gates[i].max_size;
    opts->num_threads = a.threads;
    opts->tokenizer = tokenizer;
    Progress progress("release " + prof.name);
    opts->progress = [&](size_t done, size_t total, const std::string& name) { progress.update(done, total, name); };
    const std::string file = prof.name + ".slm";
    auto report = convert_model(**source, a.source, tmp + "/" + file, *opts);
    if (!report.ok()) return fail(report.status().with_context("profile '" + prof.name + "'"));
    // The converter names its option; say where this release's size gate came from.
    const std::string size_source = max_size ? "--max-size" : prof.gates.max_size ? "max_size_bytes" : "memory_budget_bytes";
    for (std::string g : report->gate_failures) {
      if (const size_t at = g.find("exceeds --max-size"); at != std::string::npos) {
        g.replace(at, 18, "exceeds " + size_source);
      }
      gate_failures.push_back("profile '" + prof.name + "': " + g);
    }
    model_paths.push_back(tmp + "/" + file);
    Json e;
    e["profile"] = prof.name;
    e["isa"] = prof.isa;
    e["activation_mode"] = prof.activation_mode;
    e["model"] = {{"file", file}, {"size", report->file_size}};
    e["recipe"] = Json::parse(report->recipe_json);
    e["bits_per_weight"] = json_number(report->bits_per_weight);
    const ProfileGates& g = gates[i];
    e["gates"] = {{"max_size", g.max_size ? Json(*g.max_size) : Json(nullptr)},
                  {"max_kl", optional_json(g.max_kl)},
                  {"max_delta_ppl_percent", optional_json(g.max_delta_ppl)},
                  {"min_decode_tokens_per_s", optional_json(g.min_decode_tps)},
                  {"unchecked", Json::array()}};
    entries.push_back(e);
  }
  if (!gate_failures.empty()) return gate_exit(gate_failures);

  // --- quality against the fp32 conversion; speed where the profile's ISA runs here -------------
  struct Reference {
    std::unique_ptr<LlamaModel> model;
    std::vector<int32_t> tokens;
    EvalOptions options;
  };
  std::optional<Reference> ref;
  const std::string ref_path = tmp + "/.reference-fp32.slm";
  Json eval_json = nullptr;
  if (!a.text.empty()) {
    auto ro = profile_convert_options(nullptr, "fp32", {});
    if (!ro.ok()) return fail(ro.status());
    ro->num_threads = a.threads;
    ro->tokenizer = tokenizer;
    auto ref_report = convert_model(**source, a.source, ref_path, *ro);
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
    Reference r;
    r.tokens = protocol_tokens(**tok, text, TextSplit::kEvaluation, a.max_tokens);
    if (r.tokens.size() < 2) {
      return fail(make_error(ErrorCode::kInvalidFormat, a.text + ": the eval split holds " +
                                                            std::to_string(r.tokens.size()) + " tokens; need at least 2"));
    }
    r.options.window = std::min<int64_t>(a.window, (*reference)->config().context);
    r.options.bos = td.add_bos ? (*tok)->bos() : -1;
    r.options.decode_tokens = 0;  // speed comes from measure_e2e, as bench --e2e measures it
    r.model = std::move(*reference);
    uint64_t text_size = 0;
    auto text_sha = sha256_file_hex(a.text, &text_size);
    if (!text_sha.ok()) return fail(text_sha.status());
    eval_json = {{"text", base_name(a.text)},
                 {"text_sha256", *text_sha},
                 {"split", "eval"},
                 {"tokens", r.tokens.size()},
                 {"window", a.window},
                 {"reference", "fp32 conversion of the source"},
                 {"reference_perplexity", nullptr}};
    ref = std::move(r);
  }
  const bool want_speed = a.repetitions > 0 && (a.prompt_tokens > 0 || a.gen_tokens > 0);
  const int threads = a.threads > 0 ? a.threads : default_num_threads();
  for (size_t i = 0; i < profiles.size(); ++i) {
    const DeviceProfile& prof = profiles[i];
    Json& e = entries[i];
    // Speed only natively: the profile's ISA compiled in and runnable on this CPU, forced for the
    // run; anything else is recorded as not measured (never from an emulator).
    const std::optional<Isa> isa = isa_from_name(prof.isa);
    const auto& compiled = compiled_isas();
    const bool native =
        isa && cpu_supports(*isa) && std::find(compiled.begin(), compiled.end(), *isa) != compiled.end();
    std::unique_ptr<LlamaModel> model;
    if (ref || (want_speed && native)) {
      LlamaOptions lo;
      lo.num_threads = a.threads;
      lo.act_mode = act_mode_from_name(prof.activation_mode).value_or(ActMode::kAuto);
      auto m = LlamaModel::load(model_paths[i], lo);
      if (!m.ok()) return fail(m.status().with_context("profile '" + prof.name + "'"));
      model = std::move(*m);
    }
    std::optional<ScopedIsaOverride> force_isa;
    if (native) force_isa.emplace(*isa);
    if (ref) {
      Result<EvalResult> r = evaluate(*model, ref->model.get(), ref->tokens, ref->options);
      if (!r.ok()) return fail(r.status().with_context("profile '" + prof.name + "'"));
      const double dppl = 100.0 * (r->perplexity / r->reference_perplexity - 1.0);
      eval_json["reference_perplexity"] = r->reference_perplexity;
      e["quality"] = {{"kl", r->kl},
                      {"perplexity", r->perplexity},
                      {"delta_ppl_percent", dppl},
                      {"top1_agreement", r->top1_agreement}};
      if (gates[i].max_kl && !(r->kl <= *gates[i].max_kl)) {
        gate_failures.push_back("profile '" + prof.name + "': KL " + fmt("%.6g", r->kl) + " nats/token > max_kl " +
                                fmt("%.6g", *gates[i].max_kl));
      }
      if (gates[i].max_delta_ppl && !(dppl <= *gates[i].max_delta_ppl)) {
        gate_failures.push_back("profile '" + prof.name + "': delta perplexity " + fmt("%.4g", dppl) +
                                " % > max_delta_ppl_percent " + fmt("%.4g", *gates[i].max_delta_ppl) + " %");
      }
    } else {
      e["quality"] = nullptr;
    }
    if (want_speed && native) {
      // bench --e2e's measurement (measure_e2e), its tests cut to the model's context.
      E2EOptions so;
      so.prompt_tokens = std::min(a.prompt_tokens, model->config().context);
      so.gen_tokens = std::min(a.gen_tokens, model->config().context);
      so.repetitions = a.repetitions;
      auto sp = measure_e2e(*model, so);
      if (!sp.ok()) return fail(sp.status().with_context("profile '" + prof.name + "': speed"));
      Json speed = {{"measured", true},
                    {"how", "bench --e2e (pp, tg), median of the repetitions, this machine"},
                    {"isa", prof.isa},
                    {"cpu", cpu_features().brand},
                    {"threads", threads},
                    {"activation_mode", prof.activation_mode},
                    {"repetitions", sp->repetitions},
                    {"prompt_tokens", sp->prompt_tokens},
                    {"gen_tokens", sp->gen_tokens},
                    {"prefill_tokens_per_s", sp->prompt_tokens > 0 ? Json(sp->prefill.median) : Json(nullptr)},
                    {"decode_tokens_per_s", sp->gen_tokens > 0 ? Json(sp->decode.median) : Json(nullptr)}};
      if (sp->prompt_tokens > 0) speed["prefill"] = token_rate_json(sp->prefill);
      if (sp->gen_tokens > 0) speed["decode"] = token_rate_json(sp->decode);
      e["speed"] = speed;
      if (gates[i].min_decode_tps && !(sp->decode.median >= *gates[i].min_decode_tps)) {
        gate_failures.push_back("profile '" + prof.name + "': decode " + fmt("%.4g", sp->decode.median) +
                                " tok/s < min_decode_tokens_per_s " + fmt("%.4g", *gates[i].min_decode_tps) +
                                " (bench --e2e tg" + std::to_string(sp->gen_tokens) + ", median of " +
                                std::to_string(sp->repetitions) + ", " + std::to_string(threads) + " threads)");
      }
    } else {
      const std::string reason = !want_speed ? "not requested (--repetitions 0 or no tokens)"
                                             : "the profile's ISA '" + prof.isa + "' does not run natively on this machine";
      e["speed"] = {{"measured", false}, {"isa", prof.isa}, {"reason", reason}};
      if (gates[i].min_decode_tps) {
        e["gates"]["unchecked"].push_back("min_decode_tokens_per_s");
        std::cerr << "slm-compress: warning: profile '" << terminal_safe(prof.name)
                  << "': min decode tok/s gate not checked: " << reason << "\n";
      }
    }
  }
  if (ref) {
    ref->model.reset();
    ::unlink(ref_path.c_str());
  }
  if (!gate_failures.empty()) return gate_exit(gate_failures);

  // --- hashes, format versions, deltas from the previous release, signatures -------------------
  for (size_t i = 0; i < profiles.size(); ++i) {
    Json& e = entries[i];
    const std::string file = e["model"]["file"];
    auto sha = sha256_file_hex(model_paths[i]);
    if (!sha.ok()) return fail(sha.status());
    e["model"]["sha256"] = *sha;
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
        auto dsha = sha256_file_hex(tmp + "/" + dfile);
        if (!dsha.ok()) return fail(dsha.status());
        e["delta"] = {{"file", dfile},
                      {"size", ds.delta_bytes},
                      {"sha256", *dsha},
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
      const Json& sp = e["speed"];
      if (sp["measured"].get<bool>()) {
        if (!sp["prefill_tokens_per_s"].is_null()) {
          std::cout << ", prefill " << fmt("%.0f", sp["prefill_tokens_per_s"].get<double>()) << " tok/s";
        }
        if (!sp["decode_tokens_per_s"].is_null()) {
          std::cout << ", decode " << fmt("%.1f", sp["decode_tokens_per_s"].get<double>()) << " tok/s";
        }
        std::cout << " (" << sp["threads"].get<int>() << " threads)";
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
  sub->add_option("--max-size", a->max_size,
                  "Gate for every profile, overriding the profiles' (gates.max_size_bytes, else "
                  "memory_budget_bytes): bytes (20MB, 1.5GiB), or 'off'; exit 4 above it");
  sub->add_option("--max-kl", a->max_kl,
                  "Gate for every profile, overriding the profiles' gates.max_kl: KL in nats/token, or 'off'; "
                  "exit 4 above it");
  sub->add_option("--max-dppl", a->max_dppl,
                  "Gate for every profile, overriding the profiles' gates.max_delta_ppl_percent: perplexity "
                  "increase in percent, or 'off'; exit 4 above it");
  sub->add_option("--min-tok-s", a->min_tok_s,
                  "Gate for every profile, overriding the profiles' gates.min_decode_tokens_per_s: decode "
                  "tokens/s (bench --e2e median), or 'off'; exit 4 below it; not checked where the profile's "
                  "ISA does not run natively (recorded in the manifest)");
  sub->add_option("--prompt-tokens", a->prompt_tokens, "Speed: prompt length of the prefill test (0: skip it)")
      ->capture_default_str();
  sub->add_option("--gen-tokens", a->gen_tokens, "Speed: tokens of the decode test (0: skip it)")
      ->capture_default_str();
  sub->add_option("--repetitions", a->repetitions, "Speed: timed runs of each test (0: no speed figures)")
      ->capture_default_str();
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
