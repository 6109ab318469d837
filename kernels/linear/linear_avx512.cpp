// AVX-512 linear kernels (compiled with AVX2 + FMA + F16C + AVX-512 F/BW/VL/VNNI): the int8
// (block) mode with the EVEX vpdpbusd on YMM and 32 vector registers, so twice the rows of X per
// weight pass (linear_block_x86.hpp). fp32 and int8-row modes, the gather and the activation
// quantizer are AVX2's for now.
#include "linear/linear_avx2.hpp"
#include "linear/linear_block_x86.hpp"

static_assert(SLMC_HAVE_AVX512_FLAGS, "linear_avx512.cpp must be compiled with AVX-512 F/BW/VL/VNNI");

namespace slmc::detail {
namespace {
size_t scratch_bytes(const LinearArgs& a) {
  return std::max(avx2::scratch_bytes(a), blk::BlockGemmZmm::scratch_bytes(a));
}

// Constant-initialized (no guard): the accessor runs on every CPU when the dispatch table is built.
constexpr LinearKernels kAvx512Linear{"avx512",           avx2::fp32,          avx2::int8_row,
                                      blk::int8_block<blk::DotAvx512>, scratch_bytes, linear_gather_scalar,
                                      avx2::quantize_x, avx2::quantize_x_blocks};
}  // namespace

const LinearKernels& linear_kernels_avx512() { return kAvx512Linear; }

}  // namespace slmc::detail
