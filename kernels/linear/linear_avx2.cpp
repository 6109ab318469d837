// AVX2 + FMA + F16C linear kernels (work in progress: delegates to the scalar table).
#include <immintrin.h>

#include "linear/linear.hpp"

namespace slmc::detail {
const LinearKernels& linear_kernels_avx2() {
  static const LinearKernels k = [] {
    LinearKernels t = linear_kernels_scalar();
    t.isa = "avx2";
    return t;
  }();
  return k;
}
}  // namespace slmc::detail
