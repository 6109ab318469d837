// Prints what slmc sees on this CPU and which kernel ISA it will use.
#include <slmc/slmc.hpp>

#include <cstdio>

int main() {
  const slmc::CpuFeatures& f = slmc::cpu_features();
  std::printf("cpu:      %s\nfeatures: %s\ncompiled:", f.brand.c_str(), f.to_string().c_str());
  for (slmc::Isa isa : slmc::compiled_isas()) std::printf(" %s", std::string(slmc::isa_name(isa)).c_str());
  slmc::Result<slmc::Isa> isa = slmc::active_isa();
  if (!isa.ok()) {
    std::fprintf(stderr, "\nerror: %s\n", isa.status().to_string().c_str());
    return 2;
  }
  std::printf("\nactive:   %s\n", std::string(slmc::isa_name(*isa)).c_str());
  return 0;
}
