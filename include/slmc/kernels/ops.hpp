// Element-wise and attention ops of a transformer forward pass, on fp32 rows: RMSNorm, RoPE,
// softmax, SiLU·up, residual adds, and the two products of attention over a KV cache (scores
// q·k of many rows, and the weighted sum of many value rows). Shared by the runtimes (Llama
// family now, BERT next); the linear layers are slmc::linear (kernels/linear.hpp).
//
// Each op is compiled once per ISA (kernels/ops/ops_<isa>.cpp: scalar, avx2, avx512) and picked
// at run time like every kernel family (SLMC_ISA forces one; ops_kernel_isa() reports it). Results
// are deterministic: every output is reduced in a fixed order that depends on the ISA only, never
// on the thread count or on the caller. The vector ISAs accumulate sums in float lanes and compute
// exp with a polynomial (relative error below 3e-7), so they differ from the scalar table
// (std::exp, float loops) in the last bits; tests/kernels/test_ops.cpp bounds the difference
// against fp64 references on random and adversarial shapes.
#pragma once

#include <cstdint>

namespace slmc::ops {

/// out[i] = (x[i] * r) * w[i], r = 1 / sqrt(mean(x²) + eps), over n values. out may equal x.
void rmsnorm(const float* x, const float* w, int64_t n, float eps, float* out);

/// Rotates `heads` consecutive vectors of head_dim values (head_dim even) in place by the angles
/// of one position: cos[i], sin[i] for pair i < head_dim / 2. Pairs are (2i, 2i+1) when
/// `interleaved` (llama2.c, GGUF), else (i, i + head_dim/2) (Hugging Face's rotate-half):
/// a' = a·cos − b·sin, b' = a·sin + b·cos (products rounded separately, no FMA: every ISA gives
/// the scalar bits).
void rope(float* v, int64_t heads, int64_t head_dim, const float* cos, const float* sin, bool interleaved);

/// x[i] = exp(x[i] − max x) / Σ exp(x[j] − max x), in place over n > 0 values.
void softmax(float* x, int64_t n);

/// out[i] = silu(gate[i]) · up[i] = gate[i] / (1 + exp(−gate[i])) · up[i]. out may equal gate or up.
void silu_mul(const float* gate, const float* up, int64_t n, float* out);

/// x[i] += y[i] over n values (bit-identical on every ISA).
void add(float* x, const float* y, int64_t n);

/// out[r] = scale · Σ_i q[i] · k[r·stride + i] for r < rows, i < n (attention scores of one query
/// against `rows` cached keys).
void dot_rows(const float* q, const float* k, int64_t stride, int64_t rows, int64_t n, float scale, float* out);

/// out[i] = Σ_r a[r] · v[r·stride + i] for i < n, r < rows in order (attention output of one query
/// from `rows` cached values). out must not overlap v.
void weighted_sum_rows(const float* a, const float* v, int64_t stride, int64_t rows, int64_t n, float* out);

/// The ISA whose table runs these ops now ("scalar", "avx2", "avx512").
const char* ops_kernel_isa();

/// The same ops bound to one ISA's table, resolved once. Each free function above resolves the
/// active ISA on every call (which takes a lock, ~270 instructions); a loop that calls ops
/// thousands of times per token (attention rows, per-row norms), and every parallel region,
/// should resolve once with Kernels::active() and call through the copy.
class Kernels {
 public:
  /// The table of the active ISA (SLMC_ISA / ScopedIsaOverride honoured at this call).
  static Kernels active();
  void rmsnorm(const float* x, const float* w, int64_t n, float eps, float* out) const;
  void rope(float* v, int64_t heads, int64_t head_dim, const float* cos, const float* sin, bool interleaved) const;
  void softmax(float* x, int64_t n) const;
  void silu_mul(const float* gate, const float* up, int64_t n, float* out) const;
  void add(float* x, const float* y, int64_t n) const;
  void dot_rows(const float* q, const float* k, int64_t stride, int64_t rows, int64_t n, float scale, float* out) const;
  void weighted_sum_rows(const float* a, const float* v, int64_t stride, int64_t rows, int64_t n, float* out) const;
  const char* isa() const;

 private:
  explicit Kernels(const void* table) : table_(table) {}
  const void* table_;  ///< the internal table (kernels/ops/ops.hpp), static storage
};

}  // namespace slmc::ops
