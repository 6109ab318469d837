// Kernel family "linear_sparse": Y[N x M] = X[N x K] * W[M x K]^T (+ bias) on sparse weights
// (CSR, BSR, N:M, bitmask; docs/LAYOUT.md "Sparse formats", slmc/sparse/layout.hpp).
//
// The front end (src/kernels/linear.cpp) validates the matrix (validate_sparse_matrix), prepares
// the activations once per call and splits the output rows over threads in blocks of
// kLinearRowGrain rows; each ISA's table computes the rows [m0, m1) for all N rows of X.
//   fp32 mode: x as given, plus (N > 1) xt: X transposed into tiles of `tile` rows (8, 16 or 32):
//              tile t = xt + t * K * tile, element (k, i) at [k * tile + i % tile], zero for
//              i >= N, so one stored weight meets `tile` activations in tile/8 vector loads.
//   int8 mode: xq, each row of X quantized to int8 with one scale (as for dense weights), zero
//              padded to kpad = sparse_xq_stride(K) columns.
// Kernels only assert: every input here was validated.
//
// Determinism: every output is reduced in an order fixed by the weights alone (row splits never
// change it), so results are bit-identical for any thread count.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "slmc/encoding.hpp"
#include "slmc/layout.hpp"
#include "slmc/sparse/layout.hpp"

namespace slmc::detail {

/// Activation rows per transposed tile (fp32 mode, N > 1): 8, 16 or 32.
inline int64_t sparse_tile_for(int64_t n) noexcept { return n <= 8 ? 8 : (n <= 16 ? 16 : 32); }
/// Row stride of xq in int8 mode: K rounded up to 64 plus 128 columns of zeros, so kernels may
/// read whole 64-column windows (and N:M slot chunks, which can reach up to 66 columns past K).
inline int64_t sparse_xq_stride(int64_t k) noexcept { return (k + 63) / 64 * 64 + 128; }

struct SparseLinearArgs {
  SparseLayout layout;
  int64_t pointer_width = 4;  ///< bytes per row_ptr entry
  const void* values = nullptr;
  const void* scales = nullptr;
  const void* row_ptr = nullptr;
  const void* col_idx = nullptr;
  const uint8_t* meta = nullptr;

  int64_t n = 0;
  const float* x = nullptr;       ///< [n][K]
  const float* xt = nullptr;      ///< fp32 mode, n > 1: transposed tiles (see above)
  int64_t tile = 0;               ///< rows per xt tile
  const int8_t* xq = nullptr;     ///< int8 mode: [n][kpad]
  const float* xscale = nullptr;  ///< int8 mode: [n]
  int64_t kpad = 0;               ///< int8 mode: row stride of xq, sparse_xq_stride(K)

  const float* bias = nullptr;  ///< [M] or null
  float* y = nullptr;           ///< [n][M]

  uint64_t pointer(int64_t i) const noexcept { return load_index(row_ptr, static_cast<uint64_t>(i), pointer_width); }
  int64_t column(uint64_t p) const noexcept { return static_cast<int64_t>(load_index(col_idx, p, layout.col_index_bytes)); }
  float scale(int64_t index) const noexcept {
    return load_scale(scales, static_cast<uint64_t>(index), layout.encoding.scale_dtype);
  }
};

struct SparseLinearKernels {
  const char* isa;
  /// fp32 activations: y[:, m0:m1) (bias included).
  void (*fp32)(const SparseLinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch);
  /// int8 activations (int8/int4 values only): y[:, m0:m1) (bias included).
  void (*int8)(const SparseLinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch);
  /// Scratch bytes one thread needs for a call with `a` (64-byte aligned slot).
  size_t (*scratch_bytes)(const SparseLinearArgs& a);
};

const SparseLinearKernels& linear_sparse_kernels_scalar();
const SparseLinearKernels& linear_sparse_kernels_avx2();
const SparseLinearKernels& linear_sparse_kernels_neon();
const SparseLinearKernels& linear_sparse_kernels_neon_dotprod();

// ---- entry walkers shared by the ISA files and the row gather (plain C++) ----

/// A stored entry: dense column, float weight for fp32 values, or the integer code (int4: u - 8)
/// and its scale index for int8/int4 values.
struct SparseEntry {
  int64_t col;
  float w;       ///< f32 values: the weight; quantized: code * scale
  int32_t code;  ///< quantized values: signed code (int4: u - 8)
  int64_t si;    ///< quantized values: scale index
};

namespace sparse_walk {

template <typename Fn>
inline void emit(const SparseLinearArgs& a, uint64_t index, int64_t row, int64_t col, Fn& fn) {
  const SparseLayout& l = a.layout;
  if (!l.quantized()) {
    fn(SparseEntry{col, load_le<float>(a.values, index), 0, 0});
    return;
  }
  const int32_t q = static_cast<const int8_t*>(a.values)[index];
  const int64_t si = l.scale_index(row, col);
  fn(SparseEntry{col, a.scale(si) * static_cast<float>(q), q, si});
}

}  // namespace sparse_walk

/// Calls fn(SparseEntry) for every stored entry of row r in storage order (ascending columns; N:M
/// slots beyond K are skipped; BSR edge padding beyond K is skipped, explicit zeros are not).
template <typename Fn>
inline void for_each_sparse_entry(const SparseLinearArgs& a, int64_t r, Fn&& fn) {
  const SparseLayout& l = a.layout;
  switch (l.encoding.format) {
    case SparseFormat::kCsr: {
      const uint64_t p1 = a.pointer(r + 1);
      for (uint64_t p = a.pointer(r); p < p1; ++p) sparse_walk::emit(a, p, r, a.column(p), fn);
      break;
    }
    case SparseFormat::kBsr: {
      const int64_t br = l.block_rows, bc = l.block_cols, b = r / br, i = r % br;
      const uint64_t p1 = a.pointer(b + 1);
      for (uint64_t p = a.pointer(b); p < p1; ++p) {
        const int64_t c0 = a.column(p) * bc;
        for (int64_t j = 0; j < bc && c0 + j < l.cols; ++j) {
          sparse_walk::emit(a, p * static_cast<uint64_t>(br * bc) + static_cast<uint64_t>(i * bc + j), r, c0 + j, fn);
        }
      }
      break;
    }
    case SparseFormat::kBitmask: {
      uint64_t p = a.pointer(r);
      const uint8_t* meta = a.meta + l.meta_offset(r);
      const int64_t words = (l.cols + 63) / 64;
      for (int64_t wd = 0; wd < words; ++wd) {
        uint64_t bits = load_le<uint64_t>(meta, static_cast<uint64_t>(wd));
        while (bits) {
          const int64_t col = wd * 64 + __builtin_ctzll(bits);
          bits &= bits - 1;
          sparse_walk::emit(a, p++, r, col, fn);
        }
      }
      break;
    }
    case SparseFormat::kNM: {
      const uint8_t* meta = a.meta + l.meta_offset(r);
      const int bits = static_cast<int>(l.meta_bits);
      const auto* values = static_cast<const uint8_t*>(a.values);
      for (int64_t s = 0; s < l.slots; ++s) {
        const int64_t col = (s / l.nm_n) * l.nm_m + nm_position(meta, s, bits);
        if (col >= l.cols) continue;  // tail filler slots hold zero; x has no column there
        if (!l.quantized()) {
          fn(SparseEntry{col, load_le<float>(values, static_cast<uint64_t>(r * l.slots + s)), 0, 0});
          continue;
        }
        int32_t code = read_code(l.nm_values, l.encoding.value_type, values, r, s);
        if (l.encoding.value_type == ValueType::kInt4) code -= 8;
        const int64_t si = l.scale_index(r, col);
        fn(SparseEntry{col, a.scale(si) * static_cast<float>(code), code, si});
      }
      break;
    }
    default:
      break;
  }
}

// Internal linkage: these are called from files compiled with different ISA flags (neon and
// neon_dotprod, avx2); a shared weak copy could be one compiled for the wrong CPU.
namespace {

/// sum over the stored entries of row r of w * x[col] (any format, portable).
inline float sparse_entry_dot(const SparseLinearArgs& a, int64_t r, const float* x) {
  float s = 0.0f;
  for_each_sparse_entry(a, r, [&](const SparseEntry& e) { s += e.w * x[e.col]; });
  return s;
}

/// Bitmask row r, the columns of mask byte m from col0 on, scalar (the last partial byte of a
/// row): sum of scale * value * x[col] over the set bits, values read from v in order.
template <typename Val>
inline float sparse_bitmask_tail(const SparseLinearArgs& a, int64_t r, unsigned m, int64_t col0, const Val* v,
                                 const float* x) {
  const SparseLayout& l = a.layout;
  float t = 0.0f;
  while (m) {
    const int64_t col = col0 + __builtin_ctz(m);
    m &= m - 1;
    t += (l.quantized() ? a.scale(l.scale_index(r, col)) : 1.0f) * static_cast<float>(*v) * x[col];
    ++v;
  }
  return t;
}

/// Codes of row r as a dense int8 row out[0:cols) (int4: u - 8), zeros where nothing is stored.
inline void sparse_decode_scatter(const SparseLinearArgs& a, int64_t r, int8_t* out, int64_t cols) {
  std::memset(out, 0, static_cast<size_t>(cols));
  for_each_sparse_entry(a, r, [&](const SparseEntry& e) { out[e.col] = static_cast<int8_t>(e.code); });
}

/// Do the scale groups cover whole 32-column chunks (or is there one scale per row)? The SIMD
/// decoded-row kernels need it; other groupings run the scalar kernel.
inline bool sparse_scales_in_chunks(const SparseLayout& l) noexcept {
  const bool grouped = l.encoding.granularity == Granularity::kGroup && l.scale_group < l.cols;
  return !grouped || l.scale_group % 32 == 0;
}

/// Scratch of the SIMD decoded-row kernels (sparse_decoded_rows, driver.hpp): a decoded row (sparse_xq_stride(K) bytes, then 64
/// spare), the row's scales, and what the scalar fallback needs.
inline size_t sparse_decoded_scratch_bytes(const SparseLinearArgs& a) {
  return static_cast<size_t>(sparse_xq_stride(a.layout.cols)) + 64 +
         static_cast<size_t>(a.layout.scale_groups_per_row + 8) * 4 + linear_sparse_kernels_scalar().scratch_bytes(a);
}

}  // namespace

/// 2:4 metadata byte (two groups of four columns) -> shuffle control for its 8 dense columns:
/// column 4h + t takes slot 2h or 2h + 1 (relative to the byte's first slot) when that slot's
/// position is t, else 0x80 (zero, also after adding a slot offset of at most 12). Read by the
/// vpshufb / tbl decoders.
struct Nm24ExpandTable {
  uint8_t lane[256][8];
};
constexpr Nm24ExpandTable make_nm24_expand_table() noexcept {
  Nm24ExpandTable t{};
  for (int m = 0; m < 256; ++m) {
    for (int j = 0; j < 8; ++j) {
      const int h = j / 4, pos = j % 4;
      const int pa = (m >> (4 * h)) & 3, pb = (m >> (4 * h + 2)) & 3;
      t.lane[m][j] = pos == pa ? static_cast<uint8_t>(2 * h) : (pos == pb ? static_cast<uint8_t>(2 * h + 1) : 0x80);
    }
  }
  return t;
}
inline constexpr Nm24ExpandTable kNm24Expand = make_nm24_expand_table();

/// Bitmask decoding, 16 columns (mask bytes m0, m1) per vpshufb lane / tbl: the byte control is
/// kBitmaskLo16[m0] + kBitmaskHi16[m1] — bytes 0-7 lane[m0], bytes 8-15 lane[m1] + count(m0) (the
/// second byte's values start where the first byte's end; 0x80 "zero" lanes stay >= 0x80). Two
/// 16-byte loads and one add, against two 8-byte loads, a count load, broadcast, add and combine.
struct alignas(16) BitmaskControl16 {
  uint8_t b[16];
};
struct BitmaskControlTable {
  BitmaskControl16 e[256];
};
constexpr BitmaskControlTable make_bitmask_control(bool high) noexcept {
  BitmaskControlTable t{};
  for (int m = 0; m < 256; ++m) {
    for (int j = 0; j < 8; ++j) {
      t.e[m].b[j] = high ? 0 : kBitmaskExpand.lane[m][j];
      t.e[m].b[8 + j] = high ? kBitmaskExpand.lane[m][j] : kBitmaskExpand.count[m];
    }
  }
  return t;
}
alignas(64) inline constexpr BitmaskControlTable kBitmaskLo16 = make_bitmask_control(false);
alignas(64) inline constexpr BitmaskControlTable kBitmaskHi16 = make_bitmask_control(true);

/// out[0:K) = dense row r (zeros where nothing is stored).
inline void sparse_gather_row(const SparseLinearArgs& a, int64_t r, float* out) {
  std::fill(out, out + a.layout.cols, 0.0f);
  for_each_sparse_entry(a, r, [&](const SparseEntry& e) { out[e.col] = e.w; });
}

}  // namespace slmc::detail
