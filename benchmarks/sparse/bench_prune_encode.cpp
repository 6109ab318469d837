// Pruning and sparse encoding throughput on a 4096 x 4096 fp32 tensor, in GB/s of fp32 input
// (counter "GBps"), one thread:
//   prune_encode/<format>/<sparsity>/4096x4096   prune + quantize + encode + error stats, one call
//   prune/<method>/<sparsity>/4096x4096          mask only
//   validate/<format>/<sparsity>/4096x4096       validate_sparse_matrix (what a loader pays per
//                                                tensor), GB/s of encoded bytes
// <format>: csr, bitmask, bsr<r>x<c>, nm<N>:<M>, with a _int8 / _int4 suffix for quantized values.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#if defined(SLMC_HAVE_OPENMP)
#include <omp.h>
#endif

#include "kernels/bench_common.hpp"
#include "slmc/prune/prune.hpp"
#include "slmc/prune/prune_encode.hpp"
#include "slmc/sparse/validate.hpp"

namespace {

constexpr int64_t kRows = 4096, kCols = 4096;

const std::vector<float>& weights() {
  static const std::vector<float> w = [] {
    std::vector<float> v(static_cast<size_t>(kRows * kCols));
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (auto& f : v) {  // xorshift: fast, deterministic, roughly uniform in (-1, 1)
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      f = static_cast<float>(static_cast<int64_t>(x >> 11) - (int64_t{1} << 52)) / static_cast<float>(int64_t{1} << 52);
    }
    return v;
  }();
  return w;
}

/// Runs the benchmark body on one thread (restores the OpenMP default afterwards).
struct OneThread {
#if defined(SLMC_HAVE_OPENMP)
  int saved = omp_get_max_threads();
  OneThread() { omp_set_num_threads(1); }
  ~OneThread() { omp_set_num_threads(saved); }
#endif
};

void set_rate(benchmark::State& state) {
  const double bytes = static_cast<double>(kRows * kCols * 4);
  state.counters["GBps"] = benchmark::Counter(bytes * static_cast<double>(state.iterations()) / 1e9,
                                              benchmark::Counter::kIsRate);
}

void bm_prune_encode(benchmark::State& state, slmc::PruneSpec spec, slmc::Encoding enc) {
  const auto& w = weights();
  OneThread one;
  double bpw = 0, sparsity = 0;
  for (auto _ : state) {
    auto em = slmc::prune_and_encode(w.data(), kRows, kCols, spec, enc, "bench");
    if (!em.ok()) {
      state.SkipWithError(em.status().to_string().c_str());
      return;
    }
    bpw = em->stats.bits_per_weight;
    sparsity = em->stats.sparsity;
    benchmark::DoNotOptimize(em->total_bytes());
  }
  set_rate(state);
  state.counters["bits_per_weight"] = bpw;
  state.counters["sparsity"] = sparsity;
}

void bm_prune(benchmark::State& state, slmc::PruneSpec spec, bool wanda) {
  const auto& w = weights();
  std::vector<float> norms(static_cast<size_t>(kCols));
  for (int64_t j = 0; j < kCols; ++j) norms[static_cast<size_t>(j)] = 1.0f + static_cast<float>(j % 97) * 0.01f;
  if (wanda) spec.col_norms = norms.data();
  OneThread one;
  for (auto _ : state) {
    auto m = slmc::prune(w.data(), kRows, kCols, spec, "bench");
    if (!m.ok()) {
      state.SkipWithError(m.status().to_string().c_str());
      return;
    }
    benchmark::DoNotOptimize(m->kept);
  }
  set_rate(state);
}

void bm_validate(benchmark::State& state, slmc::PruneSpec spec, slmc::Encoding enc) {
  const auto& w = weights();
  auto em = slmc::prune_and_encode(w.data(), kRows, kCols, spec, enc, "bench");
  if (!em.ok()) {
    state.SkipWithError(em.status().to_string().c_str());
    return;
  }
  const slmc::EncodedMatrixView v = em->view();
  for (auto _ : state) {
    const slmc::Status s = slmc::validate_sparse_matrix(v, "bench");
    if (!s.ok()) {
      state.SkipWithError(s.to_string().c_str());
      return;
    }
  }
  state.counters["GBps"] = benchmark::Counter(static_cast<double>(v.total_bytes()) * static_cast<double>(state.iterations()) / 1e9,
                                              benchmark::Counter::kIsRate);
}

std::string sparsity_name(double s) {
  std::string t = std::to_string(s);
  while (t.size() > 3 && t.back() == '0') t.pop_back();
  return t;
}

void register_all() {
  using namespace slmc;
  const std::string shape = "/" + std::to_string(kRows) + "x" + std::to_string(kCols);
  auto add = [&](const std::string& fmt, double s, PruneSpec spec, Encoding enc) {
    const std::string name = "prune_encode/" + fmt + "/" + sparsity_name(s) + shape;
    benchmark::RegisterBenchmark(name.c_str(), bm_prune_encode, spec, enc)->Unit(benchmark::kMillisecond)->UseRealTime();
  };
  // Encodings in the one grammar (slmc/codec.hpp).
  auto enc = [](const std::string& text) { return bench::encoding(text.c_str()); };
  PruneSpec mag;
  mag.method = PruneMethod::kMagnitude;
  for (double s : {0.5, 0.7, 0.9, 0.95}) {
    mag.sparsity = s;
    add("csr", s, mag, enc("fp32:format=csr"));
    add("csr_int8", s, mag, enc("int8:format=csr"));
    add("bitmask", s, mag, enc("fp32:format=bitmask"));
    add("bitmask_int8", s, mag, enc("int8:format=bitmask"));
  }
  for (auto [r, c] : std::vector<std::pair<int, int>>{{1, 4}, {4, 1}, {4, 4}, {8, 1}, {16, 1}}) {
    PruneSpec blk;
    blk.method = PruneMethod::kBlock;
    blk.block_rows = r;
    blk.block_cols = c;
    blk.sparsity = 0.9;
    const std::string fmt = "bsr" + std::to_string(r) + "x" + std::to_string(c);
    add(fmt, 0.9, blk, enc("fp32:format=" + fmt));
    add(fmt + "_int8", 0.9, blk, enc("int8:format=" + fmt));
  }
  for (auto [n, m] : std::vector<std::pair<int, int>>{{2, 4}, {4, 8}, {1, 4}}) {
    PruneSpec nm;
    nm.method = PruneMethod::kNM;
    nm.n = n;
    nm.m = m;
    const std::string pattern = std::to_string(n) + ":" + std::to_string(m);
    const std::string fmt = "nm" + pattern;
    const double s = 1.0 - static_cast<double>(n) / m;
    add(fmt, s, nm, enc("fp32:pattern=" + pattern));
    add(fmt + "_int8", s, nm, enc("int8:pattern=" + pattern));
    // 32 slots per scale.
    add(fmt + "_int4", s, nm, enc("int4:pattern=" + pattern + ",search=absmax,group=" + std::to_string(32 * m / n)));
  }

  auto add_validate = [&](const std::string& fmt, double s, PruneSpec spec, Encoding enc) {
    const std::string name = "validate/" + fmt + "/" + sparsity_name(s) + shape;
    benchmark::RegisterBenchmark(name.c_str(), bm_validate, spec, enc)->Unit(benchmark::kMillisecond)->UseRealTime();
  };
  {
    PruneSpec half;
    half.method = PruneMethod::kMagnitude;
    half.sparsity = 0.5;
    add_validate("csr", 0.5, half, enc("fp32:format=csr"));
    add_validate("csr_int8", 0.5, half, enc("int8:format=csr"));
    add_validate("bitmask_int8", 0.5, half, enc("int8:format=bitmask"));
    PruneSpec nm;
    nm.method = PruneMethod::kNM;
    add_validate("nm2:4_int8", 0.5, nm, enc("int8:pattern=2:4"));
    PruneSpec blk;
    blk.method = PruneMethod::kBlock;
    blk.block_rows = 4;
    blk.block_cols = 4;
    blk.sparsity = 0.9;
    add_validate("bsr4x4", 0.9, blk, enc("fp32:format=bsr4x4"));
  }

  auto add_prune = [&](const std::string& method, double s, PruneSpec spec, bool wanda) {
    const std::string name = "prune/" + method + "/" + sparsity_name(s) + shape;
    benchmark::RegisterBenchmark(name.c_str(), bm_prune, spec, wanda)->Unit(benchmark::kMillisecond)->UseRealTime();
  };
  PruneSpec p;
  p.method = PruneMethod::kMagnitude;
  p.sparsity = 0.9;
  add_prune("magnitude_tensor", 0.9, p, false);
  p.scope = PruneScope::kRow;
  add_prune("magnitude_row", 0.9, p, false);
  p.sparsity = 0.5;
  add_prune("wanda_row", 0.5, p, true);
  PruneSpec nm;
  nm.method = PruneMethod::kNM;
  add_prune("nm2:4", 0.5, nm, false);
  PruneSpec blk;
  blk.method = PruneMethod::kBlock;
  blk.block_rows = 4;
  blk.block_cols = 4;
  blk.sparsity = 0.9;
  add_prune("block4x4_l2", 0.9, blk, false);
}

}  // namespace

static const int kRegistered = (register_all(), 0);
