// ISA-neutral drivers of the dense linear kernels: everything about a call that is not arithmetic.
//
// An ISA file (linear_avx2.cpp, linear_neon_impl.hpp) supplies micro-kernels: code that loads,
// unpacks and multiplies one row group (GEMV) or one packed panel and tile (GEMM), and stores the
// result. This header owns the rest, once for every ISA:
//   - which path serves a call: linear_plan() over (encoding, activation mode, N), with every
//     ISA's thresholds in kLinearTunings below (the measurements behind them are cited there);
//   - the row groups of a thread's range (for_row_groups: interleaved blocks, 4 plain rows, 1);
//   - the batching of rows of X (for_x_batches, gemv_batches: rows of X per weight pass);
//   - the GEMM panel loop (gemm_panels: K blocks outermost, 16-row panels packed once per block,
//     tiles of rows of X) and the K-blocked row-group loop (k_blocked_rows);
//   - the bias epilogue (add_bias) and compile-time dispatch of runtime counts (with_count).
// The thread split is the front end's (for_row_slots, src/kernels/linear.cpp): ranges of whole
// kLinearRowGrain-row blocks, the same for dense and sparse weights.
//
// Micro-kernel interface (the "table keyed by encoding x activation mode x shape class"): the ISA
// file's fp32 / int8 entry points call linear_plan() and map the (path, span class, pairs) they get
// to their micro-kernel instantiations; the driver loops call them back. A new ISA (AVX-512, a VNNI
// dot) writes those micro-kernels and one kLinearTunings row, and reuses the loops: e.g. the int8
// dot of a chunk (vpmaddubsw + vpmaddwd on AVX2, sdot on NEON) is where vpdpbusd goes.
//
// Internal linkage (unnamed namespace), like linear_rows.hpp: every ISA file compiles its own copy
// with its own flags, so no copy built for one ISA can serve another (cmake/check_isa_objects.cmake).
//
// Determinism: every loop here only orders independent outputs (each output's reduction happens
// inside one micro-kernel call in a fixed order), and row groups start at multiples of
// kLinearRowGrain, so the bits of an output depend neither on the thread split nor on N's batching.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "linear/linear.hpp"

namespace slmc::detail {
namespace {

// ------------------------------------------------------------------------------------------------
// Paths and the plan
// ------------------------------------------------------------------------------------------------

enum class LinearPath : uint8_t {
  kReference,  ///< int8 mode on scale spans this ISA's micro-kernels do not serve: the scalar table
  kGemv,       ///< weights streamed once per batch of rows of X, row group by row group
  kGemm,       ///< K blocks outermost: the weights of a block are reused for every row of X
};

/// Per-ISA thresholds: which path serves an (encoding, activation mode, N). One row per ISA family
/// in kLinearTunings; the numbers are measurements (docs/measurements/).
struct LinearTuning {
  int64_t gemm_min_n_fp32;        ///< fp32 activations: N from which the GEMM serves
  int64_t gemm_min_n_int8;        ///< int8 activations, row kernels: N from which the GEMM serves
  int64_t gemm_min_n_int4_pairs;  ///< int8 activations, int4 row pairs: ditto; 0 = no pairs kernel
  bool int4_pairs_g32_gemv;       ///< int4 row pairs with g32 scales: the GEMV at every N
  int64_t gemv_nx_fp32;           ///< fp32 GEMV: rows of X per weight pass
  int64_t gemv_nx_int8;           ///< int8 GEMV: rows of X per weight pass
  bool int8_whole_chunks;         ///< int8 micro-kernels need scale spans of whole 32-element chunks
  int64_t gemm_min_n_int8_block;  ///< int8 (block) mode: N from which the packed GEMM serves; 0 = none
};

// AVX2 (linear_avx2.cpp). fp32 mode: the 16 x 6 panel GEMM from N = 4 (repacking weights pays off).
// int8 mode, int4 in interleaved blocks (row pairs, PairsGemv): up to 8 rows of X per weight pass
// with fewer instructions per product than the GEMM's nibble unpacking and transposes. Session 5,
// slmc_bench fastest of 6 interleaved runs, GEMV vs GEMM, ms:
//   g32: 4096^2 N = 32 / 128: 11.4 / 42.7 vs 17.2 / 60.4; 8192^2 N = 32 / 128: 54.3 / 185 vs 76.1 /
//        262; 2 threads 4096^2 N = 128: 25.3 vs 33.0 -> the GEMV for every N;
//   g128 (the GEMM sums 4 chunks in int16 before converting): 4096^2 N = 8 / 16 / 24 / 32 / 128:
//        2.7 / 5.7 / 12.8 / 10.9 / 48.6 vs 5.6 / 9.3 / 11.8 / 9.5 / 35.5; per-channel scales
//        N = 12 / 16 / 24: 3.8 / 5.5 / 10.5 vs 6.6 / 5.9 / 7.2 -> the GEMV up to N = 16.
// Other quantized rows in int8 mode (int8 codes, plain int4 rows): RowsGemv, up to 8 rows of X
// per weight pass, up to N = 8. Session 5, fastest of 6 interleaved runs, GEMV vs GEMM, ms, N = 8
// / 32: int8 per-channel plain rows 4096^2 3.7 / 13.7 vs 5.7 / 16.1, 8192^2 13.0 / 58.5 vs 26.6 /
// 51.8; int8 per-channel R=8 4096^2 5.2 / 18.8 vs 6.0 / 14.5, 8192^2 18.5 / 74.9 vs 27.7 / 50.0;
// int8 g32 R=8 4096^2 5.8 / 21.9 vs 6.4 / 16.3; int4 g32 plain rows 4096^2 4.8 / 19.6 vs 7.2 / 16.1,
// 8192^2 14.7 / 62.7 vs 34.2 / 62.2.
inline constexpr LinearTuning kLinearTuningAvx2{
    /*gemm_min_n_fp32=*/4, /*gemm_min_n_int8=*/9, /*gemm_min_n_int4_pairs=*/17, /*int4_pairs_g32_gemv=*/true,
    /*gemv_nx_fp32=*/1, /*gemv_nx_int8=*/8, /*int8_whole_chunks=*/true, /*gemm_min_n_int8_block=*/0};

// NEON (linear_neon_impl.hpp, both builds). fp32 mode: the 16 x 4 panel GEMM from N = 4; below it
// the GEMV takes all rows of X in one weight pass. int8 mode: K blocks of ~1024 from N = 4 (the
// block of a row group stays in L1 while every row of X passes), one block below; the micro-kernel
// batches rows of X by its register budget. Half-chunk spans (g16, g48) run on half chunks.
inline constexpr LinearTuning kLinearTuningNeon{
    /*gemm_min_n_fp32=*/4, /*gemm_min_n_int8=*/4, /*gemm_min_n_int4_pairs=*/0, /*int4_pairs_g32_gemv=*/false,
    /*gemv_nx_fp32=*/3, /*gemv_nx_int8=*/3, /*int8_whole_chunks=*/false, /*gemm_min_n_int8_block=*/0};

// AVX-512 (linear_avx512.cpp): AVX2's paths for fp32 and int8-row; the int8 (block) mode takes the
// packed VNNI GEMM (BlockGemmZmm, linear_block_x86.hpp) from gemm_min_n_int8_block rows of X,
// below it the block GEMVs.
inline constexpr LinearTuning kLinearTuningAvx512{
    /*gemm_min_n_fp32=*/4, /*gemm_min_n_int8=*/9, /*gemm_min_n_int4_pairs=*/17, /*int4_pairs_g32_gemv=*/true,
    /*gemv_nx_fp32=*/1, /*gemv_nx_int8=*/8, /*int8_whole_chunks=*/true, /*gemm_min_n_int8_block=*/8};

struct LinearPlan {
  LinearPath path = LinearPath::kGemv;
  int span = 0;        ///< int8 mode: chunks per scale span when a common constant (1: g32, 4: g128), else 0
  bool pairs = false;  ///< int8 mode: int4 interleaved blocks go to the row-pair micro-kernel
  int64_t nx = 1;      ///< GEMV: rows of X per weight pass
};

/// Whether the weights' scales come in groups along K (else one scale per row or per tensor).
inline bool grouped_scales(const LinearArgs& a) { return a.layout.groups > 1 || a.layout.group_size < a.k; }

/// The path that serves y = x W^T for these weights, activation mode and N on an ISA tuned by `t`.
inline LinearPlan linear_plan(const LinearArgs& a, bool int8_acts, const LinearTuning& t) {
  LinearPlan p;
  if (!int8_acts) {
    p.path = a.n >= t.gemm_min_n_fp32 ? LinearPath::kGemm : LinearPath::kGemv;
    p.nx = t.gemv_nx_fp32;
    return p;
  }
  const bool grouped = grouped_scales(a);
  if (t.int8_whole_chunks && grouped && a.layout.group_size % kChunk != 0) {
    p.path = LinearPath::kReference;
    return p;
  }
  // int4 in 4- or 8-row interleaved blocks with per-row scales: one load gives a pair of rows.
  // Per-tensor scales have no per-row layout to pair.
  p.pairs = t.gemm_min_n_int4_pairs > 0 && a.vt == ValueType::kInt4 && !a.layout.per_tensor &&
            (a.layout.interleave == 4 || a.layout.interleave == 8);
  const bool g32 = a.layout.groups > 1 && a.layout.group_size == 32;
  const bool gemm = p.pairs ? !(t.int4_pairs_g32_gemv && g32) && a.n >= t.gemm_min_n_int4_pairs
                            : a.n >= t.gemm_min_n_int8;
  p.path = gemm ? LinearPath::kGemm : LinearPath::kGemv;
  p.span = grouped && a.layout.group_size == 32 ? 1 : grouped && a.layout.group_size == 128 ? 4 : 0;
  p.nx = t.gemv_nx_int8;
  return p;
}

// ------------------------------------------------------------------------------------------------
// Loops
// ------------------------------------------------------------------------------------------------

/// Calls fn(r, P) over [m0, m1) with P rows that share one storage region: P = R for R-row
/// interleaved blocks (one sequential stream), P = 4 for plain rows (four streams), P = 1 for the
/// rest. m0 is a multiple of kLinearRowGrain and of R, so the split is the same for any thread count.
template <typename Fn>
inline void for_row_groups(const LinearArgs& a, int64_t m0, int64_t m1, Fn&& fn) {
  const bool quant = a.vt == ValueType::kInt8 || a.vt == ValueType::kInt4;
  const int64_t mi = quant ? a.layout.interleaved_rows : 0;
  const int64_t rr = quant ? a.layout.interleave : 1;
  int64_t r = m0;
  while (r < m1) {
    if (rr > 1 && r + rr <= std::min(m1, mi)) {
      fn(r, static_cast<int>(rr));
      r += rr;
    } else if (r + 4 <= m1 && (r >= mi || rr == 1)) {
      fn(r, 4);
      r += 4;
    } else {
      fn(r, 1);
      r += 1;
    }
  }
}

/// Calls fn(i0, nx) over rows [0, n) of X in batches of at most nx_max rows.
template <typename Fn>
inline void for_x_batches(int64_t n, int64_t nx_max, Fn&& fn) {
  for (int64_t i0 = 0; i0 < n; i0 += nx_max) fn(i0, static_cast<int>(std::min(nx_max, n - i0)));
}

/// Calls f(std::integral_constant<int, c>()) for a runtime count c in [kLo, kHi]: micro-kernels
/// unroll over their rows of X.
template <int kLo, int kHi, typename F>
inline void with_count(int c, F&& f) {
  if constexpr (kLo < kHi) {
    if (c != kLo) return with_count<kLo + 1, kHi>(c, std::forward<F>(f));
  }
  f(std::integral_constant<int, kLo>());
}

/// y[i][m0:m1) += bias for rows i in [i0, i0 + nx) of X (one rounding per output, after the sum).
inline void add_bias(const LinearArgs& a, int64_t m0, int64_t m1, int64_t i0, int64_t nx) {
  const float* bias = a.bias;
  if (!bias) return;
  for (int64_t i = i0; i < i0 + nx; ++i) {
    float* y = a.y + i * a.m;  // a local row pointer: the inner loop vectorizes
    for (int64_t r = m0; r < m1; ++r) y[r] += bias[r];
  }
}

/// The GEMV: rows of X in batches of nx_max, each batch a pass over the thread's row groups
/// calling rows(r, P, i0, nx) (rows r..r+P-1, rows i0..i0+nx-1 of X); then the bias, unless the
/// micro-kernel adds it in its own epilogue (kKernelAddsBias: NEON's, whose y = s + 0 without a
/// bias turns -0 into +0, which an add after the store would not).
template <bool kKernelAddsBias = false, typename RowsFn>
inline void gemv_batches(const LinearArgs& a, int64_t m0, int64_t m1, int64_t nx_max, RowsFn&& rows) {
  for_x_batches(a.n, nx_max, [&](int64_t i0, int nx) {
    for_row_groups(a, m0, m1, [&](int64_t r, int p) { rows(r, p, i0, nx); });
    if (!kKernelAddsBias) add_bias(a, m0, m1, i0, nx);
  });
}

/// The GEMM panel loop. K blocks outermost, so the activations of a block stay in L2 while every
/// panel of this thread's rows is packed once and multiplied with them; partial sums live in y.
/// Panel supplies:
///   kMr, kNr            rows per panel, rows of X per micro-kernel tile
///   kend, kc_max        the K extent walked and the block depth
///   pack_x(kb, kc)      the activations of a block (may do nothing)
///   pack_w(kb, kc, mb, rows)              weights of rows [mb, mb + rows), rows <= kMr
///   tile(kb, kc, mb, rows, nb, nr, first) y[nb, nb + nr)[mb, mb + rows) (+)= the block's products
///   finish(m0, m1)      the epilogue after the last block (bias, scales and offsets)
template <typename Panel>
inline void gemm_panels(const LinearArgs& a, int64_t m0, int64_t m1, Panel& g) {
  constexpr int64_t kMr = Panel::kMr, kNr = Panel::kNr;
  for (int64_t kb = 0; kb < g.kend; kb += g.kc_max) {
    const int64_t kc = std::min(g.kc_max, g.kend - kb);
    g.pack_x(kb, kc);
    for (int64_t mb = m0; mb < m1; mb += kMr) {
      const int64_t rows = std::min(kMr, m1 - mb);
      g.pack_w(kb, kc, mb, rows);
      for (int64_t nb = 0; nb < a.n; nb += kNr) {
        g.tile(kb, kc, mb, rows, nb, static_cast<int>(std::min(kNr, a.n - nb)), kb == 0);
      }
    }
  }
  g.finish(m0, m1);
}

/// K-blocked row groups without packing: K in blocks of `block` units (of `units`), each block a
/// pass over the row groups, rows(r, P, u0, u1) taking every row of X; when K took more than one
/// block, final(r, P) applies each row group's epilogue.
template <typename RowsFn, typename FinalFn>
inline void k_blocked_rows(const LinearArgs& a, int64_t m0, int64_t m1, int64_t units, int64_t block, RowsFn&& rows,
                           FinalFn&& final) {
  for (int64_t u0 = 0; u0 < units; u0 += block) {
    const int64_t u1 = std::min(units, u0 + block);
    for_row_groups(a, m0, m1, [&](int64_t r, int p) { rows(r, p, u0, u1); });
  }
  if (block < units) for_row_groups(a, m0, m1, final);
}

/// Runs kernel(c, ldc, first) on the tile y[nb, nb + nr)[mb, mb + rows) of a kMr-row micro-kernel:
/// in place when the tile has kMr rows, else through the nr x kMr buffer `tile` (rows beyond `rows`
/// are never stored).
template <int64_t kMr, typename Kernel>
inline void on_tile(const LinearArgs& a, int64_t mb, int64_t rows, int64_t nb, int nr, bool first, float* tile,
                    Kernel&& kernel) {
  float* y = a.y + nb * a.m + mb;
  if (rows == kMr) return kernel(y, a.m, first);
  for (int j = 0; j < nr; ++j) {
    for (int64_t r = 0; r < kMr; ++r) tile[j * kMr + r] = (!first && r < rows) ? y[j * a.m + r] : 0.0f;
  }
  kernel(tile, kMr, first);
  for (int j = 0; j < nr; ++j) std::memcpy(y + j * a.m, tile + j * kMr, static_cast<size_t>(rows) * 4);
}

}  // namespace
}  // namespace slmc::detail
