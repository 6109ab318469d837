// Validation of dense encodings (include/slmc/quant/validate.hpp).
#include "slmc/quant/validate.hpp"

#include <cmath>
#include <cstdint>
#include <string>

#include "quant/detail/common.hpp"
#include "slmc/layout.hpp"
#include "slmc/tensor.hpp"

namespace slmc {

Status validate_dense_matrix(const EncodedMatrixView& view, std::string_view tensor_name) {
  using namespace quant_detail;
  const std::string what = tensor_label(tensor_name);
  const Encoding& e = view.encoding;
  auto bad = [&](const std::string& msg) { return make_error(ErrorCode::kInvalidFormat, what + ": " + msg); };

  const auto vt_raw = static_cast<unsigned>(e.value_type);
  if (vt_raw > static_cast<unsigned>(ValueType::kNl4)) return bad("unknown value type " + std::to_string(vt_raw));
  if (e.value_type == ValueType::kNl4 && !e.symmetric) return bad("nl4 is symmetric only (no mins)");
  if (e.format != SparseFormat::kDense) {
    return bad("format " + std::to_string(int(e.format)) + " is not dense (validate_dense_matrix)");
  }
  if (e.nm_n != 0 || e.nm_m != 0 || e.block_rows != 0 || e.block_cols != 0) {
    return bad("dense encoding has non-zero sparse parameters");
  }
  const auto layout_raw = static_cast<unsigned>(e.layout);
  if (layout_raw != 1 && layout_raw != 4 && layout_raw != 8) {
    return bad("unknown row layout " + std::to_string(layout_raw));
  }
  if (static_cast<unsigned>(e.search) > static_cast<unsigned>(ScaleSearch::kWeighted)) {
    return bad("unknown scale search " + std::to_string(int(e.search)));
  }
  if (view.rows <= 0 || view.cols <= 0) {
    return bad("shape [" + std::to_string(view.rows) + ", " + std::to_string(view.cols) + "] is empty or negative");
  }
  if (view.rows > kMaxTensorElements / view.cols) {
    return make_error(ErrorCode::kOutOfRange, what + ": shape [" + std::to_string(view.rows) + ", " +
                                                  std::to_string(view.cols) + "] has more than 2^52 elements");
  }

  auto check_segment = [&](SegmentRole role, uint64_t expected) -> Status {
    const SegmentView& s = view.segment(role);
    if (s.nbytes != expected) {
      return bad(std::string(segment_role_name(role)) + " segment has " + std::to_string(s.nbytes) +
                 " bytes, the encoding needs " + std::to_string(expected));
    }
    if (s.nbytes != 0 && s.data == nullptr) return bad(std::string(segment_role_name(role)) + " segment has null data");
    return Status::ok_status();
  };
  for (SegmentRole role : {SegmentRole::kRowPtr, SegmentRole::kColIdx, SegmentRole::kMeta}) {
    SLMC_RETURN_IF_ERROR(check_segment(role, 0));
  }

  const size_t float_bytes = float_value_bytes(e.value_type);
  if (float_bytes != 0) {
    if (e.granularity != Granularity::kNone || e.group_size != 0) {
      return bad("float encoding has quantization parameters (granularity " + std::to_string(int(e.granularity)) +
                 ", group size " + std::to_string(e.group_size) + ")");
    }
    if (e.layout != RowLayout::kRows) return bad("float encoding must use plain rows");
    SLMC_RETURN_IF_ERROR(check_segment(SegmentRole::kValues, static_cast<uint64_t>(view.rows * view.cols) * float_bytes));
    SLMC_RETURN_IF_ERROR(check_segment(SegmentRole::kScales, 0));
    return check_segment(SegmentRole::kMins, 0);
  }

  const auto gran_raw = static_cast<unsigned>(e.granularity);
  if (gran_raw > static_cast<unsigned>(Granularity::kGroup)) return bad("unknown granularity " + std::to_string(gran_raw));
  if (e.granularity != Granularity::kGroup && e.group_size != 0) {
    return bad("group size " + std::to_string(e.group_size) + " given for a non-group granularity");
  }
  if (!is_valid_dtype(static_cast<uint32_t>(e.scale_dtype))) {
    return bad("unknown scale dtype " + std::to_string(int(e.scale_dtype)));
  }
  {
    Status s = check_quant_scheme(e.value_type, e.granularity, e.group_size, e.scale_dtype, what);
    if (!s.ok()) return s.code() == ErrorCode::kUnsupported ? s : Status(ErrorCode::kInvalidFormat, s.message());
  }
  // K padded to whole chunks must not overflow either (cols <= 2^52, so it cannot).
  const DenseQuantLayout l(view.rows, view.cols, e);
  const uint64_t sbytes = static_cast<uint64_t>(l.scale_count()) * scale_bytes(e.scale_dtype);
  SLMC_RETURN_IF_ERROR(check_segment(SegmentRole::kValues, static_cast<uint64_t>(l.values_bytes())));
  SLMC_RETURN_IF_ERROR(check_segment(SegmentRole::kScales, sbytes));
  SLMC_RETURN_IF_ERROR(check_segment(SegmentRole::kMins, e.symmetric ? 0 : sbytes));

  // Scales (and mins) must be finite: a NaN/Inf scale would poison every output it touches.
  for (SegmentRole role : {SegmentRole::kScales, SegmentRole::kMins}) {
    const SegmentView& s = view.segment(role);
    const int64_t n = static_cast<int64_t>(s.nbytes / scale_bytes(e.scale_dtype));
    for (int64_t i = 0; i < n; ++i) {
      const float v = load_scale(s.data, i, e.scale_dtype);
      if (!std::isfinite(v)) {
        // Report the (row, group) of the bad scale: invert scale_index by search (cold path).
        int64_t bad_row = -1, bad_group = -1;
        for (int64_t r = 0; r < l.rows && bad_row < 0; ++r) {
          for (int64_t g = 0; g < l.groups; ++g) {
            if (l.scale_index(r, g) == i) {
              bad_row = r;
              bad_group = g;
              break;
            }
          }
        }
        return make_error(ErrorCode::kNonFinite,
                          what + ": " + std::string(segment_role_name(role)) + "[" + std::to_string(i) + "] (row " +
                              std::to_string(bad_row) + ", group " + std::to_string(bad_group) + ") is " +
                              (std::isnan(v) ? "NaN" : "Inf"));
      }
    }
  }
  return Status::ok_status();
}

}  // namespace slmc
