// validate_sparse_matrix: one test per invariant (each corrupts one thing in a valid matrix and
// expects a specific error), plus random corruption of every format (must never crash, and what
// passes validation must decode).
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "slmc/half.hpp"
#include "slmc/sparse/encode.hpp"
#include "slmc/sparse/layout.hpp"
#include "slmc/sparse/validate.hpp"
#include "support/random.hpp"

using namespace slmc;

namespace {

/// A matrix whose segments can be corrupted freely (copies of an encoder's output).
struct Corruptible {
  int64_t rows = 0, cols = 0;
  Encoding encoding;
  std::array<std::vector<uint8_t>, kSegmentRoles> seg;

  explicit Corruptible(const EncodedMatrix& em) : rows(em.rows), cols(em.cols), encoding(em.encoding) {
    for (int r = 0; r < kSegmentRoles; ++r) {
      const AlignedBuffer& b = em.segments[static_cast<size_t>(r)];
      seg[static_cast<size_t>(r)].assign(b.data(), b.data() + b.size());
    }
  }
  std::vector<uint8_t>& operator[](SegmentRole r) { return seg[static_cast<size_t>(r)]; }
  EncodedMatrixView view() const {
    EncodedMatrixView v;
    v.rows = rows;
    v.cols = cols;
    v.encoding = encoding;
    for (int r = 0; r < kSegmentRoles; ++r) {
      v.segments[static_cast<size_t>(r)] = SegmentView{seg[static_cast<size_t>(r)].data(), seg[static_cast<size_t>(r)].size()};
    }
    return v;
  }
  template <typename T>
  T get(SegmentRole r, size_t i) {
    T v;
    std::memcpy(&v, (*this)[r].data() + i * sizeof(T), sizeof(T));
    return v;
  }
  template <typename T>
  void set(SegmentRole r, size_t i, T v) {
    std::memcpy((*this)[r].data() + i * sizeof(T), &v, sizeof(T));
  }
};

Encoding enc(SparseFormat f, ValueType vt = ValueType::kF32) {
  Encoding e;
  e.format = f;
  e.value_type = vt;
  if (vt != ValueType::kF32) e.granularity = Granularity::kChannel;
  if (f == SparseFormat::kNM) {
    e.nm_n = 2;
    e.nm_m = 4;
  }
  if (f == SparseFormat::kBsr) {
    e.block_rows = 4;
    e.block_cols = 4;
  }
  return e;
}

/// A valid matrix: 6 x 10 with a fixed pattern (every row has >= 2 kept values; 2:4-conforming).
Corruptible valid(const Encoding& e, int64_t rows = 6, int64_t cols = 10) {
  std::vector<float> w(static_cast<size_t>(rows * cols), 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t period = e.format == SparseFormat::kNM ? e.nm_m : 4;
      if ((c % period == 1 || c % period == 2) || (e.format != SparseFormat::kNM && c == cols - 1)) {
        w[static_cast<size_t>(r * cols + c)] = 1.0f + static_cast<float>(r) + 0.1f * static_cast<float>(c);
      }
    }
  }
  auto em = encode_sparse(w.data(), rows, cols, e, nullptr, "w");
  REQUIRE(em.ok());
  Corruptible m(*em);
  REQUIRE(validate_sparse_matrix(m.view(), "w").ok());
  return m;
}

void expect_error(const Corruptible& m, ErrorCode code, const std::string& fragment) {
  const Status s = validate_sparse_matrix(m.view(), "blk.0.ffn");
  INFO(s.to_string());
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == code);
  CHECK(s.message().find("blk.0.ffn") != std::string::npos);
  CHECK(s.message().find(fragment) != std::string::npos);
  const bool sane = m.rows >= 0 && m.cols >= 0 && m.rows < (1 << 20) && m.cols < (1 << 20);
  std::vector<float> out(sane ? static_cast<size_t>(m.rows * m.cols) + 1 : 1);
  CHECK_FALSE(decode_sparse(m.view(), out.data()).ok());
}

}  // namespace

// ---- structure shared by all formats -----------------------------------------------------------

TEST_CASE("validate accepts every valid format", "[sparse][validate]") {
  for (SparseFormat f : {SparseFormat::kCsr, SparseFormat::kBsr, SparseFormat::kNM, SparseFormat::kBitmask}) {
    for (ValueType vt : {ValueType::kF32, ValueType::kInt8}) {
      CHECK(validate_sparse_matrix(valid(enc(f, vt)).view(), "w").ok());
    }
  }
  CHECK(validate_sparse_matrix(valid(enc(SparseFormat::kNM, ValueType::kInt4)).view(), "w").ok());
  CHECK(validate_sparse_matrix(valid(enc(SparseFormat::kCsr), 0, 0).view(), "w").ok());
  CHECK(validate_sparse_matrix(valid(enc(SparseFormat::kBitmask), 1, 1).view(), "w").ok());
}

TEST_CASE("validate rejects a dense or unknown format value", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kCsr));
  m.encoding.format = SparseFormat::kDense;
  expect_error(m, ErrorCode::kInvalidFormat, "not a sparse format");
  m.encoding.format = static_cast<SparseFormat>(77);
  expect_error(m, ErrorCode::kInvalidFormat, "not a sparse format");
}

TEST_CASE("validate rejects unsupported value types", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kCsr));
  m.encoding.value_type = ValueType::kInt4;
  expect_error(m, ErrorCode::kUnsupported, "int4");
  m.encoding.value_type = static_cast<ValueType>(99);
  expect_error(m, ErrorCode::kUnsupported, "value type");
}

TEST_CASE("validate rejects a bad row layout", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kCsr));
  m.encoding.layout = static_cast<RowLayout>(3);
  expect_error(m, ErrorCode::kInvalidFormat, "row layout");
  m.encoding.layout = RowLayout::kInterleave4;
  expect_error(m, ErrorCode::kUnsupported, "interleave");
}

TEST_CASE("validate rejects bad scale parameters", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kCsr, ValueType::kInt8));
  m.encoding.symmetric = false;
  expect_error(m, ErrorCode::kUnsupported, "symmetric");
  m = valid(enc(SparseFormat::kCsr, ValueType::kInt8));
  m.encoding.scale_dtype = DType::kBF16;
  expect_error(m, ErrorCode::kInvalidFormat, "scale dtype");
  m = valid(enc(SparseFormat::kCsr, ValueType::kInt8));
  m.encoding.granularity = Granularity::kNone;
  expect_error(m, ErrorCode::kInvalidFormat, "granularity");
  m = valid(enc(SparseFormat::kBitmask, ValueType::kInt8));
  m.encoding.granularity = Granularity::kGroup;
  m.encoding.group_size = 12;  // not a multiple of 8
  expect_error(m, ErrorCode::kInvalidFormat, "group size");
  m = valid(enc(SparseFormat::kCsr));
  m.encoding.granularity = Granularity::kChannel;
  expect_error(m, ErrorCode::kInvalidFormat, "f32");
}

TEST_CASE("validate rejects non finite scales", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kCsr, ValueType::kInt8));
  m.set<float>(SegmentRole::kScales, 2, std::numeric_limits<float>::infinity());
  expect_error(m, ErrorCode::kNonFinite, "scale 2");
  Encoding e = enc(SparseFormat::kNM, ValueType::kInt4);
  e.scale_dtype = DType::kF16;
  m = valid(e);
  m.set<uint16_t>(SegmentRole::kScales, 1, 0x7e00);  // fp16 NaN
  expect_error(m, ErrorCode::kNonFinite, "scale 1");
}

TEST_CASE("validate rejects non finite f32 values", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kBitmask));
  m.set<float>(SegmentRole::kValues, 3, std::nanf(""));
  expect_error(m, ErrorCode::kNonFinite, "value 3");
}

TEST_CASE("validate rejects null segment data", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kCsr));
  EncodedMatrixView v = m.view();
  v.segments[static_cast<size_t>(SegmentRole::kColIdx)].data = nullptr;
  const Status s = validate_sparse_matrix(v, "w");
  CHECK(s.code() == ErrorCode::kInvalidArgument);
  CHECK(s.message().find("null") != std::string::npos);
}

TEST_CASE("validate rejects a non empty unused segment", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kCsr));
  m[SegmentRole::kMins].resize(4);
  expect_error(m, ErrorCode::kInvalidFormat, "mins segment");
  m = valid(enc(SparseFormat::kCsr));
  m[SegmentRole::kMeta].resize(8);
  expect_error(m, ErrorCode::kInvalidFormat, "meta segment");
  m = valid(enc(SparseFormat::kCsr));  // f32: no scales
  m[SegmentRole::kScales].resize(4);
  expect_error(m, ErrorCode::kInvalidFormat, "scales segment");
}

TEST_CASE("validate rejects a values segment that is not whole units", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kCsr));
  m[SegmentRole::kValues].push_back(0);
  expect_error(m, ErrorCode::kInvalidFormat, "not a whole number");
  m = valid(enc(SparseFormat::kBsr));
  m[SegmentRole::kValues].resize(m[SegmentRole::kValues].size() - 4);
  expect_error(m, ErrorCode::kInvalidFormat, "not a whole number");
  m = valid(enc(SparseFormat::kBitmask));
  m[SegmentRole::kValues].resize(16);
  expect_error(m, ErrorCode::kInvalidFormat, "tail");
}

TEST_CASE("validate rejects a stored count larger than the shape allows", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kCsr, ValueType::kInt8));
  m[SegmentRole::kValues].resize(61);  // 6 x 10 = 60 elements at most
  expect_error(m, ErrorCode::kOutOfRange, "more than the 60");
}

TEST_CASE("validate rejects wrong segment sizes", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kCsr));
  m[SegmentRole::kColIdx].resize(m[SegmentRole::kColIdx].size() + 2);
  expect_error(m, ErrorCode::kInvalidFormat, "col_idx segment");
  m = valid(enc(SparseFormat::kCsr));
  m[SegmentRole::kRowPtr].resize(m[SegmentRole::kRowPtr].size() * 2);  // u64 pointers for a small nnz
  expect_error(m, ErrorCode::kInvalidFormat, "row_ptr segment");
  m = valid(enc(SparseFormat::kCsr, ValueType::kInt8));
  m[SegmentRole::kScales].resize(m[SegmentRole::kScales].size() - 4);
  expect_error(m, ErrorCode::kInvalidFormat, "scales segment");
  m = valid(enc(SparseFormat::kNM));
  m[SegmentRole::kValues].resize(m[SegmentRole::kValues].size() + 4);
  expect_error(m, ErrorCode::kInvalidFormat, "N:M values segment");
  m = valid(enc(SparseFormat::kNM));
  m[SegmentRole::kMeta].resize(m[SegmentRole::kMeta].size() - 1);
  expect_error(m, ErrorCode::kInvalidFormat, "meta segment");
  m = valid(enc(SparseFormat::kBitmask));
  m[SegmentRole::kMeta].resize(m[SegmentRole::kMeta].size() + 8);
  expect_error(m, ErrorCode::kInvalidFormat, "meta segment");
}

TEST_CASE("validate rejects bad shapes", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kCsr));
  m.rows = -1;
  expect_error(m, ErrorCode::kOutOfRange, "negative");
  m = valid(enc(SparseFormat::kCsr));
  m.rows = int64_t{1} << 40;
  m.cols = int64_t{1} << 40;
  expect_error(m, ErrorCode::kOutOfRange, "2^52");
}

// ---- CSR ---------------------------------------------------------------------------------------

TEST_CASE("csr validate rejects a first row pointer other than zero", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kCsr));
  m.set<uint32_t>(SegmentRole::kRowPtr, 0, 1);
  expect_error(m, ErrorCode::kInvalidFormat, "row_ptr[0]");
}

TEST_CASE("csr validate rejects non monotone row pointers", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kCsr));
  m.set<uint32_t>(SegmentRole::kRowPtr, 2, m.get<uint32_t>(SegmentRole::kRowPtr, 1) - 1);
  expect_error(m, ErrorCode::kInvalidFormat, "not monotone");
}

TEST_CASE("csr validate rejects row pointers beyond nnz", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kCsr));
  m.set<uint32_t>(SegmentRole::kRowPtr, 3, 0xfffffff0u);
  expect_error(m, ErrorCode::kOutOfRange, "exceeds the stored count");
}

TEST_CASE("csr validate rejects a final row pointer other than nnz", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kCsr));
  const size_t last = static_cast<size_t>(m.rows);
  m.set<uint32_t>(SegmentRole::kRowPtr, last, m.get<uint32_t>(SegmentRole::kRowPtr, last) - 1);
  expect_error(m, ErrorCode::kInvalidFormat, "final row_ptr");
}

TEST_CASE("csr validate rejects column indices out of range", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kCsr));
  const size_t nnz = m[SegmentRole::kColIdx].size() / 2;
  m.set<uint16_t>(SegmentRole::kColIdx, nnz - 1, 10);  // K = 10
  expect_error(m, ErrorCode::kOutOfRange, "out of range [0, 10)");
}

TEST_CASE("csr validate rejects column indices not strictly increasing", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kCsr));
  m.set<uint16_t>(SegmentRole::kColIdx, 1, m.get<uint16_t>(SegmentRole::kColIdx, 0));  // duplicate
  expect_error(m, ErrorCode::kInvalidFormat, "strictly increasing");
}

// ---- BSR ---------------------------------------------------------------------------------------

TEST_CASE("bsr validate rejects bad block shapes", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kBsr));
  m.encoding.block_cols = 0;
  expect_error(m, ErrorCode::kInvalidFormat, "BSR block");
  m = valid(enc(SparseFormat::kCsr));
  m.encoding.block_rows = 4;
  expect_error(m, ErrorCode::kInvalidFormat, "block_rows");
}

TEST_CASE("bsr validate rejects block columns out of range", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kBsr));
  m.set<uint16_t>(SegmentRole::kColIdx, 0, 3);  // ceil(10/4) = 3 block columns
  expect_error(m, ErrorCode::kOutOfRange, "out of range [0, 3)");
}

TEST_CASE("bsr validate rejects block columns not strictly increasing", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kBsr));
  m.set<uint16_t>(SegmentRole::kColIdx, 1, 0);
  expect_error(m, ErrorCode::kInvalidFormat, "strictly increasing");
}

TEST_CASE("bsr validate rejects block row pointers inconsistent with the block count", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kBsr));
  m.set<uint32_t>(SegmentRole::kRowPtr, 2, m.get<uint32_t>(SegmentRole::kRowPtr, 2) - 1);
  expect_error(m, ErrorCode::kInvalidFormat, "final row_ptr");
}

TEST_CASE("bsr validate rejects nonzero edge padding", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kBsr));  // 6 x 10 with 4 x 4 blocks: rows 6..7 and cols 10..11 pad
  // Last stored block is in block row 1 (rows 4..7), block column 2 (cols 8..11); element (3, 3) pads.
  const size_t blocks = m[SegmentRole::kColIdx].size() / 2;
  m.set<float>(SegmentRole::kValues, (blocks - 1) * 16 + 15, 1.0f);
  expect_error(m, ErrorCode::kInvalidFormat, "padding element (3, 3)");
}

// ---- N:M ---------------------------------------------------------------------------------------

TEST_CASE("nm validate rejects bad patterns", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kNM));
  m.encoding.nm_n = 4;
  expect_error(m, ErrorCode::kInvalidFormat, "N:M pattern");
  m.encoding.nm_n = 0;
  expect_error(m, ErrorCode::kInvalidFormat, "N:M pattern");
  m.encoding.nm_n = 2;
  m.encoding.nm_m = 17;
  expect_error(m, ErrorCode::kInvalidFormat, "N:M pattern");
}

TEST_CASE("nm validate rejects positions not below M", "[sparse][validate]") {
  Encoding e = enc(SparseFormat::kNM);
  e.nm_n = 2;
  e.nm_m = 5;  // 4-bit fields can hold 5..15
  auto m = valid(e);
  m[SegmentRole::kMeta][0] = static_cast<uint8_t>((m[SegmentRole::kMeta][0] & 0x0f) | (7 << 4));
  expect_error(m, ErrorCode::kOutOfRange, "position 7 >= M = 5");
}

TEST_CASE("nm validate rejects positions not strictly increasing", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kNM));
  // Row 0 group 0 holds positions 1, 2 (bits 01 10); make it 2, 1.
  m[SegmentRole::kMeta][0] = static_cast<uint8_t>((m[SegmentRole::kMeta][0] & 0xf0) | 2 | (1 << 2));
  expect_error(m, ErrorCode::kInvalidFormat, "not strictly increasing");
}

TEST_CASE("nm validate rejects a nonzero value beyond K in the tail group", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kNM));  // K = 10: tail group has 2 real columns (8, 9)
  // Move row 0's last slot to position 3 (column 11 >= K) while its value is nonzero.
  auto l = SparseLayout::create(m.rows, m.cols, m.encoding, "w");
  REQUIRE(l.ok());
  const int64_t slot = l->slots - 1;  // group 2, slot 1
  const int64_t bit = slot * 2;
  uint8_t& b = m[SegmentRole::kMeta][static_cast<size_t>(bit / 8)];
  b = static_cast<uint8_t>((b & ~(3 << (bit % 8))) | (3 << (bit % 8)));
  m.set<float>(SegmentRole::kValues, static_cast<size_t>(slot), 5.0f);
  expect_error(m, ErrorCode::kInvalidFormat, "beyond K");
}

TEST_CASE("nm validate rejects nonzero metadata padding bits", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kNM));
  m[SegmentRole::kMeta][7] = 0x80;  // row 0 uses 3 groups * 2 slots * 2 bits = 12 bits
  expect_error(m, ErrorCode::kInvalidFormat, "padding bits");
}

TEST_CASE("nm validate rejects nonzero padding slots of quantized values", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kNM, ValueType::kInt8));  // 6 slots padded to 32
  m[SegmentRole::kValues][20] = 3;
  expect_error(m, ErrorCode::kInvalidFormat, "padding slot 20");
  m = valid(enc(SparseFormat::kNM, ValueType::kInt4));
  m[SegmentRole::kValues][10] = 0x08 | (0x0 << 4);  // slot 26 (high nibble of byte 10) = 0 != 8
  expect_error(m, ErrorCode::kInvalidFormat, "padding slot 26");
}

// ---- bitmask -----------------------------------------------------------------------------------

TEST_CASE("bitmask validate rejects a popcount that disagrees with the offsets", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kBitmask));
  m[SegmentRole::kMeta][8 * 2] ^= 0x01;  // row 2, column 0: flips a bit
  expect_error(m, ErrorCode::kInvalidFormat, "popcount");
}

TEST_CASE("bitmask validate rejects mask bits beyond K", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kBitmask));
  m[SegmentRole::kMeta][1] |= 0x80;  // column 15 >= K = 10
  expect_error(m, ErrorCode::kInvalidFormat, "beyond K");
}

TEST_CASE("bitmask validate rejects bad row offsets", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kBitmask));
  m.set<uint32_t>(SegmentRole::kRowPtr, 0, 2);
  expect_error(m, ErrorCode::kInvalidFormat, "row offset[0]");
  m = valid(enc(SparseFormat::kBitmask));
  m.set<uint32_t>(SegmentRole::kRowPtr, 1, 1000);
  expect_error(m, ErrorCode::kOutOfRange, "row offset[1]");
}

TEST_CASE("bitmask validate rejects a nonzero values tail", "[sparse][validate]") {
  auto m = valid(enc(SparseFormat::kBitmask, ValueType::kInt8));
  m[SegmentRole::kValues].back() = 1;
  expect_error(m, ErrorCode::kInvalidFormat, "tail byte 31");
}

// ---- random corruption -------------------------------------------------------------------------

TEST_CASE("random corruption never crashes and what validates decodes", "[sparse][validate]") {
  std::mt19937_64 rng(77);
  std::vector<Encoding> encs;
  for (SparseFormat f : {SparseFormat::kCsr, SparseFormat::kBsr, SparseFormat::kNM, SparseFormat::kBitmask}) {
    encs.push_back(enc(f));
    encs.push_back(enc(f, ValueType::kInt8));
  }
  encs.push_back(enc(SparseFormat::kNM, ValueType::kInt4));
  int accepted = 0, rejected = 0;
  for (const Encoding& e : encs) {
    const Corruptible base = valid(e, 9, 23);
    for (int it = 0; it < 400; ++it) {
      Corruptible m = base;
      const int kind = static_cast<int>(rng() % 4);
      std::vector<int> nonempty;
      for (int r = 0; r < kSegmentRoles; ++r) {
        if (!m.seg[static_cast<size_t>(r)].empty()) nonempty.push_back(r);
      }
      auto& s = m.seg[static_cast<size_t>(nonempty[rng() % nonempty.size()])];
      if (kind == 0) {
        s[rng() % s.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
      } else if (kind == 1) {
        s[rng() % s.size()] = static_cast<uint8_t>(rng());
      } else if (kind == 2) {
        s.resize(rng() % (s.size() + 9));
      } else {
        m.rows = static_cast<int64_t>(rng() % 12);
        m.cols = static_cast<int64_t>(rng() % 30);
      }
      std::vector<float> out(static_cast<size_t>(std::max<int64_t>(0, m.rows * m.cols)) + 1);
      const Status st = validate_sparse_matrix(m.view(), "fuzz");
      if (st.ok()) {
        ++accepted;
        CHECK(decode_sparse(m.view(), out.data()).ok());
      } else {
        ++rejected;
        CHECK(st.message().find("fuzz") != std::string::npos);
      }
    }
  }
  CHECK(rejected > 0);
  CHECK(accepted > 0);  // some flips only change numbers: still valid structure
}

TEST_CASE("nm validate table fast path catches bad groups in large matrices", "[sparse][validate]") {
  // 4:8 with 65536 full groups uses the u16 table; 2:4, 1:5 and 2:8 use the byte table.
  for (auto [n, m] : std::vector<std::pair<int, int>>{{4, 8}, {2, 4}, {1, 5}, {2, 8}}) {
    const int64_t rows = 64, cols = 8192;
    std::vector<float> w(static_cast<size_t>(rows * cols));
    for (size_t i = 0; i < w.size(); ++i) w[i] = (i % static_cast<size_t>(m)) < static_cast<size_t>(n) ? 1.0f + static_cast<float>(i % 7) : 0.0f;
    Encoding e = enc(SparseFormat::kNM);
    e.nm_n = static_cast<uint8_t>(n);
    e.nm_m = static_cast<uint8_t>(m);
    auto em = encode_sparse(w.data(), rows, cols, e, nullptr, "w");
    REQUIRE(em.ok());
    Corruptible c(*em);
    REQUIRE(validate_sparse_matrix(c.view(), "w").ok());
    auto l = SparseLayout::create(rows, cols, e, "w");
    REQUIRE(l.ok());
    // Row 37, group 1000: set its first slot's position to its last slot's (duplicate, not increasing).
    const int64_t row = 37, g = 1000, bits = l->meta_bits;
    uint8_t* mrow = c[SegmentRole::kMeta].data() + l->meta_offset(row);
    const int64_t first = g * n * bits, last = (g * n + n - 1) * bits;
    // n = 1: no duplicate possible; write position 7 >= M = 5 instead.
    const int last_pos = n == 1 ? 7 : (mrow[last / 8] >> (last % 8)) & ((1 << bits) - 1);
    mrow[first / 8] = static_cast<uint8_t>((mrow[first / 8] & ~(((1 << bits) - 1) << (first % 8))) | (last_pos << (first % 8)));
    INFO(n << ":" << m);
    const Status s = validate_sparse_matrix(c.view(), "w");
    REQUIRE_FALSE(s.ok());
    CHECK(s.message().find("row 37 group 1000") != std::string::npos);
  }
}
