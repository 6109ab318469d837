// Thread-count control and a deterministic parallel-for over index ranges. With SLMC_OPENMP=OFF
// everything runs on the calling thread. Work is split into contiguous chunks so that each output
// element is computed by exactly one thread in a fixed order: results never depend on the thread
// count. The OpenMP region itself is compiled into the library (src/parallel.cpp); this header
// only adapts a callable to it, so consumers need no OpenMP flags.
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

namespace slmc {

/// Threads available to slmc kernels by default (OpenMP's max threads, 1 without OpenMP).
int default_num_threads() noexcept;

/// Calls fn(user, begin, end) on disjoint chunks covering [0, n), each chunk a multiple of
/// `grain` (except the last), using up to `num_threads` threads (<= 0: the default).
void parallel_for_chunks(int64_t n, int64_t grain, int num_threads, void (*fn)(void* user, int64_t, int64_t),
                         void* user);

/// Runs fn(user, thread, threads) once on each of `threads` threads, thread = 0 .. threads-1, where
/// threads = min(num_threads (<= 0: the default), max_threads) (1: on the calling thread). One
/// fork/join for a group of ops that split their work by thread index themselves (e.g. a fixed
/// cyclic assignment of attention rows), so they can keep per-thread scratch.
void parallel_region_impl(int num_threads, int max_threads, void (*fn)(void* user, int thread, int threads), void* user);

/// Calls fn(thread, threads) on each thread of one parallel region (see parallel_region_impl).
template <typename Fn>
void parallel_region(int num_threads, int max_threads, Fn&& fn) {
  using F = std::remove_reference_t<Fn>;
  parallel_region_impl(
      num_threads, max_threads, [](void* user, int t, int nt) { (*static_cast<F*>(user))(t, nt); },
      const_cast<void*>(static_cast<const void*>(&fn)));
}

/// Calls fn(begin, end) on disjoint chunks covering [0, n) (see parallel_for_chunks).
template <typename Fn>
void parallel_for(int64_t n, int64_t grain, int num_threads, Fn&& fn) {
  using F = std::remove_reference_t<Fn>;
  parallel_for_chunks(
      n, grain, num_threads, [](void* user, int64_t b, int64_t e) { (*static_cast<F*>(user))(b, e); },
      const_cast<void*>(static_cast<const void*>(&fn)));
}

}  // namespace slmc
