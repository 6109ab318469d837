// AVX-VNNI linear kernels (compiled with -mavx2 -mfma -mf16c -mavxvnni): the int8 (block) mode
// with one VEX vpdpbusd per 32-value chunk (linear_block_x86.hpp). fp32 and int8-row modes, the
// gather and the activation quantizer are AVX2's (AVX-VNNI adds nothing to them).
#include "linear/linear_avx2.hpp"
#include "linear/linear_block_x86.hpp"

static_assert(SLMC_HAVE_AVXVNNI_FLAGS, "linear_avxvnni.cpp must be compiled with -mavxvnni");

namespace slmc::detail {
namespace {
// Constant-initialized (no guard): the accessor runs on every CPU when the dispatch table is built.
constexpr LinearKernels kAvxVnniLinear{"avxvnni",           avx2::fp32,          avx2::int8_row,
                                       blk::int8_block<blk::DotAvxVnni>, avx2::scratch_bytes, linear_gather_scalar,
                                       avx2::quantize_x, avx2::quantize_x_blocks};
}  // namespace

const LinearKernels& linear_kernels_avxvnni() { return kAvxVnniLinear; }

}  // namespace slmc::detail
