// Dispatch of the fp16/bf16 array conversions (kernels/convert/).
#include "convert/convert.hpp"
#include "dispatch.hpp"
#include "slmc/half.hpp"

namespace slmc {
namespace detail {
const ConvertKernels& convert_kernels(Isa isa) {
  static const IsaTables<ConvertKernels> tables{&convert_kernels_scalar(), SLMC_IF_AVX2(&convert_kernels_avx2()),
                                                SLMC_IF_NEON(&convert_kernels_neon()), nullptr};
  return tables.get(isa);
}
}  // namespace detail

void convert_fp32_to_fp16(const float* src, uint16_t* dst, size_t n) {
  detail::convert_kernels(detail::kernel_isa()).fp32_to_fp16(src, dst, n);
}
void convert_fp16_to_fp32(const uint16_t* src, float* dst, size_t n) {
  detail::convert_kernels(detail::kernel_isa()).fp16_to_fp32(src, dst, n);
}
void convert_fp32_to_bf16(const float* src, uint16_t* dst, size_t n) {
  detail::convert_kernels(detail::kernel_isa()).fp32_to_bf16(src, dst, n);
}
void convert_bf16_to_fp32(const uint16_t* src, float* dst, size_t n) {
  detail::convert_kernels(detail::kernel_isa()).bf16_to_fp32(src, dst, n);
}
}  // namespace slmc
