// Shared pieces of the linear-layer benchmarks and their baselines: shapes, thread counts, name
// formatting, random fills, and the set of weight copies that makes a case DRAM-resident.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "slmc/check.hpp"
#include "slmc/codec.hpp"

namespace slmc::bench {

/// The Encoding of a grammar string (slmc/codec.hpp); benchmarks name their encodings this way
/// instead of filling Encoding fields. Aborts on a string that does not parse (a benchmark bug).
inline Encoding encoding(const char* text) {
  const Result<Encoding> e = parse_encoding(text);
  SLMC_CHECK(e.ok(), "benchmark encoding: %s", e.status().to_string().c_str());
  return *e;
}

struct LinearShape {
  int64_t m, k;
};

/// 4096x4096; 8192x8192 (DRAM-resident: weights cycle over copies totalling >= kDramBytes);
/// SLM shapes 576x1536, 1536x576, 2048x8192.
inline const std::vector<LinearShape>& linear_shapes() {
  static const std::vector<LinearShape> s = {{4096, 4096}, {8192, 8192}, {576, 1536}, {1536, 576}, {2048, 8192}};
  return s;
}
inline const std::vector<int64_t>& linear_ns() {
  static const std::vector<int64_t> n = {1, 8, 32, 128};
  return n;
}
inline const std::vector<int>& linear_threads() {
  static const std::vector<int> t = {1, 2};
  return t;
}

/// The DRAM case reads weights from copies totalling at least this much (twice the 32 MiB L3 of
/// the reference machine, four times the 16 MiB the issue assumes), so no copy is still cached.
inline constexpr uint64_t kDramBytes = uint64_t{160} << 20;
inline bool is_dram_shape(const LinearShape& s) { return s.m == 8192 && s.k == 8192; }
/// Copies of a matrix of `bytes` to cycle over.
inline int copies_for(const LinearShape& s, uint64_t bytes) {
  if (!is_dram_shape(s) || bytes == 0) return 1;
  return static_cast<int>((kDramBytes + bytes - 1) / bytes);
}

inline std::string shape_suffix(const LinearShape& s, int64_t n, int threads) {
  return std::to_string(s.m) + "x" + std::to_string(s.k) + "/n:" + std::to_string(n) + "/omp:" + std::to_string(threads);
}

/// Deterministic fast fill (splitmix64).
inline void fill_bytes(uint8_t* p, size_t n, uint64_t seed) {
  uint64_t z = seed;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    z += 0x9e3779b97f4a7c15ull;
    uint64_t v = z;
    v = (v ^ (v >> 30)) * 0xbf58476d1ce4e5b9ull;
    v = (v ^ (v >> 27)) * 0x94d049bb133111ebull;
    v ^= v >> 31;
    for (int b = 0; b < 8; ++b) p[i + b] = static_cast<uint8_t>(v >> (8 * b));
  }
  for (; i < n; ++i) p[i] = static_cast<uint8_t>(i * 131 + seed);
}

/// Uniform floats in [-1, 1).
inline std::vector<float> random_floats(size_t n, uint64_t seed) {
  std::vector<float> v(n);
  uint64_t z = seed;
  for (auto& x : v) {
    z = z * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<float>(static_cast<int64_t>(z >> 40) - (int64_t{1} << 23)) / static_cast<float>(1 << 23);
  }
  return v;
}

inline void set_linear_counters(benchmark::State& state, double weight_bytes, int64_t m, int64_t k, int64_t n) {
  const double it = static_cast<double>(state.iterations());
  state.counters["weight_GBps"] = benchmark::Counter(weight_bytes * it / 1e9, benchmark::Counter::kIsRate);
  state.counters["GFLOPs"] =
      benchmark::Counter(2.0 * static_cast<double>(m) * static_cast<double>(k) * static_cast<double>(n) * it / 1e9,
                         benchmark::Counter::kIsRate);
}

}  // namespace slmc::bench
