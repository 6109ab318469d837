// The runtime on the real stories260K model: greedy decoding of its fp32 conversion reproduces
// the ids documented in ../shared/models/README.md, every kernel ISA gives the same logits within
// tolerance, and the tokenizer round-trips text.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "slmc/convert/converter.hpp"
#include "slmc/cpu.hpp"
#include "slmc/io/model_source.hpp"
#include "slmc/runtime/llama.hpp"
#include "slmc/runtime/tokenizer.hpp"
#include "support/models.hpp"

using namespace slmc;

namespace {

std::string convert_stories(const std::string& recipe, const std::string& out_name) {
  auto src = open_model(test::model_path("stories260K/stories260K.bin"));
  REQUIRE(src.ok());
  ConvertOptions opts;
  auto r = load_recipe(recipe);
  REQUIRE(r.ok());
  opts.recipe = *r;
  const std::string out = std::string(SLMC_BINARY_DIR) + "/" + out_name;
  auto report = convert_model(**src, "stories260K.bin", out, opts);
  REQUIRE(report.ok());
  REQUIRE(report->gate_failures.empty());
  return out;
}

std::vector<int32_t> greedy(LlamaModel& m, int steps) {
  m.reset();
  std::vector<float> logits(static_cast<size_t>(m.config().vocab));
  int32_t token = 1;
  std::vector<int32_t> out;
  for (int s = 0; s < steps; ++s) {
    REQUIRE(m.forward(&token, 1, logits.data()).ok());
    token = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    out.push_back(token);
  }
  return out;
}

}  // namespace

TEST_CASE("greedy decoding of fp32 stories260K reproduces the documented ids", "[runtime][models]") {
  const std::vector<int32_t> expected{403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421,
                                      395, 317, 426, 338, 401, 396, 267, 337, 410, 408, 419, 292};
  const std::string path = convert_stories("fp32", "runtime_stories_fp32.slm");
  for (Isa isa : runnable_isas()) {
    ScopedIsaOverride force(isa);
    auto m = LlamaModel::load(path);
    REQUIRE(m.ok());
    CHECK((*m)->config().dim == 64);
    CHECK((*m)->config().kv_heads == 4);
    CHECK((*m)->config().rope_interleaved);
    INFO("isa " << isa_name(isa));
    REQUIRE(greedy(**m, 24) == expected);
  }
  auto tok = Tokenizer::load(test::model_path("stories260K/tok512.bin"), 512);
  REQUIRE(tok.ok());
  std::string text;
  int32_t prev = 1;
  for (int32_t id : expected) {
    text += (*tok)->decode(prev, id);
    prev = id;
  }
  CHECK(text.rfind("Once upon a time, there was a little girl named Lily.", 0) == 0);
}

TEST_CASE("prefill equals token-by-token decoding and ISAs agree", "[runtime][models]") {
  const std::string path = convert_stories("w4", "runtime_stories_w4.slm");
  auto tok = Tokenizer::load(test::model_path("stories260K/tok512.bin"), 512);
  REQUIRE(tok.ok());
  const std::vector<int32_t> ids = (*tok)->encode("Once upon a time, there was a big dog.", true, false);
  REQUIRE(ids.size() > 5);
  const size_t vocab = 512;
  std::vector<float> reference;
  for (Isa isa : runnable_isas()) {
    ScopedIsaOverride force(isa);
    auto m = LlamaModel::load(path, LlamaOptions{1, ActMode::kFp32, 0});
    REQUIRE(m.ok());
    std::vector<float> batch(ids.size() * vocab), step(ids.size() * vocab);
    REQUIRE((*m)->forward(ids.data(), static_cast<int64_t>(ids.size()), batch.data()).ok());
    (*m)->reset();
    for (size_t t = 0; t < ids.size(); ++t) REQUIRE((*m)->forward(&ids[t], 1, &step[t * vocab]).ok());
    for (size_t i = 0; i < batch.size(); ++i) REQUIRE(std::fabs(batch[i] - step[i]) <= 1e-3f * (1 + std::fabs(step[i])));
    if (reference.empty()) {
      reference = batch;
    } else {
      INFO("isa " << isa_name(isa));
      for (size_t i = 0; i < batch.size(); ++i) REQUIRE(std::fabs(batch[i] - reference[i]) <= 1e-3f * (1 + std::fabs(reference[i])));
    }
  }
}

TEST_CASE("tokenizer encodes and decodes real text", "[runtime][models]") {
  auto tok = Tokenizer::load(test::model_path("stories260K/tok512.bin"), 512);
  REQUIRE(tok.ok());
  const std::string text = "Lily saw a big, red ball in the park.\nShe was happy! 3 cats.";
  std::vector<int32_t> ids = (*tok)->encode(text, true, false);
  REQUIRE(ids[0] == 1);
  REQUIRE(ids.size() < text.size());  // merges happened
  std::string back;
  for (size_t i = 1; i < ids.size(); ++i) back += (*tok)->decode(ids[i - 1], ids[i]);
  REQUIRE(back == text);
  CHECK_FALSE(Tokenizer::load(test::model_path("stories260K/tok512.bin"), 1000).ok());
}

TEST_CASE("logits do not depend on the thread count, decode and prefill", "[runtime][models]") {
  // 1, 2 (decode pairs q | k,v and gate | up on two one-thread contexts) and 3 threads; a prompt
  // long enough for the parallel attention and row ops of prefill. Every output is computed whole
  // by one thread in a fixed order, so the bits must agree exactly.
  const std::string path = convert_stories("int8", "runtime_stories_int8_threads.slm");
  const size_t vocab = 512;
  std::vector<int32_t> ids;
  for (int32_t i = 0; i < 200; ++i) ids.push_back((i * 37 + 11) % 512);
  std::vector<float> reference;
  for (int threads : {1, 2, 3}) {
    auto m = LlamaModel::load(path, LlamaOptions{threads, ActMode::kAuto, 0});
    REQUIRE(m.ok());
    std::vector<float> out(vocab * 9);
    REQUIRE((*m)->forward(ids.data(), static_cast<int64_t>(ids.size()), out.data(), /*last_only=*/true).ok());
    for (size_t t = 1; t < 9; ++t) REQUIRE((*m)->forward(&ids[t], 1, &out[t * vocab]).ok());
    INFO("threads " << threads);
    if (reference.empty()) {
      reference = out;
    } else {
      REQUIRE(out == reference);
    }
  }
}

TEST_CASE("a forced int8 mode runs float layers in fp32 on every path, two-thread decode pairs included",
          "[runtime][models]") {
  // --act int8 / int8-row on a float model: every layer has only the fp32 path, whichever code
  // runs it (run_linear, or the decode pairs q | k,v and gate | up on two threads): same logits as
  // kAuto.
  const std::string path = convert_stories("fp32", "runtime_stories_fp32_forced.slm");
  const size_t vocab = 512;
  std::vector<int32_t> ids;
  for (int32_t i = 0; i < 40; ++i) ids.push_back((i * 37 + 11) % 512);
  for (int threads : {1, 2}) {
    std::vector<float> reference;
    for (ActMode mode : {ActMode::kAuto, ActMode::kInt8, ActMode::kInt8Row}) {
      auto m = LlamaModel::load(path, LlamaOptions{threads, mode, 0});
      REQUIRE(m.ok());
      std::vector<float> out(vocab * 5);
      REQUIRE((*m)->forward(ids.data(), static_cast<int64_t>(ids.size()), out.data(), /*last_only=*/true).ok());
      for (size_t t = 1; t < 5; ++t) REQUIRE((*m)->forward(&ids[t], 1, &out[t * vocab]).ok());
      INFO("threads " << threads << " act " << act_mode_name(mode));
      if (reference.empty()) {
        reference = out;
      } else {
        REQUIRE(out == reference);
      }
    }
  }
}
