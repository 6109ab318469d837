// The real test data in SLMC_MODELS_DIR is what its README describes (sizes and headers). Every
// test that reads real data lives in a models_*.cpp file, reported as skipped when it is absent.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "support/models.hpp"

namespace {
std::vector<uint8_t> read_all(const std::string& path) {
  std::vector<uint8_t> bytes;
  FILE* f = std::fopen(path.c_str(), "rb");
  REQUIRE(f != nullptr);
  uint8_t buf[65536];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof(buf), f)) > 0) bytes.insert(bytes.end(), buf, buf + got);
  std::fclose(f);
  return bytes;
}
}  // namespace

TEST_CASE("stories260K llama2.c header matches the models README", "[models]") {
  std::vector<uint8_t> bytes = read_all(slmc::test::model_path("stories260K/stories260K.bin"));
  REQUIRE(bytes.size() == 1056540);
  int32_t header[7];
  std::memcpy(header, bytes.data(), sizeof(header));
  CHECK(header[0] == 64);   // dim
  CHECK(header[1] == 172);  // hidden_dim
  CHECK(header[2] == 5);    // n_layers
  CHECK(header[3] == 8);    // n_heads
  CHECK(header[4] == 4);    // n_kv_heads
  CHECK(header[5] == 512);  // vocab_size
  CHECK(header[6] == 512);  // seq_len
  REQUIRE((bytes.size() - 28) / 4 == 264128);
}

TEST_CASE("capp-gpt2 safetensors header length matches the models README", "[models]") {
  std::vector<uint8_t> bytes = read_all(slmc::test::model_path("capp-gpt2-236K/model.safetensors"));
  REQUIRE(bytes.size() == 949792);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  CHECK(header_len == 4888);
}
