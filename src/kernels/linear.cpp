// Front end of the linear kernels (slmc/kernels/linear.hpp): validation, activation preparation,
// scratch management, row splitting over threads and ISA dispatch (kernels/linear/).
#include "slmc/kernels/linear.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "dispatch.hpp"
#include "linear/linear.hpp"
#include "linear_sparse/linear_sparse.hpp"
#include "slmc/codec.hpp"
#include "slmc/convert/recipe.hpp"
#include "slmc/sparse/validate.hpp"
#include "slmc/layout.hpp"
#include "slmc/parallel.hpp"

namespace slmc {
namespace detail {
namespace {
Status scratch_error(size_t bytes) {
  return make_error(ErrorCode::kOutOfMemory, "linear: cannot allocate " + std::to_string(bytes) + " bytes of scratch");
}
const LinearKernels& linear_kernels(Isa isa) {
  static const auto tables = SLMC_KERNEL_TABLES(LinearKernels, linear);
  return tables.get(isa);
}
const SparseLinearKernels& sparse_kernels(Isa isa) {
  static const auto tables = SLMC_KERNEL_TABLES(SparseLinearKernels, linear_sparse);
  return tables.get(isa);
}

constexpr int64_t kMaxElements = int64_t{1} << 56;  // keeps every byte count far from overflow

size_t value_bytes(ValueType vt) {
  switch (vt) {
    case ValueType::kF32: return 4;
    case ValueType::kF16:
    case ValueType::kBF16: return 2;
    default: return 1;
  }
}


Status bad(ErrorCode code, const std::string& what) { return Status(code, "linear weights: " + what); }

Status check_segment(const EncodedMatrixView& w, SegmentRole role, uint64_t expected, size_t align) {
  const SegmentView& s = w.segment(role);
  const std::string name(segment_role_name(role));
  if (s.nbytes != expected) {
    return bad(ErrorCode::kInvalidArgument, "segment '" + name + "' has " + std::to_string(s.nbytes) +
                                                " bytes, the " + std::to_string(w.rows) + "x" +
                                                std::to_string(w.cols) + " layout needs " +
                                                std::to_string(expected));
  }
  if (expected > 0 && s.data == nullptr) return bad(ErrorCode::kInvalidArgument, "segment '" + name + "' is null");
  if (expected > 0 && reinterpret_cast<uintptr_t>(s.data) % align != 0) {
    return bad(ErrorCode::kInvalidArgument,
               "segment '" + name + "' is not aligned to " + std::to_string(align) + " bytes");
  }
  return Status();
}

// Fills the weight part of LinearArgs from a validated view.
LinearArgs weight_args(const EncodedMatrixView& w) {
  LinearArgs a;
  a.vt = w.encoding.value_type;
  a.m = w.rows;
  a.k = w.cols;
  a.values = w.segment(SegmentRole::kValues).data;
  if (w.encoding.is_quantized()) {
    a.layout = DenseQuantLayout(w.rows, w.cols, w.encoding);
    a.scales = w.segment(SegmentRole::kScales).data;
    a.mins = w.encoding.symmetric ? nullptr : w.segment(SegmentRole::kMins).data;
    a.scales_f16 = w.encoding.scale_dtype == DType::kF16;
    a.symmetric = w.encoding.symmetric;
    a.kpad = a.layout.chunks * kChunk;
  }
  return a;
}

size_t align64(size_t n) { return (n + 63) / 64 * 64; }

// Validates sparse weights and fills the sparse kernel arguments.
// `contents`: run validate_sparse_matrix (O(stored entries)); otherwise only the O(1) checks of
// the encoding and of every segment's exact size, for weights validated before (LinearContext).
Status sparse_args(const EncodedMatrixView& w, SparseLinearArgs* a, bool contents = true) {
  if (contents) SLMC_RETURN_IF_ERROR(validate_sparse_matrix(w, "linear weights"));
  Result<SparseLayout> l = SparseLayout::create(w.rows, w.cols, w.encoding, "linear weights");
  if (!l.ok()) return l.status();
  a->layout = *l;
  Result<uint64_t> stored = l->stored_from_values_bytes(w.segment(SegmentRole::kValues).nbytes, "linear weights");
  if (!stored.ok()) return stored.status();
  if (l->pointer_count() > 0) a->pointer_width = SparseLayout::pointer_width(*stored);
  for (int r = 0; r < kSegmentRoles; ++r) {
    const auto role = static_cast<SegmentRole>(r);
    const uint64_t want = l->segment_bytes(role, *stored);
    if (w.segment(role).nbytes != want || (want > 0 && w.segment(role).data == nullptr)) {
      return bad(ErrorCode::kInvalidFormat, "sparse segment '" + std::string(segment_role_name(role)) + "' has " +
                                                std::to_string(w.segment(role).nbytes) + " bytes, the layout needs " +
                                                std::to_string(want));
    }
  }
  a->values = w.segment(SegmentRole::kValues).data;
  a->scales = w.segment(SegmentRole::kScales).data;
  a->row_ptr = w.segment(SegmentRole::kRowPtr).data;
  a->col_idx = w.segment(SegmentRole::kColIdx).data;
  a->meta = static_cast<const uint8_t*>(w.segment(SegmentRole::kMeta).data);
  return Status();
}
}  // namespace
}  // namespace detail

const char* act_mode_name(ActMode mode) noexcept {
  switch (mode) {
    case ActMode::kAuto: return "auto";
    case ActMode::kFp32: return "fp32";
    case ActMode::kInt8: return "int8";
    case ActMode::kInt8Row: return "int8-row";
  }
  return "invalid";
}

std::optional<ActMode> act_mode_from_name(std::string_view name) noexcept {
  for (ActMode m : {ActMode::kAuto, ActMode::kFp32, ActMode::kInt8, ActMode::kInt8Row}) {
    if (name == act_mode_name(m)) return m;
  }
  return std::nullopt;
}

ActMode default_act_mode(const Encoding& encoding) noexcept {
  if (!encoding.is_quantized()) return ActMode::kFp32;
  if (encoding.format == SparseFormat::kDense) return ActMode::kInt8;
  // Bitmask and N:M: their int8 kernels take one scale per row. CSR and BSR keep fp32: their int8
  // path decodes whole rows (measured 4x slower at 70-90%).
  const bool decoded = encoding.format == SparseFormat::kBitmask || encoding.format == SparseFormat::kNM;
  return decoded ? ActMode::kInt8Row : ActMode::kFp32;
}

ActMode act_mode_for_layer(ActMode requested, const Encoding& encoding) noexcept {
  const bool int8 = requested == ActMode::kInt8 || requested == ActMode::kInt8Row;
  return int8 && !encoding.is_quantized() ? ActMode::kFp32 : requested;
}

Result<std::vector<ActRule>> parse_act_rules(std::string_view text) {
  std::vector<ActRule> rules;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(';', start), text.size());
    const std::string_view r = text.substr(start, end - start);
    const size_t eq = r.rfind('=');
    const std::optional<ActMode> mode =
        eq == std::string_view::npos ? std::nullopt : act_mode_from_name(r.substr(eq + 1));
    if (eq == std::string_view::npos || eq == 0 || !mode) {
      return make_error(ErrorCode::kInvalidArgument, "activation rule '" + std::string(r) +
                                                         "': expected GLOB=MODE with MODE one of auto, fp32, int8, int8-row");
    }
    rules.push_back({std::string(r.substr(0, eq)), *mode});
    start = end + 1;
  }
  return rules;
}

std::string act_rules_to_string(const std::vector<ActRule>& rules) {
  std::string s;
  for (const ActRule& r : rules) s += (s.empty() ? "" : ";") + r.pattern + "=" + act_mode_name(r.mode);
  return s;
}

ActMode act_mode_with_rules(ActMode requested, const std::vector<ActRule>& rules, std::string_view name) {
  if (requested != ActMode::kAuto) return requested;
  for (const ActRule& r : rules) {
    if (glob_match(r.pattern, name)) return r.mode;
  }
  return requested;
}

Status check_act_mode(const Encoding& encoding, ActMode mode) {
  if ((mode == ActMode::kInt8 || mode == ActMode::kInt8Row) && !encoding.is_quantized()) {
    return Status(ErrorCode::kUnsupported, std::string("linear: act mode ") + act_mode_name(mode) +
                                               " needs int8/int4 weights, got " +
                                               std::string(value_type_name(encoding.value_type)));
  }
  if (mode == ActMode::kInt8 && is_sparse_format(encoding.format)) {
    return Status(ErrorCode::kUnsupported, "linear: act mode int8 (one scale per 32 values) has no sparse kernels "
                                           "yet (" + encoding_name(encoding) + "); use int8-row or auto");
  }
  return Status();
}

namespace {
// A fork/join costs microseconds (far more when a core is busy with another process): a call gets
// a second thread only when each thread has at least kMinMacsPerThread multiply-adds to do. The
// row split never changes any output's reduction order, so results stay bit-identical.
constexpr int64_t kMinMacsPerThread = int64_t{1} << 18;
int worker_slots(int threads, int64_t blocks, int64_t m, int64_t k, int64_t n) {
  const double macs = static_cast<double>(m) * static_cast<double>(k) * static_cast<double>(n);
  const double useful = std::max(1.0, std::floor(macs / static_cast<double>(kMinMacsPerThread)));
  const double slots = std::min({static_cast<double>(threads), static_cast<double>(blocks), useful});
  return std::max(1, static_cast<int>(slots));
}

// The thread split of dense and sparse kernels alike: `slots` contiguous ranges of whole
// kLinearRowGrain-row blocks (so m0 is a multiple of every interleave R and a row group never
// depends on the split); run(t, m0, m1) for range t, which uses scratch slot t.
template <typename Run>
void for_row_slots(int64_t m, int slots, Run&& run) {
  const int64_t blocks = (m + detail::kLinearRowGrain - 1) / detail::kLinearRowGrain;
  parallel_for(slots, 1, slots, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t m0 = blocks * t / slots * detail::kLinearRowGrain;
      const int64_t m1 = std::min(m, blocks * (t + 1) / slots * detail::kLinearRowGrain);
      if (m0 < m1) run(t, m0, m1);
    }
  });
}
}  // namespace

void LinearContext::set_num_threads(int num_threads) noexcept {
  num_threads_ = num_threads > 0 ? num_threads : default_num_threads();
  if (num_threads_ < 1) num_threads_ = 1;
}

uint8_t* LinearContext::scratch(size_t bytes) {
  if (bytes > scratch_.size() || scratch_.data() == nullptr) {
    bytes = std::max<size_t>(bytes, kBufferAlignment);  // never null when memory is there
    scratch_ = AlignedBuffer();  // free first: peak memory is the new size only
    Result<AlignedBuffer> b = AlignedBuffer::allocate(bytes + bytes / 4);
    if (!b.ok()) b = AlignedBuffer::allocate(bytes);
    if (!b.ok()) return nullptr;
    scratch_ = std::move(*b);
    ++grows_;
  }
  return scratch_.data();
}

namespace detail {
namespace {
// Sparse weights: prepares the activations (fp32 mode with N > 1: transposed tiles; int8 mode:
// quantized rows) in the context's scratch, then splits the rows over threads.
Status run_sparse(LinearContext& ctx, SparseLinearArgs& sa, Isa isa, bool int8) {
  const SparseLinearKernels& kern = sparse_kernels(isa);
  const int64_t n = sa.n, m = sa.layout.rows, k = sa.layout.cols;
  size_t prep = 0;
  if (int8) {
    sa.kpad = sparse_xq_stride(k);
    prep = align64(static_cast<size_t>(n * sa.kpad)) + align64(static_cast<size_t>(n) * 4);
  } else if (n > 1) {
    sa.tile = sparse_tile_for(n);
    prep = align64(static_cast<size_t>(((n + sa.tile - 1) / sa.tile) * k * sa.tile) * 4);
  }
  const int64_t blocks = (m + kLinearRowGrain - 1) / kLinearRowGrain;
  const int slots = worker_slots(ctx.num_threads(), blocks, m, k, n);
  const size_t slot_bytes = align64(kern.scratch_bytes(sa));
  uint8_t* scratch = ctx.scratch(prep + slot_bytes * static_cast<size_t>(slots));
  if (!scratch) return scratch_error(prep + slot_bytes * static_cast<size_t>(slots));
  if (int8) {
    auto* xq = reinterpret_cast<int8_t*>(scratch);
    auto* xscale = reinterpret_cast<float*>(scratch + align64(static_cast<size_t>(n * sa.kpad)));
    const auto quantize_x = linear_kernels(isa).quantize_x;  // the same activation codes as dense weights
    parallel_for(n, 1, ctx.num_threads(), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) xscale[i] = quantize_x(sa.x + i * k, k, sa.kpad, xq + i * sa.kpad);
    });
    sa.xq = xq;
    sa.xscale = xscale;
  } else if (n > 1) {
    auto* xt = reinterpret_cast<float*>(scratch);
    const int64_t tile = sa.tile, tiles = (n + tile - 1) / tile;
    parallel_for(tiles * k, 1024, ctx.num_threads(), [&](int64_t b, int64_t e) {
      for (int64_t j = b; j < e; ++j) {
        const int64_t t = j / k, c = j % k;
        float* dst = xt + j * tile;
        for (int64_t i = 0; i < tile; ++i) {
          const int64_t row = t * tile + i;
          dst[i] = row < n ? sa.x[row * k + c] : 0.0f;
        }
      }
    });
    sa.xt = xt;
  }
  auto run = int8 ? kern.int8 : kern.fp32;
  uint8_t* slot0 = scratch + prep;
  for_row_slots(m, slots, [&](int64_t t, int64_t m0, int64_t m1) {
    run(sa, m0, m1, slot0 + slot_bytes * static_cast<size_t>(t));
  });
  return Status();
}
}  // namespace
}  // namespace detail

const char* linear_kernel_isa() { return detail::linear_kernels(detail::kernel_isa()).isa; }
const char* sparse_linear_kernel_isa() { return detail::sparse_kernels(detail::kernel_isa()).isa; }

Status validate_dense_weights(const EncodedMatrixView& w) {
  using detail::bad;
  const Encoding& e = w.encoding;
  if (w.rows < 0 || w.cols < 0) {
    return bad(ErrorCode::kInvalidArgument,
               "negative shape " + std::to_string(w.rows) + "x" + std::to_string(w.cols));
  }
  if (w.cols > 0 && w.rows > detail::kMaxElements / w.cols) {
    return bad(ErrorCode::kOutOfRange, "shape " + std::to_string(w.rows) + "x" + std::to_string(w.cols) + " is too large");
  }
  if (e.format != SparseFormat::kDense) {
    return bad(ErrorCode::kUnsupported, "sparse format " + std::to_string(static_cast<int>(e.format)) +
                                            " is not handled by the dense linear kernels");
  }
  const int64_t r = static_cast<int64_t>(e.layout);
  if (r != 1 && r != 4 && r != 8) return bad(ErrorCode::kInvalidArgument, "row layout R=" + std::to_string(r) + " (want 1, 4 or 8)");
  switch (e.value_type) {
    case ValueType::kF32:
    case ValueType::kF16:
    case ValueType::kBF16: {
      if (e.layout != RowLayout::kRows) {
        return bad(ErrorCode::kInvalidArgument, std::string(value_type_name(e.value_type)) +
                                                    " weights must use plain rows, not R=" + std::to_string(r));
      }
      const size_t vb = detail::value_bytes(e.value_type);
      SLMC_RETURN_IF_ERROR(detail::check_segment(w, SegmentRole::kValues,
                                                          static_cast<uint64_t>(w.rows * w.cols) * vb, vb));
      return Status();
    }
    case ValueType::kInt8:
    case ValueType::kInt4:
    case ValueType::kNl4:
      break;
    default:
      return bad(ErrorCode::kInvalidArgument, "unknown value type " + std::to_string(static_cast<int>(e.value_type)));
  }
  // The one legality rule (encoding.hpp) the quantizer and the loader apply too.
  SLMC_RETURN_IF_ERROR(check_quant_scheme(e.value_type, e.granularity, e.group_size, e.scale_dtype, "linear weights"));
  const DenseQuantLayout l(w.rows, w.cols, e);
  const size_t sb = e.scale_dtype == DType::kF16 ? 2 : 4;
  const uint64_t scale_bytes = static_cast<uint64_t>(l.scale_count()) * sb;
  SLMC_RETURN_IF_ERROR(
      detail::check_segment(w, SegmentRole::kValues, static_cast<uint64_t>(l.values_bytes()), 1));
  SLMC_RETURN_IF_ERROR(detail::check_segment(w, SegmentRole::kScales, scale_bytes, sb));
  SLMC_RETURN_IF_ERROR(
      detail::check_segment(w, SegmentRole::kMins, e.symmetric ? 0 : scale_bytes, sb));
  return Status();
}

Status linear(LinearContext& ctx, const float* x, int64_t n, const EncodedMatrixView& w, const float* bias,
              float* y, ActMode mode) {
  const bool sparse = is_sparse_format(w.encoding.format);
  detail::SparseLinearArgs sa;
  if (sparse) {
    SLMC_RETURN_IF_ERROR(detail::sparse_args(w, &sa, ctx.check_sparse_contents()));
  } else {
    SLMC_RETURN_IF_ERROR(validate_dense_weights(w));
  }
  const int64_t m = w.rows, k = w.cols;
  if (n < 0) return Status(ErrorCode::kInvalidArgument, "linear: negative row count n=" + std::to_string(n));
  if (n > 0 && (k > detail::kMaxElements / n || m > detail::kMaxElements / n)) {
    return Status(ErrorCode::kOutOfRange, "linear: n=" + std::to_string(n) + " rows of X are too many");
  }
  if (mode != ActMode::kAuto && mode != ActMode::kFp32 && mode != ActMode::kInt8 && mode != ActMode::kInt8Row) {
    return Status(ErrorCode::kInvalidArgument, "linear: act mode " + std::to_string(static_cast<int>(mode)));
  }
  if (mode == ActMode::kAuto) mode = default_act_mode(w.encoding);
  SLMC_RETURN_IF_ERROR(check_act_mode(w.encoding, mode));
  if (n > 0 && k > 0 && x == nullptr) return Status(ErrorCode::kInvalidArgument, "linear: x is null");
  if (n > 0 && m > 0 && y == nullptr) return Status(ErrorCode::kInvalidArgument, "linear: y is null");
  if (n > 0 && m > 0 && k > 0) {
    const auto xb = reinterpret_cast<uintptr_t>(x), yb = reinterpret_cast<uintptr_t>(y);
    const auto xe = xb + static_cast<uintptr_t>(n * k) * 4, ye = yb + static_cast<uintptr_t>(n * m) * 4;
    if (xb < ye && yb < xe) return Status(ErrorCode::kInvalidArgument, "linear: y overlaps x");
  }
  Result<Isa> isa = active_isa();
  if (!isa.ok()) return isa.status();
  if (n == 0 || m == 0) return Status();
  if (k == 0) {
    for (int64_t i = 0; i < n; ++i)
      for (int64_t r = 0; r < m; ++r) y[i * m + r] = bias ? bias[r] : 0.0f;
    return Status();
  }

  if (sparse) {
    sa.n = n;
    sa.x = x;
    sa.bias = bias;
    sa.y = y;
    return detail::run_sparse(ctx, sa, *isa, mode == ActMode::kInt8Row);
  }
  // nl4 has SIMD micro-kernels in the int8 (block) mode (x86 and NEON); in the fp32 and int8-row
  // modes it runs the scalar reference (docs/KERNELS.md, "nl4").
  const bool nl4_reference = w.encoding.value_type == ValueType::kNl4 && mode != ActMode::kInt8;
  const detail::LinearKernels& kern = detail::linear_kernels(nl4_reference ? Isa::kScalar : *isa);
  detail::LinearArgs a = detail::weight_args(w);
  a.n = n;
  a.x = x;
  a.bias = bias;
  a.y = y;
  const bool quant = w.encoding.is_quantized();
  const bool block = mode == ActMode::kInt8;
  const bool int8 = block || mode == ActMode::kInt8Row;
  const int64_t groups = int8 ? a.layout.groups : 0;  // xsum is an int8-mode input only
  const int64_t chunks = a.layout.chunks;

  // Scratch: [xpad | xq | xscale (per row) or xbs (per block) | xsum | per-thread slots].
  size_t off = 0;
  const size_t xpad_off = off;
  if (quant && !int8) off += detail::align64(static_cast<size_t>(n * a.kpad) * 4);
  const size_t xq_off = off;
  if (int8) off += detail::align64(static_cast<size_t>(n * a.kpad));
  const size_t xscale_off = off;
  if (int8) off += detail::align64(static_cast<size_t>(block ? n * chunks : n) * 4);
  const size_t xsum_off = off;
  off += detail::align64(static_cast<size_t>(n * groups) * 4);
  const int64_t blocks = (m + detail::kLinearRowGrain - 1) / detail::kLinearRowGrain;
  const int slots = worker_slots(ctx.num_threads(), blocks, m, k, n);
  const size_t slot_bytes = detail::align64(kern.scratch_bytes(a));
  const size_t slots_off = off;
  off += slot_bytes * static_cast<size_t>(slots);
  uint8_t* scratch = ctx.scratch(off);
  if (!scratch) return detail::scratch_error(off);

  if (quant) {
    float* xpad = int8 ? nullptr : reinterpret_cast<float*>(scratch + xpad_off);
    int8_t* xq = int8 ? reinterpret_cast<int8_t*>(scratch + xq_off) : nullptr;
    float* xscale = int8 && !block ? reinterpret_cast<float*>(scratch + xscale_off) : nullptr;
    float* xbs = block ? reinterpret_cast<float*>(scratch + xscale_off) : nullptr;
    float* xsum = int8 ? reinterpret_cast<float*>(scratch + xsum_off) : nullptr;
    const int64_t kpad = a.kpad, gs = a.layout.group_size;
    const bool sym_int4 = w.encoding.value_type == ValueType::kInt4 && w.encoding.symmetric;
    // Block mode without an offset term (symmetric int8, nl4): no kernel reads xsum.
    const int64_t sum_groups = block && !detail::has_offset_term(a) ? 0 : groups;
    parallel_for(n, 1, ctx.num_threads(), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const float* xr = x + i * k;
        int8_t* q = xq ? xq + i * kpad : nullptr;
        if (xpad) {
          std::memcpy(xpad + i * kpad, xr, static_cast<size_t>(k) * 4);
          std::fill(xpad + i * kpad + k, xpad + (i + 1) * kpad, 0.0f);
        }
        if (xscale) xscale[i] = kern.quantize_x(xr, k, kpad, q);
        if (xbs) {
          // One scale per 32 values: the row quantizer on each block (bit-identical in every ISA).
          kern.quantize_x_blocks(xr, k, kpad, q, xbs + i * chunks);
        }
        for (int64_t g = 0; g < sum_groups; ++g) {
          const int64_t c0 = g * gs, c1 = std::min(k, (g + 1) * gs);
          if (sym_int4) {
            // m = -8d multiplies the quantized activations: the kernels then compute
            // d * s * sum (u - 8) * xq exactly like symmetric int8 computes d * s * sum q * xq.
            if (xscale) {
              int32_t qs = 0;
              for (int64_t c = c0; c < c1; ++c) qs += q[c];
              xsum[i * groups + g] = xscale[i] * static_cast<float>(qs);
            } else {
              // Block scales: the group's pieces of each block, in block order.
              float t = 0.0f;
              for (int64_t p0 = c0; p0 < c1;) {
                const int64_t p1 = std::min(c1, (p0 / kChunk + 1) * kChunk);
                int32_t qs = 0;
                for (int64_t c = p0; c < p1; ++c) qs += q[c];
                t += xbs[i * chunks + p0 / kChunk] * static_cast<float>(qs);
                p0 = p1;
              }
              xsum[i * groups + g] = t;
            }
          } else {
            float s = 0.0f;
            for (int64_t c = c0; c < c1; ++c) s += xr[c];
            xsum[i * groups + g] = s;
          }
        }
      }
    });
    a.xpad = xpad;
    a.xq = xq;
    a.xscale = xscale;
    a.xbs = xbs;
    a.xsum = xsum;
  }

  auto run = block ? kern.int8 : int8 ? kern.int8_row : kern.fp32;
  for_row_slots(m, slots, [&](int64_t t, int64_t m0, int64_t m1) {
    run(a, m0, m1, scratch + slots_off + slot_bytes * static_cast<size_t>(t));
  });
  return Status();
}

Status gather_rows(const EncodedMatrixView& w, const int64_t* rows, int64_t count, float* out,
                   bool check_sparse_contents) {
  const bool sparse = is_sparse_format(w.encoding.format);
  detail::SparseLinearArgs sa;
  if (sparse) {
    SLMC_RETURN_IF_ERROR(detail::sparse_args(w, &sa, check_sparse_contents));
  } else {
    SLMC_RETURN_IF_ERROR(validate_dense_weights(w));
  }
  if (count < 0) return Status(ErrorCode::kInvalidArgument, "gather_rows: negative count " + std::to_string(count));
  if (count == 0) return Status();
  if (rows == nullptr) return Status(ErrorCode::kInvalidArgument, "gather_rows: rows is null");
  if (w.cols > 0 && out == nullptr) return Status(ErrorCode::kInvalidArgument, "gather_rows: out is null");
  for (int64_t i = 0; i < count; ++i) {
    if (rows[i] < 0 || rows[i] >= w.rows) {
      return Status(ErrorCode::kOutOfRange, "gather_rows: rows[" + std::to_string(i) + "] = " +
                                                std::to_string(rows[i]) + " outside [0, " +
                                                std::to_string(w.rows) + ")");
    }
  }
  if (w.cols == 0) return Status();
  Result<Isa> isa = active_isa();
  if (!isa.ok()) return isa.status();
  if (sparse) {
    for (int64_t i = 0; i < count; ++i) detail::sparse_gather_row(sa, rows[i], out + i * w.cols);
    return Status();
  }
  const detail::LinearArgs a = detail::weight_args(w);
  detail::linear_kernels(w.encoding.value_type == ValueType::kNl4 ? Isa::kScalar : *isa).gather(a, rows, count, out);
  return Status();
}

}  // namespace slmc
