// Row streams of the dense quantized layouts, shared by the SIMD kernel files (AVX2, NEON).
//
// Internal linkage on purpose (unnamed namespace): each ISA file compiles its own copy with its
// own flags, so no copy built for one ISA can serve another (cmake/check_isa_objects.cmake).
#pragma once

#include <cstdint>

#include "linear/linear.hpp"
#include "slmc/check.hpp"

namespace slmc::detail {
namespace {

// Where the chunks and scales of one row live (docs/LAYOUT.md): chunk c at w + c * wstride, scale
// of group g at index s0 + g * sstride. One formula for plain rows, interleaved blocks and the
// plain tail rows.
struct RowStream {
  const uint8_t* w = nullptr;
  int64_t wstride = 0;
  int64_t s0 = 0, sstride = 0;
};

inline RowStream row_stream(const LinearArgs& a, int64_t r) {
  const DenseQuantLayout& l = a.layout;
  const auto* v = static_cast<const uint8_t*>(a.values);
  RowStream s;
  if (r < l.interleaved_rows) {
    const int64_t rr = l.interleave, b = r / rr, i = r % rr;
    s.w = v + (b * l.chunks * rr + i) * l.chunk_bytes;
    s.wstride = rr * l.chunk_bytes;
    s.s0 = b * l.groups * rr + i;
    s.sstride = rr;
  } else {
    s.w = v + (l.interleaved_rows * l.chunks + (r - l.interleaved_rows) * l.chunks) * l.chunk_bytes;
    s.wstride = l.chunk_bytes;
    s.s0 = l.interleaved_rows * l.groups + (r - l.interleaved_rows) * l.groups;
    s.sstride = 1;
  }
  if (l.per_tensor) s.s0 = s.sstride = 0;
  SLMC_DCHECK(l.chunks == 0 || s.w == v + l.chunk_offset(r, 0), "row_stream");
  return s;
}

// Scale d and offset m of group g (w = d * c + m, c the stored code), with the ISA's own scale
// loader ScaleAt(p, f16, i).
template <float (*ScaleAt)(const void*, bool, int64_t)>
inline void scale_min_with(const LinearArgs& a, const RowStream& s, int64_t g, float* d, float* m) {
  const int64_t i = s.s0 + g * s.sstride;
  *d = ScaleAt(a.scales, a.scales_f16, i);
  if (!a.symmetric) {
    *m = ScaleAt(a.mins, a.scales_f16, i);
  } else {
    *m = a.vt == ValueType::kInt4 ? -8.0f * *d : 0.0f;
  }
}

}  // namespace
}  // namespace slmc::detail
