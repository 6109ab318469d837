// validate_dense_matrix: accepts what the quantizers write, rejects every kind of corruption a
// hostile file could carry, with the tensor name in the message; dequantize refuses bad views.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "quant/detail/common.hpp"
#include "slmc/layout.hpp"
#include "slmc/quant/dequantize.hpp"
#include "slmc/quant/quantize.hpp"
#include "slmc/quant/validate.hpp"
#include "support/quant.hpp"
#include "support/random.hpp"

using namespace slmc;

namespace {

EncodedMatrix make(ValueType vt, bool sym, Granularity g = Granularity::kGroup, int gs = 32,
                   DType sd = DType::kF16, RowLayout rl = RowLayout::kRows) {
  const auto w = test::gaussian(13 * 70, 3);
  const QuantConfig c = test::make_cfg(vt, g, gs, sym, ScaleSearch::kMse, sd, rl);
  auto r = quantize("t", w.data(), 13, 70, c);
  REQUIRE(r.ok());
  return std::move(r).value();
}

void expect_rejected(const EncodedMatrixView& v, ErrorCode code, const std::string& needle) {
  const Status s = validate_dense_matrix(v, "blk.3.ffn_up");
  INFO(s.to_string());
  REQUIRE(!s.ok());
  CHECK(s.code() == code);
  CHECK(s.message().find("blk.3.ffn_up") != std::string::npos);
  CHECK(s.message().find(needle) != std::string::npos);
  std::vector<float> out(static_cast<size_t>(v.rows > 0 && v.cols > 0 && v.rows < 1000 && v.cols < 1000 ? v.rows * v.cols : 1));
  CHECK(!dequantize(v, out.data()).ok());
}

}  // namespace

TEST_CASE("validate accepts every encoding the quantizers write", "[quant][validate]") {
  for (ValueType vt : {ValueType::kInt8, ValueType::kInt4})
    for (bool sym : {true, false})
      for (RowLayout rl : {RowLayout::kRows, RowLayout::kInterleave4, RowLayout::kInterleave8})
        for (DType sd : {DType::kF16, DType::kF32}) {
          const auto e = make(vt, sym, Granularity::kGroup, 16, sd, rl);
          CHECK(validate_dense_matrix(e.view(), "t").ok());
          CHECK(validate_dense_matrix(make(vt, sym, Granularity::kChannel, 0, sd, rl).view(), "t").ok());
        }
  CHECK(validate_dense_matrix(make(ValueType::kInt8, true, Granularity::kTensor, 0).view(), "t").ok());
  const auto w = test::gaussian(70, 4);
  for (ValueType vt : {ValueType::kF32, ValueType::kF16, ValueType::kBF16}) {
    auto f = encode_float("n", w.data(), 1, 70, vt);
    REQUIRE(f.ok());
    CHECK(validate_dense_matrix(f->view(), "n").ok());
  }
}

TEST_CASE("validate rejects corrupted encodings", "[quant][validate]") {
  const EncodedMatrix sym = make(ValueType::kInt4, true);
  const EncodedMatrix asym = make(ValueType::kInt8, false, Granularity::kChannel, 0, DType::kF32, RowLayout::kInterleave4);
  using Mutate = std::function<void(EncodedMatrixView&)>;
  struct Corruption {
    const char* what;
    const EncodedMatrix* base;
    Mutate mutate;
    ErrorCode code;
    const char* needle;
  };
  const auto F = ErrorCode::kInvalidFormat;
  std::vector<Corruption> cs = {
      {"value type", &sym, [](EncodedMatrixView& v) { v.encoding.value_type = static_cast<ValueType>(9); }, F, "value type"},
      {"sparse format", &sym, [](EncodedMatrixView& v) { v.encoding.format = SparseFormat::kCsr; }, F, "not dense"},
      {"nm params", &sym, [](EncodedMatrixView& v) { v.encoding.nm_n = 2; }, F, "sparse parameters"},
      {"layout", &sym, [](EncodedMatrixView& v) { v.encoding.layout = static_cast<RowLayout>(3); }, F, "row layout"},
      {"search", &sym, [](EncodedMatrixView& v) { v.encoding.search = static_cast<ScaleSearch>(7); }, F, "scale search"},
      {"granularity", &sym, [](EncodedMatrixView& v) { v.encoding.granularity = static_cast<Granularity>(7); }, F, "granularity"},
      {"granularity none", &sym, [](EncodedMatrixView& v) { v.encoding.granularity = Granularity::kNone; }, F, "granularity"},
      {"int4 group 48", &sym, [](EncodedMatrixView& v) { v.encoding.group_size = 48; }, ErrorCode::kUnsupported, "group size 48"},
      {"int4 group 0", &sym, [](EncodedMatrixView& v) { v.encoding.group_size = 0; }, ErrorCode::kUnsupported, "group size 0"},
      {"int4 group negative", &sym, [](EncodedMatrixView& v) { v.encoding.group_size = -32; }, ErrorCode::kUnsupported, "group size"},
      {"int4 per tensor", &sym, [](EncodedMatrixView& v) { v.encoding.granularity = Granularity::kTensor; v.encoding.group_size = 0; }, ErrorCode::kUnsupported, "per-tensor"},
      {"channel with group size", &asym, [](EncodedMatrixView& v) { v.encoding.group_size = 32; }, F, "non-group"},
      {"scale dtype bf16", &sym, [](EncodedMatrixView& v) { v.encoding.scale_dtype = DType::kBF16; }, ErrorCode::kUnsupported, "scale dtype"},
      {"scale dtype unknown", &sym, [](EncodedMatrixView& v) { v.encoding.scale_dtype = static_cast<DType>(99); }, F, "scale dtype"},
      {"empty rows", &sym, [](EncodedMatrixView& v) { v.rows = 0; }, F, "empty"},
      {"negative cols", &sym, [](EncodedMatrixView& v) { v.cols = -70; }, F, "empty"},
      {"huge shape", &sym, [](EncodedMatrixView& v) { v.rows = int64_t{1} << 40; v.cols = int64_t{1} << 30; }, ErrorCode::kOutOfRange, "2^52"},
      {"more rows than data", &sym, [](EncodedMatrixView& v) { v.rows = 14; }, F, "values segment"},
      {"truncated values", &sym, [](EncodedMatrixView& v) { v.segments[0].nbytes -= 1; }, F, "values segment has"},
      {"extra scale bytes", &sym, [](EncodedMatrixView& v) { v.segments[1].nbytes += 2; }, F, "scales segment"},
      {"mins on symmetric", &sym, [](EncodedMatrixView& v) { v.segments[2] = v.segments[1]; }, F, "mins segment"},
      {"mins missing", &asym, [](EncodedMatrixView& v) { v.segments[2] = SegmentView{}; }, F, "mins segment"},
      {"now symmetric", &asym, [](EncodedMatrixView& v) { v.encoding.symmetric = true; }, F, "mins segment"},
      {"row_ptr present", &sym, [](EncodedMatrixView& v) { v.segments[3] = v.segments[1]; }, F, "row_ptr"},
      {"null values", &sym, [](EncodedMatrixView& v) { v.segments[0].data = nullptr; }, F, "null data"},
      {"values as int8", &sym, [](EncodedMatrixView& v) { v.encoding.value_type = ValueType::kInt8; }, F, "values segment"},
      {"float type", &sym, [](EncodedMatrixView& v) { v.encoding.value_type = ValueType::kF16; }, F, "quantization parameters"},
  };
  for (auto& c : cs) {
    EncodedMatrixView v = c.base->view();
    c.mutate(v);
    INFO(c.what);
    expect_rejected(v, c.code, c.needle);
  }
}

TEST_CASE("validate rejects non-finite scales and mins with their position", "[quant][validate]") {
  for (DType sd : {DType::kF16, DType::kF32}) {
    EncodedMatrix e = make(ValueType::kInt4, false, Granularity::kGroup, 32, sd, RowLayout::kInterleave8);
    const DenseQuantLayout l(e.rows, e.cols, e.encoding);
    const int64_t idx = l.scale_index(9, 2);  // row 9 is past the interleaved block (13 rows, R = 8)
    for (SegmentRole role : {SegmentRole::kScales, SegmentRole::kMins}) {
      for (float bad : {NAN, INFINITY, -INFINITY}) {
        EncodedMatrix copy;
        copy.rows = e.rows;
        copy.cols = e.cols;
        copy.encoding = e.encoding;
        for (size_t i = 0; i < e.segments.size(); ++i) copy.segments[i] = e.segments[i].clone();
        quant_detail::store_scale(copy.segment(role).data(), idx, sd, bad);
        INFO(segment_role_name(role) << " " << bad);
        expect_rejected(copy.view(), ErrorCode::kNonFinite, "(row 9, group 2)");
      }
    }
  }
}

TEST_CASE("validate checks float encodings", "[quant][validate]") {
  const auto w = test::gaussian(4 * 10, 5);
  auto f = encode_float("n", w.data(), 4, 10, ValueType::kF16);
  REQUIRE(f.ok());
  EncodedMatrixView v = f->view();
  v.segments[0].nbytes = 79;
  expect_rejected(v, ErrorCode::kInvalidFormat, "values segment has 79 bytes, the encoding needs 80");
  v = f->view();
  v.encoding.layout = RowLayout::kInterleave4;
  expect_rejected(v, ErrorCode::kInvalidFormat, "plain rows");
  v = f->view();
  v.encoding.granularity = Granularity::kGroup;
  expect_rejected(v, ErrorCode::kInvalidFormat, "quantization parameters");
  v = f->view();
  v.segments[1] = v.segments[0];
  expect_rejected(v, ErrorCode::kInvalidFormat, "scales segment");
}

TEST_CASE("dequantize_rows checks its row range", "[quant][validate]") {
  const EncodedMatrix e = make(ValueType::kInt8, true);
  std::vector<float> out(13 * 70);
  CHECK(dequantize_rows(e.view(), 0, 13, out.data()).ok());
  CHECK(dequantize_rows(e.view(), 5, 5, nullptr).ok());
  CHECK(dequantize_rows(e.view(), 12, 14, out.data()).code() == ErrorCode::kOutOfRange);
  CHECK(dequantize_rows(e.view(), -1, 2, out.data()).code() == ErrorCode::kOutOfRange);
  CHECK(dequantize_rows(e.view(), 3, 2, out.data()).code() == ErrorCode::kOutOfRange);
  CHECK(dequantize_rows(e.view(), 0, 1, nullptr).code() == ErrorCode::kInvalidArgument);
}

TEST_CASE("quant config round trips through the encoding", "[quant]") {
  const EncodedMatrix e = make(ValueType::kInt4, false, Granularity::kGroup, 64, DType::kF32, RowLayout::kInterleave8);
  const QuantConfig c = quant_config_from_encoding(e.encoding);
  CHECK(test::cfg_name(c) == "int4:group=64,sym=false,search=mse,scale_dtype=fp32,layout=i8");  // make() keeps the default search (mse)
  const auto w = test::gaussian(13 * 70, 3);
  auto again = quantize("t", w.data(), 13, 70, c);
  REQUIRE(again.ok());
  CHECK(again->encoding == e.encoding);
  CHECK(std::memcmp(again->segment(SegmentRole::kValues).data(), e.segment(SegmentRole::kValues).data(),
                    e.segment(SegmentRole::kValues).size()) == 0);
  std::vector<float> row(70), all(13 * 70);
  REQUIRE(dequantize(e.view(), all.data()).ok());
  REQUIRE(dequantize_rows_validated(e.view(), 12, 13, row.data()).ok());
  CHECK(std::equal(row.begin(), row.end(), all.begin() + 12 * 70));
  CHECK(dequantize_rows_validated(e.view(), 12, 14, row.data()).code() == ErrorCode::kOutOfRange);
}
