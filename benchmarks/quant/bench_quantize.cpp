// Quantizer throughput: GB/s of fp32 input (4 bytes per weight) for absmax and mse scale search,
// int8 and int4, on a 4096 x 4096 Gaussian matrix, 1 and 2 threads. Case names:
// quantize/<scheme>/<M>x<K>/omp:<threads>, <scheme> the canonical grammar string (slmc/codec.hpp),
// e.g. quantize/int4:group=32,sym=true,search=mse,scale_dtype=fp16,layout=rows/4096x4096/omp:1.
#include <benchmark/benchmark.h>

#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "slmc/check.hpp"
#include "slmc/codec.hpp"
#include "slmc/quant/config.hpp"
#include "slmc/quant/quantize.hpp"

namespace {

const std::vector<float>& weights(int64_t n) {
  static std::vector<float> w;
  if (static_cast<int64_t>(w.size()) != n) {
    std::mt19937_64 rng(42);
    std::normal_distribution<float> dist(0.0f, 0.02f);
    w.resize(static_cast<size_t>(n));
    for (auto& x : w) x = dist(rng);
  }
  return w;
}

void bm_quantize(benchmark::State& state, slmc::QuantConfig config, int64_t m, int64_t k) {
  const std::vector<float>& w = weights(m * k);
  const std::clock_t cpu0 = std::clock();
  for (auto _ : state) {
    auto r = slmc::quantize("bench", w.data(), m, k, config);
    if (!r.ok()) {
      state.SkipWithError(r.status().to_string().c_str());
      return;
    }
    benchmark::DoNotOptimize(r->segment(slmc::SegmentRole::kValues).data());
  }
  const double cpu_seconds = double(std::clock() - cpu0) / CLOCKS_PER_SEC;
  const double gb = 4.0 * double(m * k) * double(state.iterations()) / 1e9;
  state.counters["GBps"] = benchmark::Counter(gb, benchmark::Counter::kIsRate);
  // Input per CPU-second of all threads: stable on a shared, oversubscribed machine, where wall
  // time includes waiting for a core. With omp:1 it is the single-thread throughput.
  if (cpu_seconds > 0) state.counters["GBps_cpu"] = gb / cpu_seconds;
}

void register_quantize() {
  const int64_t m = 4096, k = 4096;
  // Schemes in the one grammar (slmc/codec.hpp); the case name is the canonical string.
  const char* const schemes[] = {
      "int8:group=channel,search=absmax,scale_dtype=fp16", "int8:group=channel,search=mse,scale_dtype=fp16",
      "int8:group=32,search=absmax,scale_dtype=fp16",      "int8:group=32,search=mse,scale_dtype=fp16",
      "int4:group=32,search=absmax",                       "int4:group=32,search=mse",
      "int4:group=128,search=mse",                         "int4:group=32,sym=false,search=absmax",
      "int4:group=32,sym=false,search=mse",
  };
  for (int threads : {1, 2}) {
    for (const char* text : schemes) {
      const slmc::Result<slmc::Encoding> e = slmc::parse_encoding(text);
      SLMC_CHECK(e.ok(), "%s", e.status().to_string().c_str());
      slmc::QuantConfig c = slmc::quant_config_from_encoding(*e);
      c.num_threads = threads;
      const std::string name = "quantize/" + slmc::encoding_to_string(*e) + "/" + std::to_string(m) + "x" +
                               std::to_string(k) + "/omp:" + std::to_string(threads);
      benchmark::RegisterBenchmark(name.c_str(), bm_quantize, c, m, k)->UseRealTime()->Unit(benchmark::kMillisecond);
    }
  }
}

}  // namespace

static const int kRegistered = (register_quantize(), 0);
