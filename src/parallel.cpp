// The OpenMP side of slmc/parallel.hpp.
#include "slmc/parallel.hpp"

#include <algorithm>

#if defined(SLMC_HAVE_OPENMP)
#include <omp.h>
#endif

namespace slmc {

int default_num_threads() noexcept {
#if defined(SLMC_HAVE_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

void parallel_for_chunks(int64_t n, int64_t grain, int num_threads, void (*fn)(void*, int64_t, int64_t), void* user) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t chunks = (n + grain - 1) / grain;
  int threads = num_threads > 0 ? num_threads : default_num_threads();
  threads = static_cast<int>(std::min<int64_t>(threads, chunks));
  if (threads <= 1) {
    fn(user, int64_t{0}, n);
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
    if (b < e) fn(user, b, e);
  }
#else
  fn(user, int64_t{0}, n);
#endif
}

void parallel_region_impl(int num_threads, int max_threads, void (*fn)(void*, int, int), void* user) {
  int threads = num_threads > 0 ? num_threads : default_num_threads();
  threads = std::max(1, std::min(threads, max_threads));
  if (threads <= 1) {
    fn(user, 0, 1);
    return;
  }
#if defined(SLMC_HAVE_OPENMP)
#pragma omp parallel num_threads(threads)
  fn(user, omp_get_thread_num(), omp_get_num_threads());
#else
  fn(user, 0, 1);
#endif
}

}  // namespace slmc
