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

void rmsnorm_with(const detail::OpsKernels& t, const float* x, const float* w, int64_t n, float eps, float* out) {
  const double ss = t.sum_squares(x, n);
  const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + static_cast<double>(eps)));
  t.scale_mul(x, w, inv, n, out);
}
}  // namespace

void rmsnorm(const float* x, const float* w, int64_t n, float eps, float* out) { rmsnorm_with(table(), x, w, n, eps, out); }
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

#define SLMC_OPS_T (*static_cast<const detail::OpsKernels*>(table_))
Kernels Kernels::active() { return Kernels(&table()); }
void Kernels::rmsnorm(const float* x, const float* w, int64_t n, float eps, float* out) const {
  rmsnorm_with(SLMC_OPS_T, x, w, n, eps, out);
}
void Kernels::rope(float* v, int64_t heads, int64_t head_dim, const float* cos, const float* sin, bool interleaved) const {
  SLMC_OPS_T.rope(v, heads, head_dim, cos, sin, interleaved);
}
void Kernels::softmax(float* x, int64_t n) const { SLMC_OPS_T.softmax(x, n); }
void Kernels::silu_mul(const float* gate, const float* up, int64_t n, float* out) const {
  SLMC_OPS_T.silu_mul(gate, up, n, out);
}
void Kernels::add(float* x, const float* y, int64_t n) const { SLMC_OPS_T.add(x, y, n); }
void Kernels::dot_rows(const float* q, const float* k, int64_t stride, int64_t rows, int64_t n, float scale,
                       float* out) const {
  SLMC_OPS_T.dot_rows(q, k, stride, rows, n, scale, out);
}
void Kernels::weighted_sum_rows(const float* a, const float* v, int64_t stride, int64_t rows, int64_t n,
                                float* out) const {
  SLMC_OPS_T.weighted_sum_rows(a, v, stride, rows, n, out);
}
const char* Kernels::isa() const { return SLMC_OPS_T.isa; }
#undef SLMC_OPS_T

}  // namespace ops
}  // namespace slmc
