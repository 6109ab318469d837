// The subcommands of slm-compress. Each add_* registers its options on `app` and returns the
// function that runs it after parsing (returning the process exit code).
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace slmc::cli {

struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

Command add_info(CLI::App& app);
Command add_convert(CLI::App& app);
Command add_inspect(CLI::App& app);
Command add_verify(CLI::App& app);
Command add_bench(CLI::App& app);
Command add_diff(CLI::App& app);
Command add_export(CLI::App& app);
Command add_synth(CLI::App& app);
Command add_eval(CLI::App& app);
Command add_generate(CLI::App& app);
Command add_calibrate(CLI::App& app);
Command add_tokenize(CLI::App& app);
Command add_delta(CLI::App& app);
Command add_apply(CLI::App& app);
Command add_keygen(CLI::App& app);
Command add_sign(CLI::App& app);
Command add_release(CLI::App& app);
Command add_calibrate_merge(CLI::App& app);

}  // namespace slmc::cli
