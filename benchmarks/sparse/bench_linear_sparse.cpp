// Sparse linear kernels and their Eigen baseline, same shapes and counters as linear/...:
//   linear/<format>_<values>_s<sparsity>/<act>/<M>x<K>/n:<N>/omp:<T>   slmc::linear on sparse weights
//   baseline/eigen_csr/<sparsity>/<M>x<K>/n:<N>/omp:<T>                 Eigen::SparseMatrix (row-major,
//        f32 values, int32 indices) times X^T held row-major, i.e. Eigen's best layout for the product
// weight_GBps counts every byte of the encoded matrix (values, indices, pointers, masks, scales);
// GFLOPs is dense-equivalent (2*M*K*N per second). Masks are uniform random at the given sparsity
// (2:4: two random positions of every four); values are random. The 8192x8192 case cycles over
// copies totalling >= 160 MiB, as the dense cases do.
#include <benchmark/benchmark.h>

#include <Eigen/SparseCore>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "kernels/bench_common.hpp"
#include "slmc/encoding.hpp"
#include "slmc/kernels/linear.hpp"
#include "slmc/sparse/encode.hpp"

namespace {

using slmc::bench::LinearShape;

struct SparseBench {
  std::string name;  ///< format_values
  slmc::Encoding enc;
  std::vector<int> sparsities;  ///< percent; N:M ignores it (50)
  std::vector<slmc::ActMode> acts;
};

const std::vector<SparseBench>& sparse_benches() {
  using slmc::ActMode;
  using slmc::bench::encoding;
  static const std::vector<SparseBench> list = {
      {"csr_f32", encoding("fp32:format=csr"), {50, 70, 90, 95}, {ActMode::kFp32}},
      {"csr_int8", encoding("int8:format=csr,scale_dtype=fp16"), {70, 90}, {ActMode::kFp32, ActMode::kInt8Row}},
      {"bsr4x4_f32", encoding("fp32:format=bsr4x4"), {70, 90}, {ActMode::kFp32}},
      {"bitmask_int8", encoding("int8:format=bitmask,group=32,scale_dtype=fp16"), {50, 70},
       {ActMode::kInt8Row, ActMode::kFp32}},
      {"bitmask_f32", encoding("fp32:format=bitmask"), {50}, {ActMode::kFp32}},
      {"nm2of4_int8", encoding("int8:pattern=2:4,group=32,scale_dtype=fp16"), {50}, {ActMode::kInt8Row, ActMode::kFp32}},
      {"nm2of4_int4", encoding("int4:pattern=2:4,group=32,search=absmax"), {50}, {ActMode::kInt8Row, ActMode::kFp32}},
  };
  return list;
}

uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Keep mask at `sparsity` percent (2:4: exactly two of every four columns).
std::vector<uint8_t> make_mask(int64_t m, int64_t k, int sparsity, bool nm24, uint64_t seed) {
  std::vector<uint8_t> keep(static_cast<size_t>(m * k));
  if (nm24) {
    static const int pairs[6][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}};
    for (int64_t i = 0; i < m * k; i += 4) {
      const auto* p = pairs[mix(seed + static_cast<uint64_t>(i)) % 6];
      for (int j = 0; j < 4 && i + j < m * k; ++j) keep[static_cast<size_t>(i + j)] = j == p[0] || j == p[1];
    }
    return keep;
  }
  const uint64_t threshold = static_cast<uint64_t>(sparsity) * (uint64_t{1} << 32) / 100;
  for (int64_t i = 0; i < m * k; ++i) keep[static_cast<size_t>(i)] = (mix(seed ^ static_cast<uint64_t>(i)) >> 32) >= threshold;
  return keep;
}

slmc::EncodedMatrix copy_of(const slmc::EncodedMatrix& w) {
  slmc::EncodedMatrix c;
  c.rows = w.rows;
  c.cols = w.cols;
  c.encoding = w.encoding;
  for (size_t i = 0; i < w.segments.size(); ++i) c.segments[i] = slmc::AlignedBuffer(w.segments[i].data(), w.segments[i].size());
  return c;
}

struct SparseSet {
  std::string key;
  std::vector<slmc::EncodedMatrix> copies;
  std::vector<uint8_t> keep;  ///< mask of the first copy (Eigen builds the same pattern)
};

SparseSet& sparse_set(const SparseBench& sb, int sparsity, const LinearShape& s) {
  static SparseSet cache;
  const std::string key = sb.name + "/" + std::to_string(sparsity) + "/" + std::to_string(s.m) + "x" + std::to_string(s.k);
  if (cache.key != key) {
    cache.copies.clear();
    cache.key = key;
    const bool nm24 = sb.enc.format == slmc::SparseFormat::kNM;
    cache.keep = make_mask(s.m, s.k, sparsity, nm24, 1234);
    const std::vector<float> w = slmc::bench::random_floats(static_cast<size_t>(s.m * s.k), 99);
    slmc::Result<slmc::EncodedMatrix> em = slmc::encode_sparse(w.data(), s.m, s.k, sb.enc, cache.keep.data(), "bench");
    if (!em.ok()) return cache;  // the case reports the error
    const int copies = slmc::bench::copies_for(s, em->total_bytes());
    for (int c = 1; c < copies; ++c) cache.copies.push_back(copy_of(*em));
    cache.copies.push_back(std::move(*em));
  }
  return cache;
}

void bm_sparse(benchmark::State& state, const SparseBench* sb, int sparsity, slmc::ActMode act, LinearShape s, int64_t n,
               int threads) {
  const auto& ws = sparse_set(*sb, sparsity, s).copies;
  if (ws.empty()) {
    state.SkipWithError("encode_sparse failed");
    return;
  }
  const std::vector<float> x = slmc::bench::random_floats(static_cast<size_t>(n * s.k), 7);
  std::vector<float> y(static_cast<size_t>(n * s.m));
  slmc::LinearContext ctx(threads);
  ctx.set_check_sparse_contents(false);  // encode_sparse output is valid; measure the product only
  size_t next = 0;
  for (auto _ : state) {
    const slmc::EncodedMatrix& w = ws[next];
    next = next + 1 == ws.size() ? 0 : next + 1;
    const slmc::Status st = slmc::linear(ctx, x.data(), n, w.view(), nullptr, y.data(), act);
    if (!st.ok()) {
      state.SkipWithError(st.to_string().c_str());
      break;
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  slmc::bench::set_linear_counters(state, static_cast<double>(ws[0].total_bytes()), s.m, s.k, n);
  state.SetLabel(slmc::linear_kernel_isa());
}

using EigenCsr = Eigen::SparseMatrix<float, Eigen::RowMajor, int>;
using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct EigenSet {
  std::string key;
  std::vector<EigenCsr> copies;
};

const std::vector<EigenCsr>& eigen_set(int sparsity, const LinearShape& s) {
  static EigenSet cache;
  const std::string key = std::to_string(sparsity) + "/" + std::to_string(s.m) + "x" + std::to_string(s.k);
  if (cache.key != key) {
    cache.copies.clear();
    cache.key = key;
    const std::vector<uint8_t> keep = make_mask(s.m, s.k, sparsity, false, 1234);
    const std::vector<float> w = slmc::bench::random_floats(static_cast<size_t>(s.m * s.k), 99);
    std::vector<Eigen::Triplet<float, int>> t;
    for (int64_t i = 0; i < s.m * s.k; ++i) {
      if (keep[static_cast<size_t>(i)]) t.emplace_back(static_cast<int>(i / s.k), static_cast<int>(i % s.k), w[static_cast<size_t>(i)]);
    }
    EigenCsr a(s.m, s.k);
    a.setFromTriplets(t.begin(), t.end());
    a.makeCompressed();
    const uint64_t bytes = static_cast<uint64_t>(a.nonZeros()) * 8 + static_cast<uint64_t>(s.m + 1) * 4;
    const int copies = slmc::bench::copies_for(s, bytes);
    for (int c = 1; c < copies; ++c) cache.copies.push_back(a);
    cache.copies.push_back(std::move(a));
  }
  return cache.copies;
}

void bm_eigen_csr(benchmark::State& state, int sparsity, LinearShape s, int64_t n, int threads) {
  const auto& ws = eigen_set(sparsity, s);
  Eigen::setNbThreads(threads);
  const std::vector<float> x = slmc::bench::random_floats(static_cast<size_t>(n * s.k), 7);
  size_t next = 0;
  double bytes = 0;
  if (n == 1) {
    const Eigen::Map<const Eigen::VectorXf> xv(x.data(), s.k);
    Eigen::VectorXf y(s.m);
    for (auto _ : state) {
      const EigenCsr& a = ws[next];
      next = next + 1 == ws.size() ? 0 : next + 1;
      y.noalias() = a * xv;
      benchmark::DoNotOptimize(y.data());
      benchmark::ClobberMemory();
    }
  } else {
    // Y^T [M x N] = W [M x K] * X^T [K x N], both dense operands row-major (contiguous rows of N).
    const RowMat xt = Eigen::Map<const RowMat>(x.data(), n, s.k).transpose();
    RowMat yt(s.m, n);
    for (auto _ : state) {
      const EigenCsr& a = ws[next];
      next = next + 1 == ws.size() ? 0 : next + 1;
      yt.noalias() = a * xt;
      benchmark::DoNotOptimize(yt.data());
      benchmark::ClobberMemory();
    }
  }
  bytes = static_cast<double>(ws[0].nonZeros()) * 8 + static_cast<double>(s.m + 1) * 4;
  slmc::bench::set_linear_counters(state, bytes, s.m, s.k, n);
}

// Weights are cached per (encoding, sparsity, shape): register in that order so that a filter
// running many cases builds each matrix once.
void register_sparse() {
  const auto reg = [](const std::string& name, auto&&... args) {
    benchmark::RegisterBenchmark(name.c_str(), args...)->UseRealTime()->Unit(benchmark::kMillisecond);
  };
  for (int sp : {50, 70, 90, 95}) {
    for (const LinearShape& s : slmc::bench::linear_shapes()) {
      for (int64_t n : slmc::bench::linear_ns()) {
        for (int t : slmc::bench::linear_threads()) {
          reg("baseline/eigen_csr/" + std::to_string(sp) + "/" + slmc::bench::shape_suffix(s, n, t), bm_eigen_csr, sp, s,
              n, t);
        }
      }
    }
  }
  for (const SparseBench& sb : sparse_benches()) {
    for (int sp : sb.sparsities) {
      for (const LinearShape& s : slmc::bench::linear_shapes()) {
        for (int64_t n : slmc::bench::linear_ns()) {
          for (int t : slmc::bench::linear_threads()) {
            for (slmc::ActMode act : sb.acts) {
              reg("linear/" + sb.name + "_s" + std::to_string(sp) + "/" + slmc::act_mode_name(act) + "/" +
                      slmc::bench::shape_suffix(s, n, t),
                  bm_sparse, &sb, sp, act, s, n, t);
            }
          }
        }
      }
    }
  }
}

}  // namespace

static const int kSparseRegistered = (register_sparse(), 0);
