// slm-compress: the command-line converter. Uses the public library API only.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "exit_codes.hpp"
#include "common.hpp"
#include "slmc/cpu.hpp"
#include "slmc/io/output.hpp"
#include "slmc/version.hpp"

int main(int argc, char** argv) {
  using namespace slmc::cli;
  // Ctrl-C, kill and hang-ups remove the temporary files of an unfinished output.
  slmc::install_signal_cleanup();
  CLI::App app{"slm-compress: compress small language models for edge CPUs"};
  app.set_version_flag("--version", std::string("slm-compress ") + slmc::kVersionString);
  app.require_subcommand(1);
  app.footer(
      "Exit codes: 0 success; 1 internal error; 2 usage error (every command-line parse error);\n"
      "            3 input unreadable or invalid; 4 a gate (size or error budget) exceeded;\n"
      "            5 verification failed (checksum or recorded statistics mismatch).\n"
      "Environment: SLMC_ISA=scalar|avx2|avxvnni|avx512|neon|neon_dotprod forces a kernel path.");

  std::vector<Command> commands{add_convert(app), add_inspect(app), add_verify(app), add_bench(app),
                                add_diff(app),    add_export(app),  add_eval(app),   add_generate(app),
                                add_calibrate(app), add_tokenize(app), add_delta(app), add_apply(app), add_info(app),
                                add_synth(app)};
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  // One SLMC_ISA policy for every command: it is part of the invocation, so a value that is
  // unknown, not compiled in or not runnable here is a usage error before anything runs.
  if (const slmc::Result<slmc::Isa> isa = slmc::active_isa(); !isa.ok()) return fail_usage(isa.status().message());
  try {
    for (const Command& c : commands) {
      if (!c.app->parsed()) continue;
      const int rc = c.run();
      // A report that could not be written (a full disk, a closed pipe) is a failure a pipeline
      // must see, even when the command's work succeeded.
      std::cout.flush();
      if (std::fflush(stdout) != 0 || std::ferror(stdout) || !std::cout) {
        std::cerr << "slm-compress: error: cannot write to standard output\n";
        return rc == kExitOk ? kExitInternal : rc;
      }
      return rc;
    }
  } catch (const std::bad_alloc&) {
    std::cerr << "slm-compress: error: out of memory\n";
    return kExitInternal;
  } catch (const std::exception& e) {
    std::cerr << "slm-compress: internal error: " << e.what() << "\n";
    return kExitInternal;
  }
  return kExitUsage;
}
