// membw/...: memory read bandwidth, the roofline for memory-bound GEMV. Two access patterns:
//   membw/seq/<MiB>/omp:<T>       one sequential stream per thread
//   membw/streams4/<MiB>/omp:<T>  four interleaved streams per thread (four weight rows in flight:
//                                 the access pattern of a GEMV), reported as "membw" in notes
// The buffer is far larger than L3 (16 MiB) unless a small size is asked for.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "slmc/cpu.hpp"
#include "slmc/parallel.hpp"

namespace {

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

// Returns a buffer of `bytes` (64-byte aligned, touched so pages exist).
std::unique_ptr<uint8_t, FreeDeleter> make_buffer(size_t bytes) {
  void* p = std::aligned_alloc(64, bytes);
  std::memset(p, 1, bytes);
  return std::unique_ptr<uint8_t, FreeDeleter>(static_cast<uint8_t*>(p));
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) uint64_t read_streams_avx2(const uint8_t* base, size_t bytes, int streams) {
  // `streams` equal slices of [base, base+bytes) read in lock step, 128 bytes each per step, with
  // four independent accumulators so that enough loads are in flight.
  const size_t slice = bytes / streams / 128 * 128;
  __m256i acc0 = _mm256_setzero_si256(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
  for (size_t off = 0; off < slice; off += 128) {
    for (int s = 0; s < streams; ++s) {
      const __m256i* p = reinterpret_cast<const __m256i*>(base + s * slice + off);
      acc0 = _mm256_add_epi64(acc0, _mm256_load_si256(p));
      acc1 = _mm256_add_epi64(acc1, _mm256_load_si256(p + 1));
      acc2 = _mm256_add_epi64(acc2, _mm256_load_si256(p + 2));
      acc3 = _mm256_add_epi64(acc3, _mm256_load_si256(p + 3));
    }
  }
  acc0 = _mm256_add_epi64(_mm256_add_epi64(acc0, acc1), _mm256_add_epi64(acc2, acc3));
  return static_cast<uint64_t>(_mm256_extract_epi64(acc0, 0) + _mm256_extract_epi64(acc0, 3));
}
#endif

uint64_t read_streams_scalar(const uint8_t* base, size_t bytes, int streams) {
  const size_t slice = bytes / streams / 128 * 128;
  uint64_t acc = 0;
  for (size_t off = 0; off < slice; off += 64) {
    for (int s = 0; s < streams; ++s) {
      const uint64_t* p = reinterpret_cast<const uint64_t*>(base + s * slice + off);
      for (int i = 0; i < 16; ++i) acc += p[i];
    }
  }
  return acc;
}

uint64_t read_streams(const uint8_t* base, size_t bytes, int streams) {
#if defined(__x86_64__)
  if (slmc::cpu_supports(slmc::Isa::kAvx2)) return read_streams_avx2(base, bytes, streams);
#endif
  return read_streams_scalar(base, bytes, streams);
}

void bm_membw(benchmark::State& state, size_t bytes, int threads, int streams) {
  auto buffer = make_buffer(bytes);
  const size_t per_thread = bytes / threads / 64 * 64;
  for (auto _ : state) {
    uint64_t sum = 0;
    slmc::parallel_for(threads, 1, threads, [&](int64_t b, int64_t e) {
      uint64_t local = 0;
      for (int64_t t = b; t < e; ++t) local += read_streams(buffer.get() + t * per_thread, per_thread, streams);
#if defined(SLMC_HAVE_OPENMP)
#pragma omp atomic
#endif
      sum += local;
    });
    benchmark::DoNotOptimize(sum);
  }
  const double read = static_cast<double>(per_thread) * threads;
  state.counters["GBps"] = benchmark::Counter(read * state.iterations() / 1e9, benchmark::Counter::kIsRate);
  state.SetBytesProcessed(static_cast<int64_t>(read) * state.iterations());
}

void register_membw() {
  const size_t mib = 256;
  for (int threads : {1, 2}) {
    for (int streams : {1, 4}) {
      const std::string name = std::string(streams == 1 ? "membw/seq/" : "membw/streams4/") +
                               std::to_string(mib) + "MiB/omp:" + std::to_string(threads);
      benchmark::RegisterBenchmark(name.c_str(), bm_membw, mib << 20, threads, streams)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
}

}  // namespace

// Registered at static-initialization time like BENCHMARK(); names are chosen above.
static const int kRegistered = (register_membw(), 0);
