// Pruning and sparse encodings on real trained weights (stories260K, capp-gpt2-236K): the
// optimality order of the masks, round trips through every format, and a printed table of
// size versus error.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "slmc/prune/prune.hpp"
#include "slmc/prune/prune_encode.hpp"
#include "slmc/sparse/encode.hpp"
#include "slmc/sparse/validate.hpp"
#include "support/models.hpp"
#include "support/simple_models.hpp"

using namespace slmc;

namespace {

std::vector<test::NamedMatrix> linears() {
  std::vector<test::NamedMatrix> out;
  for (auto& m : test::read_llama2c_matrices(test::model_path("stories260K/stories260K.bin"))) {
    if (m.name != "token_embedding") out.push_back(std::move(m));
  }
  for (auto& m : test::read_safetensors_matrices(test::model_path("capp-gpt2-236K/model.safetensors"), true)) {
    if (m.name.find(".h.") != std::string::npos) out.push_back(std::move(m));
  }
  return out;
}

/// ||W - W .* mask||^2
double pruned_err2(const test::NamedMatrix& m, const PruneMask& mask) {
  double e = 0;
  for (size_t i = 0; i < m.data.size(); ++i) {
    if (!mask.keep[i]) e += double(m.data[i]) * m.data[i];
  }
  return e;
}

double norm2(const test::NamedMatrix& m) {
  double s = 0;
  for (float x : m.data) s += double(x) * x;
  return s;
}

}  // namespace

TEST_CASE("real weights masks follow the optimality order tensor row nm", "[sparse][models]") {
  const auto ms = linears();
  REQUIRE(ms.size() > 4);
  for (const auto& m : ms) {
    if (m.cols % 4 != 0) continue;
    auto t = prune_unstructured(m.data.data(), m.rows, m.cols, 0.5, PruneScope::kTensor, nullptr, m.name);
    auto r = prune_unstructured(m.data.data(), m.rows, m.cols, 0.5, PruneScope::kRow, nullptr, m.name);
    auto nm = prune_n_m(m.data.data(), m.rows, m.cols, 2, 4, nullptr, m.name);
    REQUIRE((t.ok() && r.ok() && nm.ok()));
    REQUIRE(t->kept == r->kept);
    REQUIRE(r->kept == nm->kept);
    INFO(m.name);
    // Same kept count: the per-tensor magnitude mask minimizes the pruned energy over all masks,
    // the per-row one over masks with K/2 per row (2:4 masks are among them).
    CHECK(pruned_err2(m, *t) <= pruned_err2(m, *r));
    CHECK(pruned_err2(m, *r) <= pruned_err2(m, *nm));
  }
}

TEST_CASE("real weights round trip through every sparse format", "[sparse][models]") {
  const auto ms = linears();
  struct Row {
    const char* name;
    PruneSpec spec;
    Encoding enc;
    double bits = 0, err2 = 0, ref2 = 0, n = 0;
  };
  auto enc = [](SparseFormat f, ValueType vt, int a = 0, int b = 0) {
    Encoding e;
    e.format = f;
    e.value_type = vt;
    if (vt != ValueType::kF32) e.granularity = Granularity::kChannel;
    if (f == SparseFormat::kNM) {
      e.nm_n = static_cast<uint8_t>(a);
      e.nm_m = static_cast<uint8_t>(b);
    }
    if (f == SparseFormat::kBsr) {
      e.block_rows = static_cast<uint8_t>(a);
      e.block_cols = static_cast<uint8_t>(b);
    }
    return e;
  };
  auto spec = [](PruneMethod method, double s, int a = 0, int b = 0) {
    PruneSpec p;
    p.method = method;
    p.sparsity = s;
    if (method == PruneMethod::kNM) {
      p.n = a;
      p.m = b;
    }
    if (method == PruneMethod::kBlock) {
      p.block_rows = a;
      p.block_cols = b;
    }
    return p;
  };
  Encoding nm4 = enc(SparseFormat::kNM, ValueType::kInt4, 2, 4);
  nm4.granularity = Granularity::kGroup;
  nm4.group_size = 64;
  nm4.scale_dtype = DType::kF16;
  nm4.search = ScaleSearch::kMse;
  std::vector<Row> rows = {
      {"bitmask int8  50% mag", spec(PruneMethod::kMagnitude, 0.5), enc(SparseFormat::kBitmask, ValueType::kInt8)},
      {"bitmask int8  70% mag", spec(PruneMethod::kMagnitude, 0.7), enc(SparseFormat::kBitmask, ValueType::kInt8)},
      {"csr int8      90% mag", spec(PruneMethod::kMagnitude, 0.9), enc(SparseFormat::kCsr, ValueType::kInt8)},
      {"csr f32       90% mag", spec(PruneMethod::kMagnitude, 0.9), enc(SparseFormat::kCsr, ValueType::kF32)},
      {"nm 2:4 int8", spec(PruneMethod::kNM, 0, 2, 4), enc(SparseFormat::kNM, ValueType::kInt8, 2, 4)},
      {"nm 2:4 int4 g64 mse", spec(PruneMethod::kNM, 0, 2, 4), nm4},
      {"bsr 4x1 int8  70%", spec(PruneMethod::kBlock, 0.7, 4, 1), enc(SparseFormat::kBsr, ValueType::kInt8, 4, 1)},
      {"bsr 1x4 int8  70%", spec(PruneMethod::kBlock, 0.7, 1, 4), enc(SparseFormat::kBsr, ValueType::kInt8, 1, 4)},
  };
  for (Row& row : rows) {
    for (const auto& m : ms) {
      PruneMask mask;
      auto em = prune_and_encode(m.data.data(), m.rows, m.cols, row.spec, row.enc, m.name, &mask);
      INFO(row.name << " " << m.name << " " << em.status().to_string());
      REQUIRE(em.ok());
      REQUIRE(validate_sparse_matrix(em->view(), m.name).ok());
      std::vector<float> dec(m.data.size());
      REQUIRE(decode_sparse(em->view(), dec.data()).ok());
      double e2 = 0;
      int64_t pruned_nonzero = 0;
      for (size_t i = 0; i < dec.size(); ++i) {
        const double d = double(m.data[i]) - dec[i];
        e2 += d * d;
        pruned_nonzero += !mask.keep[i] && dec[i] != 0.0f;
      }
      CHECK(pruned_nonzero == 0);
      // Quantizing the survivors adds little to the pruning error (int8: ~1e-4 relative).
      const double prune_only = pruned_err2(m, mask);
      CHECK(e2 >= prune_only * (1 - 1e-9));
      if (row.enc.value_type == ValueType::kF32) CHECK(e2 == Approx(prune_only).epsilon(1e-12));
      if (row.enc.value_type == ValueType::kInt8) CHECK(std::sqrt(e2) <= std::sqrt(prune_only) + 0.01 * std::sqrt(norm2(m)));
      row.bits += 8.0 * double(em->total_bytes());
      row.err2 += e2;
      row.ref2 += norm2(m);
      row.n += double(m.data.size());
    }
  }
  std::printf("\nsparse encodings on stories260K + capp-gpt2-236K linear weights (%zu matrices)\n%-24s %8s %10s\n",
              ms.size(), "encoding", "bpw", "rel_error");
  for (const Row& row : rows) std::printf("%-24s %8.3f %10.4f\n", row.name, row.bits / row.n, std::sqrt(row.err2 / row.ref2));
}
