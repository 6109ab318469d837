// Error compensation with the input Gram matrix (QuantConfig::gram, GPTQ): never worse than plain
// rounding on the output error e^T G e, clearly better on correlated inputs, deterministic, and
// bad Gram matrices are rejected.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "slmc/cpu.hpp"
#include "quant/detail/common.hpp"
#include "slmc/layout.hpp"
#include "slmc/quant/dequantize.hpp"
#include "slmc/quant/error_stats.hpp"
#include "slmc/quant/quantize.hpp"
#include "support/quant.hpp"
#include "support/random.hpp"

using namespace slmc;
using test::dequant;
using test::make_cfg;
using test::same_bytes;

namespace {

/// Inputs with correlated channels (each channel mixes its neighbours) and unequal scales, as
/// the activations of a real layer: x_k = s_k (z_k + 0.7 z_{k-1} + 0.4 z_{k-2}).
struct Inputs {
  std::vector<float> gram, mean_sq;
};
Inputs correlated_inputs(int64_t k, int64_t n, uint64_t seed) {
  const auto z = test::gaussian(static_cast<size_t>(n * (k + 2)), seed);
  const auto s = test::gaussian(static_cast<size_t>(k), seed + 1, 0.7f);
  std::vector<double> g(static_cast<size_t>(k * k), 0.0);
  std::vector<double> x(static_cast<size_t>(k));
  for (int64_t t = 0; t < n; ++t) {
    const float* zt = z.data() + t * (k + 2);
    for (int64_t c = 0; c < k; ++c) {
      x[static_cast<size_t>(c)] = std::exp(s[static_cast<size_t>(c)]) * (zt[c + 2] + 0.7 * zt[c + 1] + 0.4 * zt[c]);
    }
    for (int64_t i = 0; i < k; ++i) {
      for (int64_t j = 0; j < k; ++j) g[static_cast<size_t>(i * k + j)] += x[static_cast<size_t>(i)] * x[static_cast<size_t>(j)];
    }
  }
  Inputs in;
  in.gram.resize(g.size());
  for (size_t i = 0; i < g.size(); ++i) in.gram[i] = static_cast<float>(g[i] / static_cast<double>(n));
  for (int64_t i = 0; i < k; ++i) in.mean_sq.push_back(in.gram[static_cast<size_t>(i * k + i)]);
  return in;
}

/// e^T G e of every row.
std::vector<double> row_output_errors(const std::vector<float>& w, const std::vector<float>& wh, int64_t rows,
                                      int64_t cols, const std::vector<float>& gram) {
  std::vector<double> out;
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (int64_t i = 0; i < cols; ++i) {
      const double ei = double(w[size_t(r * cols + i)]) - wh[size_t(r * cols + i)];
      for (int64_t j = 0; j < cols; ++j) {
        s += ei * gram[size_t(i * cols + j)] * (double(w[size_t(r * cols + j)]) - wh[size_t(r * cols + j)]);
      }
    }
    out.push_back(s);
  }
  return out;
}

}  // namespace

TEST_CASE("error compensation lowers the output error and is never worse per row", "[quant][gptq]") {
  const int64_t rows = 40, cols = 100;  // K = 100: a partial last group of 4 for g32
  const auto w = test::gaussian(static_cast<size_t>(rows * cols), 201, 0.05f);
  const Inputs in = correlated_inputs(cols, 2000, 202);
  struct Scheme {
    ValueType vt;
    Granularity g;
    int gs;
    bool sym;
    ScaleSearch s;
    double gain;  ///< compensated total must be below gain * plain total
  };
  const Scheme schemes[] = {
      {ValueType::kInt4, Granularity::kGroup, 32, true, ScaleSearch::kMse, 0.75},
      {ValueType::kInt4, Granularity::kGroup, 32, true, ScaleSearch::kWeighted, 0.75},
      {ValueType::kInt4, Granularity::kGroup, 32, true, ScaleSearch::kAbsmax, 0.75},
      {ValueType::kInt4, Granularity::kGroup, 32, false, ScaleSearch::kWeighted, 0.75},
      {ValueType::kInt4, Granularity::kChannel, 0, true, ScaleSearch::kWeighted, 0.75},
      {ValueType::kNl4, Granularity::kGroup, 32, true, ScaleSearch::kWeighted, 0.75},
      {ValueType::kNl4, Granularity::kChannel, 0, true, ScaleSearch::kMse, 0.75},
      {ValueType::kInt8, Granularity::kChannel, 0, true, ScaleSearch::kWeighted, 0.75},
      {ValueType::kInt8, Granularity::kTensor, 0, true, ScaleSearch::kMse, 0.75},
      {ValueType::kInt8, Granularity::kGroup, 32, false, ScaleSearch::kMse, 0.75},
  };
  for (const Scheme& sc : schemes) {
    QuantConfig c = make_cfg(sc.vt, sc.g, sc.gs, sc.sym, sc.s);
    c.importance = in.mean_sq.data();
    auto plain = quantize("t", w.data(), rows, cols, c);
    c.gram = in.gram.data();
    auto comp = quantize("t", w.data(), rows, cols, c);
    REQUIRE(plain.ok());
    REQUIRE(comp.ok());
    const auto wp = dequant(*plain), wc = dequant(*comp);
    const auto ep = row_output_errors(w, wp, rows, cols, in.gram);
    const auto ec = row_output_errors(w, wc, rows, cols, in.gram);
    INFO(test::cfg_name(c) << ": e^T G e plain " << test::sum(ep) << ", compensated " << test::sum(ec));
    for (size_t r = 0; r < ep.size(); ++r) REQUIRE(ec[r] <= ep[r] * (1 + 1e-9));
    CHECK(test::sum(ec) < sc.gain * test::sum(ep));
    // The recorded statistics describe the stored result against the original weights.
    const ErrorStats st = compute_error_stats(w.data(), wc.data(), rows * cols, comp->total_bytes());
    CHECK(comp->stats.rel_error == Approx(st.rel_error).epsilon(1e-5));
    CHECK(comp->stats.max_abs_error == Approx(st.max_abs_error).epsilon(1e-6));
    CHECK(comp->encoding.search == sc.s);
  }
}

TEST_CASE("error compensation with uncorrelated inputs changes nothing", "[quant][gptq]") {
  // A diagonal Gram matrix: no error can be compensated by other columns, so the result is the
  // plain rounding, byte for byte.
  const int64_t rows = 16, cols = 64;
  const auto w = test::laplace(static_cast<size_t>(rows * cols), 211, 0.05f);
  std::vector<float> gram(static_cast<size_t>(cols * cols), 0.0f), imp(static_cast<size_t>(cols));
  for (int64_t i = 0; i < cols; ++i) gram[size_t(i * cols + i)] = imp[size_t(i)] = 0.5f + float(i % 5);
  for (ScaleSearch s : {ScaleSearch::kMse, ScaleSearch::kWeighted}) {
    QuantConfig c = make_cfg(ValueType::kInt4, Granularity::kGroup, 32, true, s);
    c.importance = imp.data();
    auto plain = quantize("t", w.data(), rows, cols, c);
    c.gram = gram.data();
    auto comp = quantize("t", w.data(), rows, cols, c);
    REQUIRE(plain.ok());
    REQUIRE(comp.ok());
    CHECK(same_bytes(*plain, *comp));
  }
}

TEST_CASE("error compensation is deterministic across threads and instruction sets", "[quant][gptq]") {
  const int64_t rows = 37, cols = 96;
  const auto w = test::student_t_outliers(static_cast<size_t>(rows * cols), 221);
  Inputs in = correlated_inputs(cols, 500, 222);
  in.gram[5 * cols + 5] = 0;  // a dead channel: its row and column are zero
  for (int64_t j = 0; j < cols; ++j) in.gram[size_t(5 * cols + j)] = in.gram[size_t(j * cols + 5)] = 0;
  in.mean_sq[5] = 0;
  for (auto [vt, sym] : {std::pair<ValueType, bool>{ValueType::kInt4, true}, {ValueType::kInt4, false},
                         {ValueType::kNl4, true}}) {
    QuantConfig c = make_cfg(vt, Granularity::kGroup, 32, sym, ScaleSearch::kWeighted);
    c.importance = in.mean_sq.data();
    c.gram = in.gram.data();
    c.layout = RowLayout::kInterleave4;
    c.num_threads = 1;
    auto one = quantize("t", w.data(), rows, cols, c);
    REQUIRE(one.ok());
    for (int t : {2, 3, 8}) {
      c.num_threads = t;
      auto many = quantize("t", w.data(), rows, cols, c);
      REQUIRE(many.ok());
      CHECK(same_bytes(*one, *many));
      CHECK(std::memcmp(&one->stats, &many->stats, sizeof(ErrorStats)) == 0);
    }
    c.num_threads = 0;
    for (Isa isa : runnable_isas()) {
      ScopedIsaOverride force(isa);
      auto r = quantize("t", w.data(), rows, cols, c);
      REQUIRE(r.ok());
      INFO(isa_name(isa));
      CHECK(same_bytes(*one, *r));
    }
  }
}

TEST_CASE("bad Gram matrices are rejected", "[quant][gptq]") {
  const int64_t rows = 4, cols = 2;
  const std::vector<float> w = {0.1f, -0.2f, 0.3f, 0.05f, -0.4f, 0.2f, 0.0f, 0.7f};
  QuantConfig c = make_cfg(ValueType::kInt8, Granularity::kChannel, 0, true, ScaleSearch::kMse);
  std::vector<float> gram = {1.0f, 0.5f, 0.5f, NAN};
  c.gram = gram.data();
  auto r = quantize("g", w.data(), rows, cols, c);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == ErrorCode::kInvalidArgument);
  CHECK(r.status().message().find("gram[1, 1]") != std::string::npos);
  gram = {-1.0f, 0.0f, 0.0f, 1.0f};
  r = quantize("g", w.data(), rows, cols, c);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("gram[0, 0]") != std::string::npos);
  // Far from positive semi-definite: no damping repairs it.
  gram = {1.0f, 1000.0f, 1000.0f, 1.0f};
  r = quantize("g", w.data(), rows, cols, c);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("not positive semi-definite") != std::string::npos);
  // Slightly indefinite (rounding in a real Gram matrix): damping repairs it.
  gram = {1.0f, 1.0001f, 1.0001f, 1.0f};
  CHECK(quantize("g", w.data(), rows, cols, c).ok());
}
