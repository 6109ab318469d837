// slmc_bench main: Google Benchmark with the CPU and kernel ISA in the report context, so a JSON
// result file says which path produced it.
#include <benchmark/benchmark.h>

#include <string>

#include "slmc/slmc.hpp"

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  slmc::Result<slmc::Isa> isa = slmc::active_isa();
  if (!isa.ok()) {
    std::fprintf(stderr, "slmc_bench: %s\n", isa.status().message().c_str());
    return 2;
  }
  benchmark::AddCustomContext("slmc_version", slmc::kVersionString);
  benchmark::AddCustomContext("slmc_isa", std::string(slmc::isa_name(*isa)));
  benchmark::AddCustomContext("cpu_brand", slmc::cpu_features().brand);
  benchmark::AddCustomContext("cpu_features", slmc::cpu_features().to_string());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
