// libFuzzer target: the GGUF reader on arbitrary bytes.
#include <cstddef>
#include <cstdint>

#include "fuzz_common.hpp"
#include "slmc/io/model_source.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = slmc::InputFile::borrow(data, size, "fuzz.gguf");
  auto src = slmc::open_gguf(file);
  if (src.ok()) slmc::fuzz::touch_source(**src);
  return 0;
}
