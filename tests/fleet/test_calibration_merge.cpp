// Count-weighted merge of calibration statistics (slmc/fleet/calibration_merge.hpp).
#include <catch2/catch.hpp>

#include <cmath>

#include "slmc/fleet/calibration_merge.hpp"

using namespace slmc;

namespace {

CalibrationEntry entry(std::vector<float> mean_sq, double count, std::vector<float> gram = {}) {
  CalibrationEntry e;
  e.mean_sq = std::move(mean_sq);
  e.count = count;
  e.gram = std::move(gram);
  return e;
}

}  // namespace

TEST_CASE("merge_calibrations weights by token count", "[fleet][calibration]") {
  Calibration a, b;
  a.tensors["w"] = entry({1.0f, 2.0f}, 1000, {1.0f, 0.5f, 0.5f, 2.0f});
  b.tensors["w"] = entry({4.0f, 8.0f}, 3000, {4.0f, -1.0f, -1.0f, 8.0f});
  a.tensors["only_a"] = entry({3.0f}, 600);
  auto m = merge_calibrations({a, b}, {"a", "b"});
  REQUIRE(m.ok());
  const CalibrationEntry& w = m->tensors.at("w");
  CHECK(w.count == 4000);
  CHECK(w.mean_sq == std::vector<float>{3.25f, 6.5f});                       // (1·1000 + 4·3000) / 4000, ...
  CHECK(w.gram == std::vector<float>{3.25f, -0.625f, -0.625f, 6.5f});       // the same for every Gram entry
  CHECK(m->tensors.at("only_a").count == 600);                                 // present in one input only
  CHECK(m->tensors.at("only_a").mean_sq == std::vector<float>{3.0f});
  // Merging is associative up to rounding (exact for these values): ((a, b), c) == (a, (b, c)).
  Calibration c;
  c.tensors["w"] = entry({2.0f, 2.0f}, 1000, {2.0f, 0.0f, 0.0f, 2.0f});
  auto ab_c = merge_calibrations({*m, c}, {"ab", "c"});
  auto bc = merge_calibrations({b, c}, {"b", "c"});
  REQUIRE((ab_c.ok() && bc.ok()));
  auto a_bc = merge_calibrations({a, *bc}, {"a", "bc"});
  REQUIRE(a_bc.ok());
  CHECK(ab_c->tensors.at("w").mean_sq == a_bc->tensors.at("w").mean_sq);
}

TEST_CASE("merge_calibrations refuses small contributions and mismatched inputs", "[fleet][calibration]") {
  Calibration a, small, other_k, no_gram;
  a.tensors["w"] = entry({1.0f, 2.0f}, 1000, {1.0f, 0.0f, 0.0f, 2.0f});
  small.tensors["w"] = entry({1.0f, 2.0f}, 100, {1.0f, 0.0f, 0.0f, 2.0f});
  other_k.tensors["w"] = entry({1.0f}, 1000, {1.0f});
  no_gram.tensors["w"] = entry({1.0f, 2.0f}, 1000);
  Status s = merge_calibrations({a, small}, {"a.cal", "small.cal"}).status();
  CHECK(s.code() == ErrorCode::kBudgetExceeded);
  CHECK(s.message().find("small.cal") != std::string::npos);
  CalibrationMergeOptions off;
  off.min_tokens = 0;
  CHECK(merge_calibrations({a, small}, {"a.cal", "small.cal"}, off).ok());
  s = merge_calibrations({a, other_k}, {"a.cal", "k.cal"}).status();
  CHECK(s.code() == ErrorCode::kInvalidFormat);
  CHECK(s.message().find("input channels") != std::string::npos);
  s = merge_calibrations({a, no_gram}, {"a.cal", "ng.cal"}).status();
  CHECK(s.code() == ErrorCode::kInvalidFormat);
  CHECK(s.message().find("Gram") != std::string::npos);
  CHECK(merge_calibrations({}, {}).status().code() == ErrorCode::kInvalidArgument);
  CalibrationMergeOptions nan;
  nan.min_tokens = std::nan("");
  CHECK(merge_calibrations({a}, {"a"}, nan).status().code() == ErrorCode::kInvalidArgument);
}
