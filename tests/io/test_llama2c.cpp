// llama2.c checkpoints built in the test: naming, layout, shared and separate classifiers, and
// content-based detection.
#include <catch2/catch.hpp>

#include <cstring>

#include "io/io_test_util.hpp"
#include "io/source_test_util.hpp"
#include "slmc/io/model_source.hpp"

namespace {

/// A checkpoint whose float i (after the header) has the value i, so every tensor's position in
/// the file can be checked from its first element.
std::vector<uint8_t> checkpoint(int32_t dim, int32_t hidden, int32_t layers, int32_t heads, int32_t kv_heads,
                                int32_t vocab, int32_t seq, int64_t* n_floats) {
  const int64_t kv = int64_t{dim} * kv_heads / heads, L = layers, v = vocab < 0 ? -vocab : vocab;
  int64_t n = v * dim + L * dim + L * dim * dim + 2 * L * kv * dim + L * dim * dim + L * dim + 3 * L * hidden * dim + dim +
              int64_t{seq} * (dim / heads);
  if (vocab < 0) n += v * dim;
  *n_floats = n;
  std::vector<uint8_t> out(28 + 4 * static_cast<size_t>(n));
  const int32_t h[7] = {dim, hidden, layers, heads, kv_heads, vocab, seq};
  std::memcpy(out.data(), h, 28);
  for (int64_t i = 0; i < n; ++i) {
    const float f = static_cast<float>(i);
    std::memcpy(out.data() + 28 + 4 * i, &f, 4);
  }
  return out;
}

}  // namespace

TEST_CASE("llama2c tensors are named and placed like hugging face llama", "[io][llama2c]") {
  for (int32_t vocab : {32, -32}) {
    int64_t n = 0;
    const auto bytes = checkpoint(8, 12, 2, 4, 2, vocab, 16, &n);
    slmc::test::TempDir dir;
    REQUIRE(slmc::test::write_bytes(dir.file("model.weird_extension"), bytes));
    auto r = slmc::open_model(dir.file("model.weird_extension"));
    INFO((r.ok() ? std::string() : r.status().to_string()));
    REQUIRE(r.ok());
    const auto& src = **r;
    CHECK(src.format() == slmc::SourceFormat::kLlama2c);
    CHECK(src.tensors().size() == 1 + 2 * 9 + 1 + 1);
    auto first = [&](const char* name) { return slmc::test::load_tensor(src, name)->data_as<float>()[0]; };
    const int64_t d = 8, kv = 4, hd = 12, L = 2, V = 32;
    CHECK(first("model.embed_tokens.weight") == 0.0f);
    CHECK(first("model.layers.1.input_layernorm.weight") == static_cast<float>(V * d + d));
    const int64_t wq = V * d + L * d;
    CHECK(first("model.layers.1.self_attn.q_proj.weight") == static_cast<float>(wq + d * d));
    const int64_t wk = wq + L * d * d;
    CHECK(first("model.layers.0.self_attn.k_proj.weight") == static_cast<float>(wk));
    CHECK(src.find("model.layers.0.self_attn.k_proj.weight")->shape == slmc::Shape{kv, d});
    const int64_t wv = wk + L * kv * d;
    CHECK(first("model.layers.1.self_attn.v_proj.weight") == static_cast<float>(wv + kv * d));
    const int64_t wo = wv + L * kv * d, rms_ffn = wo + L * d * d, w1 = rms_ffn + L * d, w2 = w1 + L * hd * d,
                  w3 = w2 + L * d * hd, rms_final = w3 + L * hd * d;
    CHECK(first("model.layers.1.self_attn.o_proj.weight") == static_cast<float>(wo + d * d));
    CHECK(first("model.layers.1.post_attention_layernorm.weight") == static_cast<float>(rms_ffn + d));
    CHECK(first("model.layers.1.mlp.gate_proj.weight") == static_cast<float>(w1 + hd * d));
    CHECK(first("model.layers.1.mlp.down_proj.weight") == static_cast<float>(w2 + d * hd));
    CHECK(src.find("model.layers.1.mlp.down_proj.weight")->shape == slmc::Shape{d, hd});
    CHECK(first("model.layers.1.mlp.up_proj.weight") == static_cast<float>(w3 + hd * d));
    CHECK(first("model.norm.weight") == static_cast<float>(rms_final));
    if (vocab > 0) {
      CHECK(src.origins()[static_cast<size_t>(src.index_of("lm_head.weight"))].offset ==
            src.origins()[static_cast<size_t>(src.index_of("model.embed_tokens.weight"))].offset);
    } else {
      CHECK(first("lm_head.weight") == static_cast<float>(n - V * d));  // after freq_cis
    }
    CHECK(src.architecture().at("llama.vocab_size").text == "32");
    CHECK(src.architecture().at("llama.rope.layout").text == "interleaved");
    CHECK(src.architecture().at("llama.context_length").text == "16");
  }
}

TEST_CASE("llama2c with the wrong size is not detected", "[io][llama2c]") {
  int64_t n = 0;
  auto bytes = checkpoint(8, 12, 2, 4, 2, 32, 16, &n);
  bytes.resize(bytes.size() - 4);
  slmc::test::TempDir dir;
  REQUIRE(slmc::test::write_bytes(dir.file("m.bin"), bytes));
  auto r = slmc::open_model(dir.file("m.bin"));
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == slmc::ErrorCode::kInvalidFormat);
  CHECK(r.status().message().find("m.bin") != std::string::npos);
}
