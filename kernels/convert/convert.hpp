// Kernel family "convert": fp32 <-> fp16 / bf16 arrays. Every ISA's table gives results
// bit-identical to the scalar functions in slmc/half.hpp (tested over all 65,536 fp16 values).
#pragma once

#include <cstddef>
#include <cstdint>

namespace slmc::detail {

struct ConvertKernels {
  const char* isa;
  void (*fp32_to_fp16)(const float* src, uint16_t* dst, size_t n);
  void (*fp16_to_fp32)(const uint16_t* src, float* dst, size_t n);
  void (*fp32_to_bf16)(const float* src, uint16_t* dst, size_t n);
  void (*bf16_to_fp32)(const uint16_t* src, float* dst, size_t n);
};

const ConvertKernels& convert_kernels_scalar();
const ConvertKernels& convert_kernels_avx2();
const ConvertKernels& convert_kernels_neon();

}  // namespace slmc::detail
