// The public hex printer and SHA-256 of a file (slmc/io/hash.hpp).
#include <catch2/catch.hpp>

#include "io/io_test_util.hpp"
#include "slmc/io/hash.hpp"

using slmc::test::TempDir;

TEST_CASE("hex_string prints bytes as lower-case hex", "[hash]") {
  const uint8_t bytes[] = {0x00, 0x0f, 0xa5, 0xff, 0x10};
  CHECK(slmc::hex_string(bytes, sizeof bytes) == "000fa5ff10");
  CHECK(slmc::hex_string(bytes, 0).empty());
}

TEST_CASE("sha256_file_hex hashes a file and reports its size", "[hash]") {
  TempDir dir;
  std::vector<uint8_t> data(3 << 20);  // more than one 1 MiB read
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 131 + (i >> 9));
  REQUIRE(slmc::test::write_bytes(dir.file("f"), data));
  uint64_t size = 0;
  auto h = slmc::sha256_file_hex(dir.file("f"), &size);
  REQUIRE(h.ok());
  CHECK(*h == slmc::sha256_hex(data.data(), data.size()));
  CHECK(size == data.size());
  // The FIPS 180-2 test vector for "abc".
  REQUIRE(slmc::test::write_bytes(dir.file("abc"), {'a', 'b', 'c'}));
  auto abc = slmc::sha256_file_hex(dir.file("abc"));
  REQUIRE(abc.ok());
  CHECK(*abc == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK_FALSE(slmc::sha256_file_hex(dir.file("missing")).ok());
}
