// GGUF reader on files from the independent test writer: every metadata type, every supported
// tensor type (with dequantization), dimension order, alignment and malformed files.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "io/gguf_test_writer.hpp"
#include "io/io_test_util.hpp"
#include "io/source_test_util.hpp"
#include "slmc/io/model_source.hpp"
#include "support/random.hpp"

using slmc::ErrorCode;
using slmc::Status;
using slmc::test::GgufWriter;
using slmc::test::TempDir;

namespace {

slmc::Result<std::unique_ptr<slmc::ModelSource>> open_gguf_bytes(const std::vector<uint8_t>& bytes,
                                                                 const std::string& name = "m.gguf") {
  TempDir dir;
  REQUIRE(slmc::test::write_bytes(dir.file(name), bytes));
  return slmc::open_model(dir.file(name));
}

GgufWriter llama_header(uint32_t version = 3, uint64_t alignment = 32) {
  GgufWriter w(version, alignment);
  w.kv_string("general.architecture", "llama");
  w.kv("llama.block_count", GgufWriter::U32, uint32_t{2});
  w.kv("llama.rope.freq_base", GgufWriter::F32, 10000.0f);
  return w;
}

}  // namespace

TEST_CASE("gguf metadata of every type", "[io][gguf]") {
  for (uint32_t version : {2u, 3u}) {
    GgufWriter w = llama_header(version);
    w.kv("t.u8", GgufWriter::U8, uint8_t{200});
    w.kv("t.i8", GgufWriter::I8, int8_t{-100});
    w.kv("t.u16", GgufWriter::U16, uint16_t{60000});
    w.kv("t.i16", GgufWriter::I16, int16_t{-30000});
    w.kv("t.u32", GgufWriter::U32, uint32_t{4000000000u});
    w.kv("t.i32", GgufWriter::I32, int32_t{-2000000000});
    w.kv("t.f32", GgufWriter::F32, 0.5f);
    w.kv("t.bool", GgufWriter::BOOL, uint8_t{1});
    w.kv_string("t.string", "héllo wörld");
    w.kv("t.u64", GgufWriter::U64, uint64_t{18000000000000000000ull});
    w.kv("t.i64", GgufWriter::I64, int64_t{-9000000000000000000ll});
    w.kv("t.f64", GgufWriter::F64, -0.25);
    w.kv_array("t.arr_i32", GgufWriter::I32, std::vector<int32_t>{1, -2, 3});
    w.kv_array("t.arr_f32", GgufWriter::F32, std::vector<float>{0.5f, 1.5f});
    w.kv_array("t.arr_u8", GgufWriter::U8, std::vector<uint8_t>{});
    w.kv_string_array("tokenizer.ggml.tokens", {"<s>", "</s>", "▁a"});
    w.kv_nested("t.nested", {{1, 2}, {}, {3}});
    std::vector<float> x = slmc::test::gaussian(8, 1);
    w.tensor("w", {8}, GgufWriter::T_F32, slmc::test::float_bytes(x));
    auto r = open_gguf_bytes(w.bytes());
    INFO((r.ok() ? std::string() : r.status().to_string()));
    REQUIRE(r.ok());
    const auto& src = **r;
    CHECK(src.format() == slmc::SourceFormat::kGguf);
    const auto& m = src.metadata();
    auto J = [&](const std::string& k) { return nlohmann::json::parse(m.at(k).text); };
    CHECK(J("t.u8") == 200);
    CHECK(J("t.i8") == -100);
    CHECK(J("t.u16") == 60000);
    CHECK(J("t.i16") == -30000);
    CHECK(J("t.u32") == 4000000000u);
    CHECK(J("t.i32") == -2000000000);
    CHECK(J("t.f32") == 0.5);
    CHECK(J("t.bool") == true);
    CHECK(m.at("t.string").kind == slmc::MetaValue::Kind::kString);
    CHECK(m.at("t.string").text == "héllo wörld");
    CHECK(J("t.u64").get<uint64_t>() == 18000000000000000000ull);
    CHECK(J("t.i64").get<int64_t>() == -9000000000000000000ll);
    CHECK(J("t.f64") == -0.25);
    CHECK(J("t.arr_i32") == nlohmann::json({1, -2, 3}));
    CHECK(J("t.arr_f32") == nlohmann::json({0.5, 1.5}));
    CHECK(J("t.arr_u8") == nlohmann::json::array());
    CHECK(J("tokenizer.ggml.tokens") == nlohmann::json({"<s>", "</s>", "▁a"}));
    CHECK(J("t.nested") == nlohmann::json::parse("[[1,2],[],[3]]"));
    CHECK(J("gguf.version") == version);
    // Architecture keys are split out; llama GGUF q/k are interleaved.
    const auto& a = src.architecture();
    CHECK(a.at("general.architecture").text == "llama");
    CHECK(a.at("llama.block_count").text == "2");
    CHECK(a.at("llama.rope.layout").text == "interleaved");
    CHECK(m.count("llama.block_count") == 0);
    CHECK(std::memcmp(slmc::test::load_tensor(src, "w")->data, x.data(), 32) == 0);
  }
}

TEST_CASE("gguf tensor types dims and alignment", "[io][gguf]") {
  for (uint64_t alignment : {32u, 64u, 8u}) {
    GgufWriter w = llama_header(3, alignment);
    if (alignment != 32) w.kv("general.alignment", GgufWriter::U32, static_cast<uint32_t>(alignment));
    const uint64_t K = 64, M = 3;
    const std::vector<float> x = slmc::test::gaussian(K * M, 2);
    std::vector<uint8_t> f16(K * M * 2), bf16(K * M * 2);
    for (size_t i = 0; i < x.size(); ++i) {
      const uint16_t h = slmc::fp32_to_fp16(x[i]), b = slmc::fp32_to_bf16(x[i]);
      std::memcpy(&f16[2 * i], &h, 2);
      std::memcpy(&bf16[2 * i], &b, 2);
    }
    std::vector<float> e8, e40, e41;
    w.tensor("f32", {K, M}, GgufWriter::T_F32, slmc::test::float_bytes(x));
    w.tensor("f16", {K, M}, GgufWriter::T_F16, f16);
    w.tensor("bf16", {K, M}, GgufWriter::T_BF16, bf16);
    w.tensor("q8_0", {K, M}, GgufWriter::T_Q8_0, slmc::test::quantize_q8_0(x, e8));
    w.tensor("q4_0", {K, M}, GgufWriter::T_Q4_0, slmc::test::quantize_q4_0(x, e40));
    w.tensor("q4_1", {K, 1, M}, GgufWriter::T_Q4_1, slmc::test::quantize_q4_1(x, e41));
    w.tensor("scalar", {}, GgufWriter::T_F32, slmc::test::float_bytes({3.0f}));
    auto r = open_gguf_bytes(w.bytes());
    INFO((r.ok() ? std::string() : r.status().to_string()));
    REQUIRE(r.ok());
    const auto& src = **r;
    REQUIRE(src.tensors().size() == 7);
    for (const char* n : {"f32", "f16", "bf16", "q8_0", "q4_0"}) CHECK(src.find(n)->shape == slmc::Shape{3, 64});
    CHECK(src.find("q4_1")->shape == slmc::Shape{3, 1, 64});
    CHECK(src.find("scalar")->shape == slmc::Shape{});
    CHECK(slmc::test::load_tensor(src, "f32")->data_as<float>()[65] == x[65]);  // row 1, col 1: no reordering of data
    CHECK(src.find("f16")->dtype == slmc::DType::kF16);
    CHECK(std::memcmp(slmc::test::load_tensor(src, "f16")->data, f16.data(), f16.size()) == 0);
    CHECK(std::memcmp(slmc::test::load_tensor(src, "bf16")->data, bf16.data(), bf16.size()) == 0);
    for (auto [name, expected, sdt] : {std::make_tuple("q8_0", &e8, slmc::DType::kQ8_0),
                                       std::make_tuple("q4_0", &e40, slmc::DType::kQ4_0),
                                       std::make_tuple("q4_1", &e41, slmc::DType::kQ4_1)}) {
      INFO(name);
      const slmc::SourceTensor* t = src.find(name);
      REQUIRE(t);
      // Block types stay raw (nothing is read or dequantized at open); load_f32 dequantizes one
      // tensor on demand.
      CHECK(t->dtype == sdt);
      const size_t idx = static_cast<size_t>(t - src.tensors().data());
      CHECK(src.origins()[idx].source_dtype == sdt);
      CHECK(slmc::is_weight_dtype(t->dtype));
      std::vector<float> f(x.size());
      REQUIRE(src.load_f32(idx, f.data()).ok());
      for (size_t i = 0; i < x.size(); ++i) REQUIRE(f[i] == (*expected)[i]);
      // and close to the original
      for (size_t i = 0; i < x.size(); ++i) CHECK(std::fabs(f[i] - x[i]) < 0.5f);
    }
    CHECK(slmc::test::load_tensor(src, "scalar")->data_as<float>()[0] == 3.0f);
  }
}

TEST_CASE("gguf rejects malformed files", "[io][gguf]") {
  auto code = [](const std::vector<uint8_t>& bytes) {
    auto r = open_gguf_bytes(bytes, "bad.gguf");
    REQUIRE_FALSE(r.ok());
    INFO(r.status().to_string());
    CHECK(r.status().message().find("bad.gguf") != std::string::npos);
    return r.status();
  };
  const std::vector<float> x(64, 1.0f);
  {  // strings are UTF-8 at the door (they travel into .slm files, JSON reports and terminals)
    GgufWriter w = llama_header();
    w.kv_string("general.name", std::string("bad\xff\xfe name"));
    Status s = code(w.bytes());
    CHECK(s.code() == ErrorCode::kInvalidFormat);
    CHECK(s.message().find("'general.name': a string value is not valid UTF-8") != std::string::npos);
  }
  {  // unsupported type names the type and the tensor
    GgufWriter w = llama_header();
    w.tensor("blk.0.attn_q.weight", {32, 2}, GgufWriter::T_Q4_K, std::vector<uint8_t>(144 * 2));
    Status s = code(w.bytes());
    CHECK(s.code() == ErrorCode::kUnsupported);
    CHECK(s.message().find("unsupported GGUF type Q4_K in tensor 'blk.0.attn_q.weight'") != std::string::npos);
    GgufWriter w2 = llama_header();
    w2.tensor("t", {32}, 77, std::vector<uint8_t>(64));
    CHECK(code(w2.bytes()).message().find("unsupported GGUF type 77 in tensor 't'") != std::string::npos);
  }
  {  // absurd counts
    GgufWriter w = llama_header();
    w.set_counts_override(uint64_t{1} << 60, 3);
    CHECK(code(w.bytes()).code() == ErrorCode::kOutOfRange);
    GgufWriter w2 = llama_header();
    w2.set_counts_override(0, uint64_t{1} << 62);
    CHECK(code(w2.bytes()).code() == ErrorCode::kOutOfRange);
    GgufWriter w3 = llama_header();
    std::vector<uint8_t> raw;
    auto put = [&](auto v) {
      uint8_t tmp[sizeof(v)];
      std::memcpy(tmp, &v, sizeof(v));
      raw.insert(raw.end(), tmp, tmp + sizeof(v));
    };
    put(uint64_t{4});
    raw.insert(raw.end(), {'h', 'u', 'g', 'e'});
    put(uint32_t{GgufWriter::ARRAY});
    put(uint32_t{GgufWriter::U64});
    put(uint64_t{1} << 61);
    w3.kv_raw(raw, 1);
    auto b = w3.bytes();
    CHECK(code(b).code() == ErrorCode::kOutOfRange);
  }
  {  // string length beyond the file
    GgufWriter w = llama_header();
    std::vector<uint8_t> raw(8);
    const uint64_t n = 1000000;
    std::memcpy(raw.data(), &n, 8);
    w.kv_raw(raw, 1);
    CHECK(code(w.bytes()).code() == ErrorCode::kOutOfRange);
  }
  {  // duplicate tensor names, bad UTF-8 name, overlapping tensors, offset beyond the file
    GgufWriter w = llama_header();
    w.tensor("a", {64}, GgufWriter::T_F32, slmc::test::float_bytes(x));
    w.tensor("a", {64}, GgufWriter::T_F32, slmc::test::float_bytes(x));
    CHECK(code(w.bytes()).message().find("duplicate tensor name") != std::string::npos);
    GgufWriter w2 = llama_header();
    w2.tensor("bad\xc3(", {64}, GgufWriter::T_F32, slmc::test::float_bytes(x));
    CHECK(code(w2.bytes()).code() == ErrorCode::kInvalidFormat);
    GgufWriter w3 = llama_header();
    w3.tensor("a", {64}, GgufWriter::T_F32, slmc::test::float_bytes(x));
    w3.tensor("b", {64}, GgufWriter::T_F32, slmc::test::float_bytes(x));
    w3.set_last_offset(128);
    CHECK(code(w3.bytes()).message().find("overlap") != std::string::npos);
    GgufWriter w4 = llama_header();
    w4.tensor("a", {64}, GgufWriter::T_F32, slmc::test::float_bytes(x));
    w4.set_last_offset(uint64_t{1} << 40);
    auto b4 = w4.bytes();
    b4.resize(std::min<size_t>(b4.size(), 4096));
    CHECK(code(b4).code() == ErrorCode::kOutOfRange);
    GgufWriter w5 = llama_header();
    w5.tensor("a", {64}, GgufWriter::T_F32, slmc::test::float_bytes(x));
    w5.set_last_offset(4);  // not a multiple of the alignment
    CHECK(code(w5.bytes()).message().find("alignment") != std::string::npos);
  }
  {  // shape overflow, block rows, too many dims, bad alignment value, version, bool value, truncation
    GgufWriter w = llama_header();
    w.tensor("a", {uint64_t{1} << 40, uint64_t{1} << 40}, GgufWriter::T_F32, {});
    CHECK(code(w.bytes()).code() == ErrorCode::kOutOfRange);
    GgufWriter w2 = llama_header();
    w2.tensor("a", {48}, GgufWriter::T_Q8_0, std::vector<uint8_t>(51));
    CHECK(code(w2.bytes()).code() == ErrorCode::kInvalidFormat);
    GgufWriter w3 = llama_header();
    w3.tensor("a", {1, 1, 1, 1, 1}, GgufWriter::T_F32, std::vector<uint8_t>(4));
    CHECK(code(w3.bytes()).code() == ErrorCode::kOutOfRange);
    GgufWriter w4 = llama_header();
    w4.kv("general.alignment", GgufWriter::U32, uint32_t{48});
    CHECK(code(w4.bytes()).code() == ErrorCode::kInvalidFormat);
    CHECK(code(llama_header(1).bytes()).code() == ErrorCode::kUnsupported);
    GgufWriter w5 = llama_header();
    w5.kv("b", GgufWriter::BOOL, uint8_t{7});
    CHECK(code(w5.bytes()).code() == ErrorCode::kInvalidFormat);
    GgufWriter w6 = llama_header();
    w6.tensor("a", {64}, GgufWriter::T_F32, slmc::test::float_bytes(x));
    auto b6 = w6.bytes();
    for (size_t cut : {size_t{6}, size_t{20}, size_t{40}, b6.size() - 100, b6.size() - 1}) {
      std::vector<uint8_t> t(b6.begin(), b6.begin() + static_cast<long>(cut));
      auto r = open_gguf_bytes(t, "cut.gguf");
      CHECK_FALSE(r.ok());
    }
    GgufWriter w7 = llama_header();
    w7.kv("x", static_cast<GgufWriter::Type>(13), uint8_t{0});
    CHECK(code(w7.bytes()).code() == ErrorCode::kInvalidFormat);
  }
}
