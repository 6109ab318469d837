// Linear kernels (slmc/kernels/linear.hpp) against the fp64 oracle, for every dense encoding,
// both activation modes and every runnable ISA; thread-count independence; bad inputs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "dispatch.hpp"
#include "kernels/linear_support.hpp"
#include "slmc/cpu.hpp"
#include "slmc/kernels/linear.hpp"
#include "support/random.hpp"

using namespace slmc;
using slmc::test::TestMatrix;

namespace {

struct Shape {
  int64_t m, k, n;
};

// Shapes: ones, primes, K not a multiple of 32 or of the group, M not a multiple of R or of the
// 16-row grain, N below and above the GEMV/GEMM switch, K beyond one GEMM k-block.
// N = 8, 13 and 17: whole and partial groups of rows of X per weight pass (int4 row pairs).
const std::vector<Shape> kShapes = {{1, 1, 1},   {1, 37, 3},  {13, 97, 1}, {17, 300, 5}, {33, 64, 2},
                                    {7, 256, 9}, {41, 129, 4}, {24, 33, 7}, {3, 530, 1}, {19, 70, 8},
                                    {10, 100, 13}, {6, 45, 17}};

// Tolerances, as documented in docs/KERNELS.md:
//   fp32 mode: |y - y64| <= 1e-5 * (sum_k |x_k w_k| + |bias|)
//   int8 modes: |y - y64| <= 0.5 * sum_k s_k |d c_k| + 1e-5 * (sum_k (|d c_k| + |m_k|) |x_k| + |bias|)
//              with s_k the activation scale of x_k: max |x| / 127 over the 32-value block of k
//              (int8) or over the row (int8-row).
void check_linear(const TestMatrix& t, const std::vector<float>& x, int64_t n, const std::vector<float>& bias,
                  const std::vector<float>& y, ActMode mode, const std::string& what) {
  const int64_t m = t.em.rows, k = t.em.cols;
  const int64_t block = mode == ActMode::kInt8 ? 32 : std::max<int64_t>(k, 1);
  std::vector<double> s(static_cast<size_t>(k));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t b0 = 0; b0 < k; b0 += block) {
      double amax = 0;
      for (int64_t c = b0; c < std::min(k, b0 + block); ++c) amax = std::max(amax, std::fabs(static_cast<double>(x[i * k + c])));
      for (int64_t c = b0; c < std::min(k, b0 + block); ++c) s[static_cast<size_t>(c)] = amax / 127.0;
    }
    for (int64_t r = 0; r < m; ++r) {
      double ref = bias.empty() ? 0.0 : bias[r];
      double abs_sum = bias.empty() ? 0.0 : std::fabs(bias[r]);
      double q_err = 0, wide_sum = abs_sum;
      for (int64_t c = 0; c < k; ++c) {
        const size_t wi = static_cast<size_t>(r * k + c);
        const double xv = x[static_cast<size_t>(i * k + c)];
        ref += t.w[wi] * xv;
        abs_sum += std::fabs(t.w[wi] * xv);
        q_err += 0.5 * s[static_cast<size_t>(c)] * t.dc[wi];
        wide_sum += (t.dc[wi] + t.off[wi]) * std::fabs(xv);
      }
      const double tol = mode == ActMode::kFp32 ? 1e-5 * abs_sum : q_err * (1 + 1e-6) + 1e-5 * wide_sum;
      const double got = y[static_cast<size_t>(i * m + r)];
      if (!(std::fabs(got - ref) <= tol)) {
        FAIL(what << ": y[" << i << "][" << r << "] = " << got << ", fp64 reference " << ref << ", error "
                  << std::fabs(got - ref) << " > tolerance " << tol);
      }
    }
  }
}

std::vector<ActMode> modes_for(const Encoding& e) {
  if (e.is_quantized()) return {ActMode::kFp32, ActMode::kInt8, ActMode::kInt8Row};
  return {ActMode::kFp32};
}

}  // namespace

TEST_CASE("linear matches the fp64 reference for every dense encoding and ISA", "[linear]") {
  uint64_t seed = 1;
  for (Isa isa : runnable_isas()) {
    ScopedIsaOverride force(isa);
    LinearContext ctx(1);
    for (const Encoding& e : test::all_dense_encodings()) {
      for (const Shape& sh : kShapes) {
        ++seed;
        const TestMatrix t = test::make_matrix(sh.m, sh.k, e, seed);
        const std::vector<float> x = test::gaussian(static_cast<size_t>(sh.n * sh.k), seed * 7 + 1);
        const std::vector<float> bias = (seed % 3 == 0) ? std::vector<float>{} : test::gaussian(static_cast<size_t>(sh.m), seed + 5);
        for (ActMode mode : modes_for(e)) {
          std::vector<float> y(static_cast<size_t>(sh.n * sh.m), -12345.0f);
          const Status st = linear(ctx, x.data(), sh.n, t.em.view(), bias.empty() ? nullptr : bias.data(), y.data(), mode);
          const std::string what = std::string(isa_name(isa)) + " " + encoding_name(e) + " " +
                                   act_mode_name(mode) + " M=" + std::to_string(sh.m) + " K=" +
                                   std::to_string(sh.k) + " N=" + std::to_string(sh.n);
          INFO(what);
          REQUIRE(st.ok());
          check_linear(t, x, sh.n, bias, y, mode, what);
        }
      }
    }
  }
}

TEST_CASE("linear handles extreme codes without saturation", "[linear]") {
  // int8 -128 / 127 against activations at +-127 (|x| at the row max) and int4 0 / 15: the inputs
  // where a careless vpmaddubsw saturates.
  uint64_t seed = 900;
  for (Isa isa : runnable_isas()) {
    ScopedIsaOverride force(isa);
    LinearContext ctx(2);
    for (const Encoding& e : test::all_dense_encodings()) {
      if (!e.is_quantized()) continue;
      for (const Shape& sh : std::vector<Shape>{{9, 300, 1}, {20, 257, 6}}) {
        ++seed;
        TestMatrix t = test::make_matrix(sh.m, sh.k, e, seed);
        test::make_extreme_codes(t, seed);
        std::vector<float> x(static_cast<size_t>(sh.n * sh.k));
        for (size_t i = 0; i < x.size(); ++i) x[i] = (i * 2654435761u >> 7) % 2 ? 3.0f : -3.0f;
        for (ActMode mode : {ActMode::kFp32, ActMode::kInt8, ActMode::kInt8Row}) {
          std::vector<float> y(static_cast<size_t>(sh.n * sh.m));
          const std::string what = std::string(isa_name(isa)) + " " + encoding_name(e) + " " + act_mode_name(mode);
          INFO(what);
          REQUIRE(linear(ctx, x.data(), sh.n, t.em.view(), nullptr, y.data(), mode).ok());
          check_linear(t, x, sh.n, {}, y, mode, what);
        }
      }
    }
  }
}

TEST_CASE("linear results do not depend on the thread count", "[linear]") {
  uint64_t seed = 5000;
  for (Isa isa : runnable_isas()) {
    ScopedIsaOverride force(isa);
    for (const Encoding& e : test::all_dense_encodings()) {
      if (e.is_quantized() && e.scale_dtype == DType::kF32) continue;  // keep the run short
      for (const Shape& sh : std::vector<Shape>{{101, 200, 1}, {77, 129, 6}}) {
        ++seed;
        const TestMatrix t = test::make_matrix(sh.m, sh.k, e, seed);
        const std::vector<float> x = test::gaussian(static_cast<size_t>(sh.n * sh.k), seed);
        for (ActMode mode : modes_for(e)) {
          std::vector<float> y1(static_cast<size_t>(sh.n * sh.m)), y2 = y1, y3 = y1;
          LinearContext c1(1), c2(2), c3(3);
          REQUIRE(linear(c1, x.data(), sh.n, t.em.view(), nullptr, y1.data(), mode).ok());
          REQUIRE(linear(c2, x.data(), sh.n, t.em.view(), nullptr, y2.data(), mode).ok());
          REQUIRE(linear(c3, x.data(), sh.n, t.em.view(), nullptr, y3.data(), mode).ok());
          INFO(std::string(isa_name(isa)) + " " + encoding_name(e) + " " + act_mode_name(mode));
          REQUIRE(std::memcmp(y1.data(), y2.data(), y1.size() * 4) == 0);
          REQUIRE(std::memcmp(y1.data(), y3.data(), y1.size() * 4) == 0);
        }
      }
    }
  }
}

TEST_CASE("linear with empty shapes", "[linear]") {
  Encoding e;
  e.value_type = ValueType::kInt4;
  e.granularity = Granularity::kGroup;
  e.group_size = 32;
  LinearContext ctx;
  std::vector<float> y(8, 7.0f);
  // N = 0: nothing is written.
  const TestMatrix t = test::make_matrix(4, 40, e, 3);
  REQUIRE(linear(ctx, nullptr, 0, t.em.view(), nullptr, nullptr).ok());
  // M = 0.
  const TestMatrix t0 = test::make_matrix(0, 40, e, 4);
  const std::vector<float> x = test::gaussian(80, 1);
  REQUIRE(linear(ctx, x.data(), 2, t0.em.view(), nullptr, nullptr).ok());
  // K = 0: y = bias.
  Encoding f;
  const TestMatrix tk = test::make_matrix(4, 0, f, 5);
  const std::vector<float> bias = {1, 2, 3, 4};
  REQUIRE(linear(ctx, nullptr, 2, tk.em.view(), bias.data(), y.data()).ok());
  for (int i = 0; i < 8; ++i) REQUIRE(y[static_cast<size_t>(i)] == bias[static_cast<size_t>(i % 4)]);
}

TEST_CASE("linear scratch does not grow in steady state", "[linear]") {
  Encoding e;
  e.value_type = ValueType::kInt4;
  e.granularity = Granularity::kGroup;
  e.group_size = 32;
  e.layout = RowLayout::kInterleave8;
  const TestMatrix t = test::make_matrix(64, 256, e, 11);
  const std::vector<float> x = test::gaussian(256 * 9, 2);
  std::vector<float> y(64 * 9);
  LinearContext ctx(2);
  for (ActMode mode : {ActMode::kFp32, ActMode::kInt8, ActMode::kInt8Row}) {
    REQUIRE(linear(ctx, x.data(), 9, t.em.view(), nullptr, y.data(), mode).ok());
  }
  const int64_t grows = ctx.scratch_grows();
  for (int rep = 0; rep < 3; ++rep) {
    for (int64_t n : {1, 9, 4}) {
      for (ActMode mode : {ActMode::kFp32, ActMode::kInt8, ActMode::kInt8Row}) {
        REQUIRE(linear(ctx, x.data(), n, t.em.view(), nullptr, y.data(), mode).ok());
      }
    }
  }
  REQUIRE(ctx.scratch_grows() == grows);
}

TEST_CASE("linear default act modes", "[linear]") {
  Encoding e;
  REQUIRE(default_act_mode(e) == ActMode::kFp32);
  e.value_type = ValueType::kInt8;
  e.granularity = Granularity::kChannel;
  REQUIRE(default_act_mode(e) == ActMode::kInt8);
  e.value_type = ValueType::kInt4;
  REQUIRE(default_act_mode(e) == ActMode::kInt8);
  // A model-wide request: int8 modes on quantized layers as asked, float layers fp32.
  for (ActMode m : {ActMode::kAuto, ActMode::kFp32, ActMode::kInt8, ActMode::kInt8Row}) {
    REQUIRE(act_mode_for_layer(m, e) == m);
  }
  Encoding f;
  REQUIRE(act_mode_for_layer(ActMode::kInt8, f) == ActMode::kFp32);
  REQUIRE(act_mode_for_layer(ActMode::kInt8Row, f) == ActMode::kFp32);
  REQUIRE(act_mode_for_layer(ActMode::kAuto, f) == ActMode::kAuto);
  REQUIRE(act_mode_for_layer(ActMode::kFp32, f) == ActMode::kFp32);
}

TEST_CASE("linear rejects bad inputs with a status", "[linear]") {
  Encoding e;
  e.value_type = ValueType::kInt8;
  e.granularity = Granularity::kGroup;
  e.group_size = 32;
  TestMatrix t = test::make_matrix(8, 64, e, 21);
  const std::vector<float> x = test::gaussian(64 * 2, 3);
  std::vector<float> y(16);
  LinearContext ctx;
  REQUIRE(linear(ctx, x.data(), 2, t.em.view(), nullptr, y.data()).ok());
  auto expect = [&](const EncodedMatrixView& v, ErrorCode code, ActMode mode = ActMode::kAuto, int64_t n = 2,
                    const float* xp = nullptr, float* yp = nullptr) {
    const Status st = linear(ctx, xp ? xp : x.data(), n, v, nullptr, yp ? yp : y.data(), mode);
    INFO(st.to_string());
    REQUIRE(st.code() == code);
    REQUIRE(!st.message().empty());
  };
  {
    EncodedMatrixView v = t.em.view();
    v.segments[static_cast<size_t>(SegmentRole::kValues)].nbytes -= 1;
    expect(v, ErrorCode::kInvalidArgument);
  }
  {
    EncodedMatrixView v = t.em.view();
    v.segments[static_cast<size_t>(SegmentRole::kScales)].nbytes = 0;
    expect(v, ErrorCode::kInvalidArgument);
  }
  {
    // Group sizes follow the one legality rule (check_quant_scheme): the quantizer and the loader
    // refuse int8 g24 and int4 g48 with kUnsupported, and so does linear().
    EncodedMatrixView v = t.em.view();
    v.encoding.group_size = 24;
    expect(v, ErrorCode::kUnsupported);
    v.encoding.value_type = ValueType::kInt4;
    v.encoding.group_size = 48;
    expect(v, ErrorCode::kUnsupported);
  }
  {
    EncodedMatrixView v = t.em.view();
    v.encoding.symmetric = false;  // mins missing
    expect(v, ErrorCode::kInvalidArgument);
  }
  {
    EncodedMatrixView v = t.em.view();
    v.encoding.format = SparseFormat::kCsr;  // dense segments labelled CSR: malformed
    expect(v, ErrorCode::kInvalidFormat);
  }
  {
    EncodedMatrixView v = t.em.view();
    v.encoding.layout = static_cast<RowLayout>(3);
    expect(v, ErrorCode::kInvalidArgument);
  }
  {
    EncodedMatrixView v = t.em.view();
    v.rows = -1;
    expect(v, ErrorCode::kInvalidArgument);
  }
  {
    EncodedMatrixView v = t.em.view();
    v.encoding.scale_dtype = DType::kF64;  // a real dtype, not one scales may have: the shared rule's kUnsupported
    expect(v, ErrorCode::kUnsupported);
  }
  expect(t.em.view(), ErrorCode::kInvalidArgument, ActMode::kAuto, -1);
  expect(t.em.view(), ErrorCode::kInvalidArgument, static_cast<ActMode>(9));
  REQUIRE(linear(ctx, nullptr, 2, t.em.view(), nullptr, y.data()).code() == ErrorCode::kInvalidArgument);
  REQUIRE(linear(ctx, x.data(), 2, t.em.view(), nullptr, nullptr).code() == ErrorCode::kInvalidArgument);
  // y overlapping x.
  std::vector<float> xy(64 * 2 + 16);
  REQUIRE(linear(ctx, xy.data(), 2, t.em.view(), nullptr, xy.data() + 100).code() == ErrorCode::kInvalidArgument);
  // int8 activations need quantized weights.
  Encoding f;
  f.value_type = ValueType::kF16;
  const TestMatrix tf = test::make_matrix(8, 64, f, 22);
  expect(tf.em.view(), ErrorCode::kUnsupported, ActMode::kInt8);
  expect(tf.em.view(), ErrorCode::kUnsupported, ActMode::kInt8Row);
  {
    EncodedMatrixView v = tf.em.view();
    v.encoding.layout = RowLayout::kInterleave4;  // float weights are plain rows only
    expect(v, ErrorCode::kInvalidArgument);
  }
  REQUIRE(validate_dense_weights(t.em.view()).ok());
}

TEST_CASE("gather rows dequantizes every dense encoding", "[linear]") {
  uint64_t seed = 777;
  for (Isa isa : runnable_isas()) {
    ScopedIsaOverride force(isa);
    for (const Encoding& e : test::all_dense_encodings()) {
      ++seed;
      const int64_t m = 19, k = 83;
      const TestMatrix t = test::make_matrix(m, k, e, seed);
      const std::vector<int64_t> rows = {0, 18, 5, 5, 16, 17, 3};
      std::vector<float> out(rows.size() * k);
      REQUIRE(gather_rows(t.em.view(), rows.data(), static_cast<int64_t>(rows.size()), out.data()).ok());
      INFO(std::string(isa_name(isa)) + " " + encoding_name(e));
      for (size_t i = 0; i < rows.size(); ++i) {
        for (int64_t c = 0; c < k; ++c) {
          const size_t wi = static_cast<size_t>(rows[i] * k + c);
          const double ref = t.w[wi];
          const double tol = 1e-6 * (t.dc[wi] + t.off[wi]);
          REQUIRE(std::fabs(out[i * k + static_cast<size_t>(c)] - ref) <= tol);
        }
      }
      const int64_t bad_row = m;
      REQUIRE(gather_rows(t.em.view(), &bad_row, 1, out.data()).code() == ErrorCode::kOutOfRange);
      const int64_t neg_row = -1;
      REQUIRE(gather_rows(t.em.view(), &neg_row, 1, out.data()).code() == ErrorCode::kOutOfRange);
    }
  }
}

TEST_CASE("linear reports the ISA it dispatches to", "[linear]") {
  // An ISA without a kernels/linear file (one that so far brings only other families, e.g.
  // kernels/ops/) is served by its fallback chain and reports that ISA.
#define SLMC_TEST_LINEAR_FILE(family, isa) std::string(#isa),
  const std::vector<std::string> linear_files{SLMC_KERNELS_linear(SLMC_TEST_LINEAR_FILE)};
#undef SLMC_TEST_LINEAR_FILE
  for (Isa isa : runnable_isas()) {
    ScopedIsaOverride force(isa);
    const std::string name(isa_name(isa));
    if (std::find(linear_files.begin(), linear_files.end(), name) != linear_files.end()) {
      REQUIRE(std::string(linear_kernel_isa()) == name);
    } else {
      REQUIRE(detail::isa_implies(isa, *isa_from_name(linear_kernel_isa())));
    }
  }
}

TEST_CASE("linear on long rows crosses K blocks and int32 spans", "[linear]") {
  // K beyond one int8 GEMM block (1024) and, for per-channel scales, beyond one int32 span of the
  // GEMV (32768 elements); N below and above the GEMM switch.
  uint64_t seed = 31000;
  for (Isa isa : runnable_isas()) {
    ScopedIsaOverride force(isa);
    LinearContext ctx(2);
    for (const Encoding& e : test::all_dense_encodings()) {
      if (e.scale_dtype == DType::kF32 && e.is_quantized()) continue;
      const bool channel = e.granularity == Granularity::kChannel || !e.is_quantized();
      std::vector<Shape> shapes = {{19, 2100, 5}, {21, 1100, 13}, {9, 1500, 1}};
      if (channel) shapes.push_back({9, 33000, 3});
      for (const Shape& sh : shapes) {
        ++seed;
        const TestMatrix t = test::make_matrix(sh.m, sh.k, e, seed);
        const std::vector<float> x = test::gaussian(static_cast<size_t>(sh.n * sh.k), seed);
        const std::vector<float> bias = test::gaussian(static_cast<size_t>(sh.m), seed + 3);
        for (ActMode mode : modes_for(e)) {
          std::vector<float> y(static_cast<size_t>(sh.n * sh.m));
          const std::string what = std::string(isa_name(isa)) + " " + encoding_name(e) + " " +
                                   act_mode_name(mode) + " M=" + std::to_string(sh.m) + " K=" +
                                   std::to_string(sh.k) + " N=" + std::to_string(sh.n);
          INFO(what);
          REQUIRE(linear(ctx, x.data(), sh.n, t.em.view(), bias.data(), y.data(), mode).ok());
          check_linear(t, x, sh.n, bias, y, mode, what);
        }
      }
    }
  }
}

TEST_CASE("batched int8-mode GEMVs give each row of X the bits of a one-row call", "[linear]") {
  // The AVX2 int8-mode GEMVs serve up to 8 rows of X per weight pass, in passes over rows (or row
  // pairs) and groups of rows of X; each row of X must see the same operations as alone. Where the
  // GEMV serves: int4 row pairs (interleaved blocks) with g32 for every N, other groupings up to
  // N = 16; all other quantized rows up to N = 8.
  if (!cpu_supports(Isa::kAvx2)) {
    WARN("no AVX2 on this CPU: the batched AVX2 GEMVs are not checked here");
    return;
  }
  ScopedIsaOverride force(Isa::kAvx2);
  LinearContext ctx(1);
  uint64_t seed = 47000;
  for (const Encoding& e : test::all_dense_encodings()) {
    if (!e.is_quantized()) continue;
    const bool pairs = e.value_type == ValueType::kInt4 && e.layout != RowLayout::kRows &&
                       e.granularity != Granularity::kTensor;
    const bool g32 = e.granularity == Granularity::kGroup && e.group_size == 32;
    for (int64_t k : {300, 1100}) {
      ++seed;
      const int64_t m = 21, nmax = pairs ? (g32 ? 24 : 16) : 8;
      const TestMatrix t = test::make_matrix(m, k, e, seed);
      const std::vector<float> x = test::gaussian(static_cast<size_t>(nmax * k), seed + 1);
      const std::vector<float> bias = test::gaussian(static_cast<size_t>(m), seed + 2);
      std::vector<float> one(static_cast<size_t>(nmax * m));
      for (int64_t i = 0; i < nmax; ++i) {
        REQUIRE(linear(ctx, x.data() + i * k, 1, t.em.view(), bias.data(), one.data() + i * m, ActMode::kInt8Row).ok());
      }
      for (int64_t n = 2; n <= nmax; ++n) {
        std::vector<float> y(static_cast<size_t>(n * m));
        REQUIRE(linear(ctx, x.data(), n, t.em.view(), bias.data(), y.data(), ActMode::kInt8Row).ok());
        INFO(encoding_name(e) << " K=" << k << " N=" << n);
        REQUIRE(std::memcmp(y.data(), one.data(), y.size() * 4) == 0);
      }
    }
  }
}

TEST_CASE("int8 activations get the same codes and scale in every ISA", "[linear]") {
  // W = the identity in int8 codes with per-channel scale 1: y_r = xscale * xq_r exactly on every
  // path (GEMV and GEMM), so comparing the outputs bit for bit compares the activation codes.
  auto identity = [](int64_t k) {
    Encoding e;
    e.value_type = ValueType::kInt8;
    e.granularity = Granularity::kChannel;
    e.scale_dtype = DType::kF32;
    EncodedMatrix w;
    w.rows = w.cols = k;
    w.encoding = e;
    const DenseQuantLayout l(k, k, e);
    w.segment(SegmentRole::kValues) = AlignedBuffer(static_cast<size_t>(l.values_bytes()));
    std::memset(w.segment(SegmentRole::kValues).data(), 0, static_cast<size_t>(l.values_bytes()));
    for (int64_t r = 0; r < k; ++r) w.segment(SegmentRole::kValues).data()[l.chunk_offset(r, r / 32) + r % 32] = 1;
    w.segment(SegmentRole::kScales) = AlignedBuffer(static_cast<size_t>(l.scale_count()) * 4);
    for (int64_t i = 0; i < l.scale_count(); ++i) w.segment(SegmentRole::kScales).as<float>()[i] = 1.0f;
    return w;
  };
  uint64_t seed = 90000;
  for (int64_t k : {1, 7, 31, 32, 33, 65, 100, 257}) {
    const EncodedMatrix w = identity(k);
    for (int variant = 0; variant < 5; ++variant) {
      for (int64_t n : {1, 5, 13}) {  // 13: the AVX-512 block GEMM
        std::vector<float> x = test::gaussian(static_cast<size_t>(n * k), ++seed);
        for (int64_t i = 0; i < n; ++i) {
          float* row = x.data() + i * k;
          if (variant == 1) {  // max |x| = 127, so x * 127 / max = x: half-way values round to even
            for (int64_t c = 0; c < k; ++c) row[c] = (c % 2 ? -1.0f : 1.0f) * (static_cast<float>(c % 120) + 0.5f);
            row[k - 1] = 127.0f;
          } else if (variant == 2) {  // NaN inputs give code 0 and never become the maximum
            row[static_cast<size_t>(i) % static_cast<size_t>(k)] = std::nanf("");
          } else if (variant == 3) {  // an all-zero row: scale 0, codes 0
            std::fill(row, row + k, 0.0f);
          } else if (variant == 4) {  // an infinite maximum: inverse scale 0, codes 0
            row[k / 2] = -INFINITY;
          }
        }
        // Expected outputs from the quantizer's definition (scale max|x| / 127 over the non-NaN x of
        // the row (int8-row) or of the 32-value block (int8); code = round half to even of
        // x * 127 / max, clamped, NaN -> 0), in the same float operations, so SIMD outputs must
        // match them bit for bit. In block mode an infinite scale (an infinite x) multiplies the
        // zero sums of the other rows too: the whole row of X gives NaN, in every ISA.
        for (ActMode mode : {ActMode::kInt8Row, ActMode::kInt8}) {
        const int64_t block = mode == ActMode::kInt8 ? 32 : k;
        std::vector<float> want(static_cast<size_t>(n * k));
        for (int64_t i = 0; i < n; ++i) {
          const float* row = x.data() + i * k;
          bool poisoned = false;
          for (int64_t b0 = 0; b0 < k; b0 += block) {
            const int64_t b1 = std::min(k, b0 + block);
            float amax = 0.0f;
            for (int64_t c = b0; c < b1; ++c) amax = std::max(amax, std::fabs(row[c]));
            poisoned |= mode == ActMode::kInt8 && !std::isfinite(amax / 127.0f);
            const float inv = amax > 0.0f && std::isfinite(amax) ? 127.0f / amax : 0.0f;
            for (int64_t c = b0; c < b1; ++c) {
              float v = row[c] * inv;
              v = std::isnan(v) ? 0.0f : std::min(127.0f, std::max(-127.0f, v));
              want[static_cast<size_t>(i * k + c)] = amax / 127.0f * static_cast<float>(static_cast<int>(std::nearbyint(v)));
            }
          }
          if (poisoned) std::fill(want.begin() + i * k, want.begin() + (i + 1) * k, std::nanf(""));
        }
        for (Isa isa : runnable_isas()) {
          ScopedIsaOverride force(isa);
          LinearContext ctx(2);
          std::vector<float> y(want.size(), -1.0f);
          REQUIRE(linear(ctx, x.data(), n, w.view(), nullptr, y.data(), mode).ok());
          for (size_t j = 0; j < y.size(); ++j) {
            INFO(isa_name(isa) << " " << act_mode_name(mode) << " k=" << k << " n=" << n << " variant " << variant
                               << " at " << j << ": x = " << x[j] << ", y = " << y[j] << ", want " << want[j]);
            if (std::isnan(want[j])) {
              REQUIRE(std::isnan(y[j]));
            } else {
              REQUIRE(std::memcmp(&y[j], &want[j], 4) == 0);
            }
          }
        }
        }
      }
    }
  }
}

TEST_CASE("int8 (block) mode: every ISA agrees with the scalar reference, any N gives one-row bits", "[linear]") {
  // The block GEMVs (AVX2, AVX-VNNI, AVX-512) take up to 2 or 4 rows of X per weight pass and 1, 4
  // or 8 rows per group: each row of X must get the bits of a one-row call. From some N on, an ISA
  // may switch to a packed GEMM (AVX-512: 16 rows x 12 rows of X per tile, K blocks of 2048), whose
  // per-output reduction differs from the GEMV's (docs/KERNELS.md, "int8 (block) GEMM"): then every
  // N from that switch on must give each row of X one set of bits, the same at any position in the
  // batch (here: the batch shifted by one row) and for any thread count. Every ISA must agree with
  // the scalar reference up to float rounding (integer chunk sums are exact; only the order of the
  // fp32 additions differs).
  uint64_t seed = 123000;
  // M not a multiple of 16, K not a multiple of 32 or of a K block (2048), N around the tile (12).
  const std::vector<Shape> shapes{{37, 300, 9}, {24, 1100, 5}, {16, 64, 3}, {21, 2100, 14}, {50, 161, 26}};
  for (const Encoding& e : test::all_dense_encodings()) {
    if (!e.is_quantized()) continue;
    for (const Shape& sh : shapes) {
      ++seed;
      const TestMatrix t = test::make_matrix(sh.m, sh.k, e, seed);
      // sh.n + 1 rows: the batches x[0, N) and x[1, N + 1).
      std::vector<float> x = test::gaussian(static_cast<size_t>((sh.n + 1) * sh.k), seed + 1);
      for (size_t i = 0; i < x.size(); i += 97) x[i] *= 40.0f;  // outliers: block scales differ a lot
      const std::vector<float> bias = test::gaussian(static_cast<size_t>(sh.m), seed + 2);
      std::vector<float> ref(static_cast<size_t>(sh.n * sh.m));
      {
        ScopedIsaOverride force(Isa::kScalar);
        LinearContext ctx(1);
        REQUIRE(linear(ctx, x.data(), sh.n, t.em.view(), bias.data(), ref.data(), ActMode::kInt8).ok());
      }
      for (Isa isa : runnable_isas()) {
        ScopedIsaOverride force(isa);
        LinearContext ctx(2), ctx1(1);
        const size_t mm = static_cast<size_t>(sh.m);
        std::vector<float> y(ref.size()), one(ref.size() + mm), shifted(ref.size()), y1(ref.size());
        REQUIRE(linear(ctx, x.data(), sh.n, t.em.view(), bias.data(), y.data(), ActMode::kInt8).ok());
        for (int64_t i = 0; i <= sh.n; ++i) {
          REQUIRE(linear(ctx, x.data() + i * sh.k, 1, t.em.view(), bias.data(), one.data() + i * sh.m, ActMode::kInt8).ok());
        }
        INFO(isa_name(isa) << " " << encoding_name(e) << " M=" << sh.m << " K=" << sh.k << " N=" << sh.n);
        // The GEMM regime is that of the full batch; each smaller N either gives one-row bits (below
        // the switch) or the full batch's bits (from it on), and once the GEMM serves it serves every
        // larger N.
        const bool gemm = std::memcmp(y.data(), one.data(), y.size() * 4) != 0;
        bool switched = false;
        for (int64_t n = 1; n < sh.n; ++n) {
          std::vector<float> yn(static_cast<size_t>(n) * mm);
          REQUIRE(linear(ctx, x.data(), n, t.em.view(), bias.data(), yn.data(), ActMode::kInt8).ok());
          const bool as_one = std::memcmp(yn.data(), one.data(), yn.size() * 4) == 0;
          const bool as_batch = std::memcmp(yn.data(), y.data(), yn.size() * 4) == 0;
          INFO("N=" << n << ": one-row bits " << as_one << ", full-batch bits " << as_batch);
          REQUIRE((as_one || as_batch));
          if (gemm && !as_one) switched = true;
          REQUIRE((!switched || as_batch));
        }
        if (gemm) {
          // Rows 1..N at positions 0..N-1 (another tile position, another tail tile) and one thread.
          REQUIRE(linear(ctx, x.data() + sh.k, sh.n, t.em.view(), bias.data(), shifted.data(), ActMode::kInt8).ok());
          REQUIRE(std::memcmp(shifted.data(), y.data() + mm, (y.size() - mm) * 4) == 0);
          REQUIRE(linear(ctx1, x.data(), sh.n, t.em.view(), bias.data(), y1.data(), ActMode::kInt8).ok());
          REQUIRE(std::memcmp(y1.data(), y.data(), y.size() * 4) == 0);
        }
        for (int64_t i = 0; i < sh.n; ++i) {
          for (int64_t r = 0; r < sh.m; ++r) {
            // Tolerance: 1e-5 of the sum of |terms| (bounded here by |w| |x| summed in fp64).
            double mag = std::fabs(bias[static_cast<size_t>(r)]);
            for (int64_t c = 0; c < sh.k; ++c) {
              mag += (t.dc[static_cast<size_t>(r * sh.k + c)] + t.off[static_cast<size_t>(r * sh.k + c)]) *
                     std::fabs(x[static_cast<size_t>(i * sh.k + c)]);
            }
            const size_t j = static_cast<size_t>(i * sh.m + r);
            INFO("y[" << i << "][" << r << "] = " << y[j] << ", scalar " << ref[j]);
            REQUIRE(std::fabs(y[j] - ref[j]) <= 1e-5 * mag);
          }
        }
      }
    }
  }
}
