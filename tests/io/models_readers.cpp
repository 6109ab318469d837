// Readers on the real models in SLMC_MODELS_DIR: stories260K (llama2.c) and capp-gpt2 (safetensors).
#include <catch2/catch.hpp>

#include <cstring>

#include "io/io_test_util.hpp"
#include "io/source_test_util.hpp"
#include "slmc/io/model_source.hpp"
#include "support/models.hpp"

TEST_CASE("stories260K reads as Hugging Face llama tensors", "[models][io]") {
  const std::string path = slmc::test::model_path("stories260K/stories260K.bin");
  auto r = slmc::open_model(path);
  REQUIRE(r.ok());
  const auto& src = **r;
  CHECK(src.format() == slmc::SourceFormat::kLlama2c);
  CHECK(src.tensors().size() == 1 + 5 * 9 + 1 + 1);
  REQUIRE(src.files().size() == 1);
  CHECK(src.files()[0].sha256 == "b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696");
  const std::vector<uint8_t> raw = slmc::test::read_bytes(path);
  auto at = [&](int64_t float_index) { return raw.data() + 28 + 4 * float_index; };
  const auto emb = slmc::test::load_tensor(src, "model.embed_tokens.weight");
  REQUIRE(emb);
  CHECK(emb->shape == slmc::Shape{512, 64});
  CHECK(std::memcmp(emb->data, at(0), emb->nbytes) == 0);
  // wk of layer 2 starts after emb, rms_att, wq and two layers of wk.
  const int64_t wk_start = 512 * 64 + 5 * 64 + 5 * 64 * 64;
  const auto k2 = slmc::test::load_tensor(src, "model.layers.2.self_attn.k_proj.weight");
  REQUIRE(k2);
  CHECK(k2->shape == slmc::Shape{32, 64});
  CHECK(std::memcmp(k2->data, at(wk_start + 2 * 32 * 64), k2->nbytes) == 0);
  const slmc::SourceTensor* down = src.find("model.layers.4.mlp.down_proj.weight");
  REQUIRE(down);
  CHECK(down->shape == slmc::Shape{64, 172});
  const auto norm = slmc::test::load_tensor(src, "model.norm.weight");
  REQUIRE(norm);
  const int64_t rms_final = 512 * 64 + 5 * 64 + 5 * 64 * 64 * 2 + 5 * 32 * 64 * 2 + 5 * 64 + 5 * 172 * 64 * 3;
  CHECK(std::memcmp(norm->data, at(rms_final), 256) == 0);
  CHECK(src.origins()[static_cast<size_t>(src.index_of("lm_head.weight"))].offset ==
        src.origins()[static_cast<size_t>(src.index_of("model.embed_tokens.weight"))].offset);  // shared classifier
  const auto& a = src.architecture();
  CHECK(a.at("general.architecture").text == "llama");
  CHECK(a.at("llama.embedding_length").text == "64");
  CHECK(a.at("llama.feed_forward_length").text == "172");
  CHECK(a.at("llama.attention.head_count_kv").text == "4");
  CHECK(a.at("llama.rope.layout").text == "interleaved");
}

TEST_CASE("capp gpt2 safetensors reads with transposed conv1d", "[models][io]") {
  const std::string path = slmc::test::model_path("capp-gpt2-236K/model.safetensors");
  auto r = slmc::open_model(path);
  REQUIRE(r.ok());
  const auto& src = **r;
  CHECK(src.format() == slmc::SourceFormat::kSafetensors);
  CHECK(src.tensors().size() == 52);
  CHECK(src.files()[0].sha256 == "e683d99fe9ec7b798a95eeafb80895f17292a2ee75fd2a2f939e71e2d16c7ab3");
  CHECK(src.metadata().at("format").text == "pt");
  CHECK(src.architecture().at("general.architecture").text == "gpt2");
  CHECK(src.architecture().at("gpt2.embedding_length").text == "64");
  CHECK(src.architecture().at("gpt2.feed_forward_length").text == "256");
  int transposed = 0;
  for (size_t i = 0; i < src.tensors().size(); ++i) transposed += src.origins()[i].transposed;
  CHECK(transposed == 16);
  CHECK(src.find("transformer.h.0.attn.c_attn.weight")->shape == slmc::Shape{192, 64});
  CHECK(src.find("transformer.h.3.mlp.c_fc.weight")->shape == slmc::Shape{256, 64});
  CHECK(src.find("transformer.h.3.mlp.c_proj.weight")->shape == slmc::Shape{64, 256});
  CHECK(src.find("transformer.wte.weight")->shape == slmc::Shape{53, 64});
}
