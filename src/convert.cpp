// Dispatch of the fp16/bf16 array conversions (kernels/convert/).
#include "convert/convert.hpp"
#include "dispatch.hpp"
#include "slmc/half.hpp"

namespace slmc {
namespace detail {
const ConvertKernels& convert_kernels(Isa isa) {
  static const auto tables = SLMC_KERNEL_TABLES(ConvertKernels, convert);
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
