// AVX2 + FMA + F16C linear kernels: the table. Its entry points ask the ISA-neutral plan
// (linear_plan with kLinearTuningAvx2, kernels/linear/driver.hpp) which path serves the call and
// run that part's micro-kernels (linear_avx2.hpp lists the parts). Unusual groupings in int8 mode
// (group size not a multiple of 32) use the scalar table.
#include <cmath>

#include "linear/linear_avx2.hpp"
#include "linear/linear_block_x86.hpp"

namespace slmc::detail {
namespace avx2 {

void fp32(const LinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch) {
  const LinearPlan pl = linear_plan(a, /*int8_acts=*/false, kLinearTuningAvx2);
  if (pl.path == LinearPath::kGemm) return avx2::gemm_fp32(a, m0, m1, scratch);
  avx2::gemv_fp32(a, m0, m1, pl.nx);
}

void int8_row(const LinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch) {
  const LinearPlan pl = linear_plan(a, /*int8_acts=*/true, kLinearTuningAvx2);
  switch (pl.path) {
    case LinearPath::kReference: return linear_kernels_scalar().int8_row(a, m0, m1, scratch);
    case LinearPath::kGemm: return avx2::gemm_int8(a, m0, m1, scratch);
    case LinearPath::kGemv: return avx2::gemv_int8(a, pl.pairs, pl.span, pl.nx, m0, m1, scratch);
  }
}

// int8-mode activations: quantize_x_scalar's operations on eight lanes, bit-identical to it (a
// maximum is exact in any order; each code is the same multiply, clamp and two additions). A tail
// of k % 32 values goes through a zero-padded copy (zeros change neither the maximum nor a code).
float quantize_x(const float* x, int64_t k, int64_t kpad, int8_t* xq) {
  const int64_t full = k / 32 * 32;
  alignas(32) float tail[32] = {};
  std::memcpy(tail, x + full, static_cast<size_t>(k - full) * 4);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 mx[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  // max_ps returns its second operand when either is NaN: a NaN input never replaces the maximum.
  auto amax32 = [&](const float* p) {
    SLMC_UNROLL
    for (int j = 0; j < 4; ++j) mx[j] = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(p + 8 * j), abs_mask), mx[j]);
  };
  for (int64_t c = 0; c < full; c += 32) amax32(x + c);
  amax32(tail);
  const __m256 m = _mm256_max_ps(_mm256_max_ps(mx[0], mx[1]), _mm256_max_ps(mx[2], mx[3]));
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  const float amax = _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
  const float scale = amax / 127.0f;
  const float inv = amax > 0.0f && std::isfinite(amax) ? 127.0f / amax : 0.0f;
  const __m256 vinv = _mm256_set1_ps(inv), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
  const __m256 magic = _mm256_set1_ps(12582912.0f);
  auto codes8 = [&](const float* p) {
    __m256 v = _mm256_mul_ps(_mm256_loadu_ps(p), vinv);
    v = _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));  // NaN (or inf * 0) -> 0
    v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
    return _mm256_cvtps_epi32(_mm256_sub_ps(_mm256_add_ps(v, magic), magic));
  };
  auto codes32 = [&](const float* p, int8_t* dst) {
    const __m256i ab = _mm256_packs_epi32(codes8(p), codes8(p + 8));
    const __m256i cd = _mm256_packs_epi32(codes8(p + 16), codes8(p + 24));
    const __m256i bytes = _mm256_packs_epi16(ab, cd);  // dwords a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 ...
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst),
                        _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  };
  for (int64_t c = 0; c < full; c += 32) codes32(x + c, xq + c);
  if (full < k) {
    alignas(32) int8_t t[32];
    codes32(tail, t);
    std::memcpy(xq + full, t, static_cast<size_t>(k - full));
  }
  std::memset(xq + k, 0, static_cast<size_t>(kpad - k));
  return scale;
}

// Block mode: quantize_x's operations on each whole 32-value block without its tail handling and
// call (the maximum of NaN-free |x| is exact in any order), the last partial block through it.
void quantize_x_blocks(const float* x, int64_t k, int64_t kpad, int8_t* xq, float* xbs) {
  const int64_t full = k / 32;
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f), magic = _mm256_set1_ps(12582912.0f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t j = 0; j < full; ++j) {
    const float* p = x + j * 32;
    __m256 v[4], mx[4];
    SLMC_UNROLL
    for (int t = 0; t < 4; ++t) {
      v[t] = _mm256_loadu_ps(p + 8 * t);
      mx[t] = _mm256_max_ps(_mm256_and_ps(v[t], abs_mask), _mm256_setzero_ps());  // NaN -> 0
    }
    const __m256 m = _mm256_max_ps(_mm256_max_ps(mx[0], mx[1]), _mm256_max_ps(mx[2], mx[3]));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    const float amax = _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
    xbs[j] = amax / 127.0f;
    const __m256 vinv = _mm256_set1_ps(amax > 0.0f && std::isfinite(amax) ? 127.0f / amax : 0.0f);
    __m256i c[4];
    SLMC_UNROLL
    for (int t = 0; t < 4; ++t) {
      __m256 s = _mm256_mul_ps(v[t], vinv);
      s = _mm256_and_ps(s, _mm256_cmp_ps(s, s, _CMP_ORD_Q));  // NaN (or inf * 0) -> 0
      s = _mm256_min_ps(_mm256_max_ps(s, lo), hi);
      c[t] = _mm256_cvtps_epi32(_mm256_sub_ps(_mm256_add_ps(s, magic), magic));
    }
    const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(c[0], c[1]), _mm256_packs_epi32(c[2], c[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(xq + j * 32), _mm256_permutevar8x32_epi32(bytes, order));
  }
  for (int64_t j = full; j < kpad / 32; ++j) {
    const int64_t c0 = j * 32, len = std::max<int64_t>(0, std::min<int64_t>(32, k - c0));
    xbs[j] = quantize_x(x + c0, len, 32, xq + c0);
  }
}

size_t scratch_bytes(const LinearArgs& a) {
  const int64_t ntiles_f32 = (a.n + kNrF32 - 1) / kNrF32, ntiles_i8 = (a.n + kNrI8 - 1) / kNrI8;
  const size_t f32 = static_cast<size_t>(kKcF32 * kMr * 4 + kNrF32 * kMr * 4 + ntiles_f32 * kKcF32 * kNrF32 * 4);
  size_t i8 = 0;
  if (a.vt == ValueType::kInt8 || a.vt == ValueType::kInt4) {
    const int64_t kc = i8_kc(a);
    i8 = static_cast<size_t>(2 * kc * kMr + (kc / 32 + 2) * kMr * 4 + a.layout.groups * kMr * 4 + kNrI8 * kMr * 4 +
                             ntiles_i8 * kc * kNrI8);
  }
  // GEMV: fp32 copies of the scales and mins of 4 rows (interleaved: of their R-row block).
  const size_t gemv = static_cast<size_t>(2 * (a.layout.groups * 8 + 16) * 4);
  const size_t block = blk::scratch_floats(a) * 4;  // int8 (block) mode, every x86 table
  return std::max({f32, i8, gemv, block}) + 64;
}

}  // namespace avx2

namespace {
// Constant-initialized (no guard): the accessor runs on every CPU when the dispatch table is built.
constexpr LinearKernels kAvx2Linear{"avx2",           avx2::fp32,          avx2::int8_row,
                                    blk::int8_block<blk::DotAvx2>, avx2::scratch_bytes, linear_gather_scalar,
                                    avx2::quantize_x, avx2::quantize_x_blocks};
}  // namespace

const LinearKernels& linear_kernels_avx2() { return kAvx2Linear; }

}  // namespace slmc::detail
