// Sparse linear kernels for ARMv8.2-A NEON with the dot-product extension (compiled with
// -march=armv8.2-a+dotprod+fp16): int8 mode multiplies 16 code pairs into four int32 lanes with one
// sdot; everything else is the plain NEON code of linear_sparse_neon_impl.hpp, compiled again here.
#include "linear_sparse/linear_sparse_neon_impl.hpp"

static_assert(SLMC_SPARSE_SDOT, "linear_sparse_neon_dotprod.cpp must be compiled with +dotprod");

namespace slmc::detail {
namespace {
// Constant-initialized (no guard): the accessor runs on every CPU when the dispatch table is built,
// including CPUs without dotprod, so it must not execute any ARMv8.2 instruction itself.
constexpr SparseLinearKernels kNeonDotprodSparseLinear{"neon_dotprod", fp32_rows, int8_rows, sparse_decoded_scratch_bytes};
}  // namespace

const SparseLinearKernels& linear_sparse_kernels_neon_dotprod() { return kNeonDotprodSparseLinear; }

}  // namespace slmc::detail
