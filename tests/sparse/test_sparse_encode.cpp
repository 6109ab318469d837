// Sparse encoders: dense -> encoding -> dense round trips, layout details the kernels rely on,
// and exact size accounting.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "slmc/sparse/encode.hpp"
#include "slmc/sparse/layout.hpp"
#include "slmc/sparse/validate.hpp"
#include "sparse/sparse_test_util.hpp"
#include "support/random.hpp"

using namespace slmc;
using slmc::test::decode;

namespace {

Encoding make_enc(SparseFormat f, ValueType vt = ValueType::kF32) {
  Encoding e;
  e.format = f;
  e.value_type = vt;
  if (vt != ValueType::kF32) e.granularity = Granularity::kChannel;
  return e;
}

Encoding nm_enc(int n, int m, ValueType vt = ValueType::kF32) {
  Encoding e = make_enc(SparseFormat::kNM, vt);
  e.nm_n = static_cast<uint8_t>(n);
  e.nm_m = static_cast<uint8_t>(m);
  return e;
}

Encoding bsr_enc(int r, int c, ValueType vt = ValueType::kF32) {
  Encoding e = make_enc(SparseFormat::kBsr, vt);
  e.block_rows = static_cast<uint8_t>(r);
  e.block_cols = static_cast<uint8_t>(c);
  return e;
}

/// Random mask keeping about (1 - sparsity) of the elements.
std::vector<uint8_t> random_mask(size_t n, double sparsity, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::bernoulli_distribution keep(1.0 - sparsity);
  std::vector<uint8_t> m(n);
  for (auto& x : m) x = keep(rng) ? 1 : 0;
  return m;
}

/// Random N:M-conforming mask: N random positions per group (tail: min(N, t)).
std::vector<uint8_t> random_nm_mask(int64_t rows, int64_t cols, int n, int m, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> mask(static_cast<size_t>(rows * cols), 0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g * m < cols; ++g) {
      const int real = static_cast<int>(std::min<int64_t>(m, cols - g * m));
      std::vector<int> idx(static_cast<size_t>(real));
      for (int i = 0; i < real; ++i) idx[static_cast<size_t>(i)] = i;
      std::shuffle(idx.begin(), idx.end(), rng);
      for (int i = 0; i < std::min(n, real); ++i) mask[static_cast<size_t>(r * cols + g * m + idx[static_cast<size_t>(i)])] = 1;
    }
  }
  return mask;
}

std::vector<float> masked(const std::vector<float>& w, const std::vector<uint8_t>& mask) {
  std::vector<float> out(w.size());
  for (size_t i = 0; i < w.size(); ++i) out[i] = mask[i] ? w[i] : 0.0f;
  return out;
}

std::vector<Encoding> all_f32_encodings() {
  return {make_enc(SparseFormat::kCsr), make_enc(SparseFormat::kBitmask), bsr_enc(1, 4), bsr_enc(4, 1),
          bsr_enc(4, 4),                bsr_enc(8, 1),                      bsr_enc(16, 1), bsr_enc(3, 5)};
}

}  // namespace

TEST_CASE("csr bitmask bsr f32 round trips are exact on random shapes", "[sparse]") {
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{1, 1}, {1, 37}, {7, 13}, {16, 64}, {33, 100}, {5, 130}, {0, 8}, {8, 0}};
  uint64_t seed = 1;
  for (auto [rows, cols] : shapes) {
    for (double sp : {0.0, 0.5, 0.9, 1.0}) {
      const auto w = test::gaussian(static_cast<size_t>(rows * cols), seed++);
      const auto mask = random_mask(w.size(), sp, seed++);
      const auto want = masked(w, mask);
      for (const Encoding& e : all_f32_encodings()) {
        INFO(sparse_format_name(e.format) << " " << rows << "x" << cols << " sparsity " << sp);
        auto em = encode_sparse(w.data(), rows, cols, e, mask.data(), "w");
        INFO(em.status().to_string());
        REQUIRE(em.ok());
        REQUIRE(validate_sparse_matrix(em->view(), "w").ok());
        CHECK(decode(*em) == want);
      }
    }
  }
}

TEST_CASE("nm f32 round trips are exact including tail groups", "[sparse]") {
  uint64_t seed = 100;
  for (auto [n, m] : std::vector<std::pair<int, int>>{{1, 2}, {2, 4}, {1, 4}, {4, 8}, {3, 5}, {2, 16}, {15, 16}}) {
    for (int64_t cols : {1, 3, 4, 7, 16, 33, 65}) {
      const int64_t rows = 3;
      const auto w = test::gaussian(static_cast<size_t>(rows * cols), seed++);
      const auto mask = random_nm_mask(rows, cols, n, m, seed++);
      INFO(n << ":" << m << " K=" << cols);
      auto em = encode_sparse(w.data(), rows, cols, nm_enc(n, m), mask.data(), "w");
      INFO(em.status().to_string());
      REQUIRE(em.ok());
      CHECK(decode(*em) == masked(w, mask));
    }
  }
}

TEST_CASE("nm encoder rejects a group keeping more than N", "[sparse]") {
  std::vector<float> w = {1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<uint8_t> mask = {1, 1, 0, 0, 1, 1, 1, 0};
  auto em = encode_sparse(w.data(), 1, 8, nm_enc(2, 4), mask.data(), "layer.w");
  REQUIRE_FALSE(em.ok());
  CHECK(em.status().code() == ErrorCode::kInvalidArgument);
  CHECK(em.status().message().find("layer.w") != std::string::npos);
  CHECK(em.status().message().find("group 1") != std::string::npos);
}

TEST_CASE("nm 2 of 4 metadata is 2 bits per kept value LSB first", "[sparse]") {
  // Row: keep columns 1 and 3 of group 0, columns 0 and 2 of group 1.
  std::vector<float> w = {0, 1, 0, 2, 3, 0, 4, 0};
  auto em = encode_sparse(w.data(), 1, 8, nm_enc(2, 4), nullptr, "w");
  REQUIRE(em.ok());
  const auto& meta = em->segment(SegmentRole::kMeta);
  REQUIRE(meta.size() == 8);  // one row, padded to 8 bytes
  CHECK(meta.data()[0] == (1 | 3 << 2 | 0 << 4 | 2 << 6));
  for (int i = 1; i < 8; ++i) CHECK(meta.data()[i] == 0);
  const float* v = em->segment(SegmentRole::kValues).as<float>();
  CHECK(v[0] == 1);
  CHECK(v[1] == 2);
  CHECK(v[2] == 3);
  CHECK(v[3] == 4);
}

TEST_CASE("nm tail group pads with zero slots beyond K", "[sparse]") {
  // K = 5 with 2:4: group 1 has one real column (t = 1).
  std::vector<float> w = {1, 0, 0, 2, 7};
  auto em = encode_sparse(w.data(), 1, 5, nm_enc(2, 4), nullptr, "w");
  REQUIRE(em.ok());
  const uint8_t meta = em->segment(SegmentRole::kMeta).data()[0];
  // Group 0 keeps 0 and 3; group 1 keeps 0 (column 4) and pads with position 1 (column 5 >= K).
  CHECK(meta == (0 | 3 << 2 | 0 << 4 | 1 << 6));
  const float* v = em->segment(SegmentRole::kValues).as<float>();
  CHECK(v[2] == 7);
  CHECK(v[3] == 0);
  CHECK(decode(*em) == w);
}

TEST_CASE("csr index widths are u16 up to K 65536 and u32 beyond", "[sparse]") {
  for (int64_t cols : {int64_t{65536}, int64_t{65537}}) {
    std::vector<float> w(static_cast<size_t>(cols), 0.0f);
    w[0] = 1;
    w[static_cast<size_t>(cols - 1)] = 2;
    auto em = encode_sparse(w.data(), 1, cols, make_enc(SparseFormat::kCsr), nullptr, "w");
    REQUIRE(em.ok());
    const size_t width = cols <= 65536 ? 2 : 4;
    CHECK(em->segment(SegmentRole::kColIdx).size() == 2 * width);
    CHECK(em->segment(SegmentRole::kRowPtr).size() == 2 * 4);
    CHECK(decode(*em) == w);
  }
}

TEST_CASE("bitmask layout has u64 words per row and a zero tail", "[sparse]") {
  const int64_t rows = 2, cols = 70;
  auto w = test::gaussian(static_cast<size_t>(rows * cols), 5);
  auto mask = random_mask(w.size(), 0.5, 6);
  auto em = encode_sparse(w.data(), rows, cols, make_enc(SparseFormat::kBitmask), mask.data(), "w");
  REQUIRE(em.ok());
  CHECK(em->segment(SegmentRole::kMeta).size() == static_cast<size_t>(rows * 16));
  size_t nnz = 0;
  for (auto x : mask) nnz += x;
  CHECK(em->segment(SegmentRole::kValues).size() == nnz * 4 + kBitmaskValuesTail);
  for (int64_t c = 0; c < cols; ++c) {
    const uint8_t byte = em->segment(SegmentRole::kMeta).data()[16 + c / 8];
    CHECK(((byte >> (c % 8)) & 1) == mask[static_cast<size_t>(cols + c)]);
  }
}

TEST_CASE("int8 round trips are within half a scale over kept values", "[sparse]") {
  uint64_t seed = 300;
  for (DType sd : {DType::kF32, DType::kF16}) {
    for (Granularity gran : {Granularity::kTensor, Granularity::kChannel, Granularity::kGroup}) {
      std::vector<Encoding> encs = {make_enc(SparseFormat::kCsr, ValueType::kInt8),
                                    make_enc(SparseFormat::kBitmask, ValueType::kInt8),
                                    bsr_enc(4, 4, ValueType::kInt8), bsr_enc(8, 1, ValueType::kInt8),
                                    nm_enc(2, 4, ValueType::kInt8), nm_enc(2, 4, ValueType::kInt4),
                                    nm_enc(4, 8, ValueType::kInt8)};
      for (Encoding e : encs) {
        for (RowLayout layout : {RowLayout::kRows, RowLayout::kInterleave4}) {
          if (layout != RowLayout::kRows && e.format != SparseFormat::kNM) continue;
          e.layout = layout;
          e.granularity = gran;
          e.scale_dtype = sd;
          e.group_size = gran == Granularity::kGroup ? 32 : 0;
          const int64_t rows = 11, cols = 75;
          const auto w = test::laplace(static_cast<size_t>(rows * cols), seed++);
          const auto mask = e.format == SparseFormat::kNM ? random_nm_mask(rows, cols, e.nm_n, e.nm_m, seed++)
                                                          : random_mask(w.size(), 0.6, seed++);
          INFO(sparse_format_name(e.format) << " vt " << int(e.value_type) << " gran " << int(gran) << " sd "
                                            << int(sd) << " R " << int(layout));
          auto em = encode_sparse(w.data(), rows, cols, e, mask.data(), "w");
          INFO(em.status().to_string());
          REQUIRE(em.ok());
          auto l = SparseLayout::create(rows, cols, e, "w");
          REQUIRE(l.ok());
          const auto got = decode(*em);
          const void* scales = em->segment(SegmentRole::kScales).data();
          // Amax over kept values per scale, to check the scale itself.
          std::vector<float> amax(static_cast<size_t>(l->scale_count), 0.0f);
          for (int64_t i = 0; i < rows * cols; ++i) {
            if (mask[static_cast<size_t>(i)]) {
              float& a = amax[static_cast<size_t>(l->scale_index(i / cols, i % cols))];
              a = std::max(a, std::fabs(w[static_cast<size_t>(i)]));
            }
          }
          const float qmax = e.value_type == ValueType::kInt4 ? 7.0f : 127.0f;
          for (int64_t i = 0; i < l->scale_count; ++i) {
            const float d = load_scale(scales, static_cast<uint64_t>(i), sd);
            CHECK(d == Approx(amax[static_cast<size_t>(i)] / qmax).epsilon(sd == DType::kF16 ? 1e-3 : 1e-6));
          }
          for (int64_t i = 0; i < rows * cols; ++i) {
            if (!mask[static_cast<size_t>(i)]) {
              CHECK(got[static_cast<size_t>(i)] == 0.0f);
              continue;
            }
            const float d = load_scale(scales, static_cast<uint64_t>(l->scale_index(i / cols, i % cols)), sd);
            // fp16 rounding of d may push |w|/d slightly past qmax: the clamp costs at most that excess.
            const float slack = sd == DType::kF16 ? 1e-3f * std::fabs(w[static_cast<size_t>(i)]) : 1e-6f;
            CHECK(std::fabs(got[static_cast<size_t>(i)] - w[static_cast<size_t>(i)]) <= d / 2 + slack);
          }
          CHECK(em->stats.bits_per_weight == Approx(8.0 * static_cast<double>(em->total_bytes()) / (rows * cols)));
        }
      }
    }
  }
}

TEST_CASE("sizes of encoded matrices equal sparse_size and predictions", "[sparse]") {
  const int64_t rows = 64, cols = 256;
  const auto w = test::gaussian(static_cast<size_t>(rows * cols), 9);
  for (Encoding e : {make_enc(SparseFormat::kCsr), make_enc(SparseFormat::kBitmask),
                     make_enc(SparseFormat::kCsr, ValueType::kInt8), make_enc(SparseFormat::kBitmask, ValueType::kInt8),
                     nm_enc(2, 4), nm_enc(2, 4, ValueType::kInt8), nm_enc(2, 4, ValueType::kInt4)}) {
    const auto mask = e.format == SparseFormat::kNM ? random_nm_mask(rows, cols, 2, 4, 10) : random_mask(w.size(), 0.7, 11);
    auto em = encode_sparse(w.data(), rows, cols, e, mask.data(), "w");
    REQUIRE(em.ok());
    uint64_t nnz = 0;
    for (auto x : mask) nnz += x;
    auto size = sparse_size(rows, cols, e, nnz);
    REQUIRE(size.ok());
    CHECK(size->total == em->total_bytes());
    CHECK(size->values == em->segment(SegmentRole::kValues).size());
    CHECK(size->bits_per_weight == Approx(em->stats.bits_per_weight));
    const double actual_sparsity = 1.0 - static_cast<double>(nnz) / static_cast<double>(rows * cols);
    auto pred = predict_sparse_size(rows, cols, e, actual_sparsity);
    REQUIRE(pred.ok());
    CHECK(pred->total == em->total_bytes());
  }
}

TEST_CASE("predicted sizes match the documented bits per weight", "[sparse]") {
  // int8 at 50%: CSR = 0.5 * (8 + 16) = 12 bits, bitmask = 1 + 0.5 * 8 = 5 bits (plus scales).
  Encoding csr = make_enc(SparseFormat::kCsr, ValueType::kInt8);
  Encoding bm = make_enc(SparseFormat::kBitmask, ValueType::kInt8);
  auto c = predict_sparse_size(4096, 4096, csr, 0.5);
  auto b = predict_sparse_size(4096, 4096, bm, 0.5);
  REQUIRE(c.ok());
  REQUIRE(b.ok());
  CHECK(c->bits_per_weight == Approx(12.0).margin(0.02));
  CHECK(b->bits_per_weight == Approx(5.0).margin(0.02));
  auto nm = predict_sparse_size(4096, 4096, nm_enc(2, 4, ValueType::kInt4), 0.5);
  REQUIRE(nm.ok());
  CHECK(nm->bits_per_weight == Approx(3.0).margin(0.01));
}

TEST_CASE("encoder rejects non finite kept weights and bad encodings", "[sparse]") {
  std::vector<float> w = {1, NAN, 3, 4};
  auto em = encode_sparse(w.data(), 2, 2, make_enc(SparseFormat::kCsr), nullptr, "bad.w");
  REQUIRE_FALSE(em.ok());
  CHECK(em.status().code() == ErrorCode::kNonFinite);
  CHECK(em.status().message().find("[0, 1]") != std::string::npos);
  std::vector<uint8_t> mask = {1, 0, 1, 1};
  CHECK(encode_sparse(w.data(), 2, 2, make_enc(SparseFormat::kCsr), mask.data(), "w").ok());
  CHECK_FALSE(encode_sparse(w.data(), 2, 2, make_enc(SparseFormat::kCsr, ValueType::kInt4), mask.data(), "w").ok());
  CHECK_FALSE(encode_sparse(w.data(), 2, 2, nm_enc(4, 4), mask.data(), "w").ok());
  CHECK_FALSE(encode_sparse(w.data(), 2, 2, nm_enc(2, 17), mask.data(), "w").ok());
  CHECK_FALSE(encode_sparse(w.data(), 2, 2, bsr_enc(0, 4), mask.data(), "w").ok());
  Encoding asym = make_enc(SparseFormat::kCsr, ValueType::kInt8);
  asym.symmetric = false;
  CHECK_FALSE(encode_sparse(w.data(), 2, 2, asym, mask.data(), "w").ok());
}

TEST_CASE("index and pointer widths follow the documented rules at their limits", "[sparse]") {
  // Row pointers: u32 below 2^32 stored units, u64 from 2^32 on (sizes only: nothing allocated).
  const uint64_t big = uint64_t{1} << 32;
  auto csr_small = sparse_size(100000, 100000, make_enc(SparseFormat::kCsr), big - 1);
  auto csr_big = sparse_size(100000, 100000, make_enc(SparseFormat::kCsr), big);
  REQUIRE(csr_small.ok());
  REQUIRE(csr_big.ok());
  CHECK(csr_small->row_ptr == 100001u * 4);
  CHECK(csr_big->row_ptr == 100001u * 8);
  CHECK(csr_big->col_idx == big * 4);  // K = 100000 > 65536: u32 columns
  auto bm_big = sparse_size(100000, 100000, make_enc(SparseFormat::kBitmask), big);
  REQUIRE(bm_big.ok());
  CHECK(bm_big->row_ptr == 100001u * 8);
  CHECK(bm_big->values == big * 4 + kBitmaskValuesTail);
  CHECK(bm_big->meta == 100000u * 8 * ((100000 + 63) / 64));
  // BSR block-column indices: u16 while ceil(K/c) <= 65536.
  auto b16 = sparse_size(8, 65536 * 4, bsr_enc(1, 4), 10);
  auto b32 = sparse_size(8, 65536 * 4 + 1, bsr_enc(1, 4), 10);
  REQUIRE(b16.ok());
  REQUIRE(b32.ok());
  CHECK(b16->col_idx == 20u);
  CHECK(b32->col_idx == 40u);
  CHECK(b16->row_ptr == 9u * 4);
  // N:M metadata: 1, 2 or 4 bits per slot, rows padded to 8 bytes.
  auto l24 = SparseLayout::create(3, 4096, nm_enc(2, 4), "w");
  auto l12 = SparseLayout::create(3, 4096, nm_enc(1, 2), "w");
  auto l48 = SparseLayout::create(3, 4096, nm_enc(4, 8), "w");
  auto l35 = SparseLayout::create(3, 10, nm_enc(3, 5), "w");
  REQUIRE((l24.ok() && l12.ok() && l48.ok() && l35.ok()));
  CHECK(l24->meta_row_bytes == 4096 / 4 * 2 * 2 / 8);
  CHECK(l12->meta_row_bytes == 4096 / 2 * 1 / 8);
  CHECK(l48->meta_row_bytes == 4096 / 8 * 4 * 4 / 8);
  CHECK(l35->meta_row_bytes == 8);  // 2 groups * 3 slots * 4 bits = 24 bits -> one 8-byte word
  CHECK(l35->slots == 6);
}

TEST_CASE("bitmask expand table decodes rows like the reference decoder", "[sparse]") {
  static_assert(kBitmaskExpand.count[0xff] == 8 && kBitmaskExpand.lane[0x0a][3] == 1, "table is constexpr");
  const int64_t rows = 5, cols = 77;
  const auto w = test::gaussian(static_cast<size_t>(rows * cols), 41);
  const auto mask = random_mask(w.size(), 0.55, 42);
  auto em = encode_sparse(w.data(), rows, cols, make_enc(SparseFormat::kBitmask), mask.data(), "w");
  REQUIRE(em.ok());
  const auto want = decode(*em);
  auto l = SparseLayout::create(rows, cols, em->encoding, "w");
  REQUIRE(l.ok());
  const float* values = em->segment(SegmentRole::kValues).as<float>();
  const uint32_t* offsets = em->segment(SegmentRole::kRowPtr).as<uint32_t>();
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* mrow = em->segment(SegmentRole::kMeta).data() + l->meta_offset(r);
    const float* v = values + offsets[r];
    for (int64_t b = 0; b * 8 < cols; ++b) {
      const uint8_t m = mrow[b];
      // What a SIMD decoder does: load 8 values (the zero tail keeps this in bounds), permute.
      float lanes[8];
      std::memcpy(lanes, v, sizeof(lanes));
      for (int j = 0; j < 8 && b * 8 + j < cols; ++j) {
        const uint8_t idx = kBitmaskExpand.lane[m][j];
        const float got = idx & 0x80 ? 0.0f : lanes[idx];
        CHECK(got == want[static_cast<size_t>(r * cols + b * 8 + j)]);
      }
      v += kBitmaskExpand.count[m];
    }
  }
}
