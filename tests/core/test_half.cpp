// fp16 / bf16 conversions: exhaustive over all 65,536 fp16 values, rounding checked against double
// arithmetic, and every compiled ISA's array kernel bit-identical to the scalar functions.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "slmc/cpu.hpp"
#include "slmc/half.hpp"

using namespace slmc;

namespace {
bool is_nan16(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0; }

// The fp16 value of h as a double, computed independently of fp16_to_fp32.
double fp16_value(uint16_t h) {
  const int sign = (h >> 15) ? -1 : 1;
  const int exp = (h >> 10) & 0x1f;
  const int mant = h & 0x3ff;
  if (exp == 0x1f) return mant ? std::nan("") : sign * std::numeric_limits<double>::infinity();
  if (exp == 0) return sign * std::ldexp(mant, -24);
  return sign * std::ldexp(1024 + mant, exp - 25);
}

// Reference fp32 -> fp16 by exhaustive nearest search in double (ties to even mantissa).
uint16_t fp16_reference(float f) {
  if (std::isnan(f)) return 0x7e00;
  const double x = f;
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  const double ax = std::fabs(x);
  if (ax >= 65520.0) return sign | 0x7c00;
  // Binary search the largest finite magnitude h with value <= ax.
  uint16_t lo = 0, hi = 0x7bff;
  while (lo < hi) {
    uint16_t mid = static_cast<uint16_t>((lo + hi + 1) / 2);
    if (fp16_value(mid) <= ax) lo = mid; else hi = static_cast<uint16_t>(mid - 1);
  }
  if (lo == 0x7bff) return sign | lo;  // ax in [65504, 65520): rounds down
  const double below = fp16_value(lo), above = fp16_value(static_cast<uint16_t>(lo + 1));
  const double d0 = ax - below, d1 = above - ax;
  uint16_t r = lo;
  if (d1 < d0 || (d1 == d0 && (lo & 1))) r = static_cast<uint16_t>(lo + 1);
  return sign | r;
}

std::vector<float> interesting_floats() {
  std::vector<float> v;
  // Every fp16 value, the midpoints between neighbours and one ulp either side of them.
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    float a = fp16_to_fp32(static_cast<uint16_t>(h));
    float b = fp16_to_fp32(static_cast<uint16_t>(h + 1));
    float mid = static_cast<float>((static_cast<double>(a) + b) / 2);
    for (float x : {a, mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f)}) {
      v.push_back(x);
      v.push_back(-x);
    }
  }
  for (float x : {0.0f, 65504.0f, 65519.99f, 65520.0f, 70000.0f, 1e30f, 1e-30f, 1e-45f, 2.9802322e-8f,
                  2.9802326e-8f, 5.9604645e-8f, std::numeric_limits<float>::infinity(),
                  std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::max()}) {
    v.push_back(x);
    v.push_back(-x);
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 200000; ++i) v.push_back(bits_float(rng()));
  return v;
}
}  // namespace

TEST_CASE("fp16 to fp32 is exact for all 65536 values", "[half]") {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = fp16_to_fp32(static_cast<uint16_t>(h));
    if (is_nan16(static_cast<uint16_t>(h))) {
      REQUIRE(std::isnan(f));
      REQUIRE(std::signbit(f) == ((h & 0x8000) != 0));
      REQUIRE((float_bits(f) & 0x400000u) != 0);                    // quiet
      REQUIRE(((float_bits(f) >> 13) & 0x1ffu) == (h & 0x1ffu));    // payload kept
      continue;
    }
    REQUIRE(static_cast<double>(f) == fp16_value(static_cast<uint16_t>(h)));
  }
}

TEST_CASE("fp16 round trip fp16 -> fp32 -> fp16 is the identity (NaNs quieted)", "[half]") {
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t back = fp32_to_fp16(fp16_to_fp32(static_cast<uint16_t>(h)));
    if (is_nan16(static_cast<uint16_t>(h))) {
      REQUIRE(back == (h | 0x0200));  // quiet bit set, sign and payload kept
    } else {
      REQUIRE(back == h);
    }
  }
}

TEST_CASE("fp32 to fp16 rounds to nearest even, with subnormals and overflow", "[half]") {
  for (float f : interesting_floats()) {
    const uint16_t got = fp32_to_fp16(f);
    if (std::isnan(f)) {
      REQUIRE(is_nan16(got));
      continue;
    }
    INFO("f = " << f << " bits " << std::hex << float_bits(f));
    REQUIRE(got == fp16_reference(f));
  }
  CHECK(fp32_to_fp16(65520.0f) == 0x7c00);
  CHECK(fp32_to_fp16(65519.996f) == 0x7bff);
  CHECK(fp32_to_fp16(2.9802322e-8f) == 0x0000);  // exactly 2^-25: tie to even (zero)
  CHECK(fp32_to_fp16(2.9802326e-8f) == 0x0001);  // just above 2^-25
  CHECK(fp32_to_fp16(-0.0f) == 0x8000);
}

TEST_CASE("bf16 conversions round to nearest even and keep NaN", "[half]") {
  for (uint32_t b = 0; b < 65536; ++b) {
    const float f = bf16_to_fp32(static_cast<uint16_t>(b));
    REQUIRE(float_bits(f) == (b << 16));
    const uint16_t back = fp32_to_bf16(f);
    if (std::isnan(f)) {
      REQUIRE(back == (b | 0x40));
    } else {
      REQUIRE(back == b);
    }
  }
  // Ties: 0x3f808000 is halfway between bf16 0x3f80 and 0x3f81 -> even (0x3f80);
  // 0x3f818000 is halfway between 0x3f81 and 0x3f82 -> even (0x3f82).
  CHECK(fp32_to_bf16(bits_float(0x3f808000u)) == 0x3f80);
  CHECK(fp32_to_bf16(bits_float(0x3f818000u)) == 0x3f82);
  CHECK(fp32_to_bf16(bits_float(0x3f808001u)) == 0x3f81);
  CHECK(fp32_to_bf16(bits_float(0x7f7fffffu)) == 0x7f80);  // FLT_MAX rounds to Inf
}

TEST_CASE("array conversions of every runnable ISA match the scalar functions", "[half][isa]") {
  const std::vector<float> floats = interesting_floats();
  std::vector<uint16_t> all16(65536);
  for (uint32_t i = 0; i < 65536; ++i) all16[i] = static_cast<uint16_t>(i);

  for (Isa isa : runnable_isas()) {
    ScopedIsaOverride force(isa);
    INFO("isa " << isa_name(isa));
    // Odd lengths exercise the vector tails.
    for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{9}, floats.size()}) {
      std::vector<uint16_t> h(n), b(n);
      convert_fp32_to_fp16(floats.data(), h.data(), n);
      convert_fp32_to_bf16(floats.data(), b.data(), n);
      for (size_t i = 0; i < n; ++i) {
        REQUIRE(h[i] == fp32_to_fp16(floats[i]));
        REQUIRE(b[i] == fp32_to_bf16(floats[i]));
      }
    }
    std::vector<float> f16(65536), fb16(65536);
    convert_fp16_to_fp32(all16.data(), f16.data(), all16.size());
    convert_bf16_to_fp32(all16.data(), fb16.data(), all16.size());
    for (uint32_t i = 0; i < 65536; ++i) {
      REQUIRE(float_bits(f16[i]) == float_bits(fp16_to_fp32(all16[i])));
      REQUIRE(float_bits(fb16[i]) == float_bits(bf16_to_fp32(all16[i])));
    }
  }
}
