// ISA-neutral drivers of the sparse linear kernels (CSR, BSR, N:M, bitmask): the row loops, the
// choice between them, and the scalar fallback, once for every ISA. The ISA files
// (linear_sparse_avx2.cpp, linear_sparse_neon_impl.hpp) supply micro-kernels in one struct, Uk:
//
//   template <int T> using TileAcc   fp32 mode, N > 1: register accumulator of T activations:
//                                    zero(), fma(w, xt) (acc += w * xt[0:T)), store(out)
//   csr_row_f32<Idx, Val>(a, r, x)   fp32 mode, N = 1: one CSR row (Idx: uint16_t / uint32_t,
//   bitmask_row_f32<Val>(a, r, x)    Val: float / int8_t); one bitmask row
//   BitmaskChunks, Nm24Chunks, BufferChunks
//                                    chunk decoders of a row: constructed (a, r) (BufferChunks
//                                    {decoded row}), next(c) = 32 codes of dense columns [32c, 32c+32)
//   store_chunk(decoder, c, dst)     the 32 codes of chunk c to dst (32-byte aligned)
//   dot_i8(decoder, xq, chunks, span, ds)       int8 mode: sum over spans of ds[span] * isum
//   kDotI8Rows, dot_i8_rows(codes, xq, kpad, chunks, span, ds, out)
//                                    int8 mode, N > 1: dot_i8 of a decoded row with kDotI8Rows rows
//                                    of X per call, each with the bits of dot_i8 (1: not provided)
//   dot_codes_f32(codes, x, k, span, ds)        fp32 mode on a decoded row
//   row_scales(a, r, groups, ds)                the row's scales as fp32
//   chunked_scales(layout)           whether the decoded-row micro-kernels serve these scale groups
//                                    (else int8 mode runs the scalar table)
//   kNm24SelectGemv                  int8 mode, 2:4, N = 1: the ISA selects activations instead of
//                                    expanding weights; then nm24_swizzle_x(xq, steps, dst) and
//                                    nm24_select_row(a, r, xs, chunks, span, ds, &out) (false: not
//                                    served, decode instead)
//
// Internal linkage (unnamed namespace): each ISA file compiles its own copy with its own flags.
// Determinism: every output is reduced inside one micro-kernel call in an order fixed by the
// weights; the loops here only order rows, so results do not depend on threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "linear_sparse/linear_sparse.hpp"

namespace slmc::detail {
namespace {

/// fp32 mode, N = 1: sum over the stored entries of row r of w * x[col], by format: the ISA's CSR
/// and bitmask micro-kernels, the portable entry walker for BSR and N:M.
template <typename Uk>
float sparse_row_f32(const SparseLinearArgs& a, int64_t r, const float* x) {
  const SparseLayout& l = a.layout;
  const bool q = l.quantized();
  switch (l.encoding.format) {
    case SparseFormat::kCsr:
      if (l.col_index_bytes == 2) {
        return q ? Uk::template csr_row_f32<uint16_t, int8_t>(a, r, x) : Uk::template csr_row_f32<uint16_t, float>(a, r, x);
      }
      return q ? Uk::template csr_row_f32<uint32_t, int8_t>(a, r, x) : Uk::template csr_row_f32<uint32_t, float>(a, r, x);
    case SparseFormat::kBitmask:
      return q ? Uk::template bitmask_row_f32<int8_t>(a, r, x) : Uk::template bitmask_row_f32<float>(a, r, x);
    default:
      return sparse_entry_dot(a, r, x);
  }
}

/// fp32 mode, N > 1, on the transposed activation tiles of T rows: each stored weight of row r
/// meets T activations. Acc<T> is the ISA's register accumulator (Uk::TileAcc).
template <int T, template <int> class Acc>
void sparse_tiles_f32(const SparseLinearArgs& a, int64_t m0, int64_t m1) {
  const SparseLayout& l = a.layout;
  const int64_t k = l.cols, m = l.rows, tiles = (a.n + T - 1) / T;
  const bool csr_f32 = l.encoding.format == SparseFormat::kCsr && !l.quantized();
  alignas(32) float out[T];
  for (int64_t r = m0; r < m1; ++r) {
    const float b = a.bias ? a.bias[r] : 0.0f;
    for (int64_t t = 0; t < tiles; ++t) {
      const float* xt = a.xt + t * k * T;
      Acc<T> acc;
      acc.zero();
      if (csr_f32) {
        const auto* v = static_cast<const float*>(a.values);
        const uint64_t p1 = a.pointer(r + 1);
        if (l.col_index_bytes == 2) {
          const auto* idx = static_cast<const uint16_t*>(a.col_idx);
          for (uint64_t p = a.pointer(r); p < p1; ++p) acc.fma(v[p], xt + int64_t{idx[p]} * T);
        } else {
          const auto* idx = static_cast<const uint32_t*>(a.col_idx);
          for (uint64_t p = a.pointer(r); p < p1; ++p) acc.fma(v[p], xt + int64_t{idx[p]} * T);
        }
      } else {
        for_each_sparse_entry(a, r, [&](const SparseEntry& e) { acc.fma(e.w, xt + e.col * T); });
      }
      acc.store(out);
      const int64_t i1 = std::min<int64_t>(T, a.n - t * T);
      for (int64_t i = 0; i < i1; ++i) a.y[(t * T + i) * m + r] = out[i] + b;
    }
  }
}

enum class SparseDecoder { kBitmask, kNm24, kScatter };

/// Rows [m0, m1) on decoded codes: per row its scales, then its codes decoded once (D: bitmask
/// expansion, 2:4 expansion, or a scatter of any format into a row buffer) and one vectorized dot
/// per row of X; int8 mode with N = 1 decodes and multiplies in registers. kF32: fp32 activations
/// (x), else quantized activations (xq). Scratch: sparse_decoded_scratch_bytes.
template <typename Uk, SparseDecoder D, bool kF32>
void sparse_decoded_rows(const SparseLinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch) {
  const SparseLayout& l = a.layout;
  const int64_t k = l.cols, m = l.rows;
  const bool grouped = l.encoding.granularity == Granularity::kGroup && l.scale_group < k;
  auto* wrow = reinterpret_cast<int8_t*>(scratch);
  auto* ds = reinterpret_cast<float*>(scratch + sparse_xq_stride(k) + 64);
  const int64_t chunks = (k + 31) / 32;
  const int64_t span = grouped ? l.scale_group / 32 : Uk::kSpanMax;
  const int64_t groups = grouped ? l.scale_groups_per_row : 1;
  // The 2:4 GEMV selects from swizzled activations, kept where the decoded row would go.
  [[maybe_unused]] const int8_t* xs = nullptr;
  if constexpr (D == SparseDecoder::kNm24 && !kF32 && Uk::kNm24SelectGemv) {
    if (a.n == 1) {
      Uk::nm24_swizzle_x(a.xq, (chunks + 1) / 2, wrow);
      xs = wrow;
    }
  }
  for (int64_t r = m0; r < m1; ++r) {
    Uk::row_scales(a, r, groups, ds);
    const float b = a.bias ? a.bias[r] : 0.0f;
    auto finish = [&](int64_t i, float s) {
      const float v = grouped ? s : ds[0] * s;
      a.y[i * m + r] = (kF32 ? v : a.xscale[i] * v) + b;
    };
    if constexpr (D != SparseDecoder::kScatter) {
      using Chunks = std::conditional_t<D == SparseDecoder::kBitmask, typename Uk::BitmaskChunks, typename Uk::Nm24Chunks>;
      if constexpr (D == SparseDecoder::kNm24 && !kF32 && Uk::kNm24SelectGemv) {
        float sum;
        if (a.n == 1 && Uk::nm24_select_row(a, r, xs, chunks, span, grouped ? ds : nullptr, &sum)) {
          finish(0, sum);
          continue;
        }
      }
      Chunks dec(a, r);
      if (!kF32 && a.n == 1) {  // GEMV: decode and multiply in registers
        finish(0, Uk::dot_i8(dec, a.xq, chunks, span, grouped ? ds : nullptr));
        continue;
      }
      for (int64_t c = 0; c < chunks; ++c) Uk::store_chunk(dec, c, wrow + 32 * c);
    } else {
      sparse_decode_scatter(a, r, wrow, chunks * 32);
    }
    if constexpr (kF32) {
      for (int64_t i = 0; i < a.n; ++i) finish(i, Uk::dot_codes_f32(wrow, a.x + i * k, k, span, grouped ? ds : nullptr));
    } else {
      int64_t i = 0;
      if constexpr (Uk::kDotI8Rows > 1) {  // kDotI8Rows rows of X per pass over the decoded row
        float sums[Uk::kDotI8Rows];
        for (; i + Uk::kDotI8Rows <= a.n; i += Uk::kDotI8Rows) {
          Uk::dot_i8_rows(wrow, a.xq + i * a.kpad, a.kpad, chunks, span, grouped ? ds : nullptr, sums);
          for (int j = 0; j < Uk::kDotI8Rows; ++j) finish(i + j, sums[j]);
        }
      }
      typename Uk::BufferChunks buf{wrow};
      for (; i < a.n; ++i) finish(i, Uk::dot_i8(buf, a.xq + i * a.kpad, chunks, span, grouped ? ds : nullptr));
    }
  }
}

/// The decoder for the format: bitmask expansion, 2:4 expansion, else the scatter.
template <typename Uk, bool kF32>
void sparse_decoded(const SparseLinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch) {
  const SparseLayout& l = a.layout;
  if (l.encoding.format == SparseFormat::kBitmask) {
    sparse_decoded_rows<Uk, SparseDecoder::kBitmask, kF32>(a, m0, m1, scratch);
  } else if (l.encoding.format == SparseFormat::kNM && l.nm_n == 2 && l.nm_m == 4) {
    sparse_decoded_rows<Uk, SparseDecoder::kNm24, kF32>(a, m0, m1, scratch);
  } else {
    sparse_decoded_rows<Uk, SparseDecoder::kScatter, kF32>(a, m0, m1, scratch);
  }
}

/// fp32-mode rows [m0, m1). Quantized N:M (and bitmask with several rows of X) whose scales the
/// decoded-row micro-kernels serve go to sparse_decoded: each row's codes decoded once, then one
/// vectorized dot per row of X (the entry walker would read every code through the layout).
/// Otherwise N = 1 takes sparse_row_f32 per row and N > 1 the transposed tiles.
template <typename Uk>
void sparse_fp32(const SparseLinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch) {
  const SparseLayout& l = a.layout;
  if (l.quantized() && Uk::chunked_scales(l) &&
      (l.encoding.format == SparseFormat::kNM || (l.encoding.format == SparseFormat::kBitmask && a.n > 1))) {
    sparse_decoded<Uk, true>(a, m0, m1, scratch);
    return;
  }
  if (a.n == 1) {
    for (int64_t r = m0; r < m1; ++r) a.y[r] = sparse_row_f32<Uk>(a, r, a.x) + (a.bias ? a.bias[r] : 0.0f);
    return;
  }
  switch (a.tile) {
    case 8: sparse_tiles_f32<8, Uk::template TileAcc>(a, m0, m1); break;
    case 16: sparse_tiles_f32<16, Uk::template TileAcc>(a, m0, m1); break;
    default: sparse_tiles_f32<32, Uk::template TileAcc>(a, m0, m1); break;
  }
}

/// int8-mode rows [m0, m1): the decoded-row micro-kernels, or the scalar table for scale groups
/// they do not serve.
template <typename Uk>
void sparse_int8(const SparseLinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch) {
  if (!Uk::chunked_scales(a.layout)) {
    linear_sparse_kernels_scalar().int8(a, m0, m1, scratch);
    return;
  }
  sparse_decoded<Uk, false>(a, m0, m1, scratch);
}

}  // namespace
}  // namespace slmc::detail
