// Quantizers on real trained weights (stories260K, capp-gpt2-236K): prints the scheme table of
// docs/QUANT.md and checks that the mse search beats absmax and the widely used "Q4_0 rule".
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "quant/detail/common.hpp"
#include "slmc/layout.hpp"
#include "slmc/quant/dequantize.hpp"
#include "slmc/quant/error_stats.hpp"
#include "slmc/quant/quantize.hpp"
#include "support/models.hpp"
#include "support/quant.hpp"
#include "support/simple_models.hpp"

using namespace slmc;

namespace {

/// The linear (projection) weights of each model, as [out, in].
std::vector<test::NamedMatrix> stories_linears() {
  auto all = test::read_llama2c_matrices(test::model_path("stories260K/stories260K.bin"));
  std::vector<test::NamedMatrix> out;
  for (auto& m : all)
    if (m.name != "token_embedding") out.push_back(std::move(m));
  return out;
}

std::vector<test::NamedMatrix> gpt2_linears() {
  auto all = test::read_safetensors_matrices(test::model_path("capp-gpt2-236K/model.safetensors"), true);
  std::vector<test::NamedMatrix> out;
  for (auto& m : all)
    if (m.name.find(".h.") != std::string::npos) out.push_back(std::move(m));
  return out;
}

struct Totals {
  double sum_sq = 0, sum_err = 0, bits = 0, n = 0;
  void add(const float* w, const float* wh, int64_t count, double bytes) {
    for (int64_t i = 0; i < count; ++i) {
      const double e = double(w[i]) - double(wh[i]);
      sum_sq += double(w[i]) * w[i];
      sum_err += e * e;
    }
    bits += 8 * bytes;
    n += double(count);
  }
  double rel() const { return std::sqrt(sum_err / sum_sq); }
  double sqnr() const { return 10 * std::log10(sum_sq / sum_err); }
  double bpw() const { return bits / n; }
};

/// The "Q4_0 rule" as ggml's reference quantizer applies it: per block of 32 along K, d = m / -8
/// with m the element of largest magnitude (sign kept), q = clamp(round(x / d) + 8, 0, 15), and
/// d stored as fp16 (18 bytes per 32 weights). A partial last block uses its real elements.
Totals q4_0_rule(const std::vector<test::NamedMatrix>& ms) {
  Totals t;
  for (const auto& m : ms) {
    std::vector<float> wh(m.data.size());
    for (int64_t r = 0; r < m.rows; ++r) {
      for (int64_t b = 0; b < m.cols; b += 32) {
        const int64_t e = std::min<int64_t>(m.cols, b + 32);
        const float* x = m.data.data() + r * m.cols;
        float amax = 0, mx = 0;
        for (int64_t k = b; k < e; ++k) {
          if (std::fabs(x[k]) > amax) {
            amax = std::fabs(x[k]);
            mx = x[k];
          }
        }
        const float d = mx / -8.0f;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        const float d16 = fp16_to_fp32(fp32_to_fp16(d));
        for (int64_t k = b; k < e; ++k) {
          const float q = std::min(15.0f, std::max(0.0f, std::nearbyint(x[k] * id) + 8.0f));
          wh[static_cast<size_t>(r * m.cols + k)] = (q - 8.0f) * d16;
        }
      }
    }
    t.add(m.data.data(), wh.data(), m.rows * m.cols, double(m.rows * ceil_div(m.cols, 32) * 18));
  }
  return t;
}

Totals run_scheme(const std::vector<test::NamedMatrix>& ms, const QuantConfig& c) {
  Totals t;
  for (const auto& m : ms) {
    auto r = quantize(m.name, m.data.data(), m.rows, m.cols, c);
    REQUIRE(r.ok());
    std::vector<float> wh(m.data.size());
    REQUIRE(dequantize(r->view(), wh.data()).ok());
    t.add(m.data.data(), wh.data(), m.rows * m.cols, double(r->total_bytes()));
    // The quantizer's own statistics agree with a recomputation from the dequantized weights.
    const ErrorStats st = compute_error_stats(m.data.data(), wh.data(), m.rows * m.cols, r->total_bytes());
    CHECK(r->stats.rel_error == Approx(st.rel_error).epsilon(1e-4));
    CHECK(r->stats.bits_per_weight == Approx(st.bits_per_weight));
  }
  return t;
}

void table_and_checks(const char* model, const std::vector<test::NamedMatrix>& ms) {
  REQUIRE(!ms.empty());
  const auto I8 = ValueType::kInt8, I4 = ValueType::kInt4;
  const auto CH = Granularity::kChannel, GR = Granularity::kGroup;
  const auto ABS = ScaleSearch::kAbsmax, MSE = ScaleSearch::kMse;
  const auto cfg = [](ValueType vt, Granularity g, int gs, bool sym, ScaleSearch s) {
    return test::make_cfg(vt, g, gs, sym, s);
  };
  const std::vector<QuantConfig> schemes = {
      cfg(I8, CH, 0, true, ABS),  cfg(I8, CH, 0, true, MSE),  cfg(I8, GR, 32, true, ABS),
      cfg(I8, GR, 32, true, MSE), cfg(I8, CH, 0, false, ABS), cfg(I8, CH, 0, false, MSE),
      cfg(I4, GR, 32, true, ABS), cfg(I4, GR, 32, true, MSE), cfg(I4, GR, 128, true, ABS),
      cfg(I4, GR, 128, true, MSE), cfg(I4, GR, 32, false, ABS), cfg(I4, GR, 32, false, MSE),
      cfg(I4, GR, 128, false, ABS), cfg(I4, GR, 128, false, MSE), cfg(I4, CH, 0, true, MSE),
  };
  std::printf("\n%s linear weights (%zu matrices)\n%-24s %7s %10s %9s\n", model, ms.size(), "scheme", "bpw",
              "rel_error", "sqnr_dB");
  double rel_abs = 0, rel_mse = 0;
  for (const auto& c : schemes) {
    const Totals t = run_scheme(ms, c);
    std::printf("%-24s %7.3f %10.5f %9.2f\n", test::cfg_name(c).c_str(), t.bpw(), t.rel(), t.sqnr());
    if (test::cfg_name(c) == "int4:group=32,sym=true,search=absmax,scale_dtype=fp16,layout=rows") rel_abs = t.rel();
    if (test::cfg_name(c) == "int4:group=32,sym=true,search=mse,scale_dtype=fp16,layout=rows") rel_mse = t.rel();
  }
  const Totals q4 = q4_0_rule(ms);
  std::printf("%-24s %7.3f %10.5f %9.2f\n", "q4_0_rule (test)", q4.bpw(), q4.rel(), q4.sqnr());
  std::printf("int4_g32_mse vs absmax: %.1f%% lower error; vs Q4_0 rule: %.1f%% lower\n",
              100 * (1 - rel_mse / rel_abs), 100 * (1 - rel_mse / q4.rel()));
  CHECK(rel_mse <= 0.90 * rel_abs);
  CHECK(rel_mse <= 0.97 * q4.rel());
}

}  // namespace

TEST_CASE("stories260K int4 g32 mse beats absmax and the Q4_0 rule", "[quant][models]") {
  table_and_checks("stories260K", stories_linears());
}

TEST_CASE("capp gpt2 int4 g32 mse beats absmax and the Q4_0 rule", "[quant][models]") {
  table_and_checks("capp-gpt2-236K", gpt2_linears());
}
