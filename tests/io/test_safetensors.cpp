// safetensors reader: every dtype, metadata, GPT-2 transposition, shards and validation errors.
#include <catch2/catch.hpp>

#include <cstring>
#include <numeric>

#include "io/io_test_util.hpp"
#include "io/source_test_util.hpp"
#include "slmc/half.hpp"
#include "slmc/io/hash.hpp"
#include "slmc/io/model_source.hpp"
#include "support/random.hpp"

using slmc::DType;
using slmc::ErrorCode;
using slmc::test::SafetensorsBuilder;
using slmc::test::TempDir;

namespace {

slmc::Result<std::unique_ptr<slmc::ModelSource>> open_bytes(const TempDir& dir, const std::string& name,
                                                             const std::vector<uint8_t>& bytes) {
  REQUIRE(slmc::test::write_bytes(dir.file(name), bytes));
  slmc::OpenOptions opt;
  return slmc::open_model(dir.file(name), opt);
}

ErrorCode open_error(const std::string& header, const std::vector<uint8_t>& buffer) {
  TempDir dir;
  auto r = open_bytes(dir, "x.safetensors", slmc::test::safetensors_bytes(header, buffer));
  REQUIRE_FALSE(r.ok());
  INFO(r.status().to_string());
  CHECK(r.status().message().find("x.safetensors") != std::string::npos);
  return r.status().code();
}

}  // namespace

TEST_CASE("safetensors reads every dtype zero copy", "[io][safetensors]") {
  SafetensorsBuilder b;
  std::vector<uint8_t> raw(512);
  std::iota(raw.begin(), raw.end(), 0);
  const std::vector<std::pair<std::string, size_t>> dtypes = {{"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F64", 8},
                                                              {"I8", 1},  {"U8", 1},  {"I16", 2},  {"I32", 4},
                                                              {"I64", 8}, {"BOOL", 1}};
  for (const auto& [d, size] : dtypes) b.add("t_" + d, d, {2, 3}, raw.data(), 6 * size);
  b.add("empty", "F32", {0, 7}, nullptr, 0);
  b.metadata("format", "pt");
  TempDir dir;
  auto r = open_bytes(dir, "model.bin", b.bytes());  // extension is irrelevant
  REQUIRE(r.ok());
  const auto& src = **r;
  CHECK(src.format() == slmc::SourceFormat::kSafetensors);
  REQUIRE(src.tensors().size() == dtypes.size() + 1);
  for (const auto& [d, size] : dtypes) {
    const auto t = slmc::test::load_tensor(src, "t_" + d);
    REQUIRE(t);
    CHECK(t->shape == slmc::Shape{2, 3});
    CHECK(t->nbytes == 6 * size);
    CHECK(std::memcmp(t->data, raw.data(), t->nbytes) == 0);
    CHECK(reinterpret_cast<uintptr_t>(t->data) % size == 0);
  }
  CHECK(src.find("empty")->nbytes == 0);
  CHECK(src.metadata().at("format").text == "pt");
  REQUIRE(src.files().size() == 1);
  CHECK(src.files()[0].sha256 == slmc::sha256_hex(slmc::test::read_bytes(dir.file("model.bin")).data(),
                                                   slmc::test::read_bytes(dir.file("model.bin")).size()));
}

TEST_CASE("safetensors misaligned data is loaded aligned", "[io][safetensors]") {
  // Header of odd length: the F32 data starts at an odd file offset.
  const std::vector<float> v = {1.5f, -2.0f, 3.25f};
  std::vector<uint8_t> buf(1 + 12);
  std::memcpy(buf.data() + 1, v.data(), 12);
  const std::string h = R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"F32","shape":[3],"data_offsets":[1,13]}})";
  TempDir dir;
  auto r = open_bytes(dir, "m", slmc::test::safetensors_bytes(h, buf));
  REQUIRE(r.ok());
  const auto w = slmc::test::load_tensor(**r, "w");
  REQUIRE(w);
  CHECK(reinterpret_cast<uintptr_t>(w->data) % 4 == 0);
  CHECK(w->data_as<float>()[2] == 3.25f);
}

TEST_CASE("safetensors gpt2 conv1d weights are transposed", "[io][safetensors]") {
  const int64_t in = 5, out = 7;
  std::vector<float> w = slmc::test::gaussian(in * out, 1);
  std::vector<float> bias = slmc::test::gaussian(out, 2);
  for (bool with_config : {false, true}) {
    SafetensorsBuilder b;
    b.add("h.0.attn.c_attn.weight", "F32", {in, out}, w.data(), w.size() * 4);
    b.add("h.0.attn.c_attn.bias", "F32", {out}, bias.data(), bias.size() * 4);
    b.add("h.0.ln_1.weight", "F32", {out}, bias.data(), bias.size() * 4);
    TempDir dir;
    if (with_config) {
      const std::string cfg = R"({"model_type":"gpt2","n_embd":64,"n_layer":4,"n_head":4,"n_positions":512,
                                  "n_inner":null,"layer_norm_epsilon":1e-5,"vocab_size":53})";
      REQUIRE(slmc::test::write_bytes(dir.file("config.json"), std::vector<uint8_t>(cfg.begin(), cfg.end())));
    }
    auto r = open_bytes(dir, "model.safetensors", b.bytes());
    REQUIRE(r.ok());
    const auto& src = **r;
    const auto t = slmc::test::load_tensor(src, "h.0.attn.c_attn.weight");
    REQUIRE(t);
    CHECK(t->shape == slmc::Shape{out, in});
    for (int64_t o = 0; o < out; ++o) {
      for (int64_t i = 0; i < in; ++i) CHECK(t->data_as<float>()[o * in + i] == w[i * out + o]);
    }
    CHECK(src.origins()[0].transposed);
    CHECK_FALSE(src.origins()[1].transposed);
    CHECK(src.architecture().at("general.architecture").text == "gpt2");
    if (with_config) {
      CHECK(src.architecture().at("gpt2.feed_forward_length").text == "256");
      CHECK(src.architecture().at("gpt2.block_count").text == "4");
      CHECK(src.metadata().count("hf.config") == 1);
    }
  }
}

TEST_CASE("safetensors llama config gives rotate half rope", "[io][safetensors]") {
  SafetensorsBuilder b;
  std::vector<float> w(16, 1.0f);
  b.add("model.layers.0.self_attn.q_proj.weight", "F32", {4, 4}, w.data(), 64);
  TempDir dir;
  const std::string cfg = R"({"model_type":"llama","hidden_size":4,"num_attention_heads":2,"num_hidden_layers":1,
                              "intermediate_size":8,"rms_norm_eps":1e-6,"max_position_embeddings":32})";
  REQUIRE(slmc::test::write_bytes(dir.file("config.json"), std::vector<uint8_t>(cfg.begin(), cfg.end())));
  auto r = open_bytes(dir, "model.safetensors", b.bytes());
  REQUIRE(r.ok());
  const auto& a = (*r)->architecture();
  CHECK(a.at("llama.rope.layout").text == "rotate_half");
  CHECK(a.at("llama.attention.head_count_kv").text == "2");
  CHECK(a.at("llama.rope.freq_base").text == "10000.0");
  CHECK((*r)->find("model.layers.0.self_attn.q_proj.weight")->shape == slmc::Shape{4, 4});
  CHECK_FALSE((*r)->origins()[0].transposed);
}

TEST_CASE("safetensors sharded index", "[io][safetensors]") {
  TempDir dir;
  std::vector<float> a = slmc::test::gaussian(6, 3), c = slmc::test::gaussian(4, 4);
  SafetensorsBuilder s1, s2;
  s1.add("a", "F32", {2, 3}, a.data(), 24);
  s2.add("c", "F32", {4}, c.data(), 16);
  REQUIRE(slmc::test::write_bytes(dir.file("model-00001-of-00002.safetensors"), s1.bytes()));
  REQUIRE(slmc::test::write_bytes(dir.file("model-00002-of-00002.safetensors"), s2.bytes()));
  const std::string idx = R"({"metadata":{"total_size":40},"weight_map":{"a":"model-00001-of-00002.safetensors",
                              "c":"model-00002-of-00002.safetensors"}})";
  REQUIRE(slmc::test::write_bytes(dir.file("model.safetensors.index.json"), std::vector<uint8_t>(idx.begin(), idx.end())));
  auto r = slmc::open_model(dir.path());  // a directory finds the index
  REQUIRE(r.ok());
  const auto& src = **r;
  CHECK(src.format() == slmc::SourceFormat::kSafetensorsIndex);
  REQUIRE(src.tensors().size() == 2);
  CHECK(src.files().size() == 3);
  CHECK(src.origins()[1].file_index == 2);
  CHECK(slmc::test::load_tensor(src, "c")->data_as<float>()[3] == c[3]);
  for (const auto& f : src.files()) CHECK(f.sha256.size() == 64);
  CHECK(src.metadata().at("safetensors.index.total_size").text == "40");

  // A tensor listed for a shard that lacks it, and path traversal in a shard name.
  const std::string bad1 = R"({"weight_map":{"a":"model-00001-of-00002.safetensors","zz":"model-00001-of-00002.safetensors","c":"model-00002-of-00002.safetensors"}})";
  REQUIRE(slmc::test::write_bytes(dir.file("bad1.json"), std::vector<uint8_t>(bad1.begin(), bad1.end())));
  auto r1 = slmc::open_model(dir.file("bad1.json"));
  REQUIRE_FALSE(r1.ok());
  CHECK(r1.status().message().find("'zz'") != std::string::npos);
  const std::string bad2 = R"({"weight_map":{"a":"../etc/passwd"}})";
  REQUIRE(slmc::test::write_bytes(dir.file("bad2.json"), std::vector<uint8_t>(bad2.begin(), bad2.end())));
  auto r2 = slmc::open_model(dir.file("bad2.json"));
  REQUIRE_FALSE(r2.ok());
  CHECK(r2.status().code() == ErrorCode::kInvalidFormat);
}

TEST_CASE("safetensors rejects malformed headers", "[io][safetensors]") {
  std::vector<uint8_t> buf(64, 0);
  CHECK(open_error(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})", buf) ==
        ErrorCode::kInvalidFormat);  // overlap
  CHECK(open_error(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[60,76]}})", buf) == ErrorCode::kOutOfRange);
  CHECK(open_error(R"({"a":{"dtype":"F32","shape":[5],"data_offsets":[0,16]}})", buf) == ErrorCode::kInvalidFormat);
  CHECK(open_error(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}})", buf) ==
        ErrorCode::kOutOfRange);
  CHECK(open_error(R"({"a":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", buf) == ErrorCode::kInvalidFormat);
  CHECK(open_error(R"({"a":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})", buf) == ErrorCode::kUnsupported);
  CHECK(open_error(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"a":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}})", buf) ==
        ErrorCode::kInvalidFormat);  // duplicate name
  CHECK(open_error(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]})", buf) == ErrorCode::kInvalidFormat);
  CHECK(open_error("{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", buf) ==
        ErrorCode::kInvalidFormat);  // bad UTF-8 name
  CHECK(open_error(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[16,0]}})", buf) == ErrorCode::kOutOfRange);
  CHECK(open_error(R"([1,2])", buf) == ErrorCode::kInvalidFormat);
}

TEST_CASE("safetensors header length beyond the file", "[io][safetensors]") {
  std::vector<uint8_t> bytes = slmc::test::safetensors_bytes(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", {7});
  const uint64_t n = 1000;
  std::memcpy(bytes.data(), &n, 8);
  TempDir dir;
  auto r = open_bytes(dir, "big.safetensors", bytes);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == ErrorCode::kOutOfRange);
}

TEST_CASE("dense float encode and view", "[io]") {
  std::vector<float> v = slmc::test::gaussian(12, 9);
  slmc::TensorView t{"w", slmc::Shape{3, 4}, DType::kF32, v.data(), 48};
  auto view = slmc::dense_float_view(t);
  REQUIRE(view.ok());
  CHECK(view->rows == 3);
  CHECK(view->cols == 4);
  CHECK(view->segment(slmc::SegmentRole::kValues).data == v.data());
  auto h = slmc::encode_dense_float(t, slmc::ValueType::kF16);
  REQUIRE(h.ok());
  CHECK(h->segment(slmc::SegmentRole::kValues).size() == 24);
  CHECK(h->segment(slmc::SegmentRole::kValues).as<uint16_t>()[5] == slmc::fp32_to_fp16(v[5]));
  std::vector<int32_t> ints(4);
  slmc::TensorView ti{"i", slmc::Shape{4}, DType::kI32, ints.data(), 16};
  CHECK(slmc::encode_dense_float(ti).status().code() == ErrorCode::kUnsupported);
}
