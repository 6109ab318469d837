// Per-layer activation rules stored in a model file (convert --act-rule; ActRule in
// slmc/kernels/linear.hpp): the grammar, first-match resolution, and the runtime using them only
// where a run asks auto.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "io/io_test_util.hpp"
#include "runtime/tiny_llama.hpp"
#include "slmc/kernels/linear.hpp"
#include "slmc/runtime/llama.hpp"

using namespace slmc;
using test::TempDir;

TEST_CASE("activation rules parse, print and resolve first match wins", "[act_rules]") {
  auto r = parse_act_rules("lm_head.weight=fp32;*.mlp.*=int8-row;*=auto");
  REQUIRE(r.ok());
  REQUIRE(r->size() == 3);
  CHECK((*r)[0].pattern == "lm_head.weight");
  CHECK((*r)[0].mode == ActMode::kFp32);
  CHECK((*r)[1].mode == ActMode::kInt8Row);
  CHECK(act_rules_to_string(*r) == "lm_head.weight=fp32;*.mlp.*=int8-row;*=auto");
  CHECK(act_mode_with_rules(ActMode::kAuto, *r, "lm_head.weight") == ActMode::kFp32);
  CHECK(act_mode_with_rules(ActMode::kAuto, *r, "model.layers.3.mlp.up_proj.weight") == ActMode::kInt8Row);
  CHECK(act_mode_with_rules(ActMode::kAuto, *r, "model.layers.3.self_attn.q_proj.weight") == ActMode::kAuto);
  // An explicit mode for the run overrides every rule.
  CHECK(act_mode_with_rules(ActMode::kInt8, *r, "lm_head.weight") == ActMode::kInt8);
  for (const char* bad : {"", "lm_head.weight", "=fp32", "x=fp8", "a=fp32;", "a=fp32;;b=int8"}) {
    INFO(bad);
    auto b = parse_act_rules(bad);
    REQUIRE(!b.ok());
    CHECK(b.status().code() == ErrorCode::kInvalidArgument);
    CHECK(b.status().message().find("expected GLOB=MODE") != std::string::npos);
  }
}

namespace {

std::vector<float> logits(const std::string& path, ActMode mode) {
  auto m = LlamaModel::load(path, LlamaOptions{1, mode, 0});
  INFO(m.status().message());
  REQUIRE(m.ok());
  const std::vector<int32_t> ids = {1, 17, 42, 99, 5, 63, 7, 120};
  std::vector<float> out(ids.size() * static_cast<size_t>((*m)->config().vocab));
  REQUIRE((*m)->forward(ids.data(), static_cast<int64_t>(ids.size()), out.data()).ok());
  return out;
}

}  // namespace

TEST_CASE("the runtime uses the file's activation rules where a run asks auto", "[act_rules]") {
  TempDir dir;
  test::write_tiny_llama(dir.file("src"));
  auto write = [&](const std::string& name, const std::string& rules) {
    Metadata meta;
    if (!rules.empty()) meta[kActRulesKey] = MetaValue::string(rules);
    test::convert_tiny_llama(dir.file("src"), dir.file(name), "int8", meta);
  };
  write("plain.slm", "");
  write("all_fp32.slm", "*=fp32");
  write("mlp_fp32.slm", "*.mlp.*=fp32");
  write("bad.slm", "*=fp8");

  const auto plain_auto = logits(dir.file("plain.slm"), ActMode::kAuto);
  const auto plain_fp32 = logits(dir.file("plain.slm"), ActMode::kFp32);
  const auto plain_int8 = logits(dir.file("plain.slm"), ActMode::kInt8);
  REQUIRE(plain_auto == plain_int8);  // int8 weights: auto is the int8 (block) mode
  REQUIRE(plain_auto != plain_fp32);
  // Every layer fp32 by rule: the bits of a run asking fp32; an explicit mode still wins.
  CHECK(logits(dir.file("all_fp32.slm"), ActMode::kAuto) == plain_fp32);
  CHECK(logits(dir.file("all_fp32.slm"), ActMode::kInt8) == plain_int8);
  // Only the MLP layers: neither all-int8 nor all-fp32.
  const auto mlp = logits(dir.file("mlp_fp32.slm"), ActMode::kAuto);
  CHECK(mlp != plain_auto);
  CHECK(mlp != plain_fp32);
  // A rule the runtime cannot read is the file's fault, named.
  auto bad = LlamaModel::load(dir.file("bad.slm"), {});
  REQUIRE(!bad.ok());
  CHECK(bad.status().code() == ErrorCode::kInvalidFormat);
  CHECK(bad.status().message().find("slmc.act_rules") != std::string::npos);
}
