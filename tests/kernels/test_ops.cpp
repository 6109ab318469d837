// The forward-pass ops (slmc/kernels/ops.hpp) on every runnable ISA against fp64 references:
// random and adversarial values, lengths 1..~300 (every tail of 8- and 16-lane vectors), strided
// rows, in-place calls, and outputs that must not be touched past their end.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "slmc/cpu.hpp"
#include "slmc/kernels/ops.hpp"

namespace slmc::test_ops {
namespace {

constexpr float kGuard = 12345.0f;  // written past each output; must survive

std::vector<float> random_values(std::mt19937& rng, int64_t n, float scale) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
}

std::vector<int64_t> lengths() {
  std::vector<int64_t> out;
  for (int64_t n = 1; n <= 70; ++n) out.push_back(n);
  for (int64_t n : {95, 96, 97, 127, 128, 129, 255, 256, 257, 576, 1536, 1537}) out.push_back(n);
  return out;
}

}  // namespace

TEST_CASE("ops report their ISA", "[ops]") {
  for (Isa isa : runnable_isas()) {
    ScopedIsaOverride force(isa);
    const std::string name = ops::ops_kernel_isa();
    // An ISA without its own ops table uses its fallback's, never a better one.
    CHECK((name == isa_name(isa) || name == "scalar" || name == "avx2"));
    if (isa == Isa::kScalar) CHECK(name == "scalar");
  }
}

TEST_CASE("rmsnorm matches the fp64 reference", "[ops]") {
  std::mt19937 rng(1);
  for (Isa isa : runnable_isas()) {
    ScopedIsaOverride force(isa);
    for (int64_t n : lengths()) {
      for (float scale : {1e-3f, 1.0f, 300.0f}) {
        const std::vector<float> x = random_values(rng, n, scale), w = random_values(rng, n, 1.0f);
        std::vector<float> out(static_cast<size_t>(n) + 1, kGuard);
        ops::rmsnorm(x.data(), w.data(), n, 1e-5f, out.data());
        double ss = 0;
        for (float v : x) ss += static_cast<double>(v) * v;
        const double r = 1.0 / std::sqrt(ss / static_cast<double>(n) + 1e-5);
        for (int64_t i = 0; i < n; ++i) {
          const double want = x[i] * r * w[i];
          INFO(isa_name(isa) << " n=" << n << " i=" << i << " scale=" << scale);
          CHECK(std::fabs(out[i] - want) <= 2e-6 * std::fabs(want) + 1e-30);
        }
        CHECK(out[static_cast<size_t>(n)] == kGuard);
        // In place gives the same bits.
        std::vector<float> y = x;
        ops::rmsnorm(y.data(), w.data(), n, 1e-5f, y.data());
        CHECK(std::equal(y.begin(), y.end(), out.begin()));
      }
    }
    // All zeros: eps keeps it finite (zeros out).
    std::vector<float> z(33, 0.0f), w(33, 1.0f), out(33, kGuard);
    ops::rmsnorm(z.data(), w.data(), 33, 1e-5f, out.data());
    for (float v : out) CHECK(v == 0.0f);
  }
}

TEST_CASE("rope rotates pairs exactly as the scalar loop, both layouts", "[ops]") {
  std::mt19937 rng(2);
  for (Isa isa : runnable_isas()) {
    ScopedIsaOverride force(isa);
    for (int64_t hd : {2, 4, 6, 8, 14, 16, 18, 30, 32, 34, 48, 64, 66, 80, 128, 130}) {
      for (int64_t heads : {1, 3}) {
        const int64_t half = hd / 2;
        for (bool interleaved : {true, false}) {
          std::vector<float> cs(static_cast<size_t>(half)), sn(static_cast<size_t>(half));
          for (int64_t i = 0; i < half; ++i) {
            const double a = 37.0 * std::pow(10000.0, -2.0 * static_cast<double>(i) / static_cast<double>(hd));
            cs[i] = static_cast<float>(std::cos(a));
            sn[i] = static_cast<float>(std::sin(a));
          }
          std::vector<float> v = random_values(rng, heads * hd, 2.0f);
          v.push_back(kGuard);
          std::vector<float> want = v;
          for (int64_t h = 0; h < heads; ++h) {
            float* p = want.data() + h * hd;
            for (int64_t i = 0; i < half; ++i) {
              const int64_t a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + half;
              const float x0 = p[a], x1 = p[b];
              p[a] = x0 * cs[i] - x1 * sn[i];
              p[b] = x0 * sn[i] + x1 * cs[i];
            }
          }
          ops::rope(v.data(), heads, hd, cs.data(), sn.data(), interleaved);
          INFO(isa_name(isa) << " hd=" << hd << " heads=" << heads << " interleaved=" << interleaved);
          CHECK(v == want);  // bit-identical: separate products, no FMA
        }
      }
    }
  }
}

TEST_CASE("softmax matches the fp64 reference, including -inf and huge ranges", "[ops]") {
  std::mt19937 rng(3);
  for (Isa isa : runnable_isas()) {
    ScopedIsaOverride force(isa);
    for (int64_t n : lengths()) {
      for (float scale : {0.01f, 3.0f, 40.0f}) {
        std::vector<float> x = random_values(rng, n, scale);
        if (n > 3) x[static_cast<size_t>(n / 2)] = -INFINITY;  // a masked position
        if (n > 5) x[1] = x[0] - 150.0f;                        // underflows to 0
        std::vector<float> in = x;
        x.push_back(kGuard);
        ops::softmax(x.data(), n);
        const double mx = *std::max_element(in.begin(), in.end());
        double sum = 0;
        for (float v : in) sum += std::exp(static_cast<double>(v) - mx);
        double total = 0;
        for (int64_t i = 0; i < n; ++i) {
          const double want = std::exp(static_cast<double>(in[i]) - mx) / sum;
          INFO(isa_name(isa) << " n=" << n << " i=" << i << " scale=" << scale);
          // Rounding of the float argument x − max (half an ulp of |x − max|) becomes relative error
          // of exp; the float sum of n terms in 8 (or 16) chains adds up to ~n/8 roundings.
          const double tol = 2e-6 + 6e-8 * std::fabs(static_cast<double>(in[i]) - mx) + 6e-8 * static_cast<double>(n) / 8;
          if (std::isinf(in[i])) {
            CHECK(x[i] == 0.0f);
          } else {
            CHECK(std::fabs(x[i] - want) <= tol * want + 1e-37);
          }
          CHECK(x[i] >= 0.0f);
          total += x[i];
        }
        CHECK(std::fabs(total - 1.0) < 1e-5);
        CHECK(x[static_cast<size_t>(n)] == kGuard);
      }
    }
    // Equal values: exactly uniform within rounding.
    std::vector<float> u(37, 5.0f);
    ops::softmax(u.data(), 37);
    for (float v : u) CHECK(std::fabs(v - 1.0f / 37) < 1e-7);
  }
}

TEST_CASE("silu_mul matches the fp64 reference over the whole float range", "[ops]") {
  std::mt19937 rng(4);
  for (Isa isa : runnable_isas()) {
    ScopedIsaOverride force(isa);
    for (int64_t n : lengths()) {
      std::vector<float> g = random_values(rng, n, 4.0f), u = random_values(rng, n, 1.0f);
      if (n > 4) {  // saturation: exp(-g) overflows / underflows
        g[0] = 200.0f;
        g[1] = -200.0f;
        g[2] = 88.0f;
        g[3] = -90.0f;
      }
      std::vector<float> out(static_cast<size_t>(n) + 1, kGuard);
      ops::silu_mul(g.data(), u.data(), n, out.data());
      for (int64_t i = 0; i < n; ++i) {
        const double gd = g[i];
        const double want = gd / (1.0 + std::exp(-gd)) * u[i];
        INFO(isa_name(isa) << " n=" << n << " i=" << i << " g=" << g[i]);
        CHECK(std::fabs(out[i] - want) <= 1e-6 * std::fabs(want) + 1e-30);
      }
      CHECK(out[static_cast<size_t>(n)] == kGuard);
      std::vector<float> inplace = g;  // out may be gate
      ops::silu_mul(inplace.data(), u.data(), n, inplace.data());
      CHECK(std::equal(inplace.begin(), inplace.end(), out.begin()));
    }
  }
}

TEST_CASE("add is exact on every ISA", "[ops]") {
  std::mt19937 rng(5);
  for (Isa isa : runnable_isas()) {
    ScopedIsaOverride force(isa);
    for (int64_t n : lengths()) {
      std::vector<float> x = random_values(rng, n, 1.0f), y = random_values(rng, n, 1.0f);
      std::vector<float> want(x.size());
      for (size_t i = 0; i < x.size(); ++i) want[i] = x[i] + y[i];
      want.push_back(kGuard);
      x.push_back(kGuard);
      ops::add(x.data(), y.data(), n);
      CHECK(x == want);
    }
  }
}

TEST_CASE("dot_rows and weighted_sum_rows match fp64 on strided rows", "[ops]") {
  std::mt19937 rng(6);
  for (Isa isa : runnable_isas()) {
    ScopedIsaOverride force(isa);
    for (int64_t n : {1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 80, 127, 128, 129, 200, 256, 300}) {
      for (int64_t rows : {1, 2, 3, 5, 64, 131}) {
        const int64_t stride = n + 3 + (n % 5);  // rows are not vector-aligned
        const std::vector<float> q = random_values(rng, n, 1.0f);
        // Rows followed by NaN padding: a kernel reading past n would poison its result.
        std::vector<float> k = random_values(rng, rows * stride, 1.0f), v = random_values(rng, rows * stride, 1.0f);
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t i = n; i < stride; ++i) {
            k[r * stride + i] = std::numeric_limits<float>::quiet_NaN();
            v[r * stride + i] = std::numeric_limits<float>::quiet_NaN();
          }
        }
        std::vector<float> s(static_cast<size_t>(rows) + 1, kGuard);
        ops::dot_rows(q.data(), k.data(), stride, rows, n, 0.125f, s.data());
        std::vector<float> a = random_values(rng, rows, 1.0f);
        std::vector<float> out(static_cast<size_t>(n) + 1, kGuard);
        ops::weighted_sum_rows(a.data(), v.data(), stride, rows, n, out.data());
        INFO(isa_name(isa) << " n=" << n << " rows=" << rows);
        for (int64_t r = 0; r < rows; ++r) {
          double want = 0, mag = 0;
          for (int64_t i = 0; i < n; ++i) {
            want += static_cast<double>(q[i]) * k[r * stride + i];
            mag += std::fabs(static_cast<double>(q[i]) * k[r * stride + i]);
          }
          CHECK(std::fabs(s[r] - 0.125 * want) <= 0.125 * 1e-6 * mag * std::sqrt(static_cast<double>(n)) + 1e-30);
        }
        CHECK(s[static_cast<size_t>(rows)] == kGuard);
        for (int64_t i = 0; i < n; ++i) {
          double want = 0, mag = 0;
          for (int64_t r = 0; r < rows; ++r) {
            want += static_cast<double>(a[r]) * v[r * stride + i];
            mag += std::fabs(static_cast<double>(a[r]) * v[r * stride + i]);
          }
          CHECK(std::fabs(out[i] - want) <= 1e-6 * mag * std::sqrt(static_cast<double>(rows)) + 1e-30);
        }
        CHECK(out[static_cast<size_t>(n)] == kGuard);
      }
    }
  }
}

TEST_CASE("ops are deterministic: same inputs, same bits, call after call", "[ops]") {
  std::mt19937 rng(7);
  for (Isa isa : runnable_isas()) {
    ScopedIsaOverride force(isa);
    const std::vector<float> x = random_values(rng, 1000, 1.0f), w = random_values(rng, 1000, 1.0f);
    std::vector<float> a(1000), b(1000);
    ops::rmsnorm(x.data(), w.data(), 1000, 1e-6f, a.data());
    ops::rmsnorm(x.data(), w.data(), 1000, 1e-6f, b.data());
    CHECK(a == b);
    a = x;
    b = x;
    ops::softmax(a.data(), 1000);
    ops::softmax(b.data(), 1000);
    CHECK(a == b);
  }
}

}  // namespace slmc::test_ops

namespace slmc::test_ops {
TEST_CASE("Kernels::active binds the active ISA's table and gives the free functions' bits", "[ops]") {
  std::mt19937 rng(8);
  for (Isa isa : runnable_isas()) {
    ScopedIsaOverride force(isa);
    const ops::Kernels k = ops::Kernels::active();
    CHECK(std::string(k.isa()) == ops::ops_kernel_isa());
    const std::vector<float> x = random_values(rng, 77, 1.0f), w = random_values(rng, 77, 1.0f);
    std::vector<float> a(77), b(77);
    ops::rmsnorm(x.data(), w.data(), 77, 1e-5f, a.data());
    k.rmsnorm(x.data(), w.data(), 77, 1e-5f, b.data());
    CHECK(a == b);
    ops::silu_mul(x.data(), w.data(), 77, a.data());
    k.silu_mul(x.data(), w.data(), 77, b.data());
    CHECK(a == b);
    std::vector<float> s1(9), s2(9);
    ops::dot_rows(x.data(), w.data(), 8, 9, 5, 0.5f, s1.data());
    k.dot_rows(x.data(), w.data(), 8, 9, 5, 0.5f, s2.data());
    CHECK(s1 == s2);
  }
  // Bound before an override, a copy keeps its ISA (it is resolved once).
  const ops::Kernels bound = ops::Kernels::active();
  const std::string bound_isa = ops::ops_kernel_isa();
  ScopedIsaOverride scalar(Isa::kScalar);
  CHECK(std::string(ops::Kernels::active().isa()) == "scalar");
  CHECK(std::string(bound.isa()) == bound_isa);
}
}  // namespace slmc::test_ops
