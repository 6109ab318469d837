// The subcommands of slm-compress. Each add_* registers its options on `app` and returns the
// function that runs it after parsing (returning the process exit code).
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

#include "slmc/status.hpp"

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
Command add_embed(CLI::App& app);

/// cmd_embed.cpp, shared with eval: the non-blank lines of a UTF-8 file (one input per line).
Result<std::vector<std::string>> read_sentence_lines(const std::string& path);
/// True when `path` opens as a .slm file whose general.architecture is an encoder's ("bert").
bool is_encoder_file(const std::string& path);
/// `eval` of an encoder: embedding cosine and nearest-neighbour agreement against --reference.
int run_encoder_eval(const std::string& model, const std::string& reference, const std::string& text,
                     const std::string& act, int threads, bool no_verify, int64_t batch, bool json);

}  // namespace slmc::cli
