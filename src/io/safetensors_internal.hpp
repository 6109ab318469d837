// safetensors internals shared by the single-file and the sharded (index.json) readers.
#pragma once

#include <nlohmann/json.hpp>

#include "slmc/io/model_source.hpp"

namespace slmc::io_detail {

/// Parses JSON, rejecting invalid JSON, invalid UTF-8 and duplicate object keys at any depth.
Result<nlohmann::json> parse_json_strict(const char* begin, const char* end, const std::string& file);

/// Validates one safetensors file and appends its tensors (file order) and __metadata__ to `src`.
Status parse_safetensors_into(ModelSource& src, const InputFile& file, uint32_t file_index);

/// After all files are parsed: reads config.json in `dir` (if `look_for_config`), fills the
/// architecture keys and transposes GPT-2 Conv1D weights.
Status finish_safetensors(ModelSource& src, const std::string& dir, bool look_for_config);

}  // namespace slmc::io_detail
