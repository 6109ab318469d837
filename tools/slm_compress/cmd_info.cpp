// slm-compress info: the CPU features and the kernel ISA slmc uses here.
#include <iostream>

#include "commands.hpp"
#include "common.hpp"
#include "profile.hpp"
#include "slmc/convert/recipe.hpp"
#include "slmc/cpu.hpp"
#include "slmc/kernels/linear.hpp"
#include "slmc/parallel.hpp"
#include "slmc/version.hpp"

namespace slmc::cli {

Command add_info(CLI::App& app) {
  auto json = std::make_shared<bool>(false);
  CLI::App* sub = app.add_subcommand("info", "Show the CPU features, kernel ISAs, presets and device profiles");
  sub->add_flag("--json", *json, "Print one JSON document to stdout");
  return {sub, [json]() -> int {
            const CpuFeatures& f = cpu_features();
            Result<Isa> isa = active_isa();
            if (!isa.ok()) return fail_usage(isa.status().message());  // SLMC_ISA is part of the invocation
            Json compiled = Json::array(), runnable = Json::array();
            for (Isa i : compiled_isas()) compiled.push_back(std::string(isa_name(i)));
            for (Isa i : runnable_isas()) runnable.push_back(std::string(isa_name(i)));
            Json presets = preset_names(), profiles = builtin_profile_names();
            if (*json) {
              Json j;
              j["version"] = kVersionString;
              j["cpu"] = {{"brand", f.brand}, {"features", f.to_string()}};
              j["isa"] = {{"compiled", compiled}, {"runnable", runnable}, {"active", std::string(isa_name(*isa))}};
              j["threads"] = default_num_threads();
              j["presets"] = presets;
              j["profiles"] = profiles;
              std::cout << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
              return kExitOk;
            }
            std::cout << "slm-compress " << kVersionString << "\n"
                      << "cpu:          " << f.brand << "\n"
                      << "features:     " << f.to_string() << "\n"
                      << "compiled ISA: " << compiled.dump() << "\n"
                      << "runnable ISA: " << runnable.dump() << "\n"
                      << "active ISA:   " << isa_name(*isa) << " (force with SLMC_ISA=...)\n"
                      << "threads:      " << default_num_threads() << "\n"
                      << "presets:      " << presets.dump() << "\n"
                      << "profiles:     " << profiles.dump() << "\n";
            return kExitOk;
          }};
}

}  // namespace slmc::cli
