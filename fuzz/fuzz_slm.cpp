// libFuzzer target: the .slm loader (preamble, FlatBuffers verifier, bounds, encoding validation)
// followed by checksum verification and a read of every byte a kernel could be handed.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "fuzz_common.hpp"
#include "slmc/buffer.hpp"
#include "slmc/format/model_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Files are mapped page-aligned; give the loader the same 64-byte alignment.
  slmc::AlignedBuffer copy(data, size);
  auto file = slmc::MappedFile::borrow(copy.data(), size, "fuzz.slm");
  auto mf = slmc::ModelFile::open_mapped(file);
  if (!mf.ok()) return 0;
  (void)(*mf)->verify();
  uint64_t sum = 0;
  for (const auto& t : (*mf)->tensors()) {
    for (const auto& s : t.view.segments) sum += slmc::fuzz::read_all(s.data, s.nbytes);
  }
  slmc::fuzz::sink(sum);
  return 0;
}
