// Property tests: random shapes (1 row, empty, K not a multiple of M or of the block), random
// formats and parameters; prune -> encode -> validate -> decode must reproduce the pruned matrix
// exactly (f32) and the encoded size must equal the exact size formula.
#include <catch2/catch.hpp>

#include <random>
#include <vector>

#include "slmc/prune/prune.hpp"
#include "slmc/prune/prune_encode.hpp"
#include "slmc/sparse/encode.hpp"
#include "slmc/sparse/layout.hpp"
#include "slmc/sparse/validate.hpp"
#include "support/random.hpp"

using namespace slmc;

TEST_CASE("random shapes and formats round trip exactly", "[sparse][property]") {
  std::mt19937_64 rng(2024);
  auto pick = [&](int lo, int hi) { return static_cast<int>(lo + static_cast<int>(rng() % static_cast<uint64_t>(hi - lo + 1))); };
  const int kBlocks[][2] = {{1, 4}, {4, 1}, {4, 4}, {8, 1}, {16, 1}, {2, 3}};
  for (int it = 0; it < 400; ++it) {
    const int64_t rows = pick(0, 5) == 0 ? pick(0, 1) : pick(1, 24);
    const int64_t cols = pick(0, 5) == 0 ? pick(0, 3) : pick(1, 150);
    const auto w = test::gaussian(static_cast<size_t>(rows * cols), rng());
    PruneSpec spec;
    Encoding e;
    switch (pick(0, 3)) {
      case 0:
        e.format = SparseFormat::kCsr;
        spec.method = PruneMethod::kMagnitude;
        break;
      case 1:
        e.format = SparseFormat::kBitmask;
        spec.method = PruneMethod::kMagnitude;
        break;
      case 2: {
        const auto& b = kBlocks[pick(0, 5)];
        e.format = SparseFormat::kBsr;
        e.block_rows = static_cast<uint8_t>(b[0]);
        e.block_cols = static_cast<uint8_t>(b[1]);
        spec.method = PruneMethod::kBlock;
        spec.block_rows = b[0];
        spec.block_cols = b[1];
        spec.norm = pick(0, 1) ? BlockNorm::kL1 : BlockNorm::kL2;
        break;
      }
      default: {
        const int m = pick(2, 16);
        const int n = pick(1, m - 1);
        e.format = SparseFormat::kNM;
        e.nm_n = static_cast<uint8_t>(n);
        e.nm_m = static_cast<uint8_t>(m);
        spec.method = PruneMethod::kNM;
        spec.n = n;
        spec.m = m;
        break;
      }
    }
    spec.sparsity = pick(0, 20) / 20.0;
    spec.scope = pick(0, 1) ? PruneScope::kRow : PruneScope::kTensor;
    INFO("it " << it << " " << sparse_format_name(e.format) << " " << rows << "x" << cols << " s=" << spec.sparsity
               << " nm " << int(e.nm_n) << ":" << int(e.nm_m) << " blk " << int(e.block_rows) << "x" << int(e.block_cols));
    PruneMask mask;
    auto em = prune_and_encode(w.data(), rows, cols, spec, e, "w", &mask);
    INFO(em.status().to_string());
    REQUIRE(em.ok());
    // Exact counts.
    if (spec.method == PruneMethod::kMagnitude) {
      const int64_t want = spec.scope == PruneScope::kRow ? rows * pruned_count(cols, spec.sparsity)
                                                          : pruned_count(rows * cols, spec.sparsity);
      CHECK(mask.pruned() == want);
    }
    if (spec.method == PruneMethod::kNM) {
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t base = 0; base < cols; base += spec.m) {
          int kept = 0;
          for (int64_t c = base; c < std::min<int64_t>(cols, base + spec.m); ++c) kept += mask.keep[static_cast<size_t>(r * cols + c)];
          CHECK(kept == std::min<int64_t>(spec.n, std::min<int64_t>(cols, base + spec.m) - base));
        }
      }
    }
    REQUIRE(validate_sparse_matrix(em->view(), "w").ok());
    std::vector<float> got(static_cast<size_t>(rows * cols) + 1, -7.0f);
    REQUIRE(decode_sparse(em->view(), got.data()).ok());
    std::vector<float> want(static_cast<size_t>(rows * cols));
    apply_mask(mask, w.data(), want.data());
    got.pop_back();
    CHECK(got == want);
    // Exact size accounting.
    auto l = SparseLayout::create(rows, cols, e, "w");
    REQUIRE(l.ok());
    auto stored = l->stored_from_values_bytes(em->segment(SegmentRole::kValues).size(), "w");
    REQUIRE(stored.ok());
    CHECK(l->total_bytes(*stored) == em->total_bytes());
    if (rows * cols > 0) {
      CHECK(em->stats.sparsity == Approx(mask.sparsity()).margin(1e-12));  // gaussian weights are never 0
      CHECK(em->stats.bits_per_weight == Approx(8.0 * em->total_bytes() / double(rows * cols)));
    }
  }
}
