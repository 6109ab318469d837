// Internal invariants. SLMC_CHECK is always on; SLMC_DCHECK only in debug builds. Both print the
// location and a printf-style message before aborting. They guard programming errors only: bad user
// input is reported through Status (status.hpp), never through these.
#pragma once

#include <cstdio>
#include <cstdlib>

#define SLMC_CHECK(cond, ...)                                                   \
  do {                                                                          \
    if (__builtin_expect(!(cond), 0)) {                                         \
      std::fprintf(stderr, "slmc: check failed at %s:%d: %s: ", __FILE__,       \
                   __LINE__, #cond);                                            \
      std::fprintf(stderr, __VA_ARGS__);                                        \
      std::fputc('\n', stderr);                                                 \
      std::abort();                                                             \
    }                                                                           \
  } while (0)

/// SLMC_CHECK_OP(a, <=, b): on failure prints both values (as long long / double via the format).
#define SLMC_CHECK_LE(a, b) \
  SLMC_CHECK((a) <= (b), "%lld <= %lld", static_cast<long long>(a), static_cast<long long>(b))
#define SLMC_CHECK_LT(a, b) \
  SLMC_CHECK((a) < (b), "%lld < %lld", static_cast<long long>(a), static_cast<long long>(b))
#define SLMC_CHECK_EQ(a, b) \
  SLMC_CHECK((a) == (b), "%lld == %lld", static_cast<long long>(a), static_cast<long long>(b))

#ifdef NDEBUG
#define SLMC_DCHECK(cond, ...) \
  do {                         \
  } while (0)
#else
#define SLMC_DCHECK(cond, ...) SLMC_CHECK(cond, __VA_ARGS__)
#endif
