// slm-compress: the command-line converter. Uses the public library API only.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>
#include <string>

#include "exit_codes.hpp"
#include "slmc/slmc.hpp"

namespace {

using slmc::cli::kExitOk;
using slmc::cli::kExitUsage;

int run_info(bool json) {
  const slmc::CpuFeatures& f = slmc::cpu_features();
  slmc::Result<slmc::Isa> isa = slmc::active_isa();
  if (!isa.ok()) {
    std::cerr << "slm-compress: " << isa.status().message() << "\n";
    return kExitUsage;  // SLMC_ISA is part of how the tool was invoked
  }
  nlohmann::json compiled = nlohmann::json::array(), runnable = nlohmann::json::array();
  for (slmc::Isa i : slmc::compiled_isas()) compiled.push_back(std::string(slmc::isa_name(i)));
  for (slmc::Isa i : slmc::runnable_isas()) runnable.push_back(std::string(slmc::isa_name(i)));
  if (json) {
    nlohmann::json j;
    j["version"] = slmc::kVersionString;
    j["cpu"] = {{"brand", f.brand}, {"features", f.to_string()}};
    j["isa"] = {{"compiled", compiled}, {"runnable", runnable}, {"active", std::string(slmc::isa_name(*isa))}};
    j["threads"] = slmc::default_num_threads();
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << "slm-compress " << slmc::kVersionString << "\n"
            << "cpu:          " << f.brand << "\n"
            << "features:     " << f.to_string() << "\n"
            << "compiled ISA: " << compiled.dump() << "\n"
            << "runnable ISA: " << runnable.dump() << "\n"
            << "active ISA:   " << slmc::isa_name(*isa) << " (force with SLMC_ISA=...)\n"
            << "threads:      " << slmc::default_num_threads() << "\n";
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"slm-compress: compress small language models for edge CPUs"};
  app.set_version_flag("--version", std::string("slm-compress ") + slmc::kVersionString);
  app.require_subcommand(1);
  app.footer(
      "Exit codes: 0 success; 1 internal error; 2 usage error; 3 input unreadable or invalid;\n"
      "            4 a gate (size or error budget) exceeded; 5 verification failed.");

  bool json = false;
  CLI::App* info = app.add_subcommand("info", "Show the CPU features and the kernel ISA slmc uses here");
  info->add_flag("--json", json, "Print one JSON document to stdout");

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

  try {
    if (*info) return run_info(json);
  } catch (const std::exception& e) {
    std::cerr << "slm-compress: internal error: " << e.what() << "\n";
    return slmc::cli::kExitInternal;
  }
  return kExitUsage;
}
