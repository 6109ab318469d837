// The per-layer activation rules a model file stores (include/slmc/kernels/linear.hpp, ActRule),
// read the same way by the Llama and BERT runtimes (internal).
#pragma once

#include <string>
#include <vector>

#include "slmc/format/model_file.hpp"
#include "slmc/kernels/linear.hpp"
#include "slmc/status.hpp"

namespace slmc::runtime_detail {

/// The rules in `h`'s metadata (none when the key is absent); a value that does not parse is the
/// file's fault: kInvalidFormat naming `path` and the key.
inline Result<std::vector<ActRule>> stored_act_rules(const ModelHeader& h, const std::string& path) {
  const auto it = h.metadata.find(kActRulesKey);
  if (it == h.metadata.end()) return std::vector<ActRule>{};
  Result<std::vector<ActRule>> rules = parse_act_rules(it->second.text);
  if (!rules.ok()) {
    return make_error(ErrorCode::kInvalidFormat, path + ": metadata '" + kActRulesKey + "': " + rules.status().message());
  }
  return rules;
}

}  // namespace slmc::runtime_detail
