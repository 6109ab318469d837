#include "convert/convert.hpp"

#include "slmc/half.hpp"

namespace slmc::detail {
namespace {
void fp32_to_fp16(const float* src, uint16_t* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = slmc::fp32_to_fp16(src[i]);
}
void fp16_to_fp32(const uint16_t* src, float* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = slmc::fp16_to_fp32(src[i]);
}
void fp32_to_bf16(const float* src, uint16_t* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = slmc::fp32_to_bf16(src[i]);
}
void bf16_to_fp32(const uint16_t* src, float* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = slmc::bf16_to_fp32(src[i]);
}
}  // namespace

const ConvertKernels& convert_kernels_scalar() {
  static const ConvertKernels table{"scalar", fp32_to_fp16, fp16_to_fp32, fp32_to_bf16, bf16_to_fp32};
  return table;
}
}  // namespace slmc::detail
