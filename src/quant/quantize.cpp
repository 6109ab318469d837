// Quantizers (include/slmc/quant/quantize.hpp): the implementation, compiled with the library's
// flags (-ffp-contract=off and the ISA flags of each path), so every consumer gets the same bytes.
#include "slmc/quant/quantize.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "dispatch.hpp"
#include "slmc/buffer.hpp"
#include "slmc/codec.hpp"
#include "slmc/cpu.hpp"
#include "slmc/encoding.hpp"
#include "slmc/half.hpp"
#include "slmc/layout.hpp"
#include "slmc/parallel.hpp"
#include "slmc/quant/config.hpp"
#include "quant/detail/codebook.hpp"
#include "quant/detail/common.hpp"
#include "quant/detail/gptq.hpp"
#include "quant/detail/search.hpp"
#include "slmc/quant/dequantize.hpp"
#include "slmc/quant/error_stats.hpp"
#include "slmc/status.hpp"
#include "slmc/tensor.hpp"

namespace slmc {
namespace quant_detail {

/// Checks name/pointer/shape of a quantizer input. Does not look at the values.
inline Status check_matrix_args(const std::string& what, const float* w, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) {
    return make_error(ErrorCode::kInvalidArgument, what + ": shape [" + std::to_string(rows) + ", " +
                                                       std::to_string(cols) + "] is empty or negative");
  }
  if (rows > kMaxTensorElements / cols) {
    return make_error(ErrorCode::kOutOfRange, what + ": shape [" + std::to_string(rows) + ", " +
                                                  std::to_string(cols) + "] has more than 2^52 elements");
  }
  if (w == nullptr) return make_error(ErrorCode::kInvalidArgument, what + ": null weights");
  return Status::ok_status();
}

/// True if all n values are finite (fixed-lane reduction: x - x is 0 for finite x, NaN otherwise).
inline bool all_finite(const float* x, int64_t n) noexcept {
  V8 acc = V8::zero();
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const V8 v = V8::load(x + i);
    acc = acc + (v - v);
  }
  float lanes[kLanes];
  acc.store(lanes);
  for (; i < n; ++i) lanes[0] += x[i] - x[i];
  const float s = hsum_lanes(lanes);
  return s == 0;
}

/// Error naming the first non-finite element of row r (which must have one).
inline Status nonfinite_error(const std::string& what, const float* row, int64_t r, int64_t cols) {
  for (int64_t c = 0; c < cols; ++c) {
    if (!std::isfinite(row[c])) {
      return make_error(ErrorCode::kNonFinite, what + ": weight at row " + std::to_string(r) + ", col " +
                                                   std::to_string(c) + " is " + (std::isnan(row[c]) ? "NaN" : "Inf"));
    }
  }
  return make_error(ErrorCode::kInternal, what + ": row " + std::to_string(r) + " is not finite");
}

/// Error naming the first non-finite element of w (rows x cols), or ok. Parallel over rows.
inline Status check_finite(const std::string& what, const float* w, int64_t rows, int64_t cols, int threads) {
  std::vector<uint8_t> bad(static_cast<size_t>(rows), 0);
  parallel_for(rows, 64, threads, [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) bad[static_cast<size_t>(r)] = !all_finite(w + r * cols, cols);
  });
  for (int64_t r = 0; r < rows; ++r) {
    if (bad[static_cast<size_t>(r)]) return nonfinite_error(what, w + r * cols, r, cols);
  }
  return Status::ok_status();
}

/// Every row of the matrix as a span (per-tensor scales); weights are per column.
struct RowSpans {
  const float* x;
  const float* w;
  int64_t rows, cols;
  template <class F>
  void operator()(F&& f) const {
    for (int64_t r = 0; r < rows; ++r) f(x + r * cols, w, cols);
  }
};

/// Error sums of one row, accumulated lane-wise across groups (no horizontal sum per group) and
/// moved into doubles every >= kBlock elements and at the end of the row. The flush points depend
/// only on the group structure, so results stay deterministic.
struct RowAccumulator {
  V8 xx = V8::zero(), ee = V8::zero(), amax = V8::zero(), zero = V8::zero();
  float txx[kLanes] = {}, tee[kLanes] = {}, tamax[kLanes] = {}, tzero[kLanes] = {};  ///< tails
  int64_t pending = 0;
  ErrorSums sums;

  void flush() noexcept {
    float axx[kLanes], aee[kLanes], am[kLanes], az[kLanes];
    xx.store(axx);
    ee.store(aee);
    amax.store(am);
    zero.store(az);
    for (int j = 0; j < kLanes; ++j) {
      axx[j] += txx[j];
      aee[j] += tee[j];
      az[j] += tzero[j];
      am[j] = am[j] > tamax[j] ? am[j] : tamax[j];
      sums.max_abs_error = std::max(sums.max_abs_error, static_cast<double>(am[j]));
      txx[j] = tee[j] = tamax[j] = tzero[j] = 0;
    }
    sums.sum_sq += hsum_lanes(axx);
    sums.sum_err_sq += hsum_lanes(aee);
    sums.zeros += static_cast<int64_t>(hsum_lanes(az));
    xx = ee = amax = zero = V8::zero();
    pending = 0;
  }
};

#if defined(SLMC_QUANT_HAVE_AVX2_PATH)
/// The vector part of quantize_span (elements [0, n - n % 8)) on one 256-bit register: the same
/// lane-wise operations as the V8 loop, so codes and sums are bit-identical. Returns the count done.
template <bool kSymmetric>
__attribute__((target("avx2"))) inline int64_t quantize_lanes_avx2(const float* x, int64_t n, float m, float id, float d,
                                                                   float lo, float hi, float offset, int8_t* codes,
                                                                   RowAccumulator& acc) noexcept {
  float t[4][kLanes];
  acc.xx.store(t[0]);
  acc.ee.store(t[1]);
  acc.amax.store(t[2]);
  acc.zero.store(t[3]);
  __m256 vxx = _mm256_loadu_ps(t[0]), vee = _mm256_loadu_ps(t[1]), vamax = _mm256_loadu_ps(t[2]),
         vzero = _mm256_loadu_ps(t[3]);
  const __m256 vm = _mm256_set1_ps(m), vid = _mm256_set1_ps(id), vd = _mm256_set1_ps(d), vlo = _mm256_set1_ps(lo),
               vhi = _mm256_set1_ps(hi), voff = _mm256_set1_ps(offset), magic = _mm256_set1_ps(12582912.0f),
               one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps(),
               abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m128i byte_mask = _mm_set1_epi32(0xff);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const __m256 xv = _mm256_loadu_ps(x + i);
    __m256 q = _mm256_mul_ps(kSymmetric ? xv : _mm256_sub_ps(xv, vm), vid);
    q = _mm256_min_ps(_mm256_max_ps(q, vlo), vhi);
    q = _mm256_sub_ps(_mm256_add_ps(q, magic), magic);
    const __m256 xh = kSymmetric ? _mm256_mul_ps(vd, q) : _mm256_add_ps(_mm256_mul_ps(vd, q), vm);
    const __m256 err = _mm256_sub_ps(xv, xh);
    const __m256i c = _mm256_cvtps_epi32(_mm256_add_ps(q, voff));
    const __m128i c16 = _mm_packs_epi32(_mm_and_si128(_mm256_castsi256_si128(c), byte_mask),
                                        _mm_and_si128(_mm256_extracti128_si256(c, 1), byte_mask));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(codes + i), _mm_packus_epi16(c16, c16));
    vxx = _mm256_add_ps(vxx, _mm256_mul_ps(xv, xv));
    vee = _mm256_add_ps(vee, _mm256_mul_ps(err, err));
    vamax = _mm256_max_ps(vamax, _mm256_and_ps(err, abs_mask));
    vzero = _mm256_add_ps(vzero, _mm256_and_ps(_mm256_cmp_ps(xh, zero, _CMP_EQ_OQ), one));
  }
  _mm256_storeu_ps(t[0], vxx);
  _mm256_storeu_ps(t[1], vee);
  _mm256_storeu_ps(t[2], vamax);
  _mm256_storeu_ps(t[3], vzero);
  acc.xx = V8::load(t[0]);
  acc.ee = V8::load(t[1]);
  acc.amax = V8::load(t[2]);
  acc.zero = V8::load(t[3]);
  return i;
}
#endif

/// Quantizes n elements with stored parameters p into stored codes (q + offset) and adds the
/// reconstruction error to `acc`. Reconstruction matches dequantize() bit for bit.
template <bool kSymmetric>
inline void quantize_span(const float* x, int64_t n, const GroupParams& p, const QuantSpec& s, float offset,
                          int8_t* codes, RowAccumulator& acc) noexcept {
  const Inverse inv = inverse_of(p.d);
  const float m = s.symmetric ? 0.0f : p.m;
  int64_t i = 0;
#if defined(SLMC_QUANT_HAVE_AVX2_PATH)
  if (!inv.use_div && s.avx2 && n >= 128) {  // short groups: the call and spills cost more than it saves
    i = quantize_lanes_avx2<kSymmetric>(x, n, m, inv.id, p.d, s.lo, s.hi, offset, codes, acc);
  } else
#endif
  if (!inv.use_div) {
    const V8 vm = V8::set1(m), vid = V8::set1(inv.id), vd = V8::set1(p.d), vlo = V8::set1(s.lo),
             vhi = V8::set1(s.hi), voff = V8::set1(offset);
    V8 vxx = acc.xx, vee = acc.ee, vamax = acc.amax, vzero = acc.zero;
    for (; i + kLanes <= n; i += kLanes) {
      const V8 xv = V8::load(x + i);
      // Symmetric: m == 0, and x - 0 == x, d*q + 0 == d*q exactly, so skipping m changes nothing.
      const V8 q = vround_code(vclamp((kSymmetric ? xv : xv - vm) * vid, vlo, vhi));
      const V8 xh = kSymmetric ? vd * q : vd * q + vm;
      const V8 err = xv - xh;
      (q + voff).store_codes(codes + i);
      vxx = vxx + xv * xv;
      vee = vee + err * err;
      vamax = vmax(vamax, vabs(err));
      vzero = vzero + vis_zero(xh);
    }
    acc.xx = vxx;
    acc.ee = vee;
    acc.amax = vamax;
    acc.zero = vzero;
  }
  for (int j = 0; i < n; ++i, j = (j + 1) % kLanes) {
    const float xv = x[i];
    const float q = code_of(xv, p, inv, s);
    const float xh = p.d * q + m;
    const float err = xv - xh;
    codes[i] = static_cast<int8_t>(static_cast<int32_t>(q + offset));
    acc.txx[j] += xv * xv;
    acc.tee[j] += err * err;
    acc.tamax[j] = acc.tamax[j] > std::fabs(err) ? acc.tamax[j] : std::fabs(err);
    acc.tzero[j] += xh == 0.0f ? 1.0f : 0.0f;
  }
  acc.sums.count += n;
  acc.pending += n;
  if (acc.pending >= kBlock) acc.flush();
}

/// Writes one row of stored codes (K codes, then padding up to whole chunks) into its chunk
/// records. `codes` holds l.chunks * 32 entries.
inline void pack_row(const DenseQuantLayout& l, ValueType t, const int8_t* codes, int64_t row, uint8_t* values) noexcept {
  for (int64_t c = 0; c < l.chunks; ++c) {
    uint8_t* rec = values + l.chunk_offset(row, c);
    const int8_t* src = codes + c * kChunk;
    if (t == ValueType::kInt8) {
      std::memcpy(rec, src, kChunk);
    } else {
#if defined(SLMC_QUANT_SSE2)
      const __m128i nib = _mm_set1_epi8(0x0f);
      const __m128i lo = _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src)), nib);
      const __m128i hi = _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 16)), nib);
      // hi < 16, so shifting 16-bit lanes left by 4 cannot carry into the neighbouring byte.
      _mm_storeu_si128(reinterpret_cast<__m128i*>(rec), _mm_or_si128(lo, _mm_slli_epi16(hi, 4)));
#else
      for (int j = 0; j < 16; ++j) {
        rec[j] = static_cast<uint8_t>((static_cast<uint8_t>(src[j]) & 0x0f) | ((static_cast<uint8_t>(src[j + 16]) & 0x0f) << 4));
      }
#endif
    }
  }
}

/// Adds the error of the reconstruction xh of x[0, n) to `acc`, with the lanes and flush points of
/// quantize_span (used when the codes were chosen elsewhere, e.g. by error compensation).
inline void accumulate_span(const float* x, const float* xh, int64_t n, RowAccumulator& acc) noexcept {
  int64_t i = 0;
  V8 vxx = acc.xx, vee = acc.ee, vamax = acc.amax, vzero = acc.zero;
  for (; i + kLanes <= n; i += kLanes) {
    const V8 xv = V8::load(x + i), hv = V8::load(xh + i);
    const V8 err = xv - hv;
    vxx = vxx + xv * xv;
    vee = vee + err * err;
    vamax = vmax(vamax, vabs(err));
    vzero = vzero + vis_zero(hv);
  }
  acc.xx = vxx;
  acc.ee = vee;
  acc.amax = vamax;
  acc.zero = vzero;
  for (int j = 0; i < n; ++i, j = (j + 1) % kLanes) {
    const float err = x[i] - xh[i];
    acc.txx[j] += x[i] * x[i];
    acc.tee[j] += err * err;
    acc.tamax[j] = acc.tamax[j] > std::fabs(err) ? acc.tamax[j] : std::fabs(err);
    acc.tzero[j] += xh[i] == 0.0f ? 1.0f : 0.0f;
  }
  acc.sums.count += n;
  acc.pending += n;
  if (acc.pending >= kBlock) acc.flush();
}

/// One row quantized for the Gram-matrix path: codes (stored values), reconstruction and the
/// parameters of each group.
struct RowCandidate {
  std::vector<int8_t> codes;
  std::vector<float> xh;
  std::vector<GroupParams> params;
  double gram_error = 0;  ///< e^T G e
};

/// Quantizes row x[0, K) into `c`. Without `u`: plain rounding, each group's parameters chosen
/// on x (the codes quantize_span would give). With `u` (gram_inverse_factor): error compensation;
/// the row is copied to `work` (K doubles) and each group's parameters are chosen on the
/// compensated values (copied to `group`, group_size floats) when the quantizer reaches the
/// group. Per-tensor parameters (`fixed`) are used as is. Returns the first group whose scale
/// overflows, or -1.
inline int64_t quantize_row_candidate(const float* x, const DenseQuantLayout& l, const QuantSpec& spec,
                                      ScaleSearch search, bool weighted, const float* imp, const GroupParams& fixed,
                                      float offset, const double* u, double* work, float* group, RowCandidate& c) {
  const int64_t k = l.cols;
  if (u) {
    for (int64_t i = 0; i < k; ++i) work[i] = x[i];
  }
  for (int64_t g = 0; g < l.groups; ++g) {
    const int64_t k0 = g * l.group_size, n = std::min(l.group_size, k - k0);
    const float* src = x + k0;
    if (u) {
      for (int64_t i = 0; i < n; ++i) group[i] = static_cast<float>(work[k0 + i]);
      src = group;
    }
    GroupParams p = fixed;
    if (spec.nl4) {
      // The code book: the scale searched on the (compensated) group, nearest-level codes.
      const Nl4Tables& tb = nl4_tables();
      p.d = nl4_choose_scale(tb, src, imp ? imp + k0 : nullptr, n, search, spec.scale_dtype);
      p.m = 0.0f;
      if (!std::isfinite(p.d)) return g;
      c.params[static_cast<size_t>(g)] = p;
      const float inv = p.d != 0.0f ? 1.0f / p.d : 0.0f;
      for (int64_t i = 0; i < n; ++i) {
        const float v = u ? static_cast<float>(work[k0 + i]) : src[i];
        const int code = p.d != 0.0f ? nl4_code(tb, v * inv) : 8;
        const float xh = p.d * tb.level[code];
        c.codes[static_cast<size_t>(k0 + i)] = static_cast<int8_t>(code);
        c.xh[static_cast<size_t>(k0 + i)] = xh;
        if (u) gptq_propagate(work, u, k, k0 + i, work[k0 + i] - static_cast<double>(xh));
      }
      continue;
    }
    if (!l.per_tensor && !choose_params(OneSpan{src, imp ? imp + k0 : nullptr, n}, spec, search, weighted, p)) {
      return g;
    }
    c.params[static_cast<size_t>(g)] = p;
    const Inverse inv = inverse_of(p.d);
    const float m = spec.symmetric ? 0.0f : p.m;
    for (int64_t i = 0; i < n; ++i) {
      // With compensation, the element as updated by the columns before it (in this group too).
      const float v = u ? static_cast<float>(work[k0 + i]) : src[i];
      const float q = code_of(v, p, inv, spec);
      const float xh = p.d * q + m;
      c.codes[static_cast<size_t>(k0 + i)] = static_cast<int8_t>(static_cast<int32_t>(q + offset));
      c.xh[static_cast<size_t>(k0 + i)] = xh;
      if (u) gptq_propagate(work, u, k, k0 + i, work[k0 + i] - static_cast<double>(xh));
    }
  }
  return -1;
}

}  // namespace quant_detail

/// Quantizes the row-major fp32 matrix w[rows x cols] (groups along cols) with `config`.
///
/// Returns the encoding (Encoding filled from config; group_size 0 unless kGroup), its segments
/// (values; scales; mins when asymmetric) laid out exactly as DenseQuantLayout says, and the error
/// statistics against w (bits_per_weight from the exact segment bytes). Codes are computed with
/// the scale and min as stored (fp16-rounded when scale_dtype is kF16).
///
/// Errors (message names the tensor): empty or overflowing shape, null w, NaN/Inf weight (with its
/// row and column), unsupported value type / granularity / group size / scale dtype / layout,
/// missing or invalid importance for kWeighted, a scale that overflows fp16 (row and group given;
/// use fp32 scales), out of memory. Results are identical for every num_threads.
Result<EncodedMatrix> quantize(std::string_view tensor_name, const float* w, int64_t rows, int64_t cols,
                                      const QuantConfig& config) {
  using namespace quant_detail;
  const std::string what = tensor_label(tensor_name);
  SLMC_RETURN_IF_ERROR(check_quant_scheme(config.value_type, config.granularity, config.group_size,
                                          config.scale_dtype, what));
  if (config.value_type == ValueType::kNl4 && !config.symmetric) {
    return make_error(ErrorCode::kUnsupported, what + ": nl4 is symmetric only (no mins)");
  }
  const auto layout_raw = static_cast<unsigned>(config.layout);
  if (layout_raw != 1 && layout_raw != 4 && layout_raw != 8) {
    return make_error(ErrorCode::kInvalidArgument, what + ": row layout " + std::to_string(layout_raw) +
                                                       " is not 1 (rows), 4 or 8 (interleaved)");
  }
  if (static_cast<unsigned>(config.search) > static_cast<unsigned>(ScaleSearch::kWeighted)) {
    return make_error(ErrorCode::kInvalidArgument, what + ": unknown scale search " + std::to_string(int(config.search)));
  }
  SLMC_RETURN_IF_ERROR(check_matrix_args(what, w, rows, cols));
  const bool weighted = config.search == ScaleSearch::kWeighted;
  if (weighted) {
    if (config.importance == nullptr) {
      return make_error(ErrorCode::kInvalidArgument, what + ": search 'weighted' needs per-input-channel importance (K = " +
                                                         std::to_string(cols) + " values), got none");
    }
    for (int64_t k = 0; k < cols; ++k) {
      const float v = config.importance[k];
      if (!std::isfinite(v) || v < 0) {
        return make_error(ErrorCode::kInvalidArgument, what + ": importance[" + std::to_string(k) + "] = " +
                                                           std::to_string(v) + " is not finite and >= 0");
      }
    }
  }
  if (config.gram != nullptr) {
    for (int64_t i = 0; i < cols; ++i) {
      for (int64_t j = i; j < cols; ++j) {
        const float v = config.gram[i * cols + j];
        if (!std::isfinite(v) || (i == j && v < 0)) {
          return make_error(ErrorCode::kInvalidArgument, what + ": gram[" + std::to_string(i) + ", " + std::to_string(j) +
                                                             "] = " + std::to_string(v) +
                                                             (i == j ? " is not finite and >= 0" : " is not finite"));
        }
      }
    }
  }
  const int threads = config.num_threads > 0 ? config.num_threads : default_num_threads();
  // Per-tensor scales look at every weight before the row loop: check them all first. Otherwise
  // each row is checked just before it is quantized (while it is in cache).
  if (config.granularity == Granularity::kTensor) SLMC_RETURN_IF_ERROR(check_finite(what, w, rows, cols, threads));

  EncodedMatrix out;
  out.rows = rows;
  out.cols = cols;
  out.encoding = encoding_from_quant_config(config);
  const Encoding& e = out.encoding;
  const DenseQuantLayout l(rows, cols, e);
  const size_t sbytes = static_cast<size_t>(l.scale_count()) * scale_bytes(e.scale_dtype);
  SLMC_ASSIGN_OR_RETURN(out.segment(SegmentRole::kValues),
                        AlignedBuffer::allocate(static_cast<size_t>(l.values_bytes()), what + ": codes"));
  SLMC_ASSIGN_OR_RETURN(out.segment(SegmentRole::kScales), AlignedBuffer::allocate(sbytes, what + ": scales"));
  if (!e.symmetric) {
    SLMC_ASSIGN_OR_RETURN(out.segment(SegmentRole::kMins), AlignedBuffer::allocate(sbytes, what + ": mins"));
  }
  uint8_t* values = out.segment(SegmentRole::kValues).data();
  uint8_t* scales = out.segment(SegmentRole::kScales).data();
  uint8_t* mins = out.segment(SegmentRole::kMins).data();

  const CodeRange cr = code_range(e.value_type, e.symmetric);
  QuantSpec spec;
  spec.lo = static_cast<float>(cr.lo);
  spec.hi = static_cast<float>(cr.hi);
  spec.symmetric = e.symmetric;
  spec.scale_dtype = e.scale_dtype;
  spec.nl4 = e.value_type == ValueType::kNl4;
  {
    // The AVX2 search path gives the same bytes as the portable one; it serves every ISA that
    // implies AVX2, and SLMC_ISA=scalar turns it off.
    const Result<Isa> isa = active_isa();
    spec.avx2 = isa.ok() && detail::isa_implies(*isa, Isa::kAvx2);
  }
  const float* imp = weighted ? config.importance : nullptr;
  auto overflow_error = [&](int64_t row, int64_t group) {
    return make_error(ErrorCode::kOutOfRange,
                      what + ": the scale of row " + std::to_string(row) +
                          (group >= 0 ? ", group " + std::to_string(group) : std::string()) +
                          " overflows " + std::string(dtype_name(e.scale_dtype)) + " (weights too large for " +
                          encoding_to_string(e) + (e.scale_dtype == DType::kF16 ? "; use fp32 scales)" : ")"));
  };

  GroupParams tensor_params;
  if (l.per_tensor) {
    if (!choose_params(RowSpans{w, imp, rows, cols}, spec, config.search, weighted, tensor_params)) {
      return overflow_error(-1, -1);
    }
    store_scale(scales, 0, e.scale_dtype, tensor_params.d);
    if (!e.symmetric) store_scale(mins, 0, e.scale_dtype, tensor_params.m);
  }

  // Error compensation (config.gram): the factor of the damped inverse Gram matrix, shared by rows.
  std::vector<double> gram_u;
  if (config.gram != nullptr && !gram_inverse_factor(config.gram, cols, kGramDamping, gram_u)) {
    return make_error(ErrorCode::kInvalidArgument,
                      what + ": the Gram matrix is not positive semi-definite (even with damping)");
  }

  std::vector<ErrorSums> row_sums(static_cast<size_t>(rows));
  constexpr int64_t kNonFiniteRow = -2;
  std::vector<int64_t> bad_group(static_cast<size_t>(rows), -1);
  const float offset = static_cast<float>(cr.offset);
  // Rows are independent and write disjoint bytes; a grain of 8 rows keeps interleaved blocks
  // (R = 4, 8) on one thread.
  parallel_for(rows, 8, threads, [&](int64_t rb, int64_t re) {
    std::vector<int8_t> codes(static_cast<size_t>(l.chunks * kChunk), static_cast<int8_t>(cr.pad));
    RowCandidate plain, compensated;
    std::vector<double> work, err;
    std::vector<float> group;
    // Row candidates: the Gram path (plain and compensated) and nl4 (plain only without a Gram
    // matrix: the code book has no lane-parallel span quantizer).
    const bool candidates = !gram_u.empty() || spec.nl4;
    if (candidates) {
      for (RowCandidate* c : {&plain, &compensated}) {
        c->codes.resize(static_cast<size_t>(cols));
        c->xh.resize(static_cast<size_t>(cols));
        c->params.resize(static_cast<size_t>(l.groups));
      }
    }
    if (!gram_u.empty()) {
      work.resize(static_cast<size_t>(cols));
      err.resize(static_cast<size_t>(cols));
      group.resize(static_cast<size_t>(l.group_size));
    }
    for (int64_t r = rb; r < re; ++r) {
      const float* x = w + r * cols;
      if (!l.per_tensor && !all_finite(x, cols)) {
        bad_group[static_cast<size_t>(r)] = kNonFiniteRow;
        continue;
      }
      RowAccumulator acc;
      if (candidates) {
        // With a Gram matrix both candidates, plain rounding and error compensation; the smaller
        // e^T G e is kept (plain also when a compensated scale overflows the scale dtype).
        const int64_t bad = quantize_row_candidate(x, l, spec, config.search, weighted, imp, tensor_params, offset,
                                                   nullptr, nullptr, nullptr, plain);
        if (bad >= 0) {
          bad_group[static_cast<size_t>(r)] = bad;
          continue;
        }
        const bool compensated_ok = !gram_u.empty() &&
                                    quantize_row_candidate(x, l, spec, config.search, weighted, imp, tensor_params,
                                                           offset, gram_u.data(), work.data(), group.data(),
                                                           compensated) < 0;
        for (RowCandidate* c : {&plain, &compensated}) {
          if (gram_u.empty()) break;
          for (int64_t k = 0; k < cols; ++k) {
            err[static_cast<size_t>(k)] = static_cast<double>(x[k]) - static_cast<double>(c->xh[static_cast<size_t>(k)]);
          }
          c->gram_error = gram_error(config.gram, err.data(), cols);
          if (!compensated_ok) break;
        }
        const RowCandidate& best = compensated_ok && compensated.gram_error < plain.gram_error ? compensated : plain;
        for (int64_t g = 0; g < l.groups; ++g) {
          const int64_t k0 = g * l.group_size, n = std::min(l.group_size, cols - k0);
          if (!l.per_tensor) {
            const int64_t si = l.scale_index(r, g);
            store_scale(scales, si, e.scale_dtype, best.params[static_cast<size_t>(g)].d);
            if (!e.symmetric) store_scale(mins, si, e.scale_dtype, best.params[static_cast<size_t>(g)].m);
          }
          accumulate_span(x + k0, best.xh.data() + k0, n, acc);
        }
        std::memcpy(codes.data(), best.codes.data(), static_cast<size_t>(cols));
        acc.flush();
        pack_row(l, e.value_type, codes.data(), r, values);
        row_sums[static_cast<size_t>(r)] = acc.sums;
        continue;
      }
      for (int64_t g = 0; g < l.groups; ++g) {
        const int64_t k0 = g * l.group_size, n = std::min(l.group_size, cols - k0);
        GroupParams p = tensor_params;
        if (!l.per_tensor) {
          if (!choose_params(OneSpan{x + k0, imp ? imp + k0 : nullptr, n}, spec, config.search, weighted, p)) {
            bad_group[static_cast<size_t>(r)] = g;
            break;
          }
          const int64_t si = l.scale_index(r, g);
          store_scale(scales, si, e.scale_dtype, p.d);
          if (!e.symmetric) store_scale(mins, si, e.scale_dtype, p.m);
        }
        if (spec.symmetric) {
          quantize_span<true>(x + k0, n, p, spec, offset, codes.data() + k0, acc);
        } else {
          quantize_span<false>(x + k0, n, p, spec, offset, codes.data() + k0, acc);
        }
      }
      acc.flush();
      pack_row(l, e.value_type, codes.data(), r, values);
      row_sums[static_cast<size_t>(r)] = acc.sums;
    }
  });
  ErrorSums total;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t bad = bad_group[static_cast<size_t>(r)];
    if (bad == kNonFiniteRow) return nonfinite_error(what, w + r * cols, r, cols);
    if (bad >= 0) return overflow_error(r, bad);
    total.add(row_sums[static_cast<size_t>(r)]);
  }
  out.stats = error_stats_from_sums(total, out.total_bytes());
  // The fast sums above run in float lanes, where the squares of tiny (denormal) weights underflow
  // to zero and a tensor that lost everything would read as "exact". When the float sums saw no
  // signal although some weight is nonzero, recompute the statistics exactly (double sums over
  // the decoded result); normal tensors never take this path.
  if (total.sum_sq < 1e-30) {
    bool nonzero = false;
    for (int64_t i = 0; i < rows * cols && !nonzero; ++i) nonzero = w[i] != 0.0f;
    if (nonzero) {
      std::vector<float> decoded(static_cast<size_t>(rows * cols));
      SLMC_RETURN_IF_ERROR(dequantize(out.view(), decoded.data()).with_context(what));
      out.stats = compute_error_stats(w, decoded.data(), rows * cols, out.total_bytes());
    }
  }
  return out;
}

/// Float passthrough: stores w[rows x cols] as plain row-major f32, f16 or bf16 (round to nearest
/// even) with error statistics. Errors: bad shape, NaN/Inf input, a value that overflows the
/// 16-bit type (row and column given), a quantized value type.
Result<EncodedMatrix> encode_float(std::string_view tensor_name, const float* w, int64_t rows, int64_t cols,
                                          ValueType value_type) {
  using namespace quant_detail;
  const std::string what = tensor_label(tensor_name);
  const size_t eb = float_value_bytes(value_type);
  if (eb == 0) {
    return make_error(ErrorCode::kInvalidArgument, what + ": encode_float needs f32, f16 or bf16, got " +
                                                       value_type_name(value_type) + " (use quantize)");
  }
  SLMC_RETURN_IF_ERROR(check_matrix_args(what, w, rows, cols));
  SLMC_RETURN_IF_ERROR(check_finite(what, w, rows, cols, 0));
  EncodedMatrix out;
  out.rows = rows;
  out.cols = cols;
  out.encoding.value_type = value_type;
  out.encoding.granularity = Granularity::kNone;
  out.encoding.group_size = 0;
  out.encoding.format = SparseFormat::kDense;
  out.encoding.layout = RowLayout::kRows;
  const int64_t n = rows * cols;
  SLMC_ASSIGN_OR_RETURN(out.segment(SegmentRole::kValues),
                        AlignedBuffer::allocate(static_cast<size_t>(n) * eb, what + ": values"));
  uint8_t* dst = out.segment(SegmentRole::kValues).data();
  ErrorSums sums;
  if (value_type == ValueType::kF32) {
    std::memcpy(dst, w, static_cast<size_t>(n) * 4);
    sums = accumulate_error_sums(w, w, n);
  } else {
    uint16_t* h = reinterpret_cast<uint16_t*>(dst);
    if (value_type == ValueType::kF16) {
      convert_fp32_to_fp16(w, h, static_cast<size_t>(n));
    } else {
      convert_fp32_to_bf16(w, h, static_cast<size_t>(n));
    }
    // Back-convert in blocks for the statistics and to find overflow to Inf.
    std::vector<float> back(static_cast<size_t>(std::min<int64_t>(n, 1 << 16)));
    for (int64_t i = 0; i < n; i += static_cast<int64_t>(back.size())) {
      const int64_t len = std::min<int64_t>(static_cast<int64_t>(back.size()), n - i);
      if (value_type == ValueType::kF16) {
        convert_fp16_to_fp32(h + i, back.data(), static_cast<size_t>(len));
      } else {
        convert_bf16_to_fp32(h + i, back.data(), static_cast<size_t>(len));
      }
      for (int64_t j = 0; j < len; ++j) {
        if (!std::isfinite(back[static_cast<size_t>(j)])) {
          return make_error(ErrorCode::kOutOfRange, what + ": weight " + std::to_string(w[i + j]) + " at row " +
                                                        std::to_string((i + j) / cols) + ", col " +
                                                        std::to_string((i + j) % cols) + " overflows " +
                                                        value_type_name(value_type));
        }
      }
      sums.add(accumulate_error_sums(w + i, back.data(), len));
    }
  }
  out.stats = error_stats_from_sums(sums, out.total_bytes());
  return out;
}

}  // namespace slmc
