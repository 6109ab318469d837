// The dense quantized layout (slmc/layout.hpp, docs/LAYOUT.md): every chunk record and every scale
// has exactly one place, for every row layout and awkward shapes; codes round-trip.
#include <catch2/catch.hpp>

#include <vector>

#include "slmc/layout.hpp"

using namespace slmc;

TEST_CASE("dense quant layout maps chunks and scales one to one", "[layout]") {
  for (ValueType vt : {ValueType::kInt8, ValueType::kInt4}) {
    for (RowLayout rl : {RowLayout::kRows, RowLayout::kInterleave4, RowLayout::kInterleave8}) {
      for (int64_t m : {1, 3, 4, 9, 17}) {
        for (int64_t k : {1, 31, 32, 33, 100}) {
          Encoding e;
          e.value_type = vt;
          e.granularity = Granularity::kGroup;
          e.group_size = 16;
          e.layout = rl;
          DenseQuantLayout l(m, k, e);
          INFO("m=" << m << " k=" << k << " R=" << int(rl));
          std::vector<int> byte_hits(static_cast<size_t>(l.values_bytes()), 0);
          for (int64_t r = 0; r < m; ++r) {
            for (int64_t c = 0; c < l.chunks; ++c) {
              const int64_t off = l.chunk_offset(r, c);
              REQUIRE(off >= 0);
              REQUIRE(off + l.chunk_bytes <= l.values_bytes());
              REQUIRE(off % l.chunk_bytes == 0);
              for (int64_t b = 0; b < l.chunk_bytes; ++b) byte_hits[static_cast<size_t>(off + b)]++;
            }
          }
          for (int h : byte_hits) REQUIRE(h == 1);
          std::vector<int> scale_hits(static_cast<size_t>(l.scale_count()), 0);
          for (int64_t r = 0; r < m; ++r)
            for (int64_t g = 0; g < l.groups; ++g) scale_hits[static_cast<size_t>(l.scale_index(r, g))]++;
          for (int h : scale_hits) REQUIRE(h == 1);
        }
      }
    }
  }
}

TEST_CASE("codes round-trip through write_code and read_code", "[layout]") {
  for (ValueType vt : {ValueType::kInt8, ValueType::kInt4}) {
    Encoding e;
    e.value_type = vt;
    e.granularity = Granularity::kChannel;
    e.layout = RowLayout::kInterleave4;
    const int64_t m = 6, k = 70;
    DenseQuantLayout l(m, k, e);
    std::vector<uint8_t> values(static_cast<size_t>(l.values_bytes()), 0);
    auto code_of = [&](int64_t r, int64_t c) {
      return vt == ValueType::kInt8 ? static_cast<int32_t>((r * 37 + c * 11) % 256) - 128
                                    : static_cast<int32_t>((r * 7 + c * 3) % 16);
    };
    for (int64_t r = 0; r < m; ++r)
      for (int64_t c = 0; c < k; ++c) write_code(l, vt, values.data(), r, c, code_of(r, c));
    for (int64_t r = 0; r < m; ++r)
      for (int64_t c = 0; c < k; ++c) REQUIRE(read_code(l, vt, values.data(), r, c) == code_of(r, c));
  }
  // The int4 nibble order of docs/LAYOUT.md: byte j = e(j) | e(j+16) << 4.
  Encoding e;
  e.value_type = ValueType::kInt4;
  e.granularity = Granularity::kChannel;
  DenseQuantLayout l(1, 32, e);
  std::vector<uint8_t> v(16, 0);
  write_code(l, ValueType::kInt4, v.data(), 0, 3, 0x5);
  write_code(l, ValueType::kInt4, v.data(), 0, 19, 0xA);
  REQUIRE(v[3] == 0xA5);
}

TEST_CASE("per-tensor and per-channel scale counts", "[layout]") {
  Encoding e;
  e.value_type = ValueType::kInt8;
  e.granularity = Granularity::kTensor;
  REQUIRE(DenseQuantLayout(5, 40, e).scale_count() == 1);
  REQUIRE(DenseQuantLayout(0, 40, e).scale_count() == 0);
  e.granularity = Granularity::kChannel;
  REQUIRE(DenseQuantLayout(5, 40, e).scale_count() == 5);
  e.granularity = Granularity::kGroup;
  e.group_size = 32;
  REQUIRE(DenseQuantLayout(5, 40, e).scale_count() == 10);
  REQUIRE(DenseQuantLayout(5, 40, e).row_bytes() == 64);
}
