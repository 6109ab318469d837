// Pruning: keep masks from fp32 weights W[M x K] (row-major, nn.Linear convention).
//
// Methods: unstructured magnitude (per tensor, per row, global over several tensors with one
// threshold), N:M along K, r x c blocks scored by L1 or L2, each optionally importance-aware
// (Wanda), plus sparsity schedules for gradual pruning.
//
// Scores. An element's score is |w_ij|, or with per-input-channel activation norms (Wanda: Sun,
// Liu, Bair, Kolter, "A Simple and Effective Pruning Approach for Large Language Models",
// arXiv:2306.11695, 2023) |w_ij| * ||x_j||_2, where ||x_j|| is the L2 norm of input channel j over
// the calibration tokens. The calibration format stores mean_sq_j = mean(x_j^2) and the token
// count, so ||x_j|| = sqrt(mean_sq_j * count) (wanda_column_norms). Wanda compares scores within
// each output row: use PruneScope::kRow (or N:M, which is per row by construction) to follow the
// paper.
//
// Determinism. Elements are ranked by score, higher = more important; equal scores are broken by
// position, the lower flat index (row-major; for global pruning: earlier tensor first) being
// more important. Pruning removes exactly the requested number of least important elements, so
// the result never depends on the thread count or the sort algorithm.
//
// Exact counts. A target sparsity s over n candidates prunes round(s * n) of them (halves round
// up); per-row pruning prunes round(s * K) in every row. The mask reports what was achieved.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "slmc/status.hpp"

namespace slmc {

/// A keep mask over a [rows x cols] matrix.
struct PruneMask {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<uint8_t> keep;  ///< rows*cols bytes, row-major; 1 = kept, 0 = pruned
  int64_t kept = 0;           ///< number of ones in `keep`

  int64_t size() const noexcept { return rows * cols; }
  int64_t pruned() const noexcept { return size() - kept; }
  /// Achieved sparsity: pruned / size (0 for an empty matrix).
  double sparsity() const noexcept { return size() > 0 ? static_cast<double>(pruned()) / static_cast<double>(size()) : 0.0; }
};

/// Where an exact count is enforced for unstructured and block pruning.
enum class PruneScope : uint8_t {
  kTensor = 0,  ///< one ranking over the whole matrix
  kRow = 1,     ///< the same count in every row (block row for blocks): balanced kernels, Wanda
};

/// Block score: mean |s| (L1) or root-mean-square s (L2) over the block's real elements (edge
/// blocks have fewer; the mean keeps them comparable with full blocks).
enum class BlockNorm : uint8_t { kL1 = 0, kL2 = 1 };

/// Number of elements pruned for sparsity `s` over `n` candidates: floor(s * n + 0.5).
int64_t pruned_count(int64_t n, double sparsity) noexcept;

/// Wanda input-channel norms from calibration statistics: out[j] = sqrt(mean_sq[j] * count).
/// mean_sq must be finite and >= 0, count > 0. Errors name `tensor_name`.
Result<std::vector<float>> wanda_column_norms(const float* mean_sq, int64_t cols, double count,
                                              std::string_view tensor_name);

/// Element scores |w| or |w| * col_norms[col] (col_norms nullable, length cols) into out[rows*cols].
/// Rejects non-finite weights or norms, and negative norms.
Status importance_scores(const float* w, int64_t rows, int64_t cols, const float* col_norms, float* out,
                         std::string_view tensor_name);

/// Unstructured pruning to exactly pruned_count(rows*cols, sparsity) (kTensor) or
/// pruned_count(cols, sparsity) per row (kRow) least important elements.
Result<PruneMask> prune_unstructured(const float* w, int64_t rows, int64_t cols, double sparsity, PruneScope scope,
                                     const float* col_norms, std::string_view tensor_name);

/// N:M along K: in every group of M consecutive columns keep the N most important. The last group
/// of a row, when K % M = t != 0, has t columns and keeps min(N, t) of them (so "at most N of every
/// M consecutive columns" holds everywhere; with t <= N the tail is not pruned). 1 <= N < M <= 16.
Result<PruneMask> prune_n_m(const float* w, int64_t rows, int64_t cols, int n, int m, const float* col_norms,
                            std::string_view tensor_name);

/// Block pruning with r x c blocks (edge blocks partial): prunes exactly
/// pruned_count(blocks, sparsity) whole blocks (kTensor) or that count of ceil(K/c) per block row
/// (kRow), least important by `norm` of the element scores first.
Result<PruneMask> prune_blocks(const float* w, int64_t rows, int64_t cols, int block_rows, int block_cols,
                               double sparsity, BlockNorm norm, PruneScope scope, const float* col_norms,
                               std::string_view tensor_name);

/// One tensor taking part in global pruning.
struct PruneInput {
  std::string name;
  const float* w = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  const float* col_norms = nullptr;  ///< optional Wanda norms (length cols)
};

struct GlobalPruneResult {
  std::vector<PruneMask> masks;  ///< one per input, same order
  float threshold = 0;           ///< score of the most important pruned element (0 if none pruned)
  int64_t kept = 0;
  int64_t total = 0;
  double sparsity() const noexcept { return total > 0 ? 1.0 - static_cast<double>(kept) / static_cast<double>(total) : 0.0; }
};

/// Global unstructured pruning: one ranking (one threshold) over all inputs' scores together,
/// pruning exactly pruned_count(sum of sizes, sparsity) elements. Elements scoring below the
/// threshold are all pruned, above it all kept; ties at the threshold follow the global order.
Result<GlobalPruneResult> prune_global(const std::vector<PruneInput>& inputs, double sparsity);

/// out[i] = keep[i] ? w[i] : 0 (both rows*cols).
void apply_mask(const PruneMask& mask, const float* w, float* out) noexcept;

/// Sparsity as a function of the training step, for pruning during fine-tuning.
struct SparsitySchedule {
  enum class Kind : uint8_t {
    kConstant = 0,    ///< final_sparsity from begin_step on (initial before)
    kPolynomial = 1,  ///< Zhu & Gupta 2017 polynomial decay
  };
  Kind kind = Kind::kPolynomial;
  double initial_sparsity = 0.0;
  double final_sparsity = 0.5;
  int64_t begin_step = 0;
  int64_t end_step = 1000;
  int64_t frequency = 1;  ///< sparsity changes only every `frequency` steps (Δt)
  double exponent = 3.0;  ///< 3 in the paper
};

/// Zhu & Gupta, "To prune, or not to prune: exploring the efficacy of pruning for model
/// compression", arXiv:1710.01878 (2017), eq. 1:
///   s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n Δt))^3   for t0 <= t <= t0 + n Δt,
/// with t rounded down to a multiple of Δt after t0; s_i before t0 and s_f after the end.
double scheduled_sparsity(const SparsitySchedule& schedule, int64_t step) noexcept;
/// Checks a schedule's parameters (sparsities in [0, 1], end >= begin, frequency >= 1, exponent > 0).
Status validate_schedule(const SparsitySchedule& schedule);

/// The pruning method of a prune-then-encode call.
enum class PruneMethod : uint8_t {
  kNone = 0,       ///< keep the nonzero elements (encode as is)
  kMagnitude = 1,  ///< unstructured (scope)
  kNM = 2,         ///< N:M along K
  kBlock = 3,      ///< r x c blocks (scope, norm)
};

struct PruneSpec {
  PruneMethod method = PruneMethod::kMagnitude;
  double sparsity = 0.5;  ///< kMagnitude / kBlock target
  PruneScope scope = PruneScope::kTensor;
  int n = 2, m = 4;                        ///< kNM
  int block_rows = 1, block_cols = 4;      ///< kBlock
  BlockNorm norm = BlockNorm::kL2;         ///< kBlock
  const float* col_norms = nullptr;        ///< optional Wanda norms, length cols
};

/// Dispatches to the method of `spec`.
Result<PruneMask> prune(const float* w, int64_t rows, int64_t cols, const PruneSpec& spec, std::string_view tensor_name);

}  // namespace slmc
