// Scalar sparse linear kernels: plain loops over the stored entries, the reference every other ISA
// is tested against (besides the fp64 oracle in the tests).
//   fp32 mode: y = sum over stored entries of w * x (w = code * scale for int8/int4 values).
//   int8 mode: y = xscale * sum_runs d_run * (sum_{entries in run} code * xq), a run being the
//              consecutive entries that share one scale (at most kRunMax entries: int32 is exact).
#include <algorithm>
#include <cstdint>

#include "linear_sparse/linear_sparse.hpp"

namespace slmc::detail {
namespace {

constexpr int64_t kRunMax = 65536;  // 65536 * 128 * 127 < 2^31

void fp32_rows(const SparseLinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch) {
  float* acc = reinterpret_cast<float*>(scratch);
  const int64_t k = a.layout.cols, m = a.layout.rows;
  for (int64_t r = m0; r < m1; ++r) {
    std::fill(acc, acc + a.n, 0.0f);
    for_each_sparse_entry(a, r, [&](const SparseEntry& e) {
      for (int64_t i = 0; i < a.n; ++i) acc[i] += e.w * a.x[i * k + e.col];
    });
    const float b = a.bias ? a.bias[r] : 0.0f;
    for (int64_t i = 0; i < a.n; ++i) a.y[i * m + r] = acc[i] + b;
  }
}

void int8_rows(const SparseLinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch) {
  float* facc = reinterpret_cast<float*>(scratch);
  int32_t* isum = reinterpret_cast<int32_t*>(scratch) + a.n;
  const int64_t m = a.layout.rows;
  for (int64_t r = m0; r < m1; ++r) {
    std::fill(facc, facc + a.n, 0.0f);
    std::fill(isum, isum + a.n, 0);
    int64_t run_si = -1, run_len = 0;
    auto flush = [&] {
      if (run_si >= 0) {
        const float d = a.scale(run_si);
        for (int64_t i = 0; i < a.n; ++i) facc[i] += d * static_cast<float>(isum[i]);
      }
      std::fill(isum, isum + a.n, 0);
      run_len = 0;
    };
    for_each_sparse_entry(a, r, [&](const SparseEntry& e) {
      if (e.si != run_si || run_len == kRunMax) {
        flush();
        run_si = e.si;
      }
      ++run_len;
      for (int64_t i = 0; i < a.n; ++i) isum[i] += e.code * a.xq[i * a.kpad + e.col];
    });
    flush();
    const float b = a.bias ? a.bias[r] : 0.0f;
    for (int64_t i = 0; i < a.n; ++i) a.y[i * m + r] = a.xscale[i] * facc[i] + b;
  }
}

size_t scratch_bytes(const SparseLinearArgs& a) { return static_cast<size_t>(a.n) * 8; }

}  // namespace

const SparseLinearKernels& linear_sparse_kernels_scalar() {
  static const SparseLinearKernels k{"scalar", fp32_rows, int8_rows, scratch_bytes};
  return k;
}

}  // namespace slmc::detail
