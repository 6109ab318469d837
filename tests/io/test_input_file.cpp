// Source files are read, not mapped (InputFile): a file that shrinks after it was opened is an
// error naming the file and the offset, for every reader and for load and load_f32 alike, where
// a mapping would have raised SIGBUS.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstring>

#include "io/gguf_test_writer.hpp"
#include "io/io_test_util.hpp"
#include "slmc/io/input_file.hpp"
#include "slmc/io/model_source.hpp"
#include "support/random.hpp"

using slmc::ErrorCode;
using slmc::test::TempDir;

namespace {

std::vector<uint8_t> safetensors_model(const std::vector<float>& a, const std::vector<float>& b) {
  slmc::test::SafetensorsBuilder s;
  s.add("a", "F32", {4, static_cast<int64_t>(a.size() / 4)}, a.data(), a.size() * 4);
  s.add("b", "F32", {4, static_cast<int64_t>(b.size() / 4)}, b.data(), b.size() * 4);
  return s.bytes();
}

std::vector<uint8_t> gguf_model(const std::vector<float>& a, const std::vector<float>& b) {
  slmc::test::GgufWriter w(3, 32);
  w.kv_string("general.architecture", "llama");
  std::vector<float> e;
  w.tensor("a", {static_cast<uint64_t>(a.size() / 4), 4}, slmc::test::GgufWriter::T_F32, slmc::test::float_bytes(a));
  w.tensor("b", {static_cast<uint64_t>(b.size() / 4), 4}, slmc::test::GgufWriter::T_Q8_0, slmc::test::quantize_q8_0(b, e));
  return w.bytes();
}

}  // namespace

TEST_CASE("a source file that shrinks while it is read is an error, not SIGBUS", "[io]") {
  const std::vector<float> a = slmc::test::gaussian(4 * 64, 1), b = slmc::test::gaussian(4 * 1024, 2);
  for (const bool gguf : {false, true}) {
    INFO((gguf ? "gguf" : "safetensors"));
    TempDir dir;
    const std::string path = dir.file(gguf ? "m.gguf" : "m.safetensors");
    REQUIRE(slmc::test::write_bytes(path, gguf ? gguf_model(a, b) : safetensors_model(a, b)));
    auto r = slmc::open_model(path);
    REQUIRE(r.ok());
    const slmc::ModelSource& src = **r;
    REQUIRE(src.tensors().size() == 2);
    // Whole, both tensors load.
    auto fa = src.load_f32(0);
    REQUIRE(fa.ok());
    CHECK(std::memcmp(fa->data(), a.data(), a.size() * 4) == 0);
    REQUIRE(src.load_f32(1).ok());
    // Cut the file inside tensor b: a still loads, b is kIoError naming the file and the offset.
    const uint64_t b_offset = src.origins()[1].offset;
    REQUIRE(::truncate(path.c_str(), static_cast<off_t>(b_offset + 100)) == 0);
    CHECK(src.load_f32(0).ok());
    for (int how = 0; how < 2; ++how) {
      slmc::AlignedBuffer bytes;
      const slmc::Status s = how == 0 ? src.load_f32(1).status() : src.load(1, bytes).status();
      REQUIRE_FALSE(s.ok());
      CHECK(s.code() == ErrorCode::kIoError);
      INFO(s.message());
      CHECK(s.message().find(path) != std::string::npos);
      CHECK(s.message().find("tensor 'b'") != std::string::npos);
      CHECK(s.message().find("shrank") != std::string::npos);
      CHECK(s.message().find("offset " + std::to_string(b_offset + 100)) != std::string::npos);
    }
    // Emptied: nothing loads, nothing crashes.
    REQUIRE(::truncate(path.c_str(), 0) == 0);
    CHECK(src.load_f32(0).status().code() == ErrorCode::kIoError);
  }
}

TEST_CASE("InputFile reads ranges and refuses those outside the file", "[io]") {
  TempDir dir;
  const std::string path = dir.file("x");
  REQUIRE(slmc::test::write_bytes(path, {1, 2, 3, 4, 5}));
  auto f = slmc::InputFile::open(path);
  REQUIRE(f.ok());
  CHECK((*f)->size() == 5);
  uint8_t out[3] = {};
  REQUIRE((*f)->read(2, out, 3).ok());
  CHECK(out[0] == 3);
  CHECK(out[2] == 5);
  CHECK((*f)->read(3, out, 3).code() == ErrorCode::kOutOfRange);
  CHECK((*f)->read(UINT64_MAX, out, 2).code() == ErrorCode::kOutOfRange);
  auto s = (*f)->read_string(1, 2);
  REQUIRE(s.ok());
  CHECK(*s == std::string("\x02\x03"));
  const uint8_t mem[4] = {9, 8, 7, 6};
  auto m = slmc::InputFile::borrow(mem, 4, "mem");
  REQUIRE(m->read(1, out, 2).ok());
  CHECK(out[0] == 8);
  CHECK(slmc::InputFile::open(dir.path()).status().code() == ErrorCode::kIoError);  // a directory
}
