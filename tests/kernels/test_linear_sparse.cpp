// linear() and gather_rows() on sparse weights (CSR, BSR, N:M, bitmask; f32, int8, int4 N:M),
// against the fp64 product with the reference decoder's dense matrix (slmc/sparse/encode.hpp).
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "slmc/cpu.hpp"
#include "slmc/kernels/linear.hpp"
#include "slmc/sparse/encode.hpp"
#include "support/random.hpp"

using namespace slmc;

namespace {

struct SparseCase {
  std::string name;
  Encoding enc;
};

Encoding sparse_enc(SparseFormat f, ValueType vt, Granularity g = Granularity::kNone, int gs = 0) {
  Encoding e;
  e.format = f;
  e.value_type = vt;
  e.granularity = vt == ValueType::kF32 ? Granularity::kNone : g;
  e.group_size = gs;
  e.scale_dtype = DType::kF16;
  return e;
}

std::vector<SparseCase> sparse_cases() {
  std::vector<SparseCase> out;
  for (ValueType vt : {ValueType::kF32, ValueType::kInt8}) {
    const std::string v = vt == ValueType::kF32 ? "f32" : "int8";
    out.push_back({"csr_" + v, sparse_enc(SparseFormat::kCsr, vt, Granularity::kChannel)});
    out.push_back({"csr_g16_" + v, sparse_enc(SparseFormat::kCsr, vt, Granularity::kGroup, 16)});
    out.push_back({"bitmask_" + v, sparse_enc(SparseFormat::kBitmask, vt, Granularity::kGroup, 32)});
    if (vt == ValueType::kInt8) {  // a scale per 32-column chunk, per two chunks and per row
      out.push_back({"bitmask_g64_" + v, sparse_enc(SparseFormat::kBitmask, vt, Granularity::kGroup, 64)});
      out.push_back({"bitmask_ch_" + v, sparse_enc(SparseFormat::kBitmask, vt, Granularity::kChannel)});
    }
    for (auto [r, c] : {std::pair{4, 1}, {1, 4}, {3, 5}, {16, 1}}) {
      Encoding e = sparse_enc(SparseFormat::kBsr, vt, Granularity::kChannel);
      e.block_rows = static_cast<uint8_t>(r);
      e.block_cols = static_cast<uint8_t>(c);
      out.push_back({"bsr" + std::to_string(r) + "x" + std::to_string(c) + "_" + v, e});
    }
  }
  for (ValueType vt : {ValueType::kF32, ValueType::kInt8, ValueType::kInt4}) {
    for (RowLayout rl : {RowLayout::kRows, RowLayout::kInterleave4, RowLayout::kInterleave8}) {
      if (vt == ValueType::kF32 && rl != RowLayout::kRows) continue;
      for (auto [n, m] : {std::pair{2, 4}, {1, 2}, {3, 8}}) {
        Encoding e = sparse_enc(SparseFormat::kNM, vt, Granularity::kGroup, 8 * m);
        e.nm_n = static_cast<uint8_t>(n);
        e.nm_m = static_cast<uint8_t>(m);
        e.layout = rl;
        out.push_back({"nm" + std::to_string(n) + "of" + std::to_string(m) + "_vt" +
                           std::to_string(static_cast<int>(vt)) + "_r" + std::to_string(static_cast<int>(rl)),
                       e});
      }
    }
  }
  // 2:4 scale groupings the int8 GEMV handles in different ways: one scale per row, groups of two
  // 32-column chunks, and groups of three (an odd span: the expanding decoder).
  for (ValueType vt : {ValueType::kInt8, ValueType::kInt4}) {
    for (auto [g, gs] : {std::pair{Granularity::kChannel, 0}, {Granularity::kGroup, 64}, {Granularity::kGroup, 96}}) {
      Encoding e = sparse_enc(SparseFormat::kNM, vt, g, gs);
      e.nm_n = 2;
      e.nm_m = 4;
      out.push_back({"nm2of4_vt" + std::to_string(static_cast<int>(vt)) + "_g" + std::to_string(gs), e});
    }
  }
  return out;
}

// A keep mask at ~70% sparsity that fits the format (N:M: at most N per group, tail included).
std::vector<uint8_t> make_mask(const Encoding& e, int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> mask(static_cast<size_t>(rows * cols), 0);
  if (e.format != SparseFormat::kNM) {
    std::bernoulli_distribution keep(0.3);
    for (auto& k : mask) k = keep(rng) ? 1 : 0;
    return mask;
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g * e.nm_m < cols; ++g) {
      const int real = static_cast<int>(std::min<int64_t>(e.nm_m, cols - g * e.nm_m));
      std::vector<int> idx(static_cast<size_t>(real));
      for (int i = 0; i < real; ++i) idx[static_cast<size_t>(i)] = i;
      std::shuffle(idx.begin(), idx.end(), rng);
      for (int i = 0; i < std::min<int>(e.nm_n, real); ++i) {
        mask[static_cast<size_t>(r * cols + g * e.nm_m + idx[static_cast<size_t>(i)])] = 1;
      }
    }
  }
  return mask;
}

}  // namespace

TEST_CASE("sparse linear matches the fp64 product of the decoded weights", "[linear][sparse]") {
  uint64_t seed = 70000;
  // N = 1 (GEMV paths), N = 2..33 (transposed tiles of 8/16/32 with partial tiles), K below and
  // above one 64-column mask word, not a multiple of 8, 32 or the N:M group; GEMV rows long enough
  // for the unrolled 2:4 loops (four 64-column steps per scale load) and their tails.
  const std::vector<std::array<int64_t, 3>> shapes = {{1, 1, 1},    {7, 37, 3},   {33, 130, 1}, {20, 67, 6},
                                                      {17, 256, 2},  {9, 129, 17}, {5, 520, 33}, {3, 200, 9},
                                                      {5, 600, 1},   {2, 1024, 1}};
  for (Isa isa : runnable_isas()) {
    ScopedIsaOverride force(isa);
    LinearContext ctx(2);
    for (const SparseCase& sc : sparse_cases()) {
      for (const auto& sh : shapes) {
        const int64_t m = sh[0], k = sh[1], n = sh[2];
        ++seed;
        const std::vector<float> w = test::gaussian(static_cast<size_t>(m * k), seed);
        const std::vector<uint8_t> mask = make_mask(sc.enc, m, k, seed + 1);
        Result<EncodedMatrix> em = encode_sparse(w.data(), m, k, sc.enc, mask.data(), "w");
        INFO(sc.name << " M=" << m << " K=" << k << " N=" << n << " " << em.status().to_string());
        REQUIRE(em.ok());
        std::vector<float> dense(static_cast<size_t>(m * k));
        REQUIRE(decode_sparse(em->view(), dense.data()).ok());
        const std::vector<float> x = test::gaussian(static_cast<size_t>(n * k), seed + 2);
        const std::vector<float> bias = test::gaussian(static_cast<size_t>(m), seed + 3);
        std::vector<float> y(static_cast<size_t>(n * m), -7.0f);
        REQUIRE(linear(ctx, x.data(), n, em->view(), bias.data(), y.data(), ActMode::kFp32).ok());
        for (int64_t i = 0; i < n; ++i) {
          for (int64_t r = 0; r < m; ++r) {
            double ref = bias[static_cast<size_t>(r)], abs_sum = std::fabs(bias[static_cast<size_t>(r)]);
            for (int64_t c = 0; c < k; ++c) {
              const double p = static_cast<double>(dense[static_cast<size_t>(r * k + c)]) * x[static_cast<size_t>(i * k + c)];
              ref += p;
              abs_sum += std::fabs(p);
            }
            REQUIRE(std::fabs(y[static_cast<size_t>(i * m + r)] - ref) <= 1e-5 * abs_sum);
          }
        }
        // Thread-count independence.
        LinearContext one(1);
        std::vector<float> y1(y.size());
        REQUIRE(linear(one, x.data(), n, em->view(), bias.data(), y1.data(), ActMode::kFp32).ok());
        REQUIRE(std::memcmp(y.data(), y1.data(), y.size() * 4) == 0);
        if (sc.enc.is_quantized()) {
          // int8 mode: within the activation-rounding bound of docs/KERNELS.md,
          // 1/2 * s * sum_k |w_k| + 1e-5 * (sum_k |w_k x_k| + |b|), s = max|x| / 127 per row of X.
          REQUIRE(linear(ctx, x.data(), n, em->view(), bias.data(), y.data(), ActMode::kInt8Row).ok());
          REQUIRE(linear(one, x.data(), n, em->view(), bias.data(), y1.data(), ActMode::kInt8Row).ok());
          REQUIRE(std::memcmp(y.data(), y1.data(), y.size() * 4) == 0);
          // A batch gives each row of X the bits of a small call: the multi-row dot (several rows
          // of X per pass over a decoded row, N >= 4) against N = 2 calls of [x_i; x_i], which
          // take the one-row dot on the same decoded row.
          if (n >= 4) {
            std::vector<float> x2(static_cast<size_t>(2 * k)), y2(static_cast<size_t>(2 * m));
            for (int64_t i = 0; i < n; ++i) {
              std::copy(x.begin() + i * k, x.begin() + (i + 1) * k, x2.begin());
              std::copy(x.begin() + i * k, x.begin() + (i + 1) * k, x2.begin() + k);
              REQUIRE(linear(one, x2.data(), 2, em->view(), bias.data(), y2.data(), ActMode::kInt8Row).ok());
              INFO("row of X " << i);
              REQUIRE(std::memcmp(y2.data(), y.data() + i * m, static_cast<size_t>(m) * 4) == 0);
            }
          }
          for (int64_t i = 0; i < n; ++i) {
            double amax = 0;
            for (int64_t c = 0; c < k; ++c) amax = std::max(amax, std::fabs(static_cast<double>(x[static_cast<size_t>(i * k + c)])));
            const double s = amax / 127.0;
            for (int64_t r = 0; r < m; ++r) {
              double ref = bias[static_cast<size_t>(r)], abs_sum = std::fabs(bias[static_cast<size_t>(r)]), wsum = 0;
              for (int64_t c = 0; c < k; ++c) {
                const double wv = dense[static_cast<size_t>(r * k + c)];
                const double p = wv * x[static_cast<size_t>(i * k + c)];
                ref += p;
                abs_sum += std::fabs(p);
                wsum += std::fabs(wv);
              }
              INFO("int8 mode, output (" << i << ", " << r << ")");
              REQUIRE(std::fabs(y[static_cast<size_t>(i * m + r)] - ref) <= 0.5 * s * wsum + 1e-5 * abs_sum);
            }
          }
        }
        // Gather equals the decoded rows exactly.
        const std::vector<int64_t> rows = {m - 1, 0};
        std::vector<float> out(rows.size() * static_cast<size_t>(k));
        REQUIRE(gather_rows(em->view(), rows.data(), 2, out.data()).ok());
        for (size_t i = 0; i < rows.size(); ++i) {
          REQUIRE(std::memcmp(out.data() + i * static_cast<size_t>(k), dense.data() + rows[i] * k,
                              static_cast<size_t>(k) * 4) == 0);
        }
      }
    }
  }
}

TEST_CASE("sparse linear rejects int8 activations on f32 values and corrupt weights", "[linear][sparse]") {
  const std::vector<float> w = test::gaussian(8 * 40, 5);
  Encoding ef = sparse_enc(SparseFormat::kCsr, ValueType::kF32);
  Result<EncodedMatrix> emf = encode_sparse(w.data(), 8, 40, ef, nullptr, "w");
  REQUIRE(emf.ok());
  Encoding e = sparse_enc(SparseFormat::kCsr, ValueType::kInt8, Granularity::kChannel);
  Result<EncodedMatrix> em = encode_sparse(w.data(), 8, 40, e, nullptr, "w");
  REQUIRE(em.ok());
  const std::vector<float> x = test::gaussian(40, 6);
  std::vector<float> y(8);
  LinearContext ctx;
  REQUIRE(default_act_mode(ef) == ActMode::kFp32);
  REQUIRE(default_act_mode(e) == ActMode::kFp32);  // CSR/BSR int8 values: fp32 is faster
  REQUIRE(default_act_mode(sparse_enc(SparseFormat::kBitmask, ValueType::kInt8, Granularity::kGroup, 32)) == ActMode::kInt8Row);
  REQUIRE(default_act_mode(sparse_enc(SparseFormat::kNM, ValueType::kInt4, Granularity::kGroup, 32)) == ActMode::kInt8Row);
  REQUIRE(linear(ctx, x.data(), 1, emf->view(), nullptr, y.data()).ok());
  REQUIRE(linear(ctx, x.data(), 1, emf->view(), nullptr, y.data(), ActMode::kInt8Row).code() == ErrorCode::kUnsupported);
  REQUIRE(linear(ctx, x.data(), 1, em->view(), nullptr, y.data(), ActMode::kInt8Row).ok());
  EncodedMatrixView v = em->view();
  v.segments[static_cast<size_t>(SegmentRole::kColIdx)].nbytes -= 2;
  const Status st = linear(ctx, x.data(), 1, v, nullptr, y.data());
  INFO(st.to_string());
  REQUIRE(!st.ok());
  // Without the content check, segment sizes are still checked exactly.
  LinearContext trusting;
  trusting.set_check_sparse_contents(false);
  REQUIRE(linear(trusting, x.data(), 1, em->view(), nullptr, y.data()).ok());
  const Status st2 = linear(trusting, x.data(), 1, v, nullptr, y.data());
  INFO(st2.to_string());
  REQUIRE(st2.code() == ErrorCode::kInvalidFormat);
  // With it, a column index out of range inside a correctly sized segment is reported.
  EncodedMatrix bad = std::move(*em);
  bad.segment(SegmentRole::kColIdx).as<uint16_t>()[0] = 40;
  const Status st3 = linear(ctx, x.data(), 1, bad.view(), nullptr, y.data());
  INFO(st3.to_string());
  REQUIRE(!st3.ok());
}
