// Linear kernels for ARMv8.2-A NEON with the dot-product extension (compiled with
// -march=armv8.2-a+dotprod+fp16): int8 mode multiplies 16 int8 pairs into four int32 lanes with one
// sdot; everything else is the plain NEON code of linear_neon_impl.hpp, compiled again here.
#include "linear/linear_neon_impl.hpp"
#include "linear/linear_block_neon.hpp"

static_assert(SLMC_LINEAR_SDOT, "linear_neon_dotprod.cpp must be compiled with +dotprod");

namespace slmc::detail {
namespace {
// Constant-initialized (no guard): the accessor runs on every CPU when the dispatch table is built,
// including CPUs without dotprod, so it must not execute any ARMv8.2 instruction itself.
constexpr LinearKernels kNeonDotprodLinear{"neon_dotprod", fp32, int8, blk_neon::int8_block, scratch_bytes,
                                            gather, quantize_x_scalar,
                                            quantize_x_blocks_scalar};
}  // namespace

const LinearKernels& linear_kernels_neon_dotprod() { return kNeonDotprodLinear; }

}  // namespace slmc::detail
