// Linear layers on encoded weights: Y[N x M] = X[N x K] * W[M x K]^T (+ bias), the nn.Linear
// convention, for every dense encoding (fp32/fp16/bf16; int8 and int4 with per-tensor, per-channel
// or per-group scales, symmetric or asymmetric, fp16 or fp32 scales; plain or R-row interleaved
// rows). Weights are read in place, in the layout of docs/LAYOUT.md: no repacking at load time.
//
// Activation modes (docs/KERNELS.md has the error bounds):
//   kFp32: weights are dequantized in registers and multiplied with fp32 activations; exact up to
//          float rounding (every output within 1e-5 * sum_k |x_k w_k| of the fp64 product).
//   kInt8: X is quantized on the fly to int8 in blocks of 32 values along K, each block with its
//          own scale s = max|x| / 127 over the block (round to nearest even), and the weight codes
//          are multiplied with integer dot products (W8A8, W4A8), one per 32-value chunk, scaled
//          by s * d in fp32; the offset part of a code (int4's -8, asymmetric mins) uses fp32 sums
//          of X (of the quantized X for symmetric int4). The scheme of llama.cpp's Q8_0
//          activations; chosen on SmolLM2 (docs/measurements/2026-12-02-quality.md: KL to fp32
//          0.0258 with one scale per row, 0.005 with one per block). Dense weights only.
//   kInt8Row: the older scheme, one scale s = max|x| / 127 per row of X and integer sums over
//          whole scale groups: less work per product, larger error on rows with outliers. Dense,
//          bitmask and N:M weights.
//   kAuto: kInt8 for int8/int4 weights stored dense; kInt8Row for bitmask and N:M (their kernels
//          have no block mode yet); kFp32 for float weights and for CSR/BSR (default_act_mode()).
//
// Results are bit-identical for any thread count: threads split the output rows, and every output
// element is reduced in a fixed order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "slmc/buffer.hpp"
#include "slmc/encoding.hpp"
#include "slmc/status.hpp"

namespace slmc {

enum class ActMode : uint8_t {
  kAuto = 0,  ///< default_act_mode() of the weight encoding
  kFp32 = 1,  ///< fp32 activations, weights dequantized in registers
  kInt8Row = 2,  ///< activations quantized to int8 with one scale per row (quantized weights)
  kInt8 = 3,     ///< activations quantized to int8 with one scale per 32 values (dense quantized weights)
};

/// "auto", "fp32", "int8" or "int8-row".
const char* act_mode_name(ActMode mode) noexcept;
/// The mode named `name` (the spelling of act_mode_name), or nullopt.
std::optional<ActMode> act_mode_from_name(std::string_view name) noexcept;

/// The activation mode kAuto resolves to: kInt8 for int8/int4 weights stored dense, kInt8Row for
/// bitmask or N:M; kFp32 for float weights and for CSR/BSR.
ActMode default_act_mode(const Encoding& encoding) noexcept;

/// The mode a model runs a layer with when the user asked for `requested` for the whole model: an
/// int8 mode (kInt8, kInt8Row) applies to quantized weights; float weights have only kFp32. Any
/// other request is returned as it is (kAuto is resolved by linear()).
ActMode act_mode_for_layer(ActMode requested, const Encoding& encoding) noexcept;

/// Per-layer activation modes a model file carries (written by `convert --act-rule`, stored in the
/// file's metadata under kActRulesKey as "GLOB=MODE;GLOB=MODE..."): when a run asks for kAuto, the
/// first rule whose glob (slmc/convert/recipe.hpp glob_match) matches a linear layer's tensor name
/// gives the mode requested for that layer; an explicit mode for the run overrides every rule.
struct ActRule {
  std::string pattern;
  ActMode mode = ActMode::kAuto;
};
inline constexpr const char* kActRulesKey = "slmc.act_rules";
/// Parses "GLOB=MODE[;GLOB=MODE...]" (MODE as act_mode_name spells it). kInvalidArgument naming the
/// bad rule and the valid modes.
Result<std::vector<ActRule>> parse_act_rules(std::string_view text);
/// Prints rules in the form parse_act_rules reads.
std::string act_rules_to_string(const std::vector<ActRule>& rules);
/// The mode `requested` becomes for tensor `name`: the first matching rule's when requested is
/// kAuto, else requested.
ActMode act_mode_with_rules(ActMode requested, const std::vector<ActRule>& rules, std::string_view name);

/// Whether linear() runs weights of `encoding` with `mode` (kAuto: always): kUnsupported naming the
/// mode and the encoding when it does not (an int8 mode on float weights; kInt8, one scale per 32
/// values, on sparse weights, whose kernels take int8-row). Loaders call it once per layer so that
/// a model-wide mode the file cannot run fails at load, naming the tensor, not at the first token.
Status check_act_mode(const Encoding& encoding, ActMode mode);

/// Scratch memory and thread count for linear(). The scratch grows to the largest call seen and is
/// then reused: steady-state calls do not allocate. Not thread-safe: one context per concurrent
/// caller (linear() itself runs its threads on the context's behalf).
class LinearContext {
 public:
  /// `num_threads` <= 0 means default_num_threads().
  explicit LinearContext(int num_threads = 0) noexcept { set_num_threads(num_threads); }

  int num_threads() const noexcept { return num_threads_; }
  void set_num_threads(int num_threads) noexcept;
  /// Bytes of scratch currently held (grows, never shrinks).
  size_t scratch_bytes() const noexcept { return scratch_.size(); }
  /// Number of times the scratch had to grow (tests check steady state does not allocate).
  int64_t scratch_grows() const noexcept { return grows_; }

  /// Sparse weights: whether linear() runs validate_sparse_matrix on every call (default on). Its
  /// cost grows with the stored entries, like the product itself (about as long as a GEMV). Turn it
  /// off for weights that passed validate_sparse_matrix already (ModelFile validates every tensor
  /// when it opens a file; encode_sparse output is valid): linear() then checks only the encoding
  /// and exact segment sizes, and corrupt indices inside correctly sized segments are undefined
  /// behaviour.
  bool check_sparse_contents() const noexcept { return check_sparse_; }
  void set_check_sparse_contents(bool on) noexcept { check_sparse_ = on; }

  /// Internal: scratch of at least `bytes` bytes, 64-byte aligned, contents unspecified; null when
  /// memory runs out (linear() then returns kOutOfMemory).
  uint8_t* scratch(size_t bytes);

 private:
  int num_threads_ = 1;
  bool check_sparse_ = true;
  AlignedBuffer scratch_;
  int64_t grows_ = 0;
};

/// Y[N x M] = X[N x K] * W^T + bias, with W the M x K encoded matrix `w`.
/// x: N*K floats, row-major (may be null when N*K == 0); bias: M floats or null; y: N*M floats,
/// row-major, must not alias x (may be null when N*M == 0). `n` >= 0 is the number of rows of X.
/// Validates the encoding, its segment sizes and the arguments; errors name the bad value.
/// Sparse weights (CSR, BSR, N:M, bitmask) are validated with validate_sparse_matrix unless the
/// context says they were already (LinearContext::set_check_sparse_contents); int8-row mode applies
/// to their int8/int4 values. Not supported (kUnsupported, check_act_mode): kInt8 or kInt8Row with
/// float weights, kInt8 with sparse weights.
Status linear(LinearContext& ctx, const float* x, int64_t n, const EncodedMatrixView& w, const float* bias,
              float* y, ActMode mode = ActMode::kAuto);

/// Dequantizes rows `rows[0..count)` of `w` (dense or sparse) into out[count x K] (embedding
/// lookup). Row indices
/// must lie in [0, M) (kOutOfRange otherwise). out: count*K floats. Quantized weights give
/// d*c + m in fp32 (c the stored code, m the min or -8d for symmetric int4); float weights convert
/// exactly. Sparse weights are checked with validate_sparse_matrix (a pass over the whole matrix)
/// unless `check_sparse_contents` is false, for weights validated before (a loaded ModelFile's),
/// as LinearContext::set_check_sparse_contents does for linear().
Status gather_rows(const EncodedMatrixView& w, const int64_t* rows, int64_t count, float* out,
                   bool check_sparse_contents = true);

/// Checks that `w` is a dense encoding this module can read and that its segments have the sizes
/// the layout requires. linear() and gather_rows() call it; exposed for loaders and tests.
Status validate_dense_weights(const EncodedMatrixView& w);

/// Name of the kernel ISA linear() would use now ("scalar", "avx2", "avx512", ...), for reports.
const char* linear_kernel_isa();
/// The same for sparse weights (their family's table: an ISA without sparse kernels of its own
/// reports its fallback's, e.g. "avx2" on an AVX-512 CPU).
const char* sparse_linear_kernel_isa();

}  // namespace slmc
