// AVX2 + FMA table of the ops family: 8 lanes, sums in 4 (or 2) vector accumulators reduced in a
// fixed order, exp by the Cephes polynomial of ops.hpp. Tails of fewer than 8 values go through
// a padded copy or a masked load, so every length takes the same vector code.
// GCC contracts a*b + c*d into an FMA under its C++ default (-ffp-contract=fast), intrinsics
// included: the ops spell every FMA they want, and the rest must round as written (RoPE is
// bit-identical across ISAs, tests/kernels/test_ops.cpp).
#pragma GCC optimize("fp-contract=off")
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops/ops.hpp"

namespace slmc::detail {
namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Lanes [0, r) set (r in 0..8): a maskload / maskstore control.
inline __m256i tail_mask(int64_t r) {
  alignas(32) static const int32_t kBits[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kBits + 8 - r));
}

inline __m256 exp_ps(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(kExpLo)), _mm256_set1_ps(kExpHi));
  __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  fx = _mm256_max_ps(fx, _mm256_set1_ps(-127.0f));  // 2^-127 builds as +0 below; -128 would be -inf bits
  fx = _mm256_min_ps(fx, _mm256_set1_ps(127.0f));
  __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(kLn2Lo), r);
  const __m256 z = _mm256_mul_ps(r, r);
  __m256 y = _mm256_set1_ps(kExpP0);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(kExpP1));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(kExpP2));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(kExpP3));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(kExpP4));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(kExpP5));
  y = _mm256_add_ps(_mm256_fmadd_ps(y, z, r), _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

float sum_squares(const float* x, int64_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
    const __m256 v2 = _mm256_loadu_ps(x + i + 16), v3 = _mm256_loadu_ps(x + i + 24);
    a0 = _mm256_fmadd_ps(v0, v0, a0);
    a1 = _mm256_fmadd_ps(v1, v1, a1);
    a2 = _mm256_fmadd_ps(v2, v2, a2);
    a3 = _mm256_fmadd_ps(v3, v3, a3);
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    a0 = _mm256_fmadd_ps(v, v, a0);
  }
  if (i < n) {
    const __m256 v = _mm256_maskload_ps(x + i, tail_mask(n - i));
    a1 = _mm256_fmadd_ps(v, v, a1);
  }
  return hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

void scale_mul(const float* x, const float* w, float s, int64_t n, float* out) {
  const __m256 vs = _mm256_set1_ps(s);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs), _mm256_loadu_ps(w + i)));
  }
  for (; i < n; ++i) out[i] = x[i] * s * w[i];
}

void rope(float* v, int64_t heads, int64_t hd, const float* cs, const float* sn, bool interleaved) {
  const int64_t half = hd / 2;
  // Even lanes get −sin: a' = a·c + b·(−s) equals a·c − b·s exactly; b' = b·c + a·s = a·s + b·c.
  const __m256 neg_even = _mm256_castsi256_ps(_mm256_setr_epi32(INT32_MIN, 0, INT32_MIN, 0, INT32_MIN, 0, INT32_MIN, 0));
  for (int64_t h = 0; h < heads; ++h) {
    float* p = v + h * hd;
    int64_t i = 0;
    if (interleaved) {
      for (; i + 4 <= half; i += 4) {
        const __m128 c4 = _mm_loadu_ps(cs + i), s4 = _mm_loadu_ps(sn + i);
        const __m256 c = _mm256_set_m128(_mm_unpackhi_ps(c4, c4), _mm_unpacklo_ps(c4, c4));
        const __m256 s = _mm256_xor_ps(_mm256_set_m128(_mm_unpackhi_ps(s4, s4), _mm_unpacklo_ps(s4, s4)), neg_even);
        const __m256 x = _mm256_loadu_ps(p + 2 * i);
        const __m256 sw = _mm256_permute_ps(x, 0xB1);
        _mm256_storeu_ps(p + 2 * i, _mm256_add_ps(_mm256_mul_ps(x, c), _mm256_mul_ps(sw, s)));
      }
      for (; i < half; ++i) {
        const float x0 = p[2 * i], x1 = p[2 * i + 1];
        p[2 * i] = x0 * cs[i] - x1 * sn[i];
        p[2 * i + 1] = x0 * sn[i] + x1 * cs[i];
      }
    } else {
      for (; i + 8 <= half; i += 8) {
        const __m256 c = _mm256_loadu_ps(cs + i), s = _mm256_loadu_ps(sn + i);
        const __m256 a = _mm256_loadu_ps(p + i), b = _mm256_loadu_ps(p + i + half);
        _mm256_storeu_ps(p + i, _mm256_sub_ps(_mm256_mul_ps(a, c), _mm256_mul_ps(b, s)));
        _mm256_storeu_ps(p + i + half, _mm256_add_ps(_mm256_mul_ps(a, s), _mm256_mul_ps(b, c)));
      }
      for (; i < half; ++i) {
        const float x0 = p[i], x1 = p[i + half];
        p[i] = x0 * cs[i] - x1 * sn[i];
        p[i + half] = x0 * sn[i] + x1 * cs[i];
      }
    }
  }
}

void softmax(float* x, int64_t n) {
  __m256 m = _mm256_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
  float mx = hmax(m);
  for (int64_t j = i; j < n; ++j) mx = std::max(mx, x[j]);
  const __m256 vm = _mm256_set1_ps(mx);
  __m256 s0 = _mm256_setzero_ps(), s1 = s0;
  for (i = 0; i + 16 <= n; i += 16) {
    const __m256 e0 = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
    const __m256 e1 = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vm));
    _mm256_storeu_ps(x + i, e0);
    _mm256_storeu_ps(x + i + 8, e1);
    s0 = _mm256_add_ps(s0, e0);
    s1 = _mm256_add_ps(s1, e1);
  }
  for (; i < n; i += 8) {  // the last 1..15 values, padded with -inf (exp gives 0)
    alignas(32) float buf[8];
    const int64_t r = std::min<int64_t>(8, n - i);
    for (int j = 0; j < 8; ++j) buf[j] = j < r ? x[i + j] : -INFINITY;
    const __m256 e = exp_ps(_mm256_sub_ps(_mm256_load_ps(buf), vm));
    _mm256_store_ps(buf, e);
    std::memcpy(x + i, buf, static_cast<size_t>(r) * sizeof(float));
    s0 = _mm256_add_ps(s0, _mm256_and_ps(e, _mm256_castsi256_ps(tail_mask(r))));
  }
  const __m256 inv = _mm256_set1_ps(1.0f / hsum(_mm256_add_ps(s0, s1)));
  for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
  for (; i < n; ++i) x[i] *= _mm256_cvtss_f32(inv);
}

inline __m256 silu_mul8(__m256 g, __m256 u) {
  const __m256 e = exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), g));
  return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

void silu_mul(const float* g, const float* u, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, silu_mul8(_mm256_loadu_ps(g + i), _mm256_loadu_ps(u + i)));
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(out + i, m, silu_mul8(_mm256_maskload_ps(g + i, m), _mm256_maskload_ps(u + i, m)));
  }
}

void add(float* x, const float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) x[i] += y[i];
}

// The four horizontal sums of a, b, c, d (lanes 0..3) in a fixed order: fold each to 128 bits,
// then two hadds (9 instructions for four rows instead of a full reduction per row).
inline __m128 reduce4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m128 a4 = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  const __m128 b4 = _mm_add_ps(_mm256_castps256_ps128(b), _mm256_extractf128_ps(b, 1));
  const __m128 c4 = _mm_add_ps(_mm256_castps256_ps128(c), _mm256_extractf128_ps(c, 1));
  const __m128 d4 = _mm_add_ps(_mm256_castps256_ps128(d), _mm256_extractf128_ps(d, 1));
  return _mm_hadd_ps(_mm_hadd_ps(a4, b4), _mm_hadd_ps(c4, d4));
}

void dot_rows(const float* q, const float* k, int64_t stride, int64_t rows, int64_t n, float scale, float* out) {
  const __m256i m = tail_mask(n & 7);
  const int64_t n8 = n & ~int64_t{7};
  const __m128 vs = _mm_set1_ps(scale);
  // Four rows per step share the loads of q; a last group of 1..3 rows repeats its first row
  // (results dropped), so every row takes the same operations.
  for (int64_t r = 0; r < rows; r += 4) {
    const int64_t live = std::min<int64_t>(4, rows - r);
    const float* k0 = k + r * stride;
    const float* k1 = live > 1 ? k0 + stride : k0;
    const float* k2 = live > 2 ? k0 + 2 * stride : k0;
    const float* k3 = live > 3 ? k0 + 3 * stride : k0;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < n8; i += 8) {
      const __m256 qv = _mm256_loadu_ps(q + i);
      a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + i), a0);
      a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k1 + i), a1);
      a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k2 + i), a2);
      a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k3 + i), a3);
    }
    if (n8 < n) {
      const __m256 qv = _mm256_maskload_ps(q + n8, m);
      a0 = _mm256_fmadd_ps(qv, _mm256_maskload_ps(k0 + n8, m), a0);
      a1 = _mm256_fmadd_ps(qv, _mm256_maskload_ps(k1 + n8, m), a1);
      a2 = _mm256_fmadd_ps(qv, _mm256_maskload_ps(k2 + n8, m), a2);
      a3 = _mm256_fmadd_ps(qv, _mm256_maskload_ps(k3 + n8, m), a3);
    }
    alignas(16) float sums[4];
    _mm_store_ps(sums, _mm_mul_ps(reduce4(a0, a1, a2, a3), vs));
    for (int64_t j = 0; j < live; ++j) out[r + j] = sums[j];
  }
}

// Columns [c, c + 8·NV) of out = Σ_r a[r] v[r]: NV accumulators stay in registers over all rows.
template <int NV>
void weighted_block(const float* a, const float* v, int64_t stride, int64_t rows, float* out) {
  __m256 acc[NV];
  for (int j = 0; j < NV; ++j) acc[j] = _mm256_setzero_ps();
  for (int64_t r = 0; r < rows; ++r) {
    const __m256 ar = _mm256_broadcast_ss(a + r);
    const float* vr = v + r * stride;
    for (int j = 0; j < NV; ++j) acc[j] = _mm256_fmadd_ps(ar, _mm256_loadu_ps(vr + 8 * j), acc[j]);
  }
  for (int j = 0; j < NV; ++j) _mm256_storeu_ps(out + 8 * j, acc[j]);
}

void weighted_sum_rows(const float* a, const float* v, int64_t stride, int64_t rows, int64_t n, float* out) {
  int64_t c = 0;
  for (; c + 64 <= n; c += 64) weighted_block<8>(a, v + c, stride, rows, out + c);
  switch ((n - c) / 8) {
    case 7: weighted_block<7>(a, v + c, stride, rows, out + c); break;
    case 6: weighted_block<6>(a, v + c, stride, rows, out + c); break;
    case 5: weighted_block<5>(a, v + c, stride, rows, out + c); break;
    case 4: weighted_block<4>(a, v + c, stride, rows, out + c); break;
    case 3: weighted_block<3>(a, v + c, stride, rows, out + c); break;
    case 2: weighted_block<2>(a, v + c, stride, rows, out + c); break;
    case 1: weighted_block<1>(a, v + c, stride, rows, out + c); break;
    default: break;
  }
  c += (n - c) / 8 * 8;
  if (c < n) {
    const __m256i m = tail_mask(n - c);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t r = 0; r < rows; ++r) {
      acc = _mm256_fmadd_ps(_mm256_broadcast_ss(a + r), _mm256_maskload_ps(v + r * stride + c, m), acc);
    }
    _mm256_maskstore_ps(out + c, m, acc);
  }
}

constexpr OpsKernels kTable = {"avx2", sum_squares, scale_mul, rope, softmax, silu_mul, add, dot_rows,
                               weighted_sum_rows};
}  // namespace

const OpsKernels& ops_kernels_avx2() { return kTable; }

}  // namespace slmc::detail
