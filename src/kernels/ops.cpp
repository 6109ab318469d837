// Dispatch of the forward-pass ops (include/slmc/kernels/ops.hpp, kernels/ops/).
#include "slmc/kernels/ops.hpp"

#include <cmath>

#include "dispatch.hpp"
#include "ops/ops.hpp"

namespace slmc {
namespace detail {
const OpsKernels& ops_kernels(Isa isa) {
  static const auto tables = SLMC_KERNEL_TABLES(OpsKernels, ops);
  return tables.get(isa);
}
}  // namespace detail

namespace ops {
namespace {
const detail::OpsKernels& table() { return detail::ops_kernels(detail::kernel_isa()); }
}  // namespace

void rmsnorm(const float* x, const float* w, int64_t n, float eps, float* out) {
  const detail::OpsKernels& t = table();
  const double ss = t.sum_squares(x, n);
  const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + static_cast<double>(eps)));
  t.scale_mul(x, w, inv, n, out);
}
void rope(float* v, int64_t heads, int64_t head_dim, const float* cos, const float* sin, bool interleaved) {
  table().rope(v, heads, head_dim, cos, sin, interleaved);
}
void softmax(float* x, int64_t n) { table().softmax(x, n); }
void silu_mul(const float* gate, const float* up, int64_t n, float* out) { table().silu_mul(gate, up, n, out); }
void add(float* x, const float* y, int64_t n) { table().add(x, y, n); }
void dot_rows(const float* q, const float* k, int64_t stride, int64_t rows, int64_t n, float scale, float* out) {
  table().dot_rows(q, k, stride, rows, n, scale, out);
}
void weighted_sum_rows(const float* a, const float* v, int64_t stride, int64_t rows, int64_t n, float* out) {
  table().weighted_sum_rows(a, v, stride, rows, n, out);
}
const char* ops_kernel_isa() { return table().isa; }

}  // namespace ops
}  // namespace slmc
