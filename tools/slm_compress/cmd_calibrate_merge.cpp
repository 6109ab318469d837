// slm-compress calibrate-merge: activation statistics from several runs or devices combined as
// count-weighted sums, without their texts (slmc/fleet/calibration_merge.hpp; docs/FLEET.md §8).
#include <algorithm>
#include <cmath>
#include <iostream>

#include "commands.hpp"
#include "common.hpp"
#include "slmc/convert/converter.hpp"
#include "slmc/fleet/calibration_merge.hpp"
#include "slmc/io/output.hpp"

namespace slmc::cli {
namespace {

struct MergeArgs {
  std::vector<std::string> inputs;
  std::string output, format = "auto";
  double min_tokens = 512;
  bool json = false, force = false;
};

int run_calibrate_merge(const MergeArgs& a) {
  if (a.format != "auto" && a.format != "json" && a.format != "binary") {
    return fail_usage("--format '" + a.format + "': valid: auto, json, binary");
  }
  if (!(a.min_tokens >= 0) || std::isinf(a.min_tokens)) {
    return fail_usage("--min-tokens must be a finite number >= 0");
  }
  const bool binary = a.format == "binary" ||
                      (a.format == "auto" && !(a.output.size() >= 5 && a.output.compare(a.output.size() - 5, 5, ".json") == 0));
  if (Status s = check_output_path(a.output, a.inputs, OutputKind::kFile, a.force); !s.ok()) return fail_usage(s.message());
  std::vector<Calibration> cals;
  for (const std::string& in : a.inputs) {
    auto c = load_calibration(in);
    if (!c.ok()) return fail(c.status());
    cals.push_back(std::move(*c));
  }
  CalibrationMergeOptions options;
  options.min_tokens = a.min_tokens;
  auto merged = merge_calibrations(cals, a.inputs, options);
  if (!merged.ok()) return fail(merged.status());
  const std::string bytes = binary ? calibration_to_binary(*merged) : calibration_to_json(*merged) + "\n";
  if (Status s = write_file_atomic(a.output, bytes); !s.ok()) return fail(s);
  double max_count = 0;
  for (const auto& [name, e] : merged->tensors) max_count = std::max(max_count, e.count);
  if (a.json) {
    Json j{{"output", a.output}, {"format", binary ? "binary" : "json"}, {"bytes", bytes.size()},
           {"inputs", a.inputs},  {"tensors", merged->tensors.size()},  {"tokens", max_count},
           {"min_tokens", a.min_tokens}};
    std::cout << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  } else {
    std::cout << "wrote " << terminal_safe(a.output) << ": " << merged->tensors.size() << " linear layers from "
              << a.inputs.size() << " inputs, " << static_cast<long long>(max_count) << " tokens\n";
  }
  return kExitOk;
}

}  // namespace

Command add_calibrate_merge(CLI::App& app) {
  auto a = std::make_shared<MergeArgs>();
  CLI::App* sub = app.add_subcommand("calibrate-merge", "Combine calibration statistics from several runs or devices "
                                                        "(count-weighted), without their texts");
  sub->add_option("inputs", a->inputs, "Calibration files (JSON or binary, from calibrate)")->required();
  sub->add_option("-o,--output", a->output, "The merged statistics (binary unless the name ends in .json)")->required();
  sub->add_option("--format", a->format, "auto, json or binary");
  sub->add_option("--min-tokens", a->min_tokens, "Refuse a contribution under this many tokens (default 512; 0: off)");
  sub->add_flag("--json", a->json, "Print one JSON document to stdout");
  sub->add_flag("--force", a->force, "Replace an existing output that is not a regular file");
  return {sub, [a] { return run_calibrate_merge(*a); }};
}

}  // namespace slmc::cli
