// Calibration without central text: every device (or run) computes activation statistics over
// its own documents (`calibrate`, windows that never cross a document boundary) and only the
// statistics travel; merge_calibrations() combines them as count-weighted sums. docs/FLEET.md §8.
#pragma once

#include <string>
#include <vector>

#include "slmc/convert/converter.hpp"
#include "slmc/status.hpp"

namespace slmc {

struct CalibrationMergeOptions {
  /// Every contribution (one input's entry for one tensor) must rest on at least this many
  /// tokens: statistics of early layers over few tokens can reveal the text (docs/FLEET.md §8.3).
  /// 0 disables the check.
  double min_tokens = 512;
};

/// The statistics of all `inputs` together: for every tensor, count = Σ count_i and
/// mean_sq[j] = Σ count_i · mean_sq_i[j] / count (Gram matrices likewise), accumulated in double
/// in input order, then stored as the format's fp32. A tensor present in some inputs only is the
/// merge of those. `origins` (one per input) name the inputs in errors. Errors: K differs between
/// inputs (kInvalidFormat), a Gram matrix in some contributions of a tensor but not all
/// (kInvalidFormat), a contribution under `min_tokens` (kBudgetExceeded), no inputs
/// (kInvalidArgument).
Result<Calibration> merge_calibrations(const std::vector<Calibration>& inputs, const std::vector<std::string>& origins,
                                       const CalibrationMergeOptions& options = {});

}  // namespace slmc
