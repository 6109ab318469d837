// Thread-count control and a deterministic parallel-for over index ranges. With SLMC_OPENMP=OFF
// everything runs on the calling thread. Work is split into contiguous chunks so that each output
// element is computed by exactly one thread in a fixed order: results never depend on the thread
// count.
#pragma once

#include <algorithm>
#include <cstdint>

#if defined(SLMC_HAVE_OPENMP)
#include <omp.h>
#endif

namespace slmc {

/// Threads available to slmc kernels by default (OpenMP's max threads, 1 without OpenMP).
inline int default_num_threads() noexcept {
#if defined(SLMC_HAVE_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

/// Calls fn(begin, end) on disjoint chunks covering [0, n), each chunk a multiple of `grain`
/// (except the last), using up to `num_threads` threads (<= 0: the default).
template <typename Fn>
void parallel_for(int64_t n, int64_t grain, int num_threads, Fn&& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t chunks = (n + grain - 1) / grain;
  int threads = num_threads > 0 ? num_threads : default_num_threads();
  threads = static_cast<int>(std::min<int64_t>(threads, chunks));
  if (threads <= 1) {
    fn(int64_t{0}, n);
    return;
  }
#if defined(SLMC_HAVE_OPENMP)
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    const int nt = omp_get_num_threads();
    const int64_t c0 = chunks * t / nt;
    const int64_t c1 = chunks * (t + 1) / nt;
    const int64_t b = c0 * grain;
    const int64_t e = std::min(n, c1 * grain);
    if (b < e) fn(b, e);
  }
#else
  fn(int64_t{0}, n);
#endif
}

}  // namespace slmc
