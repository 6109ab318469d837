// libFuzzer target: content-based format detection, then the llama2.c reader. Inputs are also
// reinterpreted with a header patched to match their size, so the fuzzer reaches the tensor
// slicing code and not only the size check.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_common.hpp"
#include "slmc/io/model_source.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto detected = slmc::detect_format(data, size, size, "fuzz.bin");
  (void)detected;
  auto file = slmc::InputFile::borrow(data, size, "fuzz.bin");
  auto src = slmc::open_llama2c(file);
  if (src.ok()) slmc::fuzz::touch_source(**src);
  if (size < 28) return 0;

  // A plausible small header derived from the input, and exactly as many floats as it needs
  // (taken from the input, repeated).
  int32_t h[7];
  std::memcpy(h, data, sizeof(h));
  auto u = [](int32_t v, int32_t m) { return static_cast<int32_t>(static_cast<uint32_t>(v) % static_cast<uint32_t>(m)); };
  const int32_t heads = 1 + u(h[3], 4);
  const int32_t kv_heads = heads % 2 == 0 && (h[4] & 1) ? heads / 2 : heads;
  const int32_t dim = heads * 2 * (1 + u(h[0], 4));
  const int32_t hidden = 1 + u(h[1], 16), layers = 1 + u(h[2], 3), seq = 1 + u(h[6], 8);
  const int32_t vocab = (1 + u(h[5], 16)) * (h[5] < 0 ? -1 : 1);
  const int64_t kv = int64_t{dim} * kv_heads / heads, v = vocab < 0 ? -vocab : vocab;
  int64_t floats = v * dim + layers * (2 * dim + 2 * int64_t{dim} * dim + 2 * kv * dim + 3 * int64_t{hidden} * dim) + dim +
                   int64_t{seq} * (dim / heads);
  if (vocab < 0) floats += v * dim;
  std::vector<uint8_t> ckpt(28 + 4 * static_cast<size_t>(floats));
  const int32_t hdr[7] = {dim, hidden, layers, heads, kv_heads, vocab, seq};
  std::memcpy(ckpt.data(), hdr, 28);
  for (size_t i = 28; i < ckpt.size(); ++i) ckpt[i] = size > 28 ? data[28 + (i - 28) % (size - 28)] : data[i % 28];
  auto file2 = slmc::InputFile::borrow(ckpt.data(), ckpt.size(), "fuzz-derived.bin");
  auto src2 = slmc::open_llama2c(file2);
  if (!src2.ok()) __builtin_trap();  // a consistent header must always open
  slmc::fuzz::touch_source(**src2);
  return 0;
}
