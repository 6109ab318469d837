// Quantizers (slmc/quant/quantize.hpp): round-trip bounds on many distributions, a plain
// reference quantizer, every row layout, scale searches, determinism and bad input.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "slmc/cpu.hpp"
#include "quant/detail/common.hpp"
#include "slmc/layout.hpp"
#include "slmc/quant/dequantize.hpp"
#include "slmc/quant/quantize.hpp"
#include "slmc/quant/validate.hpp"
#include "support/quant.hpp"
#include "support/random.hpp"

using namespace slmc;
using test::dequant;
using test::make_cfg;
using test::same_bytes;

namespace {

/// Test matrices: name and data of rows x cols.
struct Case {
  std::string name;
  std::vector<float> w;
};

std::vector<Case> distributions(int64_t n) {
  const size_t sz = static_cast<size_t>(n);
  std::vector<Case> cs;
  cs.push_back({"gaussian", test::gaussian(sz, 1, 0.02f)});
  cs.push_back({"laplace", test::laplace(sz, 2, 0.05f)});
  cs.push_back({"student_t_outliers", test::student_t_outliers(sz, 3, 3.0f, 0.01f, 30.0f)});
  cs.push_back({"all_equal", std::vector<float>(sz, 0.3125f)});
  cs.push_back({"all_equal_negative", std::vector<float>(sz, -1.7f)});
  cs.push_back({"all_zero", std::vector<float>(sz, 0.0f)});
  auto outlier = test::gaussian(sz, 4, 0.01f);
  outlier[sz / 3] = 50.0f;
  cs.push_back({"single_huge_outlier", outlier});
  auto mixed = test::gaussian(sz, 5, 1.0f);
  for (size_t i = 0; i < sz; i += 7) mixed[i] = 0;  // zeros inside groups
  cs.push_back({"gaussian_with_zeros", mixed});
  auto tiny = test::gaussian(sz, 6, 1e-6f);
  cs.push_back({"tiny_1e-6", tiny});
  return cs;
}

/// Stored d and m of (row, k) in a quantized encoding.
void stored_params(const EncodedMatrix& e, int64_t row, int64_t k, float& d, float& m) {
  const DenseQuantLayout l(e.rows, e.cols, e.encoding);
  const int64_t si = l.scale_index(row, k / l.group_size);
  d = quant_detail::load_scale(e.segment(SegmentRole::kScales).data(), si, e.encoding.scale_dtype);
  m = e.encoding.symmetric ? 0.0f
                           : quant_detail::load_scale(e.segment(SegmentRole::kMins).data(), si, e.encoding.scale_dtype);
}

/// Checks the absmax round-trip bound on every element: |x - x_hat| <= d/2 (rounding) plus the
/// effect of storing d (and m) rounded: qmax*|d_exact - d| (+ |m_exact - m|), plus fp32 slack.
void check_absmax_bound(const std::vector<float>& w, int64_t rows, int64_t cols, const QuantConfig& c) {
  auto r = quantize("t", w.data(), rows, cols, c);
  INFO(r.status().to_string());
  REQUIRE(r.ok());
  const std::vector<float> wh = dequant(*r);
  const DenseQuantLayout l(rows, cols, r->encoding);
  const auto cr = quant_detail::code_range(c.value_type, c.symmetric);
  for (int64_t row = 0; row < rows; ++row) {
    for (int64_t g = 0; g < l.groups; ++g) {
      int64_t k0 = g * l.group_size, k1 = std::min(cols, k0 + l.group_size);
      int64_t r0 = row, r1 = row + 1;
      if (l.per_tensor) k0 = 0, k1 = cols, r0 = 0, r1 = rows;
      float mn = w[static_cast<size_t>(r0 * cols + k0)], mx = mn;
      for (int64_t rr = r0; rr < r1; ++rr)
        for (int64_t k = k0; k < k1; ++k) {
          mn = std::min(mn, w[static_cast<size_t>(rr * cols + k)]);
          mx = std::max(mx, w[static_cast<size_t>(rr * cols + k)]);
        }
      float d, m;
      stored_params(*r, row, k0, d, m);
      const double amax = std::max(std::fabs(double(mn)), std::fabs(double(mx)));
      double bound;
      if (c.symmetric) {
        const double d_exact = amax / cr.hi;
        bound = std::fabs(d) / 2 + cr.hi * std::fabs(d_exact - d);
      } else {
        const double range = double(cr.hi) - cr.lo;
        const double d_exact = (double(mx) - mn) / range;
        const double m_exact = mn - cr.lo * double(d);
        bound = d / 2.0 + std::fabs(m_exact - m) + range * std::fabs(d_exact - d);
      }
      bound += 4e-7 * amax + 1e-44;
      for (int64_t rr = r0; rr < r1; ++rr)
        for (int64_t k = k0; k < k1; ++k) {
          const size_t i = static_cast<size_t>(rr * cols + k);
          INFO("row " << rr << " k " << k << " x " << w[i] << " xhat " << wh[i] << " d " << d << " m " << m);
          REQUIRE(std::fabs(double(w[i]) - wh[i]) <= bound);
        }
      if (l.per_tensor) return;
    }
  }
}

/// Squared error per (row, group), optionally weighted by importance[k].
std::vector<double> group_errors(const std::vector<float>& w, const std::vector<float>& wh, int64_t rows, int64_t cols,
                                 int64_t gs, const float* imp = nullptr) {
  const int64_t groups = ceil_div(cols, gs);
  std::vector<double> e(static_cast<size_t>(rows * groups), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < cols; ++k) {
      const size_t i = static_cast<size_t>(r * cols + k);
      const double d = double(w[i]) - double(wh[i]);
      e[static_cast<size_t>(r * groups + k / gs)] += (imp ? double(imp[k]) : 1.0) * d * d;
    }
  return e;
}

}  // namespace

TEST_CASE("absmax round trip stays within half a step on every distribution", "[quant]") {
  const int64_t rows = 5, cols = 100;  // K not a multiple of any group size
  for (const auto& cs : distributions(rows * cols)) {
    for (ValueType vt : {ValueType::kInt8, ValueType::kInt4}) {
      for (bool sym : {true, false}) {
        for (DType sd : {DType::kF16, DType::kF32}) {
          for (int gs : {16, 32, 64, 0}) {
            const Granularity g = gs ? Granularity::kGroup : Granularity::kChannel;
            INFO(cs.name << " " << test::cfg_name(make_cfg(vt, g, gs, sym, ScaleSearch::kAbsmax, sd)));
            check_absmax_bound(cs.w, rows, cols, make_cfg(vt, g, gs, sym, ScaleSearch::kAbsmax, sd));
          }
        }
      }
    }
    INFO(cs.name << " int8 per-tensor");
    check_absmax_bound(cs.w, rows, cols, make_cfg(ValueType::kInt8, Granularity::kTensor, 0, true));
    check_absmax_bound(cs.w, rows, cols, make_cfg(ValueType::kInt8, Granularity::kTensor, 0, false));
  }
}

TEST_CASE("extreme magnitudes round trip with fp32 scales", "[quant]") {
  const int64_t rows = 3, cols = 64;
  std::vector<Case> cs;
  cs.push_back({"denormals", test::gaussian(rows * cols, 7, 1e-40f)});
  cs.push_back({"smallest_denormals", std::vector<float>(rows * cols, 0.0f)});
  for (size_t i = 0; i < cs[1].w.size(); ++i) cs[1].w[i] = float(int(i % 5) - 2) * std::numeric_limits<float>::denorm_min();
  cs.push_back({"tiny_1e-30", test::gaussian(rows * cols, 8, 1e-30f)});
  cs.push_back({"huge_1e30", test::gaussian(rows * cols, 9, 1e30f)});
  cs.push_back({"near_float_max", test::uniform(rows * cols, 10, -1.0f, 1.0f)});
  for (float& x : cs.back().w) x *= 3e38f;
  for (const auto& c : cs) {
    for (ValueType vt : {ValueType::kInt8, ValueType::kInt4}) {
      for (bool sym : {true, false}) {
        INFO(c.name << " " << int(vt) << " sym " << sym);
        if (c.name == "near_float_max" && vt == ValueType::kInt4 && !sym) {
          // d * 15 spans max - min > FLT_MAX: not representable by w = d*u + m.
          auto r = quantize("t", c.w.data(), rows, cols, make_cfg(vt, Granularity::kGroup, 32, sym, ScaleSearch::kAbsmax, DType::kF32));
          CHECK(r.status().code() == ErrorCode::kOutOfRange);
          continue;
        }
        check_absmax_bound(c.w, rows, cols, make_cfg(vt, Granularity::kGroup, 32, sym, ScaleSearch::kAbsmax, DType::kF32));
        // The searches must also cope (no NaN, no crash) and keep every value finite.
        for (ScaleSearch s : {ScaleSearch::kMse}) {
          auto r = quantize("t", c.w.data(), rows, cols, make_cfg(vt, Granularity::kGroup, 32, sym, s, DType::kF32));
          REQUIRE(r.ok());
          for (float x : dequant(*r)) REQUIRE(std::isfinite(x));
        }
      }
    }
  }
}

TEST_CASE("fp16 scales that overflow are a clear error", "[quant]") {
  std::vector<float> w(2 * 32, 1.0f);
  w[40] = 1e6f;
  auto r = quantize("big.weight", w.data(), 2, 32, make_cfg(ValueType::kInt4, Granularity::kGroup, 32, true));
  REQUIRE(!r.ok());
  CHECK(r.status().code() == ErrorCode::kOutOfRange);
  CHECK(r.status().message().find("big.weight") != std::string::npos);
  CHECK(r.status().message().find("row 1, group 0") != std::string::npos);
}

TEST_CASE("absmax matches a plain reference quantizer byte for byte", "[quant]") {
  // Reference: straight from docs/LAYOUT.md and the absmax definition, one element at a time.
  const int64_t rows = 11, cols = 77;
  const auto w = test::laplace(rows * cols, 21, 0.1f);
  for (ValueType vt : {ValueType::kInt8, ValueType::kInt4}) {
    for (bool sym : {true, false}) {
      for (RowLayout rl : {RowLayout::kRows, RowLayout::kInterleave4, RowLayout::kInterleave8}) {
        for (int gs : {16, 32, 0}) {
          const QuantConfig c = make_cfg(vt, gs ? Granularity::kGroup : Granularity::kChannel, gs, sym,
                                         ScaleSearch::kAbsmax, DType::kF16, rl);
          INFO(test::cfg_name(c));
          auto r = quantize("t", w.data(), rows, cols, c);
          REQUIRE(r.ok());
          const DenseQuantLayout l(rows, cols, r->encoding);
          const auto cr = quant_detail::code_range(vt, sym);
          std::vector<uint8_t> values(static_cast<size_t>(l.values_bytes()), 0);
          std::vector<uint16_t> scales(static_cast<size_t>(l.scale_count())), mins(scales.size());
          for (int64_t row = 0; row < rows; ++row) {
            for (int64_t k = 0; k < l.chunks * kChunk; ++k) write_code(l, vt, values.data(), row, k, cr.pad);
            for (int64_t g = 0; g < l.groups; ++g) {
              const int64_t k0 = g * l.group_size, k1 = std::min(cols, k0 + l.group_size);
              float mn = w[size_t(row * cols + k0)], mx = mn;
              for (int64_t k = k0; k < k1; ++k) {
                mn = std::min(mn, w[size_t(row * cols + k)]);
                mx = std::max(mx, w[size_t(row * cols + k)]);
              }
              float d, m = 0;
              if (sym) {
                d = fp16_to_fp32(fp32_to_fp16(std::max(std::fabs(mn), std::fabs(mx)) / float(cr.hi)));
              } else {
                const float range = float(cr.hi - cr.lo);
                d = fp16_to_fp32(fp32_to_fp16(mx / range - mn / range));
                m = fp16_to_fp32(fp32_to_fp16(mn - float(cr.lo) * d));
              }
              scales[size_t(l.scale_index(row, g))] = fp32_to_fp16(d);
              mins[size_t(l.scale_index(row, g))] = fp32_to_fp16(m);
              const float id = d != 0 ? 1.0f / d : 0.0f;
              for (int64_t k = k0; k < k1; ++k) {
                float q = std::nearbyint((w[size_t(row * cols + k)] - m) * id);
                q = std::min(std::max(q, float(cr.lo)), float(cr.hi));
                write_code(l, vt, values.data(), row, k, int32_t(q) + cr.offset);
              }
            }
          }
          REQUIRE(r->segment(SegmentRole::kValues).size() == values.size());
          CHECK(std::memcmp(r->segment(SegmentRole::kValues).data(), values.data(), values.size()) == 0);
          REQUIRE(r->segment(SegmentRole::kScales).size() == 2 * scales.size());
          CHECK(std::memcmp(r->segment(SegmentRole::kScales).data(), scales.data(), 2 * scales.size()) == 0);
          if (!sym) CHECK(std::memcmp(r->segment(SegmentRole::kMins).data(), mins.data(), 2 * mins.size()) == 0);
          if (sym) CHECK(r->segment(SegmentRole::kMins).empty());
        }
      }
    }
  }
}

TEST_CASE("int4 nibbles hold element j low and j plus 16 high", "[quant]") {
  // Asymmetric absmax over 0..15 gives d = 1, m = 0 and codes equal to the values.
  std::vector<float> w(40);
  for (size_t k = 0; k < w.size(); ++k) w[k] = float((k * 7) % 16);
  w[0] = 0;
  w[1] = 15;
  auto r = quantize("t", w.data(), 1, 40, make_cfg(ValueType::kInt4, Granularity::kChannel, 0, false));
  REQUIRE(r.ok());
  const uint8_t* v = r->segment(SegmentRole::kValues).data();
  REQUIRE(r->segment(SegmentRole::kValues).size() == 32);  // 2 chunks of 16 bytes
  for (int j = 0; j < 16; ++j) {
    CHECK((v[j] & 0x0f) == int(w[size_t(j)]));
    CHECK((v[j] >> 4) == int(w[size_t(j + 16)]));
  }
  // Second chunk: elements 32..39, then padding code 0 (asymmetric int4).
  for (int j = 0; j < 16; ++j) {
    CHECK((v[16 + j] & 0x0f) == (j < 8 ? int(w[size_t(32 + j)]) : 0));
    CHECK((v[16 + j] >> 4) == 0);
  }
  for (float x : dequant(*r)) CHECK(x == std::nearbyint(x));
  // Symmetric padding is code 8 (value 0).
  auto s = quantize("t", w.data(), 1, 40, make_cfg(ValueType::kInt4, Granularity::kChannel, 0, true));
  REQUIRE(s.ok());
  CHECK(s->segment(SegmentRole::kValues).data()[31] == 0x88);
}

TEST_CASE("every row layout dequantizes identically", "[quant]") {
  const int64_t rows = 21, cols = 100;  // rows not a multiple of 4 or 8
  const auto w = test::student_t_outliers(rows * cols, 31);
  for (ValueType vt : {ValueType::kInt8, ValueType::kInt4}) {
    for (bool sym : {true, false}) {
      for (ScaleSearch s : {ScaleSearch::kAbsmax, ScaleSearch::kMse}) {
        for (int gs : {16, 32, 64, 0}) {
          const Granularity g = gs ? Granularity::kGroup : Granularity::kChannel;
          auto plain = quantize("t", w.data(), rows, cols, make_cfg(vt, g, gs, sym, s));
          REQUIRE(plain.ok());
          const auto ref = dequant(*plain);
          for (RowLayout rl : {RowLayout::kInterleave4, RowLayout::kInterleave8}) {
            auto il = quantize("t", w.data(), rows, cols, make_cfg(vt, g, gs, sym, s, DType::kF16, rl));
            REQUIRE(il.ok());
            CHECK(il->encoding.layout == rl);
            CHECK(dequant(*il) == ref);
            CHECK(il->stats.rel_error == plain->stats.rel_error);
            CHECK(il->total_bytes() == plain->total_bytes());
            // dequantize_rows gives the same rows as the full dequantization.
            std::vector<float> part(size_t(3 * cols));
            REQUIRE(dequantize_rows(il->view(), 17, 20, part.data()).ok());
            CHECK(std::equal(part.begin(), part.end(), ref.begin() + 17 * cols));
          }
        }
      }
    }
  }
}

TEST_CASE("mse is never worse than absmax on any group", "[quant]") {
  const int64_t rows = 16, cols = 200;
  for (const auto& cs : distributions(rows * cols)) {
    for (ValueType vt : {ValueType::kInt8, ValueType::kInt4}) {
      for (bool sym : {true, false}) {
        for (DType sd : {DType::kF16, DType::kF32}) {
          for (int gs : {16, 32, 128, 0}) {
            const Granularity g = gs ? Granularity::kGroup : Granularity::kChannel;
            const int64_t eff = gs ? gs : cols;
            auto a = quantize("t", cs.w.data(), rows, cols, make_cfg(vt, g, gs, sym, ScaleSearch::kAbsmax, sd));
            auto m = quantize("t", cs.w.data(), rows, cols, make_cfg(vt, g, gs, sym, ScaleSearch::kMse, sd));
            REQUIRE(a.ok());
            REQUIRE(m.ok());
            const auto ea = group_errors(cs.w, dequant(*a), rows, cols, eff);
            const auto em = group_errors(cs.w, dequant(*m), rows, cols, eff);
            INFO(cs.name << " " << test::cfg_name(make_cfg(vt, g, gs, sym, ScaleSearch::kMse, sd)));
            for (size_t i = 0; i < ea.size(); ++i) REQUIRE(em[i] <= ea[i] * (1 + 1e-12));
          }
        }
      }
    }
  }
}

TEST_CASE("mse clearly beats absmax on heavy tailed data", "[quant]") {
  const int64_t rows = 64, cols = 256;
  const auto w = test::student_t_outliers(rows * cols, 41, 3.0f, 0.002f, 10.0f);
  for (ValueType vt : {ValueType::kInt8, ValueType::kInt4}) {
    for (bool sym : {true, false}) {
      auto a = quantize("t", w.data(), rows, cols, make_cfg(vt, Granularity::kGroup, 32, sym, ScaleSearch::kAbsmax));
      auto m = quantize("t", w.data(), rows, cols, make_cfg(vt, Granularity::kGroup, 32, sym, ScaleSearch::kMse));
      REQUIRE(a.ok());
      REQUIRE(m.ok());
      INFO(int(vt) << " sym " << sym << " absmax " << a->stats.rel_error << " mse " << m->stats.rel_error);
      // int4 has few levels, so clipping outliers pays a lot; int8 gains less but still gains.
      CHECK(m->stats.rel_error < (vt == ValueType::kInt4 ? 0.95 : 0.99) * a->stats.rel_error);
    }
  }
}

TEST_CASE("per-tensor int8 mse is no worse than absmax", "[quant]") {
  const int64_t rows = 9, cols = 50;
  const auto w = test::student_t_outliers(rows * cols, 43, 3.0f, 0.01f, 20.0f);
  for (bool sym : {true, false}) {
    auto a = quantize("t", w.data(), rows, cols, make_cfg(ValueType::kInt8, Granularity::kTensor, 0, sym));
    auto m = quantize("t", w.data(), rows, cols,
                      make_cfg(ValueType::kInt8, Granularity::kTensor, 0, sym, ScaleSearch::kMse));
    REQUIRE(a.ok());
    REQUIRE(m.ok());
    CHECK(a->segment(SegmentRole::kScales).size() == 2);
    CHECK(m->stats.rel_error <= a->stats.rel_error);
  }
}

TEST_CASE("weighted search reduces the importance weighted error", "[quant]") {
  const int64_t rows = 64, cols = 256;
  const auto w = test::gaussian(rows * cols, 51, 0.05f);
  const auto g = test::gaussian(cols, 52, 1.5f);
  std::vector<float> imp(static_cast<size_t>(cols));
  for (size_t k = 0; k < imp.size(); ++k) imp[k] = std::exp(g[k]);  // spans ~2 orders of magnitude
  imp[5] = 0;  // zero importance is legal
  for (ValueType vt : {ValueType::kInt8, ValueType::kInt4}) {
    for (bool sym : {true, false}) {
      for (int gs : {32, 0}) {
        const Granularity gr = gs ? Granularity::kGroup : Granularity::kChannel;
        const int64_t eff = gs ? gs : cols;
        auto m = quantize("t", w.data(), rows, cols, make_cfg(vt, gr, gs, sym, ScaleSearch::kMse));
        QuantConfig wc = make_cfg(vt, gr, gs, sym, ScaleSearch::kWeighted);
        wc.importance = imp.data();
        auto ww = quantize("t", w.data(), rows, cols, wc);
        auto a = quantize("t", w.data(), rows, cols, make_cfg(vt, gr, gs, sym, ScaleSearch::kAbsmax));
        REQUIRE(m.ok());
        REQUIRE(ww.ok());
        REQUIRE(a.ok());
        CHECK(ww->encoding.search == ScaleSearch::kWeighted);
        const auto e_mse = group_errors(w, dequant(*m), rows, cols, eff, imp.data());
        const auto e_w = group_errors(w, dequant(*ww), rows, cols, eff, imp.data());
        const auto e_a = group_errors(w, dequant(*a), rows, cols, eff, imp.data());
        INFO(int(vt) << " sym " << sym << " gs " << gs << ": weighted " << test::sum(e_w) << " mse " << test::sum(e_mse));
        CHECK(test::sum(e_w) < 0.97 * test::sum(e_mse));
        for (size_t i = 0; i < e_a.size(); ++i) REQUIRE(e_w[i] <= e_a[i] * (1 + 1e-12));
      }
    }
  }
  // All-zero importance falls back to plain mse.
  std::vector<float> zeros(static_cast<size_t>(cols), 0.0f);
  QuantConfig wc = make_cfg(ValueType::kInt4, Granularity::kGroup, 32, true, ScaleSearch::kWeighted);
  wc.importance = zeros.data();
  auto ww = quantize("t", w.data(), rows, cols, wc);
  auto m = quantize("t", w.data(), rows, cols, make_cfg(ValueType::kInt4, Granularity::kGroup, 32, true, ScaleSearch::kMse));
  REQUIRE(ww.ok());
  CHECK(dequant(*ww) == dequant(*m));
}

TEST_CASE("results do not depend on the thread count", "[quant]") {
  const int64_t rows = 37, cols = 300;
  const auto w = test::laplace(rows * cols, 61);
  std::vector<float> imp(static_cast<size_t>(cols));
  for (size_t k = 0; k < imp.size(); ++k) imp[k] = 0.5f + float(k % 7);
  for (ValueType vt : {ValueType::kInt8, ValueType::kInt4}) {
    for (ScaleSearch s : {ScaleSearch::kAbsmax, ScaleSearch::kMse, ScaleSearch::kWeighted}) {
      for (Granularity g : {Granularity::kChannel, Granularity::kGroup, Granularity::kTensor}) {
        if (vt == ValueType::kInt4 && g == Granularity::kTensor) continue;
        QuantConfig c = make_cfg(vt, g, g == Granularity::kGroup ? 64 : 0, vt == ValueType::kInt8, s, DType::kF16,
                                 RowLayout::kInterleave8);
        c.importance = imp.data();
        c.num_threads = 1;
        auto one = quantize("t", w.data(), rows, cols, c);
        REQUIRE(one.ok());
        for (int t : {2, 3, 8}) {
          c.num_threads = t;
          auto many = quantize("t", w.data(), rows, cols, c);
          REQUIRE(many.ok());
          INFO(test::cfg_name(c) << " threads " << t);
          CHECK(same_bytes(*one, *many));
          CHECK(std::memcmp(&one->stats, &many->stats, sizeof(ErrorStats)) == 0);
        }
      }
    }
  }
}

TEST_CASE("statistics and bits per weight come from the exact bytes", "[quant]") {
  const auto w = test::gaussian(8 * 256, 71);
  auto r = quantize("t", w.data(), 8, 256, make_cfg(ValueType::kInt4, Granularity::kGroup, 32, true));
  REQUIRE(r.ok());
  CHECK(r->stats.bits_per_weight == 4.5);
  r = quantize("t", w.data(), 8, 256, make_cfg(ValueType::kInt4, Granularity::kGroup, 32, false));
  CHECK(r->stats.bits_per_weight == 5.0);
  r = quantize("t", w.data(), 8, 256, make_cfg(ValueType::kInt4, Granularity::kGroup, 32, true, ScaleSearch::kAbsmax, DType::kF32));
  CHECK(r->stats.bits_per_weight == 5.0);
  r = quantize("t", w.data(), 8, 256, make_cfg(ValueType::kInt8, Granularity::kGroup, 32, true));
  CHECK(r->stats.bits_per_weight == 8.5);
  r = quantize("t", w.data(), 8, 256, make_cfg(ValueType::kInt8, Granularity::kChannel, 0, true, ScaleSearch::kMse));
  CHECK(r->stats.bits_per_weight == Approx(8.0 + 16.0 / 256));
  // Recomputed statistics agree with the quantizer's own.
  const auto wh = dequant(*r);
  const ErrorStats s = compute_error_stats(w.data(), wh.data(), 8 * 256, r->total_bytes());
  CHECK(r->stats.rmse == Approx(s.rmse).epsilon(1e-5));
  CHECK(r->stats.rel_error == Approx(s.rel_error).epsilon(1e-5));
  CHECK(r->stats.sqnr_db == Approx(s.sqnr_db).epsilon(1e-5));
  CHECK(r->stats.max_abs_error == Approx(s.max_abs_error).epsilon(1e-5));
  CHECK(r->stats.sparsity == s.sparsity);
  // Known values: w = (1, 2, 0, 0), w_hat = (1, 1, 0, 1).
  const float a[4] = {1, 2, 0, 0}, b[4] = {1, 1, 0, 1};
  const ErrorStats k = compute_error_stats(a, b, 4, 2);
  CHECK(k.rmse == Approx(std::sqrt(0.5)));
  CHECK(k.rel_error == Approx(std::sqrt(2.0 / 5.0)));
  CHECK(k.sqnr_db == Approx(10 * std::log10(2.5)));
  CHECK(k.max_abs_error == 1.0);
  CHECK(k.sparsity == 0.25);
  CHECK(k.bits_per_weight == 4.0);
  const auto rows = compute_row_error_stats(a, b, 2, 2, 2);
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].rel_error == Approx(std::sqrt(1.0 / 5.0)));
  CHECK(std::isinf(rows[1].rel_error));  // w == 0, w_hat != 0
  CHECK(compute_error_stats(a, a, 4, 0).sqnr_db == 999);
  // All-zero input: nothing lost, all zeros.
  std::vector<float> z(64, 0.0f);
  r = quantize("t", z.data(), 2, 32, make_cfg(ValueType::kInt4, Granularity::kGroup, 32, false, ScaleSearch::kMse));
  REQUIRE(r.ok());
  CHECK(r->stats.rel_error == 0);
  CHECK(r->stats.sparsity == 1.0);
}

TEST_CASE("float passthrough encodings", "[quant]") {
  const int64_t rows = 3, cols = 33;
  auto w = test::gaussian(rows * cols, 81, 10.0f);
  for (ValueType vt : {ValueType::kF32, ValueType::kF16, ValueType::kBF16}) {
    auto r = encode_float("ln.weight", w.data(), rows, cols, vt);
    REQUIRE(r.ok());
    CHECK(validate_dense_matrix(r->view(), "ln.weight").ok());
    const auto back = dequant(*r);
    for (size_t i = 0; i < w.size(); ++i) {
      const float expect = vt == ValueType::kF32 ? w[i]
                           : vt == ValueType::kF16 ? fp16_to_fp32(fp32_to_fp16(w[i]))
                                                   : bf16_to_fp32(fp32_to_bf16(w[i]));
      REQUIRE(back[i] == expect);
    }
    CHECK(r->stats.bits_per_weight == (vt == ValueType::kF32 ? 32.0 : 16.0));
    CHECK((vt == ValueType::kF32) == (r->stats.rel_error == 0));
  }
  w[40] = 1e5f;
  auto r = encode_float("ln.weight", w.data(), rows, cols, ValueType::kF16);
  REQUIRE(!r.ok());
  CHECK(r.status().message().find("row 1, col 7") != std::string::npos);
  CHECK(encode_float("x", w.data(), rows, cols, ValueType::kBF16).ok());
  w[41] = NAN;
  CHECK(encode_float("x", w.data(), rows, cols, ValueType::kF32).status().code() == ErrorCode::kNonFinite);
  CHECK(encode_float("x", w.data(), rows, cols, ValueType::kInt8).status().code() == ErrorCode::kInvalidArgument);
  CHECK(encode_float("x", w.data(), 0, cols, ValueType::kF32).status().code() == ErrorCode::kInvalidArgument);
}

TEST_CASE("bad input gives clear errors", "[quant]") {
  std::vector<float> w(4 * 64, 0.5f);
  const QuantConfig ok = make_cfg(ValueType::kInt4, Granularity::kGroup, 32, true);
  auto expect = [&](const Result<EncodedMatrix>& r, ErrorCode code, const std::string& needle) {
    REQUIRE(!r.ok());
    INFO(r.status().to_string());
    CHECK(r.status().code() == code);
    CHECK(r.status().message().find(needle) != std::string::npos);
  };
  w[2 * 64 + 5] = NAN;
  expect(quantize("blk.0.wq", w.data(), 4, 64, ok), ErrorCode::kNonFinite, "tensor 'blk.0.wq': weight at row 2, col 5 is NaN");
  w[2 * 64 + 5] = -INFINITY;
  expect(quantize("blk.0.wq", w.data(), 4, 64, ok), ErrorCode::kNonFinite, "row 2, col 5 is Inf");
  w[2 * 64 + 5] = 0.5f;
  expect(quantize("e", w.data(), 0, 64, ok), ErrorCode::kInvalidArgument, "empty");
  expect(quantize("e", w.data(), 4, 0, ok), ErrorCode::kInvalidArgument, "empty");
  expect(quantize("e", w.data(), -1, 64, ok), ErrorCode::kInvalidArgument, "empty");
  expect(quantize("e", w.data(), int64_t{1} << 40, int64_t{1} << 40, ok), ErrorCode::kOutOfRange, "2^52");
  expect(quantize("e", nullptr, 4, 64, ok), ErrorCode::kInvalidArgument, "null");
  for (int gs : {0, 8, 24, 48, 512, -32}) {
    expect(quantize("g", w.data(), 4, 64, make_cfg(ValueType::kInt4, Granularity::kGroup, gs, true)),
           ErrorCode::kUnsupported, "int4 group size");
  }
  for (int gs : {0, 8, 24, -16}) {
    expect(quantize("g", w.data(), 4, 64, make_cfg(ValueType::kInt8, Granularity::kGroup, gs, true)),
           ErrorCode::kUnsupported, "int8 group size");
  }
  CHECK(quantize("g", w.data(), 4, 64, make_cfg(ValueType::kInt8, Granularity::kGroup, 48, true)).ok());
  CHECK(quantize("g", w.data(), 4, 64, make_cfg(ValueType::kInt8, Granularity::kGroup, 4096, true)).ok());
  expect(quantize("t", w.data(), 4, 64, make_cfg(ValueType::kInt4, Granularity::kTensor, 0, true)),
         ErrorCode::kUnsupported, "per-tensor");
  expect(quantize("t", w.data(), 4, 64, make_cfg(ValueType::kF16, Granularity::kGroup, 32, true)),
         ErrorCode::kInvalidArgument, "not int8, int4 or nl4");
  expect(quantize("t", w.data(), 4, 64, make_cfg(ValueType::kInt8, Granularity::kNone, 0, true)),
         ErrorCode::kInvalidArgument, "granularity");
  QuantConfig c = ok;
  c.scale_dtype = DType::kBF16;
  expect(quantize("t", w.data(), 4, 64, c), ErrorCode::kUnsupported, "scale dtype");
  c = ok;
  c.layout = static_cast<RowLayout>(2);
  expect(quantize("t", w.data(), 4, 64, c), ErrorCode::kInvalidArgument, "row layout");
  c = ok;
  c.search = static_cast<ScaleSearch>(9);
  expect(quantize("t", w.data(), 4, 64, c), ErrorCode::kInvalidArgument, "search");
  c = ok;
  c.search = ScaleSearch::kWeighted;
  expect(quantize("t", w.data(), 4, 64, c), ErrorCode::kInvalidArgument, "importance");
  std::vector<float> imp(64, 1.0f);
  imp[9] = -1;
  c.importance = imp.data();
  expect(quantize("t", w.data(), 4, 64, c), ErrorCode::kInvalidArgument, "importance[9]");
  imp[9] = NAN;
  expect(quantize("t", w.data(), 4, 64, c), ErrorCode::kInvalidArgument, "importance[9]");
}

TEST_CASE("results do not depend on the instruction set", "[quant]") {
  const int64_t rows = 19, cols = 200;
  const auto w = test::student_t_outliers(rows * cols, 91);
  std::vector<float> imp(static_cast<size_t>(cols));
  for (size_t k = 0; k < imp.size(); ++k) imp[k] = 0.25f + float(k % 5);
  const auto isas = runnable_isas();
  for (ValueType vt : {ValueType::kInt8, ValueType::kInt4}) {
    for (bool sym : {true, false}) {
      for (ScaleSearch s : {ScaleSearch::kAbsmax, ScaleSearch::kMse, ScaleSearch::kWeighted}) {
        for (int gs : {32, 0}) {
          QuantConfig c = make_cfg(vt, gs ? Granularity::kGroup : Granularity::kChannel, gs, sym, s);
          c.importance = imp.data();
          std::vector<EncodedMatrix> outs;
          for (Isa isa : isas) {
            ScopedIsaOverride force(isa);
            auto r = quantize("t", w.data(), rows, cols, c);
            REQUIRE(r.ok());
            outs.push_back(std::move(r).value());
          }
          INFO(test::cfg_name(c));
          for (size_t i = 1; i < outs.size(); ++i) CHECK(same_bytes(outs[0], outs[i]));
        }
      }
    }
  }
}
