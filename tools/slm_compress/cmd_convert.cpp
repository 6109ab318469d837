// slm-compress convert: source model -> recipe -> .slm file, with a per-tensor report and gates.
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <memory>

#include "commands.hpp"
#include "common.hpp"
#include "profile.hpp"
#include "slmc/io/output.hpp"
#include "slmc/arch/naming.hpp"
#include "slmc/convert/converter.hpp"
#include "slmc/io/model_source.hpp"
#include "slmc/kernels/linear.hpp"

namespace slmc::cli {
namespace {

struct ConvertArgs {
  std::string input, output, recipe, profile, calibration, max_size, target_size, embeddings, lm_head, tokenizer;
  std::vector<std::string> rules, metadata, act_rules;
  double max_rel_error = -1;
  bool dry_run = false, json = false, force = false;
  int threads = 0;
};


Json report_json(const ConvertReport& r, bool dry_run) {
  Json j;
  j["source"] = r.source;
  j["output"] = dry_run ? Json(nullptr) : Json(r.output);
  j["dry_run"] = dry_run;
  Json tensors = Json::array();
  for (const TensorReport& t : r.tensors) {
    Json tj;
    tj["name"] = t.name;
    tj["shape"] = t.shape;
    tj["encoding"] = t.scheme;
    tj["source_dtype"] = t.source_dtype;
    tj["bytes_in"] = t.bytes_in;
    tj["bytes_out"] = t.bytes_out;
    tj["bits_per_weight"] = json_number(t.bits_per_weight);
    tj["rel_error"] = json_number(t.rel_error);
    tj["sqnr_db"] = json_number(t.sqnr_db);
    tj["max_abs_error"] = json_number(t.max_abs_error);
    tj["sparsity"] = json_number(t.sparsity);
    tj["transposed"] = t.transposed;
    if (!t.note.empty()) tj["note"] = t.note;
    tensors.push_back(tj);
  }
  j["tensors"] = tensors;
  j["total"] = {{"bytes_in", r.bytes_in},
                {"bytes_out", r.bytes_out},
                {"weights", r.weights},
                {"bits_per_weight", json_number(r.bits_per_weight)},
                {"file_size", r.file_size}};
  j["gates"] = {{"passed", r.gate_failures.empty()}, {"failures", r.gate_failures}};
  j["warnings"] = r.warnings;
  j["recipe"] = Json::parse(r.recipe_json);
  return j;
}

void print_report(const ConvertReport& r, bool dry_run) {
  std::vector<std::vector<std::string>> rows{
      {"tensor", "shape", "scheme", "bytes in", "bytes out", "bits/w", "rel err", "SQNR dB", "sparsity"}};
  for (const TensorReport& t : r.tensors) {
    if (t.scheme == "skipped") {
      rows.push_back({t.name, shape_string(t.shape), "skipped (" + t.note + ")", std::to_string(t.bytes_in), "0", "-",
                      "-", "-", "-"});
      continue;
    }
    rows.push_back({t.name, shape_string(t.shape), t.scheme, std::to_string(t.bytes_in), std::to_string(t.bytes_out),
                    fmt("%.3f", t.bits_per_weight), fmt("%.5f", t.rel_error),
                    t.sqnr_db >= 998 ? "exact" : fmt("%.2f", t.sqnr_db), fmt("%.3f", t.sparsity)});
  }
  print_table(std::cout, rows);
  std::cout << "\ntotal: " << r.weights << " weights, " << human_bytes(r.bytes_in) << " -> "
            << human_bytes(r.bytes_out) << " (" << fmt("%.3f", r.bits_per_weight) << " bits/weight, "
            << fmt("%.2f", r.bytes_out ? static_cast<double>(r.bytes_in) / static_cast<double>(r.bytes_out) : 0.0)
            << "x smaller)\n";
  if (!r.gate_failures.empty()) {
    std::cout << "gates: FAILED, nothing written\n";
    for (const auto& g : r.gate_failures) std::cout << "  " << g << "\n";
  } else if (dry_run) {
    std::cout << "dry run: the file would be " << r.file_size << " bytes (" << human_bytes(r.file_size)
              << "); nothing written\n";
  } else {
    std::cout << "wrote " << r.output << ": " << r.file_size << " bytes (" << human_bytes(r.file_size) << ")\n";
  }
}

int run_convert(const ConvertArgs& a) {
  if (a.output.empty() && !a.dry_run) return fail_usage("convert: give -o OUT (or --dry-run)");
  if (!a.output.empty() && a.dry_run) return fail_usage("convert: --dry-run writes nothing; drop -o");
  // NaN compares false with everything: a NaN gate would silently pass every tensor.
  if (std::isnan(a.max_rel_error) || std::isinf(a.max_rel_error)) {
    return fail_usage("--max-rel-error must be a finite number, not " + std::to_string(a.max_rel_error));
  }
  // Profile, recipe and rules: --rule and --embeddings/--lm-head first, then the profile's rules,
  // then the recipe's.
  std::optional<DeviceProfile> profile;
  if (!a.profile.empty()) {
    auto p = load_profile(a.profile);
    if (!p.ok()) return fail(p.status());
    profile = *p;
  }
  std::vector<std::string> rules;
  // Tensor roles (slmc/arch/naming.hpp) cover every source's naming.
  if (!a.embeddings.empty()) rules.push_back("@embedding=" + a.embeddings);
  if (!a.lm_head.empty()) rules.push_back("@output=" + a.lm_head);
  rules.insert(rules.end(), a.rules.begin(), a.rules.end());
  Result<ConvertOptions> profiled = profile_convert_options(profile ? &*profile : nullptr, a.recipe, rules);
  if (!profiled.ok()) return fail(profiled.status());
  ConvertOptions opts = std::move(*profiled);
  opts.num_threads = a.threads;
  opts.dry_run = a.dry_run;
  if (!a.max_size.empty()) {
    auto v = parse_size(a.max_size);
    if (!v) return fail_usage("--max-size '" + a.max_size + "': expected bytes, e.g. 1500000, 20MB, 1.5GiB");
    opts.max_size = *v;  // overrides the profile's size gate
  }
  if (!a.target_size.empty()) {
    auto v = parse_size(a.target_size);
    if (!v) return fail_usage("--target-size '" + a.target_size + "': expected bytes, e.g. 1500000, 20MB, 1.5GiB");
    opts.target_size = *v;
  }
  if (a.max_rel_error >= 0) opts.max_rel_error = a.max_rel_error;
  for (const std::string& kv : a.metadata) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) return fail_usage("--metadata '" + kv + "': expected KEY=VALUE");
    opts.metadata[kv.substr(0, eq)] = MetaValue::string(kv.substr(eq + 1));
  }
  if (!a.act_rules.empty()) {
    // Per-layer activation modes the runtime uses where a run asks auto (first match wins).
    std::vector<ActRule> rules;
    for (const std::string& r : a.act_rules) {
      auto parsed = parse_act_rules(r);
      if (!parsed.ok()) return fail_usage("--act-rule: " + parsed.status().message());
      rules.insert(rules.end(), parsed->begin(), parsed->end());
    }
    opts.metadata[kActRulesKey] = MetaValue::string(act_rules_to_string(rules));
  }
  Calibration calibration;
  if (!a.calibration.empty()) {
    auto c = load_calibration(a.calibration);
    if (!c.ok()) return fail(c.status());
    calibration = std::move(*c);
    opts.calibration = &calibration;
  }
  auto source = open_model(a.input);
  if (!source.ok()) return fail(source.status());
  if (!a.output.empty()) {
    // Never write over an input (through any name) or through a device, FIFO or link.
    std::vector<std::string> inputs{a.input};
    for (const SourceFileInfo& f : (*source)->files()) inputs.push_back(f.path);
    for (const std::string* p : {&a.calibration, &a.tokenizer, &a.recipe, &a.profile}) {
      if (!p->empty()) inputs.push_back(*p);
    }
    if (Status s = check_output_path(a.output, inputs, OutputKind::kFile, a.force); !s.ok()) {
      return fail_usage(s.message());
    }
  }
  if (!a.tokenizer.empty()) {
    auto tok = load_tokenizer_for(**source, a.tokenizer);
    if (!tok.ok()) return fail(tok.status());
    opts.tokenizer = std::move(*tok);
  }
  Progress progress("converting");
  // SLMC_TEST_STOP_AT=N: a test hook that stops the process (SIGSTOP) once N tensors are done, so
  // a test can change the input mid-conversion (a shrinking source file) and then continue it.
  const char* stop_env = std::getenv("SLMC_TEST_STOP_AT");
  const long long stop_at = stop_env ? std::atoll(stop_env) : -1;
  opts.progress = [&](size_t done, size_t total, const std::string& name) {
    progress.update(done, total, name);
    if (stop_at >= 0 && done == static_cast<size_t>(stop_at)) std::raise(SIGSTOP);
  };
  Result<ConvertReport> report = convert_model(**source, a.input, a.output, opts);
  opts.progress = nullptr;
  if (!report.ok()) return fail(report.status());
  for (const std::string& w : report->warnings) std::cerr << "slm-compress: warning: " << terminal_safe(w) << "\n";
  if (a.json) {
    std::cout << report_json(*report, a.dry_run).dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  } else {
    print_report(*report, a.dry_run);
  }
  if (!report->gate_failures.empty()) {
    const auto& failures = report->gate_failures;
    for (size_t i = 0; i < failures.size() && i < 5; ++i) std::cerr << "slm-compress: gate exceeded: " << failures[i] << "\n";
    if (failures.size() > 5) std::cerr << "slm-compress: ... and " << failures.size() - 5 << " more gate failures\n";
    return kExitGate;
  }
  return kExitOk;
}

}  // namespace

Command add_convert(CLI::App& app) {
  auto a = std::make_shared<ConvertArgs>();
  CLI::App* sub = app.add_subcommand("convert", "Compress a model (safetensors, GGUF, llama2.c) into a .slm file");
  sub->add_option("input", a->input, "Source model: a file, or a directory with model.safetensors(.index.json)")
      ->required();
  sub->add_option("-o,--output", a->output, "Output .slm file (written atomically)");
  sub->add_flag("--force", a->force, "Replace an existing output that is not a regular file (never writes through it)");
  sub->add_option("--recipe", a->recipe, "Preset (" + [] {
                    std::string s;
                    for (const auto& n : preset_names()) s += (s.empty() ? "" : ", ") + n;
                    return s;
                  }() + ") or recipe JSON file; default: the profile's, else w4");
  sub->add_option("--rule", a->rules, "GLOB=SCHEME[|SCHEME...] ahead of the recipe's rules (repeatable)");
  sub->add_option("--embeddings", a->embeddings, "Scheme for the embedding tables");
  sub->add_option("--lm-head", a->lm_head, "Scheme for the output layer (lm_head) when it is not tied");
  sub->add_option("--profile", a->profile, "Device profile: a built-in name or a profile JSON file");
  sub->add_option("--max-size", a->max_size, "Gate: total encoded size in bytes (20MB, 1.5GiB, ...); exit 4 above it");
  sub->add_option("--max-rel-error", a->max_rel_error, "Gate: per-tensor relative error; exit 4 above it")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--target-size", a->target_size, "Choose among each rule's candidate schemes to minimize error "
                                                   "within this size");
  sub->add_option("--calibration", a->calibration, "Activation statistics (slmc-calibration JSON) for "
                                                   "search=weighted and prune=wanda");
  sub->add_option("--tokenizer", a->tokenizer,
                  "Tokenizer to store in the file instead of the source's (a llama2.c tokenizer.bin, GGUF or .slm); "
                  "llama2.c checkpoints have none of their own");
  sub->add_option("--metadata", a->metadata, "KEY=VALUE stored in the file's metadata (repeatable)");
  sub->add_option("--act-rule", a->act_rules,
                  "GLOB=MODE: the activation mode (fp32, int8, int8-row, auto) runs use for the linear layers "
                  "GLOB matches when they ask auto; stored in the file (repeatable, first match wins)");
  sub->add_flag("--dry-run", a->dry_run, "Plan, compress and measure; write nothing");
  sub->add_option("--threads", a->threads, "Threads (default: all cores)")->check(CLI::NonNegativeNumber);
  sub->add_flag("--json", a->json, "Print one JSON document to stdout");
  return {sub, [a] { return run_convert(*a); }};
}

}  // namespace slmc::cli
