// Count-weighted merge of calibration statistics (include/slmc/fleet/calibration_merge.hpp).
#include "slmc/fleet/calibration_merge.hpp"

#include <cmath>
#include <set>

namespace slmc {

Result<Calibration> merge_calibrations(const std::vector<Calibration>& inputs, const std::vector<std::string>& origins,
                                       const CalibrationMergeOptions& options) {
  if (inputs.empty()) return make_error(ErrorCode::kInvalidArgument, "calibrate-merge: no inputs");
  if (origins.size() != inputs.size()) {
    return make_error(ErrorCode::kInvalidArgument, "calibrate-merge: one origin per input is needed");
  }
  if (!(options.min_tokens >= 0) || std::isinf(options.min_tokens)) {
    return make_error(ErrorCode::kInvalidArgument, "calibrate-merge: the minimum token count must be finite and >= 0");
  }
  std::set<std::string> names;
  for (const Calibration& c : inputs) {
    for (const auto& [name, e] : c.tensors) names.insert(name);
  }
  Calibration out;
  for (const std::string& name : names) {
    // The contributions to this tensor, in input order.
    std::vector<size_t> from;
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (inputs[i].tensors.count(name) != 0) from.push_back(i);
    }
    const CalibrationEntry& first = inputs[from[0]].tensors.at(name);
    const size_t k = first.mean_sq.size();
    const bool gram = !first.gram.empty();
    double count = 0;
    for (size_t i : from) {
      const CalibrationEntry& e = inputs[i].tensors.at(name);
      const std::string where = origins[i] + ": tensor '" + name + "'";
      if (e.mean_sq.size() != k) {
        return make_error(ErrorCode::kInvalidFormat, where + " has " + std::to_string(e.mean_sq.size()) +
                                                         " input channels, " + origins[from[0]] + " has " +
                                                         std::to_string(k));
      }
      if (e.gram.empty() == gram) {
        return make_error(ErrorCode::kInvalidFormat,
                          where + (gram ? " has no Gram matrix while " : " has a Gram matrix while ") + origins[from[0]] +
                              (gram ? " has one" : " has none") + " (calibrate all contributions alike)");
      }
      if (!(e.count > 0) || std::isinf(e.count)) {
        return make_error(ErrorCode::kInvalidFormat, where + ": token count " + std::to_string(e.count));
      }
      if (e.count < options.min_tokens) {
        return make_error(ErrorCode::kBudgetExceeded,
                          where + ": " + std::to_string(static_cast<long long>(e.count)) +
                              " tokens, fewer than the minimum of " +
                              std::to_string(static_cast<long long>(options.min_tokens)) +
                              " per contribution (statistics over few tokens can reveal the text)");
      }
      count += e.count;
    }
    CalibrationEntry merged;
    merged.count = count;
    std::vector<double> acc(k, 0.0);
    for (size_t i : from) {
      const CalibrationEntry& e = inputs[i].tensors.at(name);
      for (size_t j = 0; j < k; ++j) acc[j] += e.count * static_cast<double>(e.mean_sq[j]);
    }
    merged.mean_sq.resize(k);
    for (size_t j = 0; j < k; ++j) merged.mean_sq[j] = static_cast<float>(acc[j] / count);
    if (gram) {
      std::vector<double> g(k * k, 0.0);
      for (size_t i : from) {
        const CalibrationEntry& e = inputs[i].tensors.at(name);
        for (size_t j = 0; j < k * k; ++j) g[j] += e.count * static_cast<double>(e.gram[j]);
      }
      merged.gram.resize(k * k);
      for (size_t j = 0; j < k * k; ++j) merged.gram[j] = static_cast<float>(g[j] / count);
    }
    out.tensors.emplace(name, std::move(merged));
  }
  return out;
}

}  // namespace slmc
