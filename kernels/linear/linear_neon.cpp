// Linear kernels for plain ARMv8-A NEON (compiled with -march=armv8-a): int8 dot products with
// smull / smlal2 (int16 pair sums) and sadalp (pairwise widening into int32), fp32 FMA with fmla,
// fp16 weights through fcvtl, bf16 shifted into the high half. The code is shared with the
// dot-product build: see linear_neon_impl.hpp.
#include "linear/linear_neon_impl.hpp"
#include "linear/linear_block_neon.hpp"

static_assert(!SLMC_LINEAR_SDOT, "linear_neon.cpp must be compiled without the dot-product extension");

namespace slmc::detail {
namespace {
// Constant-initialized (no guard): the accessor runs on every CPU when the dispatch table is built.
constexpr LinearKernels kNeonLinear{"neon", fp32, int8, blk_neon::int8_block, scratch_bytes, gather,
                                    quantize_x_scalar, quantize_x_blocks_scalar};
}  // namespace

const LinearKernels& linear_kernels_neon() { return kNeonLinear; }

}  // namespace slmc::detail
