// Dense fp32 baselines for the linear kernels, same shapes and names as linear/...:
//   baseline/openblas_sgemm/<M>x<K>/n:<N>/omp:<T>  Y = X * W^T with cblas_sgemm (cblas_sgemv at N=1)
//   baseline/eigen_dense/<M>x<K>/n:<N>/omp:<T>     the same product with Eigen 3 (row-major maps)
// Counters as for linear/...: weight_GBps (fp32 weight bytes per second) and GFLOPs.
#include <benchmark/benchmark.h>

#include <Eigen/Dense>
#include <string>
#include <vector>

#include "kernels/bench_common.hpp"

#if defined(SLMC_BENCH_HAVE_OPENBLAS)
#include <cblas.h>
#endif

namespace {

using slmc::bench::LinearShape;

struct DenseWeights {
  std::string key;
  std::vector<std::vector<float>> copies;
};

const std::vector<std::vector<float>>& dense_weights(const LinearShape& s) {
  static DenseWeights cache;
  const std::string key = std::to_string(s.m) + "x" + std::to_string(s.k);
  if (cache.key != key) {
    cache.copies.clear();
    cache.key = key;
    const uint64_t bytes = static_cast<uint64_t>(s.m * s.k) * 4;
    const int copies = slmc::bench::copies_for(s, bytes);
    for (int c = 0; c < copies; ++c) cache.copies.push_back(slmc::bench::random_floats(static_cast<size_t>(s.m * s.k), 11 + c));
  }
  return cache.copies;
}

#if defined(SLMC_BENCH_HAVE_OPENBLAS)
void bm_openblas(benchmark::State& state, LinearShape s, int64_t n, int threads) {
  const auto& ws = dense_weights(s);
  const std::vector<float> x = slmc::bench::random_floats(static_cast<size_t>(n * s.k), 7);
  std::vector<float> y(static_cast<size_t>(n * s.m));
  openblas_set_num_threads(threads);
  size_t next = 0;
  for (auto _ : state) {
    const float* w = ws[next].data();
    next = next + 1 == ws.size() ? 0 : next + 1;
    if (n == 1) {
      cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(s.m), static_cast<int>(s.k), 1.0f, w,
                  static_cast<int>(s.k), x.data(), 1, 0.0f, y.data(), 1);
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), static_cast<int>(s.m),
                  static_cast<int>(s.k), 1.0f, x.data(), static_cast<int>(s.k), w, static_cast<int>(s.k), 0.0f,
                  y.data(), static_cast<int>(s.m));
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  slmc::bench::set_linear_counters(state, static_cast<double>(s.m * s.k) * 4, s.m, s.k, n);
}
#endif

void bm_eigen(benchmark::State& state, LinearShape s, int64_t n, int threads) {
  using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const auto& ws = dense_weights(s);
  const std::vector<float> x = slmc::bench::random_floats(static_cast<size_t>(n * s.k), 7);
  std::vector<float> y(static_cast<size_t>(n * s.m));
  Eigen::setNbThreads(threads);
  Eigen::Map<const RowMat> xm(x.data(), n, s.k);
  Eigen::Map<RowMat> ym(y.data(), n, s.m);
  size_t next = 0;
  for (auto _ : state) {
    Eigen::Map<const RowMat> wm(ws[next].data(), s.m, s.k);
    next = next + 1 == ws.size() ? 0 : next + 1;
    ym.noalias() = xm * wm.transpose();
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  slmc::bench::set_linear_counters(state, static_cast<double>(s.m * s.k) * 4, s.m, s.k, n);
}

void register_dense_baselines() {
  for (const LinearShape& s : slmc::bench::linear_shapes()) {
    for (int64_t n : slmc::bench::linear_ns()) {
      for (int t : slmc::bench::linear_threads()) {
        const std::string suffix = slmc::bench::shape_suffix(s, n, t);
#if defined(SLMC_BENCH_HAVE_OPENBLAS)
        benchmark::RegisterBenchmark(("baseline/openblas_sgemm/" + suffix).c_str(), bm_openblas, s, n, t)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
#endif
        benchmark::RegisterBenchmark(("baseline/eigen_dense/" + suffix).c_str(), bm_eigen, s, n, t)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
    }
  }
}

}  // namespace

static const int kDenseBaselinesRegistered = (register_dense_baselines(), 0);
