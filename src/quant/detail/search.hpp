// Internal: choosing the scale d (and min m) of one quantization group, and turning a group into
// codes. Everything here works on "spans": a group is one span of contiguous elements; a
// per-tensor scale sees every row as one span. `Spans` is a callable that calls
// f(const float* x, const float* w, int64_t n) for each span (w = per-element weights or null).
//
// Determinism: every reduction runs in a fixed order (8 float lanes per block of 256 elements,
// blocks summed in double), so results depend only on the data, never on threads or on whether
// the compiler vectorized a loop.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "slmc/encoding.hpp"
#include "quant/detail/common.hpp"
#include "quant/detail/simd.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif

namespace slmc::quant_detail {

inline constexpr int kLanes = 8;
inline constexpr int64_t kBlock = 256;  ///< elements summed in float before adding to a double

/// Round to nearest, ties to even, for |v| <= 2^22 (codes are at most 255 in magnitude). Plain
/// adds vectorize everywhere (SSE2 has no round instruction); the compiler may not fold them
/// because slmc never builds with -ffast-math.
inline float round_code(float v) noexcept {
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
  return (v + kMagic) - kMagic;
}

/// max(v, lo) then min(., hi), with the operand order of SSE maxps/minps (identical results).
inline float clampf(float v, float lo, float hi) noexcept {
  const float t = v > lo ? v : lo;
  return t < hi ? t : hi;
}
inline V8 vclamp(V8 v, V8 lo, V8 hi) noexcept { return vmin(vmax(v, lo), hi); }
inline V8 vround_code(V8 v) noexcept {
  const V8 magic = V8::set1(12582912.0f);
  return (v + magic) - magic;
}

/// What kind of codes a group gets.
struct QuantSpec {
  float lo = 0, hi = 0;  ///< code range as floats (signed q; see CodeRange)
  bool symmetric = true;
  DType scale_dtype = DType::kF16;
  bool avx2 = false;  ///< run the 8-candidate searches with AVX2 (bit-identical results)
  bool nl4 = false;   ///< nl4: codes into kNl4Levels (quant/detail/codebook.hpp), not a uniform grid
};

/// One contiguous span: a group of a row, with optional per-element weights.
struct OneSpan {
  const float* x;
  const float* w;
  int64_t n;
  template <class F>
  void operator()(F&& f) const {
    f(x, w, n);
  }
};

/// Stored parameters of a group: w_hat = d*q (+ m). Already rounded to the scale dtype.
struct GroupParams {
  float d = 0;
  float m = 0;
};

/// 1/d for quantizing with d, or 0 when d is 0. When 1/d overflows (d an fp32 denormal) the
/// caller must divide instead: `use_div` says so.
struct Inverse {
  float id = 0;
  bool use_div = false;
};
inline Inverse inverse_of(float d) noexcept {
  if (d == 0) return {0, false};
  const float id = 1.0f / d;
  if (!std::isfinite(id)) return {0, true};
  return {id, false};
}

inline float code_of(float x, const GroupParams& p, const Inverse& inv, const QuantSpec& s) noexcept {
  const float v = inv.use_div ? (x - p.m) / p.d : (x - p.m) * inv.id;
  return round_code(clampf(v, s.lo, s.hi));
}

/// Fixed-order reductions over spans --------------------------------------------------------------

struct MinMax {
  float amax = 0;        ///< largest |x|
  float signed_max = 0;  ///< the first element of largest magnitude, with its sign
  float mn = 0, mx = 0;
  double sum_w = 0;      ///< sum of weights (element count when unweighted)
};

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("avx2"))) inline int64_t min_max_lanes_avx2(const float* x, int64_t n, float* lmn,
                                                                  float* lmx) noexcept;
#endif

template <class Spans>
inline MinMax min_max(const Spans& spans, bool avx2 = false) noexcept {
  MinMax r;
  bool first = true;
  spans([&](const float* x, const float* w, int64_t n) {
    if (n <= 0) return;
    float lmn[kLanes], lmx[kLanes];
    for (int j = 0; j < kLanes; ++j) lmn[j] = lmx[j] = x[0];
    int64_t i = 0;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (avx2 && n >= 128) i = min_max_lanes_avx2(x, n, lmn, lmx);  // short spans: not worth the call
#else
    (void)avx2;
#endif
    if (i == 0) {
      V8 vmn = V8::load(lmn), vmx = vmn;
      for (; i + kLanes <= n; i += kLanes) {
        const V8 v = V8::load(x + i);
        vmn = vmin(vmn, v);
        vmx = vmax(vmx, v);
      }
      vmn.store(lmn);
      vmx.store(lmx);
    }
    for (; i < n; ++i) {
      lmn[0] = std::min(lmn[0], x[i]);
      lmx[0] = std::max(lmx[0], x[i]);
    }
    float mn = lmn[0], mx = lmx[0];
    for (int j = 1; j < kLanes; ++j) {
      mn = std::min(mn, lmn[j]);
      mx = std::max(mx, lmx[j]);
    }
    if (first) {
      r.mn = mn;
      r.mx = mx;
      first = false;
    } else {
      r.mn = std::min(r.mn, mn);
      r.mx = std::max(r.mx, mx);
    }
    if (w) {
      double sw = 0;
      for (int64_t b = 0; b < n; b += kBlock) {
        const int64_t e = std::min(n, b + kBlock);
        float acc = 0;
        for (int64_t k = b; k < e; ++k) acc += w[k];
        sw += acc;
      }
      r.sum_w += sw;
    } else {
      r.sum_w += static_cast<double>(n);
    }
  });
  // The element of largest magnitude: min or max (the max wins a tie, as |max| >= |min|).
  r.amax = std::max(std::fabs(r.mn), std::fabs(r.mx));
  r.signed_max = std::fabs(r.mn) > std::fabs(r.mx) ? r.mn : r.mx;
  return r;
}

/// Sums for a symmetric candidate with inverse scale s: codes q = round(clamp(s*x)).
struct SymSums {
  double sxq = 0, sqq = 0;
};

template <bool kWeighted, class Spans>
inline SymSums sym_sums(const Spans& spans, float s, float lo, float hi) noexcept {
  SymSums r;
  spans([&](const float* x, const float* w, int64_t n) {
    for (int64_t b = 0; b < n; b += kBlock) {
      const int64_t e = std::min(n, b + kBlock);
      int64_t i = b;
      V8 vxq = V8::zero(), vqq = V8::zero();
      const V8 vs = V8::set1(s), vlo = V8::set1(lo), vhi = V8::set1(hi);
      for (; i + kLanes <= e; i += kLanes) {
        const V8 xv = V8::load(x + i);
        const V8 q = vround_code(vclamp(vs * xv, vlo, vhi));
        const V8 wq = kWeighted ? V8::load(w + i) * q : q;
        vxq = vxq + wq * xv;
        vqq = vqq + wq * q;
      }
      float axq[kLanes], aqq[kLanes];
      vxq.store(axq);
      vqq.store(aqq);
      for (int j = 0; i < e; ++i, ++j) {
        const float q = round_code(clampf(s * x[i], lo, hi));
        const float wq = kWeighted ? w[i] * q : q;
        axq[j] += wq * x[i];
        aqq[j] += wq * q;
      }
      const float sxq = hsum_lanes(axq), sqq = hsum_lanes(aqq);
      r.sxq += sxq;
      r.sqq += sqq;
    }
  });
  return r;
}

/// Sums for an asymmetric candidate: codes u = round(clamp(s*(x - x0), 0, N)).
struct AsymSums {
  double su = 0, suu = 0, sxu = 0;
};

template <bool kWeighted, class Spans>
inline AsymSums asym_sums(const Spans& spans, float s, float x0, float top) noexcept {
  AsymSums r;
  spans([&](const float* x, const float* w, int64_t n) {
    for (int64_t b = 0; b < n; b += kBlock) {
      const int64_t e = std::min(n, b + kBlock);
      int64_t i = b;
      V8 vu = V8::zero(), vuu = V8::zero(), vxu = V8::zero();
      const V8 vs = V8::set1(s), vx0 = V8::set1(x0), vz = V8::zero(), vtop = V8::set1(top);
      for (; i + kLanes <= e; i += kLanes) {
        const V8 xv = V8::load(x + i);
        const V8 u = vround_code(vclamp(vs * (xv - vx0), vz, vtop));
        const V8 wu = kWeighted ? V8::load(w + i) * u : u;
        vu = vu + wu;
        vuu = vuu + wu * u;
        vxu = vxu + wu * xv;
      }
      float au[kLanes], auu[kLanes], axu[kLanes];
      vu.store(au);
      vuu.store(auu);
      vxu.store(axu);
      for (int j = 0; i < e; ++i, ++j) {
        const float u = round_code(clampf(s * (x[i] - x0), 0.0f, top));
        const float wu = kWeighted ? w[i] * u : u;
        au[j] += wu;
        auu[j] += wu * u;
        axu[j] += wu * x[i];
      }
      const float su = hsum_lanes(au), suu = hsum_lanes(auu), sxu = hsum_lanes(axu);
      r.su += su;
      r.suu += suu;
      r.sxu += sxu;
    }
  });
  return r;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SLMC_QUANT_HAVE_AVX2_PATH 1
// The same lane-wise operations as V8 on one 256-bit register: identical results (AVX2 only, no
// FMA, so nothing is contracted), half the instructions. Compiled for AVX2 through the target
// attribute and only called when the active ISA (slmc::active_isa) is AVX2.
template <bool kWeighted>
__attribute__((target("avx2"))) inline void sym_sums8_avx2(const float* x, const float* w, int64_t n, const float* s8,
                                                           float lo, float hi, double* sxq, double* sqq) noexcept {
  const __m256 vs = _mm256_loadu_ps(s8), vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  const __m256 magic = _mm256_set1_ps(12582912.0f);
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t e = std::min(n, b + kBlock);
    __m256 axq = _mm256_setzero_ps(), aqq = _mm256_setzero_ps();
    for (int64_t i = b; i < e; ++i) {
      const __m256 xv = _mm256_set1_ps(x[i]);
      __m256 q = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(vs, xv), vlo), vhi);
      q = _mm256_sub_ps(_mm256_add_ps(q, magic), magic);
      const __m256 wq = kWeighted ? _mm256_mul_ps(_mm256_set1_ps(w[i]), q) : q;
      axq = _mm256_add_ps(axq, _mm256_mul_ps(wq, xv));
      aqq = _mm256_add_ps(aqq, _mm256_mul_ps(wq, q));
    }
    float l1[kLanes], l2[kLanes];
    _mm256_storeu_ps(l1, axq);
    _mm256_storeu_ps(l2, aqq);
    for (int j = 0; j < kLanes; ++j) {
      sxq[j] += l1[j];
      sqq[j] += l2[j];
    }
  }
}

template <bool kWeighted>
__attribute__((target("avx2"))) inline void asym_sums8_avx2(const float* x, const float* w, int64_t n, const float* s8,
                                                            const float* x08, float top, double* su, double* suu,
                                                            double* sxu) noexcept {
  const __m256 vs = _mm256_loadu_ps(s8), vx0 = _mm256_loadu_ps(x08), vz = _mm256_setzero_ps(),
               vtop = _mm256_set1_ps(top), magic = _mm256_set1_ps(12582912.0f);
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t e = std::min(n, b + kBlock);
    __m256 au = _mm256_setzero_ps(), auu = _mm256_setzero_ps(), axu = _mm256_setzero_ps();
    for (int64_t i = b; i < e; ++i) {
      const __m256 xv = _mm256_set1_ps(x[i]);
      __m256 u = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(vs, _mm256_sub_ps(xv, vx0)), vz), vtop);
      u = _mm256_sub_ps(_mm256_add_ps(u, magic), magic);
      const __m256 wu = kWeighted ? _mm256_mul_ps(_mm256_set1_ps(w[i]), u) : u;
      au = _mm256_add_ps(au, wu);
      auu = _mm256_add_ps(auu, _mm256_mul_ps(wu, u));
      axu = _mm256_add_ps(axu, _mm256_mul_ps(wu, xv));
    }
    float l1[kLanes], l2[kLanes], l3[kLanes];
    _mm256_storeu_ps(l1, au);
    _mm256_storeu_ps(l2, auu);
    _mm256_storeu_ps(l3, axu);
    for (int j = 0; j < kLanes; ++j) {
      su[j] += l1[j];
      suu[j] += l2[j];
      sxu[j] += l3[j];
    }
  }
}
#endif

#if defined(SLMC_QUANT_HAVE_AVX2_PATH)
/// Lane-wise min/max of x[0, n - n % 8) into lmn/lmx (lane j sees elements i % 8 == j), starting
/// from the values already in lmn/lmx: the same lanes and operations as the V8 loop in min_max.
__attribute__((target("avx2"))) inline int64_t min_max_lanes_avx2(const float* x, int64_t n, float* lmn,
                                                                  float* lmx) noexcept {
  __m256 vmn = _mm256_loadu_ps(lmn), vmx = _mm256_loadu_ps(lmx);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const __m256 v = _mm256_loadu_ps(x + i);
    vmn = _mm256_min_ps(vmn, v);
    vmx = _mm256_max_ps(vmx, v);
  }
  _mm256_storeu_ps(lmn, vmn);
  _mm256_storeu_ps(lmx, vmx);
  return i;
}
#endif

/// Sums for 8 symmetric candidates at once (inverse scales s8[0..8), one per lane): the lanes are
/// the candidates, so no horizontal reduction is needed and every lane sums in element order.
template <bool kWeighted, class Spans>
inline void sym_sums8(const Spans& spans, const float* s8, float lo, float hi, bool avx2, SymSums* out) noexcept {
  double sxq[kLanes] = {}, sqq[kLanes] = {};
#if defined(SLMC_QUANT_HAVE_AVX2_PATH)
  if (avx2) {
    spans([&](const float* x, const float* w, int64_t n) { sym_sums8_avx2<kWeighted>(x, w, n, s8, lo, hi, sxq, sqq); });
    for (int j = 0; j < kLanes; ++j) out[j] = SymSums{sxq[j], sqq[j]};
    return;
  }
#else
  (void)avx2;
#endif
  const V8 vs = V8::load(s8), vlo = V8::set1(lo), vhi = V8::set1(hi);
  spans([&](const float* x, const float* w, int64_t n) {
    for (int64_t b = 0; b < n; b += kBlock) {
      const int64_t e = std::min(n, b + kBlock);
      V8 axq = V8::zero(), aqq = V8::zero();
      for (int64_t i = b; i < e; ++i) {
        const V8 xv = V8::set1(x[i]);
        const V8 q = vround_code(vclamp(vs * xv, vlo, vhi));
        const V8 wq = kWeighted ? V8::set1(w[i]) * q : q;
        axq = axq + wq * xv;
        aqq = aqq + wq * q;
      }
      float l1[kLanes], l2[kLanes];
      axq.store(l1);
      aqq.store(l2);
      for (int j = 0; j < kLanes; ++j) {
        sxq[j] += l1[j];
        sqq[j] += l2[j];
      }
    }
  });
  for (int j = 0; j < kLanes; ++j) out[j] = SymSums{sxq[j], sqq[j]};
}

/// Sums for 8 asymmetric candidates at once (inverse scale s8[j], origin x08[j] per lane).
template <bool kWeighted, class Spans>
inline void asym_sums8(const Spans& spans, const float* s8, const float* x08, float top, bool avx2,
                       AsymSums* out) noexcept {
  double su[kLanes] = {}, suu[kLanes] = {}, sxu[kLanes] = {};
#if defined(SLMC_QUANT_HAVE_AVX2_PATH)
  if (avx2) {
    spans([&](const float* x, const float* w, int64_t n) {
      asym_sums8_avx2<kWeighted>(x, w, n, s8, x08, top, su, suu, sxu);
    });
    for (int j = 0; j < kLanes; ++j) out[j] = AsymSums{su[j], suu[j], sxu[j]};
    return;
  }
#else
  (void)avx2;
#endif
  const V8 vs = V8::load(s8), vx0 = V8::load(x08), vz = V8::zero(), vtop = V8::set1(top);
  spans([&](const float* x, const float* w, int64_t n) {
    for (int64_t b = 0; b < n; b += kBlock) {
      const int64_t e = std::min(n, b + kBlock);
      V8 au = V8::zero(), auu = V8::zero(), axu = V8::zero();
      for (int64_t i = b; i < e; ++i) {
        const V8 xv = V8::set1(x[i]);
        const V8 u = vround_code(vclamp(vs * (xv - vx0), vz, vtop));
        const V8 wu = kWeighted ? V8::set1(w[i]) * u : u;
        au = au + wu;
        auu = auu + wu * u;
        axu = axu + wu * xv;
      }
      float l1[kLanes], l2[kLanes], l3[kLanes];
      au.store(l1);
      auu.store(l2);
      axu.store(l3);
      for (int j = 0; j < kLanes; ++j) {
        su[j] += l1[j];
        suu[j] += l2[j];
        sxu[j] += l3[j];
      }
    }
  });
  for (int j = 0; j < kLanes; ++j) out[j] = AsymSums{su[j], suu[j], sxu[j]};
}

/// Weighted sums of x and x^2 (constant over asymmetric candidates).
template <bool kWeighted, class Spans>
inline void moments(const Spans& spans, double& sx, double& sxx) noexcept {
  sx = sxx = 0;
  spans([&](const float* x, const float* w, int64_t n) {
    for (int64_t b = 0; b < n; b += kBlock) {
      const int64_t e = std::min(n, b + kBlock);
      int64_t i = b;
      V8 va = V8::zero(), vaa = V8::zero();
      for (; i + kLanes <= e; i += kLanes) {
        const V8 xv = V8::load(x + i);
        const V8 wx = kWeighted ? V8::load(w + i) * xv : xv;
        va = va + wx;
        vaa = vaa + wx * xv;
      }
      float a[kLanes], aa[kLanes];
      va.store(a);
      vaa.store(aa);
      for (int j = 0; i < e; ++i, ++j) {
        const float wx = kWeighted ? w[i] * x[i] : x[i];
        a[j] += wx;
        aa[j] += wx * x[i];
      }
      const float s = hsum_lanes(a), ss = hsum_lanes(aa);
      sx += s;
      sxx += ss;
    }
  });
}

/// The exact (weighted) squared error of the group with stored parameters p, computed from the
/// same fp32 reconstruction the reference dequantizer produces. Used to pick the final
/// parameters, so that "mse is never worse than absmax" holds for the stored result exactly.
template <bool kWeighted, class Spans>
inline double exact_error(const Spans& spans, const GroupParams& p, const QuantSpec& s) noexcept {
  const Inverse inv = inverse_of(p.d);
  // Element i of a span adds to double lane i % 8; lanes are summed in a fixed order at the end.
  double lanes[kLanes] = {};
  spans([&](const float* x, const float* w, int64_t n) {
    int64_t i = 0;
    if (!inv.use_div) {
      const V8 vm = V8::set1(s.symmetric ? 0.0f : p.m), vid = V8::set1(inv.id), vd = V8::set1(p.d),
               vlo = V8::set1(s.lo), vhi = V8::set1(s.hi);
      for (; i + kLanes <= n; i += kLanes) {
        const V8 xv = V8::load(x + i);
        const V8 q = vround_code(vclamp((xv - vm) * vid, vlo, vhi));
        float xh[kLanes];
        (s.symmetric ? vd * q : vd * q + vm).store(xh);
        for (int j = 0; j < kLanes; ++j) {
          const double e = static_cast<double>(x[i + j]) - static_cast<double>(xh[j]);
          lanes[j] += (kWeighted ? static_cast<double>(w[i + j]) : 1.0) * e * e;
        }
      }
    }
    for (; i < n; ++i) {
      const float q = code_of(x[i], p, inv, s);
      const float dq = p.d * q;
      const float xh = s.symmetric ? dq : dq + p.m;
      const double e = static_cast<double>(x[i]) - static_cast<double>(xh);
      lanes[i % kLanes] += (kWeighted ? static_cast<double>(w[i]) : 1.0) * e * e;
    }
  });
  return ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6])) + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]));
}

/// Scale search -----------------------------------------------------------------------------------

/// absmax: d = amax / qmax (symmetric), or the min/max range (asymmetric). Returns false if the
/// stored scale or min overflows the scale dtype.
inline bool absmax_params(const MinMax& mm, const QuantSpec& s, GroupParams& out) noexcept {
  if (s.symmetric) {
    out.d = round_to_scale_dtype(mm.amax / s.hi, s.scale_dtype);
    out.m = 0;
  } else {
    const float range = s.hi - s.lo;
    // (mx - mn) / range without overflowing for huge opposite-signed values.
    out.d = round_to_scale_dtype(mm.mx / range - mm.mn / range, s.scale_dtype);
    out.m = round_to_scale_dtype(mm.mn - s.lo * out.d, s.scale_dtype);
  }
  // The reconstruction of the top code must be finite too: int4 asymmetric d*15 + m spans the
  // whole range (d*15 alone overflows when max - min > FLT_MAX).
  return std::isfinite(out.d) && std::isfinite(out.m) && std::isfinite(out.d * s.hi + out.m);
}

// Candidate grids (fractions of the absmax inverse scale). Denser near 1, where most groups of
// real weights land; the low end lets heavy-tailed groups clip their outliers.
inline constexpr float kInt4Grid[] = {0.62f, 0.70f, 0.76f, 0.81f, 0.85f, 0.88f, 0.91f, 0.94f,
                                      0.97f, 1.00f, 1.03f, 1.07f};
inline constexpr float kInt8Grid[] = {0.70f, 0.80f, 0.86f, 0.90f, 0.94f, 0.97f, 0.99f, 1.00f};
static_assert(std::size(kInt4Grid) % 4 == 0 && std::size(kInt8Grid) == 8, "grids fill 8-lane batches");
// Asymmetric trials: f >= 0.94 anchor the codes at the min (f > 1 clips the top); the others
// cover the central fraction f of [min, max] (clipping both tails). 16 for int4, 8 for int8.
inline constexpr float kAsymInt4Anchored[] = {0.94f, 0.97f, 1.00f, 1.03f, 1.07f, 1.12f};
inline constexpr float kAsymInt4Centered[] = {0.62f, 0.70f, 0.76f, 0.81f, 0.85f, 0.88f, 0.91f, 0.94f, 0.97f, 0.985f};
inline constexpr float kAsymInt8Anchored[] = {0.97f, 1.00f, 1.03f};
inline constexpr float kAsymInt8Centered[] = {0.80f, 0.88f, 0.94f, 0.97f, 0.99f};

/// Symmetric mse / weighted search. The stored parameters (absmax, or a searched scale) with the
/// smaller exact error win; among searched scales the comparison is on the least-squares error.
///
/// Algorithm (after llama.cpp's make_qx_quants in ggml-quants.c, which quantizes with a set of
/// trial inverse scales around nmax/max and keeps the one whose least-squares refit scale
/// sum(w*x*q)/sum(w*q^2) gives the lowest weighted error): for each trial inverse scale s we round
/// q = clamp(round(s*x)), refit d = sum(w x q) / sum(w q^2), and score the error
/// sum(w x^2) - sum(w x q)^2 / sum(w q^2). For int4 the trials cover both signs of s: with s < 0
/// the element of largest magnitude takes the code -8 (the "Q4_0 rule" side, 8 levels towards
/// it), with s > 0 it takes +7 and the opposite tail gets -8. The best trial is then refined by two
/// Lloyd steps (requantize with the refit d, refit again), which never increase the error.
template <bool kWeighted, class Spans>
inline GroupParams search_symmetric(const Spans& spans, const MinMax& mm, const QuantSpec& s,
                                    const GroupParams& absmax) noexcept {
  if (mm.amax == 0) return absmax;
  const bool int4 = s.lo == -8.0f;
  double best_score = -1, best_d = 0;
  auto consider = [&](const SymSums& r) {
    if (r.sqq <= 0) return;
    const double score = r.sxq * r.sxq / r.sqq;
    if (score > best_score) {
      best_score = score;
      best_d = r.sxq / r.sqq;
    }
  };
  const float m = mm.signed_max;
  float s8[kLanes];
  SymSums r8[kLanes];
  if (int4) {
    // Lanes 0-3 and 4-7 of each batch: 4 grid points with m -> +7, the same 4 with m -> -8.
    for (size_t g = 0; g < std::size(kInt4Grid); g += 4) {
      for (int j = 0; j < 4; ++j) {
        s8[j] = kInt4Grid[g + j] * s.hi / m;
        s8[j + 4] = -kInt4Grid[g + j] * -s.lo / m;
      }
      sym_sums8<kWeighted>(spans, s8, s.lo, s.hi, s.avx2, r8);
      for (const SymSums& r : r8) consider(r);
    }
  } else {
    for (size_t j = 0; j < kLanes; ++j) s8[j] = kInt8Grid[j] * s.hi / mm.amax;
    sym_sums8<kWeighted>(spans, s8, s.lo, s.hi, s.avx2, r8);
    for (const SymSums& r : r8) consider(r);
  }
  for (int it = 0; it < 2 && best_d != 0; ++it) {
    const float inv = static_cast<float>(1.0 / best_d);
    if (!std::isfinite(inv)) break;
    const SymSums r = sym_sums<kWeighted>(spans, inv, s.lo, s.hi);
    if (r.sqq <= 0) break;
    const double score = r.sxq * r.sxq / r.sqq;
    if (score <= best_score) break;
    best_score = score;
    best_d = r.sxq / r.sqq;
  }
  GroupParams cand{round_to_scale_dtype(static_cast<float>(best_d), s.scale_dtype), 0};
  if (!std::isfinite(cand.d) || cand.d == 0) return absmax;
  const double e_abs = exact_error<kWeighted>(spans, absmax, s);
  const double e_cand = exact_error<kWeighted>(spans, cand, s);
  return e_cand < e_abs ? cand : absmax;
}

/// Asymmetric mse / weighted search over (scale, min).
///
/// Algorithm (after llama.cpp's make_qkx2_quants in ggml-quants.c, used by Q4_K/Q5_K): for trial
/// inverse scales s = f * N / (max - min) we set u = clamp(round(s*(x - min)), 0, N), then solve
/// the 2x2 weighted least-squares problem min_{d,m} sum w (x - d*u - m)^2 in closed form and
/// keep the (d, m) with the smallest error; then refine with Lloyd steps as above.
template <bool kWeighted, class Spans>
inline GroupParams search_asymmetric(const Spans& spans, const MinMax& mm, const QuantSpec& s,
                                     const GroupParams& absmax) noexcept {
  if (mm.mx == mm.mn) return absmax;
  const float top = s.hi - s.lo;  // N: 15 or 255
  double sx, sxx;
  moments<kWeighted>(spans, sx, sxx);
  const double sw = mm.sum_w;
  double best_err = std::numeric_limits<double>::infinity(), best_d = 0, best_m = 0;
  auto consider = [&](const AsymSums& r) {
    const double det = sw * r.suu - r.su * r.su;
    if (!(det > 0)) return;
    const double d = (sw * r.sxu - sx * r.su) / det;
    const double m = (r.suu * sx - r.su * r.sxu) / det;
    if (!(d > 0)) return;
    // sum w (x - d u - m)^2 expanded.
    const double err = sxx + d * d * r.suu + m * m * sw - 2 * d * r.sxu - 2 * m * sx + 2 * d * m * r.su;
    if (err < best_err) {
      best_err = err;
      best_d = d;
      best_m = m;
    }
  };
  const float range = mm.mx / top - mm.mn / top;  // (max - min) / N without overflow
  const bool int4 = top == 15.0f;
  float s_all[16], x0_all[16];
  int count = 0;
  auto add_anchored = [&](float f) {
    s_all[count] = f / range;
    x0_all[count++] = mm.mn;
  };
  auto add_centered = [&](float f) {
    s_all[count] = 1.0f / (f * range);
    x0_all[count++] = mm.mn + 0.5f * (1.0f - f) * (range * top);
  };
  if (int4) {
    for (float f : kAsymInt4Anchored) add_anchored(f);
    for (float f : kAsymInt4Centered) add_centered(f);
  } else {
    for (float f : kAsymInt8Anchored) add_anchored(f);
    for (float f : kAsymInt8Centered) add_centered(f);
  }
  AsymSums r8[kLanes];
  for (int b = 0; b + kLanes <= count; b += kLanes) {
    asym_sums8<kWeighted>(spans, s_all + b, x0_all + b, top, s.avx2, r8);
    for (const AsymSums& r : r8) consider(r);
  }
  for (int it = 0; it < 2 && best_d > 0; ++it) {
    const float inv = static_cast<float>(1.0 / best_d);
    if (!std::isfinite(inv)) break;
    const double prev = best_err;
    consider(asym_sums<kWeighted>(spans, inv, static_cast<float>(best_m), top));
    if (!(best_err < prev)) break;
  }
  if (!(best_d > 0)) return absmax;
  GroupParams cand;
  cand.d = round_to_scale_dtype(static_cast<float>(best_d), s.scale_dtype);
  cand.m = round_to_scale_dtype(static_cast<float>(best_m - s.lo * static_cast<double>(cand.d)), s.scale_dtype);
  if (!std::isfinite(cand.d) || !std::isfinite(cand.m) || cand.d == 0) return absmax;
  const double e_abs = exact_error<kWeighted>(spans, absmax, s);
  const double e_cand = exact_error<kWeighted>(spans, cand, s);
  return e_cand < e_abs ? cand : absmax;
}

/// Chooses the stored parameters of one group (or of the whole tensor). Returns false when even
/// the absmax scale overflows the scale dtype.
template <class Spans>
inline bool choose_params(const Spans& spans, const QuantSpec& spec, ScaleSearch search, bool weighted,
                          GroupParams& out) {
  const MinMax mm = min_max(spans, spec.avx2);
  GroupParams absmax;
  if (!absmax_params(mm, spec, absmax)) return false;
  out = absmax;
  if (search == ScaleSearch::kAbsmax) return true;
  if (weighted) {
    if (!(mm.sum_w > 0)) weighted = false;  // all importances zero: fall back to plain mse
  }
  if (spec.symmetric) {
    out = weighted ? search_symmetric<true>(spans, mm, spec, absmax) : search_symmetric<false>(spans, mm, spec, absmax);
  } else {
    out = weighted ? search_asymmetric<true>(spans, mm, spec, absmax) : search_asymmetric<false>(spans, mm, spec, absmax);
  }
  return true;
}

}  // namespace slmc::quant_detail
