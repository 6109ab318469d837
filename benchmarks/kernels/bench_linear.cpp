// linear/<encoding>/<act>/<M>x<K>/n:<N>/omp:<T>: slmc::linear on random weights of one encoding.
// Counters: weight_GBps (values + scales + mins bytes read per second) and GFLOPs (2*M*K*N / time).
// The 8192x8192 case cycles over enough copies of the weights to stay DRAM-resident.
// The full grid is long on a 2-core machine; docs/KERNELS.md lists filters for the key cases.
#include <benchmark/benchmark.h>

#include <memory>
#include <utility>
#include <string>
#include <vector>

#include "kernels/bench_common.hpp"
#include "slmc/codec.hpp"
#include "slmc/encoding.hpp"
#include "slmc/half.hpp"
#include "slmc/kernels/linear.hpp"
#include "slmc/layout.hpp"

namespace {

using slmc::bench::LinearShape;

struct BenchEncoding {
  std::string name;  ///< encoding_name(enc): the name inspect and bench print
  slmc::Encoding enc;
  std::vector<slmc::ActMode> acts;
};

const std::vector<BenchEncoding>& bench_encodings() {
  using slmc::ActMode;
  static const std::vector<BenchEncoding> list = [] {
    // Encodings in the one grammar (slmc/codec.hpp), with the activation modes measured.
    const std::pair<const char*, std::vector<ActMode>> cases[] = {
        {"fp32", {ActMode::kFp32}},
        {"fp16", {ActMode::kFp32}},
        {"bf16", {ActMode::kFp32}},
        {"int8:group=channel,scale_dtype=fp32", {ActMode::kInt8, ActMode::kInt8Row, ActMode::kFp32}},
        {"int8:group=channel,scale_dtype=fp32,layout=i8", {ActMode::kInt8, ActMode::kInt8Row}},
        {"int8:group=32,scale_dtype=fp16,layout=i8", {ActMode::kInt8, ActMode::kInt8Row}},
        {"int4:group=32", {ActMode::kInt8, ActMode::kInt8Row}},
        {"int4:group=32,layout=i8", {ActMode::kInt8, ActMode::kInt8Row, ActMode::kFp32}},
        {"int4:group=128,layout=i8", {ActMode::kInt8, ActMode::kInt8Row}},
        {"int4:group=128,sym=false,layout=i8", {ActMode::kInt8, ActMode::kInt8Row}},
        {"nl4:group=32", {ActMode::kInt8}},  // nl4's SIMD kernels are the int8 (block) mode's
        {"nl4:group=32,layout=i8", {ActMode::kInt8}},
    };
    std::vector<BenchEncoding> l;
    for (const auto& [text, acts] : cases) {
      const slmc::Encoding e = slmc::bench::encoding(text);
      l.push_back({slmc::encoding_name(e), e, acts});
    }
    return l;
  }();
  return list;
}

// Random weights of encoding `e`: any code byte, scales in [0.01, 0.02), mins in [-0.1, 0.1).
slmc::EncodedMatrix make_weights(int64_t m, int64_t k, const slmc::Encoding& e, uint64_t seed) {
  slmc::EncodedMatrix w;
  w.rows = m;
  w.cols = k;
  w.encoding = e;
  if (!e.is_quantized()) {
    const size_t eb = e.value_type == slmc::ValueType::kF32 ? 4 : 2;
    const std::vector<float> v = slmc::bench::random_floats(static_cast<size_t>(m * k), seed);
    w.segment(slmc::SegmentRole::kValues) = slmc::AlignedBuffer(static_cast<size_t>(m * k) * eb);
    auto& buf = w.segment(slmc::SegmentRole::kValues);
    for (size_t i = 0; i < v.size(); ++i) {
      if (eb == 4) {
        buf.as<float>()[i] = v[i];
      } else if (e.value_type == slmc::ValueType::kF16) {
        buf.as<uint16_t>()[i] = slmc::fp32_to_fp16(v[i]);
      } else {
        buf.as<uint16_t>()[i] = slmc::fp32_to_bf16(v[i]);
      }
    }
    return w;
  }
  const slmc::DenseQuantLayout l(m, k, e);
  w.segment(slmc::SegmentRole::kValues) = slmc::AlignedBuffer(static_cast<size_t>(l.values_bytes()));
  slmc::bench::fill_bytes(w.segment(slmc::SegmentRole::kValues).data(), static_cast<size_t>(l.values_bytes()), seed);
  const size_t sb = e.scale_dtype == slmc::DType::kF16 ? 2 : 4;
  const std::vector<float> r = slmc::bench::random_floats(static_cast<size_t>(l.scale_count()) * 2, seed + 1);
  for (slmc::SegmentRole role : {slmc::SegmentRole::kScales, slmc::SegmentRole::kMins}) {
    if (role == slmc::SegmentRole::kMins && e.symmetric) continue;
    w.segment(role) = slmc::AlignedBuffer(static_cast<size_t>(l.scale_count()) * sb);
    for (int64_t i = 0; i < l.scale_count(); ++i) {
      const float v = role == slmc::SegmentRole::kScales ? 0.015f + 0.005f * r[static_cast<size_t>(2 * i)]
                                                         : 0.1f * r[static_cast<size_t>(2 * i + 1)];
      if (sb == 2) {
        w.segment(role).as<uint16_t>()[i] = slmc::fp32_to_fp16(v);
      } else {
        w.segment(role).as<float>()[i] = v;
      }
    }
  }
  return w;
}

// One cached set of weight copies (the last encoding and shape asked for): Google Benchmark calls a
// case several times while it sizes the iteration count, and rebuilding 8192^2 weights is slow.
struct WeightSet {
  std::string key;
  std::vector<slmc::EncodedMatrix> copies;
};

const std::vector<slmc::EncodedMatrix>& weights_for(const BenchEncoding& be, const LinearShape& s) {
  static WeightSet cache;
  const std::string key = std::string(be.name) + "/" + std::to_string(s.m) + "x" + std::to_string(s.k);
  if (cache.key != key) {
    cache.copies.clear();
    cache.key = key;
    slmc::EncodedMatrix first = make_weights(s.m, s.k, be.enc, 42);
    const int copies = slmc::bench::copies_for(s, first.total_bytes());
    cache.copies.push_back(std::move(first));
    for (int c = 1; c < copies; ++c) cache.copies.push_back(make_weights(s.m, s.k, be.enc, 42 + static_cast<uint64_t>(c)));
  }
  return cache.copies;
}

void bm_linear(benchmark::State& state, const BenchEncoding* be, slmc::ActMode act, LinearShape s, int64_t n,
               int threads) {
  const auto& ws = weights_for(*be, s);
  const std::vector<float> x = slmc::bench::random_floats(static_cast<size_t>(n * s.k), 7);
  std::vector<float> y(static_cast<size_t>(n * s.m));
  slmc::LinearContext ctx(threads);
  size_t next = 0;
  double bytes = 0;
  for (auto _ : state) {
    const slmc::EncodedMatrix& w = ws[next];
    next = next + 1 == ws.size() ? 0 : next + 1;
    const slmc::Status st = slmc::linear(ctx, x.data(), n, w.view(), nullptr, y.data(), act);
    if (!st.ok()) {
      state.SkipWithError(st.to_string().c_str());
      break;
    }
    bytes += static_cast<double>(w.total_bytes());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const double it = static_cast<double>(state.iterations());
  slmc::bench::set_linear_counters(state, it > 0 ? bytes / it : 0, s.m, s.k, n);
  state.SetLabel(slmc::linear_kernel_isa());
}

void register_linear() {
  for (const BenchEncoding& be : bench_encodings()) {
    for (slmc::ActMode act : be.acts) {
      for (const LinearShape& s : slmc::bench::linear_shapes()) {
        for (int64_t n : slmc::bench::linear_ns()) {
          for (int t : slmc::bench::linear_threads()) {
            const std::string name = std::string("linear/") + be.name + "/" + slmc::act_mode_name(act) + "/" +
                                     slmc::bench::shape_suffix(s, n, t);
            benchmark::RegisterBenchmark(name.c_str(), bm_linear, &be, act, s, n, t)
                ->UseRealTime()
                ->Unit(benchmark::kMillisecond);
          }
        }
      }
    }
  }
}

}  // namespace

static const int kLinearRegistered = (register_linear(), 0);
