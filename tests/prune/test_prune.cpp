// Pruning: exact counts, deterministic ties, N:M and block structure, Wanda scores and global
// thresholds, all against brute-force references (full sorts).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "slmc/prune/prune.hpp"
#include "slmc/prune/prune_encode.hpp"
#include "slmc/sparse/encode.hpp"
#include "slmc/sparse/validate.hpp"
#include "support/random.hpp"

#if defined(SLMC_HAVE_OPENMP)
#include <omp.h>
#endif

using namespace slmc;

namespace {

/// Keep mask that keeps the `keep` best of scores[0..n) by (score desc, index asc) — a full sort.
std::vector<uint8_t> brute_keep(const std::vector<double>& scores, int64_t keep) {
  std::vector<int64_t> idx(scores.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  std::vector<uint8_t> m(scores.size(), 0);
  for (int64_t i = 0; i < keep; ++i) m[static_cast<size_t>(idx[static_cast<size_t>(i)])] = 1;
  return m;
}

std::vector<double> abs_scores(const std::vector<float>& w, int64_t cols, const float* norms = nullptr) {
  std::vector<double> s(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    s[i] = std::fabs(static_cast<double>(w[i]));
    if (norms) s[i] = static_cast<float>(std::fabs(w[i]) * norms[i % static_cast<size_t>(cols)]);
  }
  return s;
}

/// Weights with many exact ties (values from a small set), to exercise tie-breaking.
std::vector<float> tied_weights(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> d(-4, 4);
  std::vector<float> w(n);
  for (auto& x : w) x = 0.25f * static_cast<float>(d(rng));
  return w;
}

const std::vector<std::pair<int64_t, int64_t>> kShapes = {{1, 1}, {1, 10}, {3, 7}, {8, 64}, {17, 33}, {0, 5}, {5, 0}, {64, 100}};

}  // namespace

TEST_CASE("pruned count rounds half up and is exact", "[prune]") {
  CHECK(pruned_count(10, 0.5) == 5);
  CHECK(pruned_count(10, 0.25) == 3);  // 2.5 rounds up
  CHECK(pruned_count(10, 0.0) == 0);
  CHECK(pruned_count(10, 1.0) == 10);
  CHECK(pruned_count(0, 0.7) == 0);
  CHECK(pruned_count(4096 * 4096, 0.9) == 15099494);
}

TEST_CASE("unstructured per tensor pruning matches a full sort", "[prune]") {
  uint64_t seed = 1;
  for (auto [rows, cols] : kShapes) {
    for (double s : {0.0, 0.3, 0.5, 0.9, 1.0}) {
      for (int tied = 0; tied < 2; ++tied) {
        const size_t n = static_cast<size_t>(rows * cols);
        const auto w = tied ? tied_weights(n, seed++) : test::gaussian(n, seed++);
        auto m = prune_unstructured(w.data(), rows, cols, s, PruneScope::kTensor, nullptr, "w");
        REQUIRE(m.ok());
        const int64_t want_pruned = pruned_count(rows * cols, s);
        INFO(rows << "x" << cols << " s=" << s << " tied=" << tied);
        CHECK(m->pruned() == want_pruned);
        CHECK(m->kept == rows * cols - want_pruned);
        CHECK(m->keep == brute_keep(abs_scores(w, cols), rows * cols - want_pruned));
      }
    }
  }
}

TEST_CASE("unstructured per row pruning keeps the same count in every row", "[prune]") {
  uint64_t seed = 50;
  for (auto [rows, cols] : kShapes) {
    for (double s : {0.25, 0.5, 0.75}) {
      const auto w = seed % 2 ? tied_weights(static_cast<size_t>(rows * cols), seed) : test::gaussian(static_cast<size_t>(rows * cols), seed);
      ++seed;
      auto m = prune_unstructured(w.data(), rows, cols, s, PruneScope::kRow, nullptr, "w");
      REQUIRE(m.ok());
      const int64_t keep_row = cols - pruned_count(cols, s);
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<float> row(w.begin() + r * cols, w.begin() + (r + 1) * cols);
        const auto want = brute_keep(abs_scores(row, cols), keep_row);
        CHECK(std::vector<uint8_t>(m->keep.begin() + r * cols, m->keep.begin() + (r + 1) * cols) == want);
      }
      CHECK(m->kept == rows * keep_row);
    }
  }
}

TEST_CASE("ties are broken toward keeping the lower index", "[prune]") {
  std::vector<float> w(8, 1.0f);
  auto m = prune_unstructured(w.data(), 1, 8, 0.5, PruneScope::kTensor, nullptr, "w");
  REQUIRE(m.ok());
  CHECK(m->keep == std::vector<uint8_t>{1, 1, 1, 1, 0, 0, 0, 0});
  w = {-2, 2, 1, -1, 2, 0, 0, -2};
  auto m2 = prune_unstructured(w.data(), 1, 8, 0.5, PruneScope::kTensor, nullptr, "w");
  REQUIRE(m2.ok());
  CHECK(m2->keep == std::vector<uint8_t>{1, 1, 0, 0, 1, 0, 0, 1});
}

TEST_CASE("global pruning uses one threshold across tensors", "[prune]") {
  const auto a = test::gaussian(40 * 30, 7, 1.0f);
  const auto b = test::gaussian(20 * 50, 8, 0.3f);  // smaller weights: pruned more
  const auto c = tied_weights(9 * 11, 9);
  std::vector<PruneInput> in = {{"a", a.data(), 40, 30, nullptr}, {"b", b.data(), 20, 50, nullptr}, {"c", c.data(), 9, 11, nullptr}};
  for (double s : {0.0, 0.4, 0.8, 1.0}) {
    auto g = prune_global(in, s);
    REQUIRE(g.ok());
    std::vector<float> all(a);
    all.insert(all.end(), b.begin(), b.end());
    all.insert(all.end(), c.begin(), c.end());
    const int64_t total = static_cast<int64_t>(all.size());
    const auto want = brute_keep(abs_scores(all, 1), total - pruned_count(total, s));
    std::vector<uint8_t> got;
    for (const auto& m : g->masks) got.insert(got.end(), m.keep.begin(), m.keep.end());
    CHECK(got == want);
    CHECK(g->total == total);
    CHECK(g->kept == total - pruned_count(total, s));
    // One threshold: every pruned score <= threshold <= every kept score.
    for (size_t i = 0; i < all.size(); ++i) {
      if (got[i]) {
        CHECK(std::fabs(all[i]) >= g->threshold);
      } else {
        CHECK(std::fabs(all[i]) <= g->threshold);
      }
    }
    if (s == 0.4) {
      CHECK(g->masks[1].sparsity() > g->masks[0].sparsity());
    }
  }
}

TEST_CASE("nm pruning holds in every group and keeps the best", "[prune]") {
  uint64_t seed = 200;
  for (auto [n, m] : std::vector<std::pair<int, int>>{{2, 4}, {1, 4}, {4, 8}, {1, 2}, {3, 7}, {8, 16}, {15, 16}}) {
    for (int64_t cols : {1, 2, 5, 16, 31, 64}) {
      const int64_t rows = 5;
      const auto w = seed % 2 ? tied_weights(static_cast<size_t>(rows * cols), seed) : test::gaussian(static_cast<size_t>(rows * cols), seed);
      ++seed;
      auto mask = prune_n_m(w.data(), rows, cols, n, m, nullptr, "w");
      REQUIRE(mask.ok());
      int64_t want_kept = 0;
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t base = 0; base < cols; base += m) {
          const int64_t real = std::min<int64_t>(m, cols - base);
          std::vector<float> g(w.begin() + r * cols + base, w.begin() + r * cols + base + real);
          const int64_t keep = std::min<int64_t>(n, real);
          want_kept += keep;
          const auto want = brute_keep(abs_scores(g, real), keep);
          std::vector<uint8_t> got(mask->keep.begin() + r * cols + base, mask->keep.begin() + r * cols + base + real);
          INFO(n << ":" << m << " K=" << cols << " row " << r << " base " << base);
          CHECK(got == want);
          CHECK(std::accumulate(got.begin(), got.end(), 0) <= n);
        }
      }
      CHECK(mask->kept == want_kept);
    }
  }
}

TEST_CASE("block pruning removes whole blocks with exact block counts", "[prune]") {
  uint64_t seed = 300;
  for (auto [br, bc] : std::vector<std::pair<int, int>>{{1, 4}, {4, 1}, {4, 4}, {8, 1}, {16, 1}, {3, 5}}) {
    for (auto [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{16, 16}, {17, 30}, {1, 9}, {33, 8}}) {
      for (BlockNorm norm : {BlockNorm::kL1, BlockNorm::kL2}) {
        for (PruneScope scope : {PruneScope::kTensor, PruneScope::kRow}) {
          const auto w = test::gaussian(static_cast<size_t>(rows * cols), seed++);
          auto mask = prune_blocks(w.data(), rows, cols, br, bc, 0.6, norm, scope, nullptr, "w");
          REQUIRE(mask.ok());
          const int64_t nbr = (rows + br - 1) / br, nbc = (cols + bc - 1) / bc;
          // Brute-force block scores (mean |w| or RMS over real elements).
          std::vector<double> bs(static_cast<size_t>(nbr * nbc), 0.0);
          for (int64_t b = 0; b < nbr; ++b) {
            for (int64_t j = 0; j < nbc; ++j) {
              double acc = 0;
              int cnt = 0;
              for (int64_t r = b * br; r < std::min(rows, (b + 1) * br); ++r) {
                for (int64_t c = j * bc; c < std::min(cols, (j + 1) * bc); ++c) {
                  const double v = std::fabs(w[static_cast<size_t>(r * cols + c)]);
                  acc += norm == BlockNorm::kL1 ? v : v * v;
                  ++cnt;
                }
              }
              const double mean = acc / cnt;
              bs[static_cast<size_t>(b * nbc + j)] = static_cast<float>(norm == BlockNorm::kL1 ? mean : std::sqrt(mean));
            }
          }
          std::vector<uint8_t> want_blocks;
          if (scope == PruneScope::kTensor) {
            want_blocks = brute_keep(bs, nbr * nbc - pruned_count(nbr * nbc, 0.6));
          } else {
            for (int64_t b = 0; b < nbr; ++b) {
              std::vector<double> row(bs.begin() + b * nbc, bs.begin() + (b + 1) * nbc);
              auto k = brute_keep(row, nbc - pruned_count(nbc, 0.6));
              want_blocks.insert(want_blocks.end(), k.begin(), k.end());
            }
          }
          INFO(br << "x" << bc << " on " << rows << "x" << cols);
          bool ok = true;
          for (int64_t r = 0; r < rows; ++r) {
            for (int64_t c = 0; c < cols; ++c) {
              ok = ok && mask->keep[static_cast<size_t>(r * cols + c)] == want_blocks[static_cast<size_t>((r / br) * nbc + c / bc)];
            }
          }
          CHECK(ok);
        }
      }
    }
  }
}

TEST_CASE("wanda scores and masks match a brute force reference", "[prune]") {
  const int64_t rows = 12, cols = 40;
  const auto w = test::gaussian(static_cast<size_t>(rows * cols), 400);
  auto mean_sq = test::uniform(static_cast<size_t>(cols), 401, 0.0f, 4.0f);
  mean_sq[3] = 0.0f;  // a dead channel: every weight in it scores 0
  const double count = 128;
  auto norms = wanda_column_norms(mean_sq.data(), cols, count, "w");
  REQUIRE(norms.ok());
  for (int64_t j = 0; j < cols; ++j) {
    CHECK((*norms)[static_cast<size_t>(j)] == Approx(std::sqrt(double(mean_sq[static_cast<size_t>(j)]) * count)).epsilon(1e-6));
  }
  std::vector<float> scores(w.size());
  REQUIRE(importance_scores(w.data(), rows, cols, norms->data(), scores.data(), "w").ok());
  for (size_t i = 0; i < w.size(); ++i) {
    CHECK(scores[i] == Approx(std::fabs(double(w[i])) * (*norms)[i % cols]).epsilon(1e-6));
  }
  // Per output row, as in the Wanda paper.
  auto m = prune_unstructured(w.data(), rows, cols, 0.5, PruneScope::kRow, norms->data(), "w");
  REQUIRE(m.ok());
  const auto all = abs_scores(w, cols, norms->data());
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<double> row(all.begin() + r * cols, all.begin() + (r + 1) * cols);
    CHECK(std::vector<uint8_t>(m->keep.begin() + r * cols, m->keep.begin() + (r + 1) * cols) == brute_keep(row, cols / 2));
    CHECK(m->keep[static_cast<size_t>(r * cols + 3)] == 0);
  }
  // Wanda differs from plain magnitude on this data.
  auto plain = prune_unstructured(w.data(), rows, cols, 0.5, PruneScope::kRow, nullptr, "w");
  REQUIRE(plain.ok());
  CHECK(plain->keep != m->keep);
  // N:M with Wanda scores.
  auto nm = prune_n_m(w.data(), rows, cols, 2, 4, norms->data(), "w");
  REQUIRE(nm.ok());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t base = 0; base < cols; base += 4) {
      std::vector<double> g(all.begin() + r * cols + base, all.begin() + r * cols + base + 4);
      CHECK(std::vector<uint8_t>(nm->keep.begin() + r * cols + base, nm->keep.begin() + r * cols + base + 4) == brute_keep(g, 2));
    }
  }
}

TEST_CASE("pruning rejects bad input with clear errors", "[prune]") {
  std::vector<float> w = {1, 2, NAN, 4};
  auto m = prune_unstructured(w.data(), 2, 2, 0.5, PruneScope::kTensor, nullptr, "layer.0.w");
  REQUIRE_FALSE(m.ok());
  CHECK(m.status().code() == ErrorCode::kNonFinite);
  CHECK(m.status().message().find("layer.0.w") != std::string::npos);
  CHECK(m.status().message().find("[1, 0]") != std::string::npos);
  w[2] = 3;
  CHECK(prune_unstructured(w.data(), 2, 2, 1.5, PruneScope::kTensor, nullptr, "w").status().code() == ErrorCode::kInvalidArgument);
  CHECK(prune_unstructured(w.data(), 2, 2, NAN, PruneScope::kTensor, nullptr, "w").status().code() == ErrorCode::kInvalidArgument);
  CHECK_FALSE(prune_n_m(w.data(), 2, 2, 2, 2, nullptr, "w").ok());
  CHECK_FALSE(prune_n_m(w.data(), 2, 2, 1, 17, nullptr, "w").ok());
  CHECK_FALSE(prune_blocks(w.data(), 2, 2, 0, 4, 0.5, BlockNorm::kL1, PruneScope::kTensor, nullptr, "w").ok());
  std::vector<float> bad_norms = {1, -1};
  CHECK_FALSE(prune_unstructured(w.data(), 2, 2, 0.5, PruneScope::kRow, bad_norms.data(), "w").ok());
  std::vector<float> ms = {1, NAN};
  CHECK_FALSE(wanda_column_norms(ms.data(), 2, 10, "w").ok());
  ms[1] = 1;
  CHECK_FALSE(wanda_column_norms(ms.data(), 2, 0, "w").ok());
}

TEST_CASE("polynomial and constant sparsity schedules", "[prune]") {
  SparsitySchedule s;
  s.initial_sparsity = 0.0;
  s.final_sparsity = 0.8;
  s.begin_step = 100;
  s.end_step = 1100;
  s.frequency = 100;
  REQUIRE(validate_schedule(s).ok());
  CHECK(scheduled_sparsity(s, 0) == 0.0);
  CHECK(scheduled_sparsity(s, 100) == 0.0);
  CHECK(scheduled_sparsity(s, 1100) == Approx(0.8));
  CHECK(scheduled_sparsity(s, 5000) == Approx(0.8));
  // Half way: 0.8 + (0 - 0.8) * 0.5^3 = 0.7.
  CHECK(scheduled_sparsity(s, 600) == Approx(0.7));
  // Frequency: constant within a 100-step interval.
  CHECK(scheduled_sparsity(s, 650) == scheduled_sparsity(s, 600));
  CHECK(scheduled_sparsity(s, 699) == scheduled_sparsity(s, 600));
  double prev = -1;
  for (int64_t t = 0; t <= 1200; t += 50) {
    const double v = scheduled_sparsity(s, t);
    CHECK(v >= prev);
    prev = v;
  }
  s.kind = SparsitySchedule::Kind::kConstant;
  CHECK(scheduled_sparsity(s, 99) == 0.0);
  CHECK(scheduled_sparsity(s, 100) == 0.8);
  s.frequency = 0;
  CHECK_FALSE(validate_schedule(s).ok());
}

TEST_CASE("prune then quantize in one call", "[prune]") {
  const int64_t rows = 32, cols = 96;
  const auto w = test::student_t_outliers(static_cast<size_t>(rows * cols), 500);
  struct Case {
    PruneSpec spec;
    Encoding enc;
  };
  std::vector<Case> cases;
  {
    Case c;
    c.spec.method = PruneMethod::kMagnitude;
    c.spec.sparsity = 0.7;
    c.enc.format = SparseFormat::kCsr;
    c.enc.value_type = ValueType::kInt8;
    c.enc.granularity = Granularity::kChannel;
    cases.push_back(c);
    c.enc.format = SparseFormat::kBitmask;
    c.spec.sparsity = 0.5;
    c.spec.scope = PruneScope::kRow;
    cases.push_back(c);
    c.spec.method = PruneMethod::kNM;
    c.enc.format = SparseFormat::kNM;
    c.enc.nm_n = 2;
    c.enc.nm_m = 4;
    c.enc.value_type = ValueType::kInt4;
    c.enc.granularity = Granularity::kGroup;
    c.enc.group_size = 32;
    c.enc.scale_dtype = DType::kF16;
    cases.push_back(c);
    Case b;
    b.spec.method = PruneMethod::kBlock;
    b.spec.sparsity = 0.75;
    b.spec.block_rows = 4;
    b.spec.block_cols = 4;
    b.enc.format = SparseFormat::kBsr;
    b.enc.block_rows = 4;
    b.enc.block_cols = 4;
    cases.push_back(b);
  }
  for (const Case& c : cases) {
    INFO("format " << int(c.enc.format));
    PruneMask mask;
    auto em = prune_and_encode(w.data(), rows, cols, c.spec, c.enc, "w", &mask);
    INFO(em.status().to_string());
    REQUIRE(em.ok());
    REQUIRE(validate_sparse_matrix(em->view(), "w").ok());
    std::vector<float> got(w.size());
    REQUIRE(decode_sparse(em->view(), got.data()).ok());
    std::vector<float> pruned(w.size());
    apply_mask(mask, w.data(), pruned.data());
    double err2 = 0, ref2 = 0;
    int64_t zeros = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      if (!mask.keep[i]) CHECK(got[i] == 0.0f);
      err2 += (double(w[i]) - got[i]) * (double(w[i]) - got[i]);
      ref2 += double(w[i]) * w[i];
      zeros += got[i] == 0.0f;
    }
    CHECK(em->stats.rel_error == Approx(std::sqrt(err2 / ref2)).epsilon(1e-9));
    CHECK(em->stats.rmse == Approx(std::sqrt(err2 / double(w.size()))).epsilon(1e-9));
    CHECK(em->stats.sparsity == Approx(double(zeros) / double(w.size())));
    CHECK(em->stats.sparsity >= mask.sparsity());
    CHECK(em->stats.bits_per_weight == Approx(8.0 * double(em->total_bytes()) / double(w.size())));
    CHECK(em->stats.sqnr_db == Approx(10 * std::log10(ref2 / err2)).epsilon(1e-9));
  }
  PruneSpec wrong;
  wrong.method = PruneMethod::kMagnitude;
  Encoding nm;
  nm.format = SparseFormat::kNM;
  nm.nm_n = 2;
  nm.nm_m = 4;
  CHECK(prune_and_encode(w.data(), rows, cols, wrong, nm, "w").status().code() == ErrorCode::kInvalidArgument);
}

TEST_CASE("masks and encodings do not depend on the thread count", "[prune]") {
#if defined(SLMC_HAVE_OPENMP)
  const int64_t rows = 300, cols = 1000;  // large enough for the parallel selection paths
  const auto w = tied_weights(static_cast<size_t>(rows * cols), 900);
  const auto w2 = test::gaussian(static_cast<size_t>(rows * cols), 901);
  auto run = [&](int threads) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    std::vector<std::vector<uint8_t>> out;
    out.push_back(prune_unstructured(w.data(), rows, cols, 0.6, PruneScope::kTensor, nullptr, "w")->keep);
    out.push_back(prune_unstructured(w.data(), rows, cols, 0.6, PruneScope::kRow, nullptr, "w")->keep);
    out.push_back(prune_n_m(w2.data(), rows, cols, 2, 4, nullptr, "w")->keep);
    std::vector<PruneInput> in = {{"a", w.data(), rows, cols, nullptr}, {"b", w2.data(), rows, cols, nullptr}};
    auto g = prune_global(in, 0.7);
    out.push_back(g->masks[0].keep);
    out.push_back(g->masks[1].keep);
    PruneSpec spec;
    spec.method = PruneMethod::kNM;
    Encoding e;
    e.format = SparseFormat::kNM;
    e.nm_n = 2;
    e.nm_m = 4;
    e.value_type = ValueType::kInt4;
    e.granularity = Granularity::kGroup;
    e.group_size = 64;
    e.search = ScaleSearch::kMse;
    e.layout = RowLayout::kInterleave8;
    auto em = prune_and_encode(w2.data(), rows, cols, spec, e, "w");
    for (const auto& seg : em->segments) out.emplace_back(seg.data(), seg.data() + seg.size());
    out.emplace_back(reinterpret_cast<const uint8_t*>(&em->stats), reinterpret_cast<const uint8_t*>(&em->stats) + sizeof(ErrorStats));
    omp_set_num_threads(saved);
    return out;
  };
  CHECK(run(1) == run(2));
#else
  SUCCEED("built without OpenMP");
#endif
}
