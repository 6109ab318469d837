// libFuzzer target: the safetensors reader on arbitrary bytes (no config.json lookup).
#include <cstddef>
#include <cstdint>

#include "fuzz_common.hpp"
#include "slmc/io/model_source.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = slmc::InputFile::borrow(data, size, "fuzz.safetensors");
  auto src = slmc::open_safetensors(file);
  if (src.ok()) slmc::fuzz::touch_source(**src);
  return 0;
}
