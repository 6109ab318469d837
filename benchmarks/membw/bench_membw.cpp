// membw/...: memory read bandwidth, the roofline for memory-bound GEMV. Two access patterns:
//   membw/seq/<MiB>/omp:<T>       one sequential stream per thread
//   membw/streams4/<MiB>/omp:<T>  four interleaved streams per thread, each a quarter of the buffer
//                                 (far apart), reported as "membw" in the kernel issue's targets
//   membw/rows4/<MiB>/omp:<T>     four adjacent rows of 8 KiB read in lock step, then the next four:
//                                 exactly a GEMV's access pattern over a row-major int8 matrix with
//                                 K = 8192 (a best-of-7 standalone loop of this shape read 18.5 GB/s
//                                 against 15 for one stream; medians here have been within noise of
//                                 streams4 — compare both)
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

#if defined(__x86_64__)
__attribute__((target("avx2"))) uint64_t read_rows_avx2(const uint8_t* base, size_t bytes, size_t row) {
  // Groups of four adjacent rows of `row` bytes, read 64 bytes per row per step.
  __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
  for (size_t g = 0; g + 4 * row <= bytes; g += 4 * row) {
    for (size_t off = 0; off < row; off += 64) {
      for (int s = 0; s < 4; ++s) {
        const __m256i* p = reinterpret_cast<const __m256i*>(base + g + s * row + off);
        acc[s] = _mm256_add_epi64(acc[s], _mm256_add_epi64(_mm256_load_si256(p), _mm256_load_si256(p + 1)));
      }
    }
  }
  const __m256i t = _mm256_add_epi64(_mm256_add_epi64(acc[0], acc[1]), _mm256_add_epi64(acc[2], acc[3]));
  return static_cast<uint64_t>(_mm256_extract_epi64(t, 0) + _mm256_extract_epi64(t, 3));
}
#endif

uint64_t read_rows_scalar(const uint8_t* base, size_t bytes, size_t row) {
  uint64_t acc = 0;
  for (size_t g = 0; g + 4 * row <= bytes; g += 4 * row) {
    for (size_t off = 0; off < row; off += 64) {
      for (int s = 0; s < 4; ++s) {
        const uint64_t* p = reinterpret_cast<const uint64_t*>(base + g + s * row + off);
        for (int i = 0; i < 8; ++i) acc += p[i];
      }
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

constexpr size_t kRowBytes = 8192;

uint64_t read_rows(const uint8_t* base, size_t bytes, size_t row) {
#if defined(__x86_64__)
  if (slmc::cpu_supports(slmc::Isa::kAvx2)) return read_rows_avx2(base, bytes, row);
#endif
  return read_rows_scalar(base, bytes, row);
}

// streams > 0: that many far-apart slices; streams == 0: groups of four adjacent 8 KiB rows.
void bm_membw(benchmark::State& state, size_t bytes, int threads, int streams) {
  auto buffer = make_buffer(bytes);
  const size_t per_thread = bytes / threads / 64 * 64;
  for (auto _ : state) {
    uint64_t sum = 0;
    slmc::parallel_for(threads, 1, threads, [&](int64_t b, int64_t e) {
      uint64_t local = 0;
      for (int64_t t = b; t < e; ++t) {
        const uint8_t* p = buffer.get() + t * per_thread;
        local += streams > 0 ? read_streams(p, per_thread, streams) : read_rows(p, per_thread, kRowBytes);
      }
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
    for (int streams : {1, 4, 0}) {
      const char* kind = streams == 1 ? "membw/seq/" : (streams == 4 ? "membw/streams4/" : "membw/rows4/");
      const std::string name = kind + std::to_string(mib) + "MiB/omp:" + std::to_string(threads);
      benchmark::RegisterBenchmark(name.c_str(), bm_membw, mib << 20, threads, streams)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
}

}  // namespace

// Registered at static-initialization time like BENCHMARK(); names are chosen above.
static const int kRegistered = (register_membw(), 0);
