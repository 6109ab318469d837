// The nl4 quantizer's pieces (internal): nearest code of the fixed non-uniform code book
// kNl4Levels (slmc/layout.hpp) and the per-group scale search (docs/QUANT.md, "nl4").
//
// Every step is portable scalar code with a fixed order of operations, so the bytes do not depend
// on the ISA, the thread count or the consumer's flags (this file is compiled into the library).
#pragma once

#include <cmath>
#include <cstdint>

#include "quant/detail/common.hpp"
#include "slmc/encoding.hpp"
#include "slmc/layout.hpp"

namespace slmc::quant_detail {

/// The code book as floats, its 15 midpoints and a table from floor(t) to the code of the level
/// nearest floor(t) + 0.5 (t in level units), from which the exact nearest code is one step away
/// at most (adjacent levels are at least 11 apart).
struct Nl4Tables {
  float level[16];
  float mid[15];
  uint8_t lut[256];

  Nl4Tables() noexcept {
    for (int u = 0; u < 16; ++u) level[u] = static_cast<float>(kNl4Levels[u]);
    for (int u = 0; u < 15; ++u) mid[u] = 0.5f * (level[u] + level[u + 1]);
    for (int i = 0; i < 256; ++i) {
      const float v = static_cast<float>(i - 128) + 0.5f;
      int u = 0;
      while (u < 15 && v > mid[u]) ++u;
      lut[i] = static_cast<uint8_t>(u);
    }
  }
};

inline const Nl4Tables& nl4_tables() noexcept {
  static const Nl4Tables t;
  return t;
}

/// The code whose level is nearest to t (ties go to the lower level; t beyond the ends clamps,
/// NaN gives the lowest code): the number of midpoints below t.
inline int nl4_code(const Nl4Tables& tb, float t) noexcept {
  if (!(t > -128.0f)) t = -128.0f;
  if (t > 127.0f) t = 127.0f;
  const int i = static_cast<int>(std::floor(t)) + 128;
  int u = tb.lut[i > 255 ? 255 : i];
  if (u < 15 && t > tb.mid[u]) ++u;
  if (u > 0 && !(t > tb.mid[u - 1])) --u;
  return u;
}

/// Weighted squared error (weights w, or 1 when null) of x[0, n) coded with scale d, in double.
inline double nl4_error(const Nl4Tables& tb, const float* x, const float* w, int64_t n, float d) noexcept {
  const float inv = d != 0.0f ? 1.0f / d : 0.0f;
  double e = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float xh = d != 0.0f ? d * tb.level[nl4_code(tb, x[i] * inv)] : 0.0f;
    const double r = static_cast<double>(x[i]) - static_cast<double>(xh);
    e += (w ? static_cast<double>(w[i]) : 1.0) * r * r;
  }
  return e;
}

/// The least-squares scale for the codes x[0, n) get with scale d: sum w x l / sum w l^2 (d itself
/// when every code is the zero level).
inline float nl4_refit(const Nl4Tables& tb, const float* x, const float* w, int64_t n, float d) noexcept {
  if (d == 0.0f) return d;
  const float inv = 1.0f / d;
  double xl = 0, ll = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double l = tb.level[nl4_code(tb, x[i] * inv)];
    const double wi = w ? static_cast<double>(w[i]) : 1.0;
    xl += wi * static_cast<double>(x[i]) * l;
    ll += wi * l * l;
  }
  return ll > 0 ? static_cast<float>(xl / ll) : d;
}

/// Trial fractions of the nl4 search: d = m / end * f, with m the group's largest-magnitude value
/// and end an extreme level (-127 or 105); f < 1 clips m, f > 1 maps it inside the code book.
inline constexpr float kNl4Grid[] = {0.80f, 0.86f, 0.90f, 0.93f, 0.96f, 0.98f, 1.00f, 1.02f,
                                     1.05f, 1.08f, 1.12f, 1.17f};

/// The scale of one group, as stored (rounded to `sd`), or NaN when it overflows `sd`.
///   absmax: the largest-magnitude value maps to the level -127 exactly.
///   mse / weighted: the absmax scale, the trials of kNl4Grid on both extreme levels, and two
///   least-squares refits of the scale for its codes from each of the best two trials; the stored candidate with the
///   smallest (weighted) error wins (so never worse than absmax). `w`: per-element weights
///   (importance) or null; all-zero weights fall back to the unweighted search.
inline float nl4_choose_scale(const Nl4Tables& tb, const float* x, const float* w, int64_t n, ScaleSearch search,
                              DType sd) noexcept {
  float m = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > std::fabs(m)) m = x[i];
  }
  if (m == 0.0f) return 0.0f;
  auto stored = [&](float d) { return round_to_scale_dtype(d, sd); };
  const float d_absmax = stored(m / tb.level[0]);
  if (!std::isfinite(d_absmax)) return NAN;
  if (search == ScaleSearch::kAbsmax) return d_absmax;
  if (w) {
    bool any = false;
    for (int64_t i = 0; i < n && !any; ++i) any = w[i] > 0.0f;
    if (!any) w = nullptr;
  }
  float best = d_absmax;
  double best_err = nl4_error(tb, x, w, n, d_absmax);
  // The trials, then two refits of the best two (refitting every trial costs 5x for nothing
  // measurable: the refits converge to the same few scales).
  float top[2] = {0.0f, 0.0f};
  double top_err[2] = {INFINITY, INFINITY};
  for (const float end : {tb.level[0], tb.level[15]}) {
    for (const float f : kNl4Grid) {
      const float d = stored(m / end * f);
      if (!std::isfinite(d) || d == 0.0f) continue;
      const double e = nl4_error(tb, x, w, n, d);
      if (e < top_err[0]) {
        top[1] = top[0], top_err[1] = top_err[0];
        top[0] = d, top_err[0] = e;
      } else if (e < top_err[1]) {
        top[1] = d, top_err[1] = e;
      }
    }
  }
  for (int t = 0; t < 2; ++t) {
    float d = top[t];
    if (d == 0.0f) continue;
    if (top_err[t] < best_err) best_err = top_err[t], best = d;
    for (int step = 0; step < 2; ++step) {
      d = stored(nl4_refit(tb, x, w, n, d));
      if (!std::isfinite(d) || d == 0.0f) break;
      const double e = nl4_error(tb, x, w, n, d);
      if (e < best_err) best_err = e, best = d;
    }
  }
  return best;
}

}  // namespace slmc::quant_detail
