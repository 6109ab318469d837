// Pruning masks: exact-count selection by radix select on score bits (scores are finite and >= 0,
// so their IEEE bit patterns order like the values), deterministic tie-breaking by position.
#include "slmc/prune/prune.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <mutex>
#include <string>

#include "slmc/half.hpp"
#include "slmc/parallel.hpp"
#include "slmc/tensor.hpp"

namespace slmc {
namespace {

std::string who(std::string_view name) { return "tensor '" + std::string(name) + "': "; }

inline uint32_t abs_bits(float x) noexcept { return float_bits(x) & 0x7fffffffu; }

struct Selection {
  uint32_t threshold = 0;  ///< key of the k-th smallest key
  int64_t less = 0;        ///< keys strictly below the threshold
  int64_t equal = 0;       ///< keys equal to the threshold
};

/// A run of score keys in ranking order (one tensor, one row, ...).
struct KeySpan {
  const uint32_t* keys;
  int64_t n;
};

/// Keys per parallel chunk: large enough that the 2048-bin histogram merge is noise.
constexpr int64_t kHistGrain = int64_t{1} << 16;

/// Adds to `hist` the digit (x >> shift) & dm of every key x with (x & prefix_mask) == prefix.
/// Parallel over chunks; integer sums make the result independent of the thread count.
void histogram(const std::vector<KeySpan>& spans, uint32_t prefix, uint32_t prefix_mask, int shift, uint32_t dm,
               std::array<int64_t, 2048>& hist) {
  std::mutex mu;
  for (const KeySpan& sp : spans) {
    const int threads = sp.n >= 2 * kHistGrain ? 0 : 1;
    parallel_for(sp.n, kHistGrain, threads, [&](int64_t b, int64_t e) {
      std::array<int64_t, 2048> local{};
      if (prefix_mask == 0) {
        for (int64_t i = b; i < e; ++i) ++local[(sp.keys[i] >> shift) & dm];
      } else {
        for (int64_t i = b; i < e; ++i) {
          const uint32_t x = sp.keys[i];
          if ((x & prefix_mask) == prefix) ++local[(x >> shift) & dm];
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      for (size_t j = 0; j < local.size(); ++j) hist[j] += local[j];
    });
  }
}

/// k-th smallest (0-based) key over all spans, by three histogram passes over 11 + 11 + 10 bits.
Selection radix_select(const std::vector<KeySpan>& spans, int64_t k) {
  static constexpr int kShift[3] = {21, 10, 0};
  static constexpr uint32_t kDigitMask[3] = {0x7ffu, 0x7ffu, 0x3ffu};
  Selection sel;
  uint32_t prefix = 0, prefix_mask = 0;
  std::array<int64_t, 2048> hist;
  for (int pass = 0; pass < 3; ++pass) {
    hist.fill(0);
    const int shift = kShift[pass];
    const uint32_t dm = kDigitMask[pass];
    histogram(spans, prefix, prefix_mask, shift, dm, hist);
    uint32_t b = 0;
    int64_t below = 0;
    while (below + hist[b] <= k) below += hist[b++];
    sel.less += below;
    k -= below;
    prefix |= b << shift;
    prefix_mask |= dm << shift;
    sel.equal = hist[b];
  }
  sel.threshold = prefix;
  return sel;
}

/// Builds keep masks (one per span, same lengths) that keep all but the `prune` least important
/// keys over the spans taken in order. Returns the threshold key (0 when nothing is pruned, the
/// largest key when everything is).
uint32_t select_keep_spans(const std::vector<KeySpan>& spans, const std::vector<uint8_t*>& keeps, int64_t prune) {
  int64_t n = 0;
  for (const KeySpan& sp : spans) n += sp.n;
  if (prune <= 0 || prune >= n) {
    uint32_t mx = 0;
    for (size_t s = 0; s < spans.size(); ++s) {
      std::fill(keeps[s], keeps[s] + spans[s].n, prune <= 0 ? 1 : 0);
      if (prune > 0) {
        for (int64_t i = 0; i < spans[s].n; ++i) mx = std::max(mx, spans[s].keys[i]);
      }
    }
    return mx;
  }
  const Selection sel = radix_select(spans, prune - 1);
  const uint32_t t = sel.threshold;
  int64_t tie_keep = sel.equal - (prune - sel.less);
  // Strictly above the threshold: kept (parallel, vectorizable); then the first tie_keep ties in
  // order are kept.
  for (size_t s = 0; s < spans.size(); ++s) {
    const uint32_t* keys = spans[s].keys;
    uint8_t* keep = keeps[s];
    const int threads = spans[s].n >= 2 * kHistGrain ? 0 : 1;
    parallel_for(spans[s].n, kHistGrain, threads, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) keep[i] = keys[i] > t ? 1 : 0;
    });
  }
  for (size_t s = 0; s < spans.size() && tie_keep > 0; ++s) {
    for (int64_t i = 0; i < spans[s].n && tie_keep > 0; ++i) {
      if (spans[s].keys[i] == t) {
        keeps[s][i] = 1;
        --tie_keep;
      }
    }
  }
  return t;
}

/// Selection over keys[0..n): keep[i] for the n - prune most important.
void select_keep(const uint32_t* keys, int64_t n, int64_t prune, uint8_t* keep) {
  select_keep_spans({KeySpan{keys, n}}, {keep}, prune);
}

Status check_shape(const float* w, int64_t rows, int64_t cols, std::string_view name) {
  if (rows < 0 || cols < 0 || (cols != 0 && rows > kMaxTensorElements / cols)) {
    return make_error(ErrorCode::kOutOfRange, who(name) + "bad shape [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
  }
  if (rows * cols > 0 && w == nullptr) return make_error(ErrorCode::kInvalidArgument, who(name) + "null weights");
  return Status::ok_status();
}

Status check_sparsity(double s, std::string_view name) {
  if (!(s >= 0.0 && s <= 1.0)) {
    return make_error(ErrorCode::kInvalidArgument, who(name) + "sparsity " + std::to_string(s) + " not in [0, 1]");
  }
  return Status::ok_status();
}

Status check_norms(const float* col_norms, int64_t cols, std::string_view name) {
  if (!col_norms) return Status::ok_status();
  for (int64_t j = 0; j < cols; ++j) {
    if (!std::isfinite(col_norms[j]) || col_norms[j] < 0.0f) {
      return make_error(ErrorCode::kInvalidArgument, who(name) + "input-channel norm [" + std::to_string(j) + "] = " +
                                                         std::to_string(col_norms[j]) + " (must be finite and >= 0)");
    }
  }
  return Status::ok_status();
}

/// Error for the first non-finite weight (called only when one exists).
Status non_finite_error(const float* w, int64_t rows, int64_t cols, std::string_view name) {
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (!std::isfinite(w[i])) {
      return make_error(ErrorCode::kNonFinite, who(name) + "non-finite weight " + std::to_string(w[i]) + " at [" +
                                                   std::to_string(i / cols) + ", " + std::to_string(i % cols) + "]");
    }
  }
  return make_error(ErrorCode::kInternal, who(name) + "non-finite weight not found again");
}

/// Score keys for the whole matrix: the bit patterns of |w| or |w| * norm (finite scores >= 0
/// order like their bits). One pass; finiteness is checked branch-free and reported afterwards.
Result<std::vector<uint32_t>> score_keys(const float* w, int64_t rows, int64_t cols, const float* col_norms,
                                         std::string_view name) {
  SLMC_RETURN_IF_ERROR(check_norms(col_norms, cols, name));
  std::vector<uint32_t> keys(static_cast<size_t>(rows * cols));
  uint32_t max_abs_bits = 0;
  std::mutex mu;
  const int64_t grain = std::max<int64_t>(1, kHistGrain / std::max<int64_t>(cols, 1));
  parallel_for(rows, grain, rows * cols >= 2 * kHistGrain ? 0 : 1, [&](int64_t r0, int64_t r1) {
    uint32_t local_max = 0;
    for (int64_t r = r0; r < r1; ++r) {
      const float* wr = w + r * cols;
      uint32_t* kr = keys.data() + r * cols;
      if (col_norms) {
        for (int64_t j = 0; j < cols; ++j) {
          const uint32_t a = abs_bits(wr[j]);
          local_max = std::max(local_max, a);
          kr[j] = float_bits(bits_float(a) * col_norms[j]);
        }
      } else {
        for (int64_t j = 0; j < cols; ++j) {
          const uint32_t a = abs_bits(wr[j]);
          local_max = std::max(local_max, a);
          kr[j] = a;
        }
      }
    }
    std::lock_guard<std::mutex> lock(mu);
    max_abs_bits = std::max(max_abs_bits, local_max);
  });
  if (max_abs_bits >= 0x7f800000u) return non_finite_error(w, rows, cols, name);
  return keys;
}

PruneMask make_mask(int64_t rows, int64_t cols) {
  PruneMask m;
  m.rows = rows;
  m.cols = cols;
  m.keep.assign(static_cast<size_t>(rows * cols), 0);
  return m;
}

void count_kept(PruneMask& m) {
  int64_t k = 0;
  for (uint8_t x : m.keep) k += x;
  m.kept = k;
}

}  // namespace

int64_t pruned_count(int64_t n, double sparsity) noexcept {
  if (n <= 0 || !(sparsity > 0.0)) return 0;
  if (sparsity >= 1.0) return n;
  const long double p = std::floor(static_cast<long double>(sparsity) * static_cast<long double>(n) + 0.5L);
  return std::min<int64_t>(n, static_cast<int64_t>(p));
}

Result<std::vector<float>> wanda_column_norms(const float* mean_sq, int64_t cols, double count,
                                              std::string_view tensor_name) {
  if (cols < 0 || (cols > 0 && mean_sq == nullptr)) {
    return make_error(ErrorCode::kInvalidArgument, who(tensor_name) + "missing activation statistics");
  }
  if (!(count > 0.0) || !std::isfinite(count)) {
    return make_error(ErrorCode::kInvalidArgument, who(tensor_name) + "activation count " + std::to_string(count) + " must be > 0");
  }
  std::vector<float> out(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) {
    const float v = mean_sq[j];
    if (!std::isfinite(v) || v < 0.0f) {
      return make_error(ErrorCode::kInvalidArgument, who(tensor_name) + "mean_sq[" + std::to_string(j) + "] = " +
                                                         std::to_string(v) + " (must be finite and >= 0)");
    }
    out[static_cast<size_t>(j)] = static_cast<float>(std::sqrt(static_cast<double>(v) * count));
  }
  return out;
}

Status importance_scores(const float* w, int64_t rows, int64_t cols, const float* col_norms, float* out,
                         std::string_view tensor_name) {
  SLMC_RETURN_IF_ERROR(check_shape(w, rows, cols, tensor_name));
  SLMC_ASSIGN_OR_RETURN(std::vector<uint32_t> keys, score_keys(w, rows, cols, col_norms, tensor_name));
  for (size_t i = 0; i < keys.size(); ++i) out[i] = bits_float(keys[i]);
  return Status::ok_status();
}

Result<PruneMask> prune_unstructured(const float* w, int64_t rows, int64_t cols, double sparsity, PruneScope scope,
                                     const float* col_norms, std::string_view tensor_name) {
  SLMC_RETURN_IF_ERROR(check_shape(w, rows, cols, tensor_name));
  SLMC_RETURN_IF_ERROR(check_sparsity(sparsity, tensor_name));
  SLMC_ASSIGN_OR_RETURN(std::vector<uint32_t> keys, score_keys(w, rows, cols, col_norms, tensor_name));
  PruneMask m = make_mask(rows, cols);
  if (scope == PruneScope::kRow) {
    const int64_t prune = pruned_count(cols, sparsity);
    parallel_for(rows, 8, 0, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) select_keep(keys.data() + r * cols, cols, prune, m.keep.data() + r * cols);
    });
  } else {
    select_keep(keys.data(), rows * cols, pruned_count(rows * cols, sparsity), m.keep.data());
  }
  count_kept(m);
  return m;
}

Result<PruneMask> prune_n_m(const float* w, int64_t rows, int64_t cols, int n, int m, const float* col_norms,
                            std::string_view tensor_name) {
  SLMC_RETURN_IF_ERROR(check_shape(w, rows, cols, tensor_name));
  if (m < 2 || m > 16 || n < 1 || n >= m) {
    return make_error(ErrorCode::kInvalidArgument, who(tensor_name) + "N:M pattern " + std::to_string(n) + ":" +
                                                       std::to_string(m) + " (need 1 <= N < M <= 16)");
  }
  SLMC_ASSIGN_OR_RETURN(std::vector<uint32_t> scores, score_keys(w, rows, cols, col_norms, tensor_name));
  PruneMask mask = make_mask(rows, cols);
  parallel_for(rows, 8, 0, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const uint32_t* s = scores.data() + r * cols;
      uint8_t* keep = mask.keep.data() + r * cols;
      for (int64_t base = 0; base < cols; base += m) {
        const int real = static_cast<int>(std::min<int64_t>(m, cols - base));
        // Keep the min(n, real) most important: repeatedly take the best remaining (higher score,
        // then lower position) — at most 16 x 16 comparisons.
        for (int picked = 0; picked < std::min(n, real); ++picked) {
          int best = -1;
          for (int j = 0; j < real; ++j) {
            if (keep[base + j]) continue;
            if (best < 0 || s[base + j] > s[base + best]) best = j;
          }
          keep[base + best] = 1;
        }
      }
    }
  });
  count_kept(mask);
  return mask;
}

Result<PruneMask> prune_blocks(const float* w, int64_t rows, int64_t cols, int block_rows, int block_cols,
                               double sparsity, BlockNorm norm, PruneScope scope, const float* col_norms,
                               std::string_view tensor_name) {
  SLMC_RETURN_IF_ERROR(check_shape(w, rows, cols, tensor_name));
  SLMC_RETURN_IF_ERROR(check_sparsity(sparsity, tensor_name));
  if (block_rows < 1 || block_cols < 1 || block_rows > 64 || block_cols > 64) {
    return make_error(ErrorCode::kInvalidArgument, who(tensor_name) + "block " + std::to_string(block_rows) + "x" +
                                                       std::to_string(block_cols) + " (sides must be 1..64)");
  }
  SLMC_ASSIGN_OR_RETURN(std::vector<uint32_t> scores, score_keys(w, rows, cols, col_norms, tensor_name));
  const int64_t br = block_rows, bc = block_cols;
  const int64_t nbr = (rows + br - 1) / br, nbc = (cols + bc - 1) / bc;
  std::vector<uint32_t> keys(static_cast<size_t>(nbr * nbc));
  parallel_for(nbr, 4, 0, [&](int64_t b0, int64_t b1) {
    std::vector<double> acc(static_cast<size_t>(nbc));
    for (int64_t b = b0; b < b1; ++b) {
      std::fill(acc.begin(), acc.end(), 0.0);
      const int64_t r_end = std::min(rows, (b + 1) * br);
      for (int64_t r = b * br; r < r_end; ++r) {
        const uint32_t* s = scores.data() + r * cols;
        for (int64_t j = 0; j < nbc; ++j) {
          const int64_t c1 = std::min(cols, (j + 1) * bc);
          double a = 0;
          for (int64_t c = j * bc; c < c1; ++c) {
            const double v = bits_float(s[c]);
            a += norm == BlockNorm::kL1 ? v : v * v;
          }
          acc[static_cast<size_t>(j)] += a;
        }
      }
      for (int64_t j = 0; j < nbc; ++j) {
        const double count = static_cast<double>((r_end - b * br) * (std::min(cols, (j + 1) * bc) - j * bc));
        const double mean = acc[static_cast<size_t>(j)] / count;
        const float score = static_cast<float>(norm == BlockNorm::kL1 ? mean : std::sqrt(mean));
        keys[static_cast<size_t>(b * nbc + j)] = float_bits(score);
      }
    }
  });
  std::vector<uint8_t> block_keep(keys.size());
  if (scope == PruneScope::kRow) {
    const int64_t prune = pruned_count(nbc, sparsity);
    for (int64_t b = 0; b < nbr; ++b) select_keep(keys.data() + b * nbc, nbc, prune, block_keep.data() + b * nbc);
  } else {
    select_keep(keys.data(), nbr * nbc, pruned_count(nbr * nbc, sparsity), block_keep.data());
  }
  PruneMask mask = make_mask(rows, cols);
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* bk = block_keep.data() + (r / br) * nbc;
    uint8_t* keep = mask.keep.data() + r * cols;
    for (int64_t c = 0; c < cols; ++c) keep[c] = bk[c / bc];
  }
  count_kept(mask);
  return mask;
}

Result<GlobalPruneResult> prune_global(const std::vector<PruneInput>& inputs, double sparsity) {
  SLMC_RETURN_IF_ERROR(check_sparsity(sparsity, "<global>"));
  GlobalPruneResult res;
  std::vector<std::vector<uint32_t>> keys;
  keys.reserve(inputs.size());
  for (const PruneInput& in : inputs) {
    SLMC_RETURN_IF_ERROR(check_shape(in.w, in.rows, in.cols, in.name));
    SLMC_ASSIGN_OR_RETURN(std::vector<uint32_t> k, score_keys(in.w, in.rows, in.cols, in.col_norms, in.name));
    keys.push_back(std::move(k));
    res.total += in.rows * in.cols;
  }
  const int64_t prune = pruned_count(res.total, sparsity);
  std::vector<KeySpan> spans;
  std::vector<uint8_t*> keeps;
  for (size_t t = 0; t < inputs.size(); ++t) res.masks.push_back(make_mask(inputs[t].rows, inputs[t].cols));
  for (size_t t = 0; t < inputs.size(); ++t) {
    spans.push_back(KeySpan{keys[t].data(), static_cast<int64_t>(keys[t].size())});
    keeps.push_back(res.masks[t].keep.data());
  }
  const uint32_t threshold = select_keep_spans(spans, keeps, prune);
  res.threshold = prune > 0 ? bits_float(threshold) : 0.0f;
  for (PruneMask& m : res.masks) {
    count_kept(m);
    res.kept += m.kept;
  }
  return res;
}

void apply_mask(const PruneMask& mask, const float* w, float* out) noexcept {
  const int64_t n = mask.size();
  for (int64_t i = 0; i < n; ++i) out[i] = mask.keep[static_cast<size_t>(i)] ? w[i] : 0.0f;
}

double scheduled_sparsity(const SparsitySchedule& s, int64_t step) noexcept {
  if (step < s.begin_step) return s.initial_sparsity;
  if (s.kind == SparsitySchedule::Kind::kConstant) return s.final_sparsity;
  if (step >= s.end_step || s.end_step <= s.begin_step) return s.final_sparsity;
  const int64_t freq = std::max<int64_t>(1, s.frequency);
  const int64_t t = s.begin_step + (step - s.begin_step) / freq * freq;
  const double progress = static_cast<double>(t - s.begin_step) / static_cast<double>(s.end_step - s.begin_step);
  return s.final_sparsity + (s.initial_sparsity - s.final_sparsity) * std::pow(1.0 - progress, s.exponent);
}

Status validate_schedule(const SparsitySchedule& s) {
  auto in01 = [](double x) { return x >= 0.0 && x <= 1.0; };
  if (!in01(s.initial_sparsity) || !in01(s.final_sparsity)) {
    return make_error(ErrorCode::kInvalidArgument, "sparsity schedule: sparsities " + std::to_string(s.initial_sparsity) +
                                                       ", " + std::to_string(s.final_sparsity) + " not in [0, 1]");
  }
  if (s.end_step < s.begin_step || s.frequency < 1 || !(s.exponent > 0.0)) {
    return make_error(ErrorCode::kInvalidArgument, "sparsity schedule: need end_step >= begin_step, frequency >= 1, exponent > 0");
  }
  return Status::ok_status();
}

Result<PruneMask> prune(const float* w, int64_t rows, int64_t cols, const PruneSpec& spec, std::string_view tensor_name) {
  switch (spec.method) {
    case PruneMethod::kNone: {
      SLMC_RETURN_IF_ERROR(check_shape(w, rows, cols, tensor_name));
      PruneMask m = make_mask(rows, cols);
      for (int64_t i = 0; i < rows * cols; ++i) m.keep[static_cast<size_t>(i)] = w[i] != 0.0f;
      count_kept(m);
      return m;
    }
    case PruneMethod::kMagnitude:
      return prune_unstructured(w, rows, cols, spec.sparsity, spec.scope, spec.col_norms, tensor_name);
    case PruneMethod::kNM: return prune_n_m(w, rows, cols, spec.n, spec.m, spec.col_norms, tensor_name);
    case PruneMethod::kBlock:
      return prune_blocks(w, rows, cols, spec.block_rows, spec.block_cols, spec.sparsity, spec.norm, spec.scope,
                          spec.col_norms, tensor_name);
  }
  return make_error(ErrorCode::kInvalidArgument, who(tensor_name) + "unknown pruning method " +
                                                     std::to_string(static_cast<int>(spec.method)));
}

}  // namespace slmc
