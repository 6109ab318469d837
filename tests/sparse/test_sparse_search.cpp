// Scale search of quantized sparse values: agreement with the dense quantizer, mse never worse
// than absmax on any group, weighted search needs and uses importance.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "quant/detail/common.hpp"
#include "slmc/layout.hpp"
#include "slmc/quant/dequantize.hpp"
#include "slmc/quant/quantize.hpp"
#include "slmc/sparse/encode.hpp"
#include "slmc/sparse/layout.hpp"
#include "sparse/sparse_test_util.hpp"
#include "support/random.hpp"

using namespace slmc;
using slmc::test::decode;

namespace {

/// Sum over group [c0, c1) of row r of imp[c] * (a - b)^2 (imp null: 1).
double group_err(const std::vector<float>& a, const std::vector<float>& b, int64_t cols, int64_t r, int64_t c0,
                 int64_t c1, const float* imp = nullptr) {
  double e = 0;
  for (int64_t c = c0; c < c1; ++c) {
    const double d = double(a[static_cast<size_t>(r * cols + c)]) - b[static_cast<size_t>(r * cols + c)];
    e += (imp ? imp[c] : 1.0) * d * d;
  }
  return e;
}

}  // namespace

TEST_CASE("sparse int8 with every element kept equals the dense quantizer", "[sparse][search]") {
  const int64_t rows = 9, cols = 96;
  const auto w = test::student_t_outliers(static_cast<size_t>(rows * cols), 11);
  const auto imp = test::uniform(static_cast<size_t>(cols), 12, 0.0f, 3.0f);
  for (ScaleSearch search : {ScaleSearch::kAbsmax, ScaleSearch::kMse, ScaleSearch::kWeighted}) {
    for (Granularity g : {Granularity::kChannel, Granularity::kGroup}) {
      QuantConfig qc;
      qc.value_type = ValueType::kInt8;
      qc.granularity = g;
      qc.group_size = 32;
      qc.scale_dtype = DType::kF32;
      qc.search = search;
      qc.importance = imp.data();
      auto dense = quantize("w", w.data(), rows, cols, qc);
      REQUIRE(dense.ok());
      std::vector<float> want(w.size());
      REQUIRE(dequantize(dense->view(), want.data()).ok());
      Encoding e;
      e.format = SparseFormat::kCsr;
      e.value_type = ValueType::kInt8;
      e.granularity = g;
      e.group_size = g == Granularity::kGroup ? 32 : 0;
      e.search = search;
      std::vector<uint8_t> keep_all(w.size(), 1);
      auto sparse = encode_sparse(w.data(), rows, cols, e, keep_all.data(), "w", imp.data());
      INFO(sparse.status().to_string());
      REQUIRE(sparse.ok());
      INFO("search " << int(search) << " granularity " << int(g));
      CHECK(decode(*sparse) == want);
    }
  }
}

TEST_CASE("mse search is never worse than absmax on any group of kept values", "[sparse][search]") {
  const int64_t rows = 16, cols = 200;
  const auto w = test::student_t_outliers(static_cast<size_t>(rows * cols), 21, 3.0f, 0.01f);
  for (ValueType vt : {ValueType::kInt8, ValueType::kInt4}) {
    Encoding e;
    e.format = vt == ValueType::kInt4 ? SparseFormat::kNM : SparseFormat::kBitmask;
    e.nm_n = vt == ValueType::kInt4 ? 2 : 0;
    e.nm_m = vt == ValueType::kInt4 ? 4 : 0;
    e.value_type = vt;
    e.granularity = Granularity::kGroup;
    e.group_size = 40;
    e.scale_dtype = DType::kF16;
    // Keep mask: 2 of every 4 (valid for both formats).
    std::vector<uint8_t> keep(w.size());
    for (size_t i = 0; i < keep.size(); ++i) keep[i] = (i % 4 == 0 || i % 4 == 3) ? 1 : 0;
    std::vector<float> pruned(w.size());
    for (size_t i = 0; i < w.size(); ++i) pruned[i] = keep[i] ? w[i] : 0.0f;
    e.search = ScaleSearch::kAbsmax;
    auto a = encode_sparse(w.data(), rows, cols, e, keep.data(), "w");
    e.search = ScaleSearch::kMse;
    auto m = encode_sparse(w.data(), rows, cols, e, keep.data(), "w");
    REQUIRE(a.ok());
    REQUIRE(m.ok());
    const auto da = decode(*a), dm = decode(*m);
    double ta = 0, tm = 0;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c0 = 0; c0 < cols; c0 += 40) {
        const double ea = group_err(pruned, da, cols, r, c0, std::min<int64_t>(cols, c0 + 40));
        const double em = group_err(pruned, dm, cols, r, c0, std::min<int64_t>(cols, c0 + 40));
        CHECK(em <= ea * (1 + 1e-9) + 1e-30);
        ta += ea;
        tm += em;
      }
    }
    INFO("value type " << int(vt) << " absmax " << ta << " mse " << tm);
    CHECK(tm < ta);  // heavy tails: clipping outliers pays off somewhere
    CHECK(m->encoding.search == ScaleSearch::kMse);
  }
}

TEST_CASE("weighted search needs importance and minimizes the weighted error", "[sparse][search]") {
  const int64_t rows = 8, cols = 64;
  const auto w = test::laplace(static_cast<size_t>(rows * cols), 31);
  auto imp = test::uniform(static_cast<size_t>(cols), 32, 0.0f, 1.0f);
  for (int64_t c = 0; c < cols; c += 5) imp[static_cast<size_t>(c)] = 50.0f;  // a few important channels
  Encoding e;
  e.format = SparseFormat::kCsr;
  e.value_type = ValueType::kInt8;
  e.granularity = Granularity::kChannel;
  e.search = ScaleSearch::kWeighted;
  auto missing = encode_sparse(w.data(), rows, cols, e, nullptr, "blk.1.w");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == ErrorCode::kInvalidArgument);
  CHECK(missing.status().message().find("importance") != std::string::npos);
  auto bad = imp;
  bad[3] = -1;
  CHECK_FALSE(encode_sparse(w.data(), rows, cols, e, nullptr, "w", bad.data()).ok());
  auto wt = encode_sparse(w.data(), rows, cols, e, nullptr, "w", imp.data());
  e.search = ScaleSearch::kAbsmax;
  auto ab = encode_sparse(w.data(), rows, cols, e, nullptr, "w");
  REQUIRE(wt.ok());
  REQUIRE(ab.ok());
  const auto dw = decode(*wt), da = decode(*ab);
  for (int64_t r = 0; r < rows; ++r) {
    CHECK(group_err(w, dw, cols, r, 0, cols, imp.data()) <= group_err(w, da, cols, r, 0, cols, imp.data()) * (1 + 1e-9));
  }
}
