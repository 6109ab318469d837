// Internal: picking a kernel family's function table for an ISA.
//
// Each family in kernels/<family>/ declares a table struct of function pointers in
// kernels/<family>/<family>.hpp and one accessor per ISA, `const Table& <family>_kernels_<isa>()`,
// defined in that ISA's file. select_kernels() maps an ISA to the table; ISAs not compiled into the
// build pass nullptr and fall back to the next best compiled table.
#pragma once

#include "slmc/cpu.hpp"

namespace slmc::detail {

/// The ISA kernels should use now: active_isa(), or (once warned on stderr) the best runnable ISA
/// when SLMC_ISA is invalid. APIs that return Status report an invalid SLMC_ISA themselves.
Isa kernel_isa();

template <typename Table>
struct IsaTables {
  const Table* scalar = nullptr;
  const Table* avx2 = nullptr;
  const Table* neon = nullptr;
  const Table* neon_dotprod = nullptr;

  const Table& get(Isa isa) const {
    switch (isa) {
      case Isa::kNeonDotprod:
        if (neon_dotprod) return *neon_dotprod;
        [[fallthrough]];
      case Isa::kNeon:
        if (neon) return *neon;
        break;
      case Isa::kAvx2:
        if (avx2) return *avx2;
        break;
      case Isa::kScalar:
        break;
    }
    return *scalar;
  }
};

}  // namespace slmc::detail

#if defined(SLMC_HAVE_AVX2)
#define SLMC_IF_AVX2(x) x
#else
#define SLMC_IF_AVX2(x) nullptr
#endif
#if defined(SLMC_HAVE_NEON)
#define SLMC_IF_NEON(x) x
#else
#define SLMC_IF_NEON(x) nullptr
#endif
#if defined(SLMC_HAVE_NEON_DOTPROD)
#define SLMC_IF_NEON_DOTPROD(x) x
#else
#define SLMC_IF_NEON_DOTPROD(x) nullptr
#endif
