// AArch64 NEON. FCVTN/FCVTL follow FPCR (round to nearest even, no flush-to-zero and NaN
// propagation with the quiet bit set under Linux defaults), matching slmc::fp32_to_fp16.
#include <arm_neon.h>

#include "convert/convert.hpp"
#include "slmc/half.hpp"

namespace slmc::detail {
namespace {
void fp32_to_fp16(const float* src, uint16_t* dst, size_t n) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    float16x4_t h = vcvt_f16_f32(vld1q_f32(src + i));
    vst1_u16(dst + i, vreinterpret_u16_f16(h));
  }
  for (; i < n; ++i) dst[i] = slmc::fp32_to_fp16(src[i]);
}

void fp16_to_fp32(const uint16_t* src, float* dst, size_t n) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    vst1q_f32(dst + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(src + i))));
  }
  for (; i < n; ++i) dst[i] = slmc::fp16_to_fp32(src[i]);
}

void fp32_to_bf16(const float* src, uint16_t* dst, size_t n) {
  size_t i = 0;
  const uint32x4_t abs_mask = vdupq_n_u32(0x7fffffff);
  const uint32x4_t inf = vdupq_n_u32(0x7f800000);
  const uint32x4_t bias = vdupq_n_u32(0x7fff);
  const uint32x4_t one = vdupq_n_u32(1);
  const uint32x4_t quiet = vdupq_n_u32(0x40);
  for (; i + 4 <= n; i += 4) {
    uint32x4_t x = vreinterpretq_u32_f32(vld1q_f32(src + i));
    uint32x4_t is_nan = vcgtq_u32(vandq_u32(x, abs_mask), inf);
    uint32x4_t lsb = vandq_u32(vshrq_n_u32(x, 16), one);
    uint32x4_t rounded = vshrq_n_u32(vaddq_u32(x, vaddq_u32(bias, lsb)), 16);
    uint32x4_t nan = vorrq_u32(vshrq_n_u32(x, 16), quiet);
    vst1_u16(dst + i, vmovn_u32(vbslq_u32(is_nan, nan, rounded)));
  }
  for (; i < n; ++i) dst[i] = slmc::fp32_to_bf16(src[i]);
}

void bf16_to_fp32(const uint16_t* src, float* dst, size_t n) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    vst1q_f32(dst + i, vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(src + i), 16)));
  }
  for (; i < n; ++i) dst[i] = slmc::bf16_to_fp32(src[i]);
}
}  // namespace

const ConvertKernels& convert_kernels_neon() {
  static const ConvertKernels table{"neon", fp32_to_fp16, fp16_to_fp32, fp32_to_bf16, bf16_to_fp32};
  return table;
}
}  // namespace slmc::detail
