// Sparse linear kernels (portable reference speed; SIMD paths are future work, see KERNELS.md).
#include "linear_sparse.hpp"

#include <algorithm>

#include "slmc/layout.hpp"

namespace slmc::detail {
namespace {


// Weight of stored value `index` (f32 or int8 code times its scale) at dense (row, col).
inline float stored_value(const SparseLinearArgs& a, uint64_t index, int64_t row, int64_t col) {
  const SparseLayout& l = a.layout;
  const void* values = a.w->segment(SegmentRole::kValues).data;
  if (!l.quantized()) return load_le<float>(values, index);
  const float d = load_scale(a.w->segment(SegmentRole::kScales).data, static_cast<uint64_t>(l.scale_index(row, col)),
                             l.encoding.scale_dtype);
  return d * static_cast<float>(static_cast<const int8_t*>(values)[index]);
}

template <typename Fn>
void csr_row(const SparseLinearArgs& a, int64_t r, Fn&& fn) {
  const auto& w = *a.w;
  const uint64_t p0 = load_index(w.segment(SegmentRole::kRowPtr).data, static_cast<uint64_t>(r), a.pointer_width);
  const uint64_t p1 = load_index(w.segment(SegmentRole::kRowPtr).data, static_cast<uint64_t>(r + 1), a.pointer_width);
  const void* cols = w.segment(SegmentRole::kColIdx).data;
  for (uint64_t p = p0; p < p1; ++p) {
    const int64_t col = static_cast<int64_t>(load_index(cols, p, a.layout.col_index_bytes));
    fn(col, stored_value(a, p, r, col));
  }
}

template <typename Fn>
void bsr_row(const SparseLinearArgs& a, int64_t r, Fn&& fn) {
  const auto& w = *a.w;
  const SparseLayout& l = a.layout;
  const int64_t br = l.block_rows, bc = l.block_cols, b = r / br, i = r % br;
  const uint64_t p0 = load_index(w.segment(SegmentRole::kRowPtr).data, static_cast<uint64_t>(b), a.pointer_width);
  const uint64_t p1 = load_index(w.segment(SegmentRole::kRowPtr).data, static_cast<uint64_t>(b + 1), a.pointer_width);
  const void* cols = w.segment(SegmentRole::kColIdx).data;
  for (uint64_t p = p0; p < p1; ++p) {
    const int64_t c0 = static_cast<int64_t>(load_index(cols, p, l.col_index_bytes)) * bc;
    for (int64_t j = 0; j < bc && c0 + j < l.cols; ++j) {
      const uint64_t index = p * static_cast<uint64_t>(br * bc) + static_cast<uint64_t>(i * bc + j);
      fn(c0 + j, stored_value(a, index, r, c0 + j));
    }
  }
}

template <typename Fn>
void bitmask_row(const SparseLinearArgs& a, int64_t r, Fn&& fn) {
  const auto& w = *a.w;
  const SparseLayout& l = a.layout;
  uint64_t p = load_index(w.segment(SegmentRole::kRowPtr).data, static_cast<uint64_t>(r), a.pointer_width);
  const uint8_t* meta = static_cast<const uint8_t*>(w.segment(SegmentRole::kMeta).data) + l.meta_offset(r);
  const int64_t words = (l.cols + 63) / 64;
  for (int64_t wd = 0; wd < words; ++wd) {
    uint64_t bits = load_le<uint64_t>(meta, static_cast<uint64_t>(wd));
    while (bits) {
      const int64_t col = wd * 64 + __builtin_ctzll(bits);
      bits &= bits - 1;
      fn(col, stored_value(a, p, r, col));
      ++p;
    }
  }
}

template <typename Fn>
void nm_row(const SparseLinearArgs& a, int64_t r, Fn&& fn) {
  const auto& w = *a.w;
  const SparseLayout& l = a.layout;
  const uint8_t* meta = static_cast<const uint8_t*>(w.segment(SegmentRole::kMeta).data) + l.meta_offset(r);
  const void* values = w.segment(SegmentRole::kValues).data;
  const int bits = static_cast<int>(l.meta_bits);
  for (int64_t s = 0; s < l.slots; ++s) {
    const int64_t col = (s / l.nm_n) * l.nm_m + nm_position(meta, s, bits);
    if (col >= l.cols) continue;  // tail filler slots hold zero; x has no column there
    float wv;
    if (!l.quantized()) {
      wv = load_le<float>(values, static_cast<uint64_t>(r * l.slots + s));
    } else {
      int32_t code = read_code(l.nm_values, l.encoding.value_type, static_cast<const uint8_t*>(values), r, s);
      if (l.encoding.value_type == ValueType::kInt4) code -= 8;
      const float d = load_scale(w.segment(SegmentRole::kScales).data, static_cast<uint64_t>(l.scale_index(r, col)),
                                 l.encoding.scale_dtype);
      wv = d * static_cast<float>(code);
    }
    fn(col, wv);
  }
}

// Calls fn(col, w) for every stored entry of row r, in storage order.
template <typename Fn>
void for_each_entry(const SparseLinearArgs& a, int64_t r, Fn&& fn) {
  switch (a.layout.encoding.format) {
    case SparseFormat::kCsr: csr_row(a, r, fn); break;
    case SparseFormat::kBsr: bsr_row(a, r, fn); break;
    case SparseFormat::kBitmask: bitmask_row(a, r, fn); break;
    case SparseFormat::kNM: nm_row(a, r, fn); break;
    default: break;
  }
}

}  // namespace

void sparse_linear_rows(const SparseLinearArgs& a, int64_t m0, int64_t m1, float* acc) {
  const int64_t k = a.layout.cols;
  for (int64_t r = m0; r < m1; ++r) {
    std::fill(acc, acc + a.n, 0.0f);
    for_each_entry(a, r, [&](int64_t col, float w) {
      for (int64_t i = 0; i < a.n; ++i) acc[i] += w * a.x[i * k + col];
    });
    const float b = a.bias ? a.bias[r] : 0.0f;
    for (int64_t i = 0; i < a.n; ++i) a.y[i * a.layout.rows + r] = acc[i] + b;
  }
}

void sparse_gather_row(const SparseLinearArgs& a, int64_t r, float* out) {
  std::fill(out, out + a.layout.cols, 0.0f);
  for_each_entry(a, r, [&](int64_t col, float w) { out[col] = w; });
}

}  // namespace slmc::detail
