// Sparse linear kernels for plain ARMv8-A NEON (compiled with -march=armv8-a): int8 dot products
// with smull / smlal2 (int16 pair sums) and sadalp (pairwise widening into int32), bitmask and 2:4
// decoding with tbl, fp32 FMA with fmla. The code is shared with the dot-product build: see
// linear_sparse_neon_impl.hpp.
#include "linear_sparse/linear_sparse_neon_impl.hpp"

static_assert(!SLMC_SPARSE_SDOT, "linear_sparse_neon.cpp must be compiled without the dot-product extension");

namespace slmc::detail {
namespace {
// Constant-initialized (no guard): the accessor runs on every CPU when the dispatch table is built.
constexpr SparseLinearKernels kNeonSparseLinear{"neon", fp32_rows, int8_rows, sparse_decoded_scratch_bytes};
}  // namespace

const SparseLinearKernels& linear_sparse_kernels_neon() { return kNeonSparseLinear; }

}  // namespace slmc::detail
