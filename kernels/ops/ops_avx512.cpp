// AVX-512 (F/BW/VL) table of the ops family: 16 lanes, tails by opmask (masked loads never touch
// memory past the end), exp by the Cephes polynomial of ops.hpp with vscalefps for 2^n.
// GCC contracts a*b + c*d into an FMA under its C++ default (-ffp-contract=fast), intrinsics
// included: the ops spell every FMA they want, and the rest must round as written (RoPE is
// bit-identical across ISAs, tests/kernels/test_ops.cpp).
#pragma GCC optimize("fp-contract=off")
#include <immintrin.h>

// GCC 12's own _mm512_undefined_ps (behind masked loads and reductions) trips -Wuninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <algorithm>
#include <cmath>

#include "ops/ops.hpp"

namespace slmc::detail {
namespace {

inline __mmask16 tail_mask(int64_t r) { return static_cast<__mmask16>((1u << r) - 1u); }  // r in 0..15

inline __m512 exp_ps(__m512 x) {
  // Below the clamp (exp < 2^-127, -inf included) the result is 0, as on AVX2.
  const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(kExpLo), _CMP_GE_OQ);
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(kExpLo)), _mm512_set1_ps(kExpHi));
  const __m512 fx = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(kLn2Lo), r);
  const __m512 z = _mm512_mul_ps(r, r);
  __m512 y = _mm512_set1_ps(kExpP0);
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(kExpP1));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(kExpP2));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(kExpP3));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(kExpP4));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(kExpP5));
  y = _mm512_add_ps(_mm512_fmadd_ps(y, z, r), _mm512_set1_ps(1.0f));
  return _mm512_maskz_scalef_ps(keep, y, fx);
}

float sum_squares(const float* x, int64_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512 v0 = _mm512_loadu_ps(x + i), v1 = _mm512_loadu_ps(x + i + 16);
    const __m512 v2 = _mm512_loadu_ps(x + i + 32), v3 = _mm512_loadu_ps(x + i + 48);
    a0 = _mm512_fmadd_ps(v0, v0, a0);
    a1 = _mm512_fmadd_ps(v1, v1, a1);
    a2 = _mm512_fmadd_ps(v2, v2, a2);
    a3 = _mm512_fmadd_ps(v3, v3, a3);
  }
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    a0 = _mm512_fmadd_ps(v, v, a0);
  }
  if (i < n) {
    const __m512 v = _mm512_maskz_loadu_ps(tail_mask(n - i), x + i);
    a1 = _mm512_fmadd_ps(v, v, a1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

void scale_mul(const float* x, const float* w, float s, int64_t n, float* out) {
  const __m512 vs = _mm512_set1_ps(s);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), vs), _mm512_loadu_ps(w + i)));
  }
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(out + i, m,
                          _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vs), _mm512_maskz_loadu_ps(m, w + i)));
  }
}

void rope(float* v, int64_t heads, int64_t hd, const float* cs, const float* sn, bool interleaved) {
  const int64_t half = hd / 2;
  const __m512i dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  const __m512i neg_even = _mm512_setr_epi32(INT32_MIN, 0, INT32_MIN, 0, INT32_MIN, 0, INT32_MIN, 0, INT32_MIN, 0,
                                             INT32_MIN, 0, INT32_MIN, 0, INT32_MIN, 0);
  for (int64_t h = 0; h < heads; ++h) {
    float* p = v + h * hd;
    if (interleaved) {
      // 8 pairs per step; a'= a·c + b·(−s), b' = b·c + a·s: the scalar bits (see ops.hpp).
      for (int64_t i = 0; i < half; i += 8) {
        const int64_t r = std::min<int64_t>(8, half - i);
        const __mmask16 m8 = tail_mask(r), m16 = tail_mask(2 * r);
        const __m512 c = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_maskz_loadu_ps(m8, cs + i)));
        const __m512 s = _mm512_castsi512_ps(_mm512_xor_si512(
            _mm512_castps_si512(_mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_maskz_loadu_ps(m8, sn + i)))),
            neg_even));
        const __m512 x = _mm512_maskz_loadu_ps(m16, p + 2 * i);
        const __m512 sw = _mm512_permute_ps(x, 0xB1);
        _mm512_mask_storeu_ps(p + 2 * i, m16, _mm512_add_ps(_mm512_mul_ps(x, c), _mm512_mul_ps(sw, s)));
      }
    } else {
      for (int64_t i = 0; i < half; i += 16) {
        const __mmask16 m = tail_mask(std::min<int64_t>(16, half - i));
        const __m512 c = _mm512_maskz_loadu_ps(m, cs + i), s = _mm512_maskz_loadu_ps(m, sn + i);
        const __m512 a = _mm512_maskz_loadu_ps(m, p + i), b = _mm512_maskz_loadu_ps(m, p + i + half);
        _mm512_mask_storeu_ps(p + i, m, _mm512_sub_ps(_mm512_mul_ps(a, c), _mm512_mul_ps(b, s)));
        _mm512_mask_storeu_ps(p + i + half, m, _mm512_add_ps(_mm512_mul_ps(a, s), _mm512_mul_ps(b, c)));
      }
    }
  }
}

void softmax(float* x, int64_t n) {
  const __m512 ninf = _mm512_set1_ps(-INFINITY);
  __m512 m = ninf;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(x + i));
  if (i < n) m = _mm512_max_ps(m, _mm512_mask_loadu_ps(ninf, tail_mask(n - i), x + i));
  const __m512 vm = _mm512_set1_ps(_mm512_reduce_max_ps(m));
  __m512 s0 = _mm512_setzero_ps(), s1 = s0;
  for (i = 0; i + 32 <= n; i += 32) {
    const __m512 e0 = exp_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm));
    const __m512 e1 = exp_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), vm));
    _mm512_storeu_ps(x + i, e0);
    _mm512_storeu_ps(x + i + 16, e1);
    s0 = _mm512_add_ps(s0, e0);
    s1 = _mm512_add_ps(s1, e1);
  }
  for (; i < n; i += 16) {
    const __mmask16 mk = tail_mask(std::min<int64_t>(16, n - i));
    const __m512 e = exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, x + i), vm));
    _mm512_mask_storeu_ps(x + i, mk, e);
    s0 = _mm512_mask_add_ps(s0, mk, s0, e);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)));
  for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), inv));
  if (i < n) {
    const __mmask16 mk = tail_mask(n - i);
    _mm512_mask_storeu_ps(x + i, mk, _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, x + i), inv));
  }
}

inline __m512 silu_mul16(__m512 g, __m512 u) {
  const __m512 e = exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), g));
  return _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
}

void silu_mul(const float* g, const float* u, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, silu_mul16(_mm512_loadu_ps(g + i), _mm512_loadu_ps(u + i)));
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(out + i, m, silu_mul16(_mm512_maskz_loadu_ps(m, g + i), _mm512_maskz_loadu_ps(m, u + i)));
  }
}

void add(float* x, const float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_add_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(x + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
  }
}

// The four horizontal sums of a, b, c, d in one vector (lanes 0..3), in a fixed order: 14
// instructions for four rows instead of a full reduction per row.
inline __m128 reduce4(__m512 a, __m512 b, __m512 c, __m512 d) {
  const __m512 ab = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
  const __m512 cd = _mm512_add_ps(_mm512_shuffle_f32x4(c, d, 0x44), _mm512_shuffle_f32x4(c, d, 0xEE));
  __m512 u = _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, 0x88), _mm512_shuffle_f32x4(ab, cd, 0xDD));
  u = _mm512_add_ps(u, _mm512_permute_ps(u, 0x4E));
  u = _mm512_add_ps(u, _mm512_permute_ps(u, 0xB1));
  return _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), u));
}

void dot_rows(const float* q, const float* k, int64_t stride, int64_t rows, int64_t n, float scale, float* out) {
  const __mmask16 m = tail_mask(n & 15);
  const int64_t n16 = n & ~int64_t{15};
  const __m128 vs = _mm_set1_ps(scale);
  // Four rows per step share the loads of q; a last group of 1..3 rows repeats its first row
  // (results dropped), so every row takes the same operations.
  for (int64_t r = 0; r < rows; r += 4) {
    const int64_t live = std::min<int64_t>(4, rows - r);
    const float* k0 = k + r * stride;
    const float* k1 = live > 1 ? k0 + stride : k0;
    const float* k2 = live > 2 ? k0 + 2 * stride : k0;
    const float* k3 = live > 3 ? k0 + 3 * stride : k0;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < n16; i += 16) {
      const __m512 qv = _mm512_loadu_ps(q + i);
      a0 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k0 + i), a0);
      a1 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k1 + i), a1);
      a2 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k2 + i), a2);
      a3 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k3 + i), a3);
    }
    if (n16 < n) {
      const __m512 qv = _mm512_maskz_loadu_ps(m, q + n16);
      a0 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, k0 + n16), a0);
      a1 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, k1 + n16), a1);
      a2 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, k2 + n16), a2);
      a3 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, k3 + n16), a3);
    }
    const __m128 sums = _mm_mul_ps(reduce4(a0, a1, a2, a3), vs);
    if (live == 4) {
      _mm_storeu_ps(out + r, sums);
    } else {
      _mm_mask_storeu_ps(out + r, static_cast<__mmask8>((1u << live) - 1u), sums);
    }
  }
}

// Columns [0, 16·NV) of a block (the last vector masked by `m`): NV accumulators over all rows.
template <int NV>
void weighted_block(const float* a, const float* v, int64_t stride, int64_t rows, __mmask16 m, float* out) {
  __m512 acc[NV];
  for (int j = 0; j < NV; ++j) acc[j] = _mm512_setzero_ps();
  for (int64_t r = 0; r < rows; ++r) {
    const __m512 ar = _mm512_set1_ps(a[r]);
    const float* vr = v + r * stride;
    for (int j = 0; j + 1 < NV; ++j) acc[j] = _mm512_fmadd_ps(ar, _mm512_loadu_ps(vr + 16 * j), acc[j]);
    acc[NV - 1] = _mm512_fmadd_ps(ar, _mm512_maskz_loadu_ps(m, vr + 16 * (NV - 1)), acc[NV - 1]);
  }
  for (int j = 0; j + 1 < NV; ++j) _mm512_storeu_ps(out + 16 * j, acc[j]);
  _mm512_mask_storeu_ps(out + 16 * (NV - 1), m, acc[NV - 1]);
}

void weighted_sum_rows(const float* a, const float* v, int64_t stride, int64_t rows, int64_t n, float* out) {
  int64_t c = 0;
  for (; c + 128 <= n; c += 128) weighted_block<8>(a, v + c, stride, rows, 0xFFFF, out + c);
  if (c == n) return;
  const int64_t w = n - c;                      // 1..127 columns left
  const int nv = static_cast<int>((w + 15) / 16);
  const __mmask16 m = (w & 15) ? tail_mask(w & 15) : static_cast<__mmask16>(0xFFFF);
  switch (nv) {
    case 8: weighted_block<8>(a, v + c, stride, rows, m, out + c); break;
    case 7: weighted_block<7>(a, v + c, stride, rows, m, out + c); break;
    case 6: weighted_block<6>(a, v + c, stride, rows, m, out + c); break;
    case 5: weighted_block<5>(a, v + c, stride, rows, m, out + c); break;
    case 4: weighted_block<4>(a, v + c, stride, rows, m, out + c); break;
    case 3: weighted_block<3>(a, v + c, stride, rows, m, out + c); break;
    case 2: weighted_block<2>(a, v + c, stride, rows, m, out + c); break;
    default: weighted_block<1>(a, v + c, stride, rows, m, out + c); break;
  }
}

constexpr OpsKernels kTable = {"avx512", sum_squares, scale_mul, rope, softmax, silu_mul, add, dot_rows,
                               weighted_sum_rows};
}  // namespace

const OpsKernels& ops_kernels_avx512() { return kTable; }

}  // namespace slmc::detail
