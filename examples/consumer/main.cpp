// Links the installed library and exercises a little of its public API. Exits nonzero on failure.
#include <slmc/slmc.hpp>

#include <cstdio>
#include <vector>

int main() {
  slmc::Result<slmc::Isa> isa = slmc::active_isa();
  if (!isa.ok()) {
    std::fprintf(stderr, "%s\n", isa.status().to_string().c_str());
    return 1;
  }
  std::vector<float> x{1.0f, -2.5f, 65504.0f, 1e-7f, 3.14159f};
  std::vector<uint16_t> h(x.size());
  std::vector<float> back(x.size());
  slmc::convert_fp32_to_fp16(x.data(), h.data(), x.size());
  slmc::convert_fp16_to_fp32(h.data(), back.data(), x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    if (back[i] != slmc::fp16_to_fp32(slmc::fp32_to_fp16(x[i]))) return 1;
  }
  // The delta API links (it pulls in zstd, a dependency the installed package must provide) and
  // reports a missing base as a Status, not an exception.
  const slmc::Status delta = slmc::apply_delta("/nonexistent/old.slm", "/nonexistent/u.slmdelta", "/nonexistent/new.slm");
  if (delta.ok()) return 1;
  std::printf("consumer: slmc %s, isa %s, fp16 round trip ok\n", slmc::kVersionString,
              std::string(slmc::isa_name(*isa)).c_str());
  return 0;
}
