// The legality rule of quantized dense encodings (include/slmc/encoding.hpp).
#include "slmc/encoding.hpp"

namespace slmc {

/// The scheme rules of docs/QUANT.md: which granularity / group size each value type supports.
/// `what` names the tensor. Returns kUnsupported for combinations the kernels do not read.
Status check_quant_scheme(ValueType t, Granularity g, int64_t group_size, DType scale_dtype, const std::string& what) {
  if (t != ValueType::kInt8 && !is_4bit(t)) {
    return make_error(ErrorCode::kInvalidArgument,
                      what + ": value type " + std::to_string(int(t)) + " is not int8, int4 or nl4");
  }
  if (scale_dtype != DType::kF16 && scale_dtype != DType::kF32) {
    return make_error(ErrorCode::kUnsupported, what + ": scale dtype " + std::to_string(int(scale_dtype)) +
                                                   " is not f16 or f32");
  }
  switch (g) {
    case Granularity::kTensor:
      if (is_4bit(t)) {
        return make_error(ErrorCode::kUnsupported, what + ": " + value_type_name(t) +
                                                       " needs per-channel or per-group scales (per-tensor is int8 only)");
      }
      return Status::ok_status();
    case Granularity::kChannel: return Status::ok_status();
    case Granularity::kGroup:
      if (is_4bit(t)) {
        if (group_size == 16 || group_size == 32 || group_size == 64 || group_size == 128 || group_size == 256) {
          return Status::ok_status();
        }
        return make_error(ErrorCode::kUnsupported, what + ": " + value_type_name(t) + " group size " + std::to_string(group_size) +
                                                       " is not one of 16, 32, 64, 128, 256");
      }
      if (group_size >= 16 && group_size % 16 == 0 && group_size <= (int64_t{1} << 30)) return Status::ok_status();
      return make_error(ErrorCode::kUnsupported, what + ": int8 group size " + std::to_string(group_size) +
                                                     " is not a positive multiple of 16");
    case Granularity::kNone: break;
  }
  return make_error(ErrorCode::kInvalidArgument,
                    what + ": granularity " + std::to_string(int(g)) + " is not tensor, channel or group");
}

}  // namespace slmc
