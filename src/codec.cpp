// The codec traits table and the one scheme grammar (include/slmc/codec.hpp).
#include "slmc/codec.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "slmc/layout.hpp"
#include "slmc/quant/config.hpp"
#include "slmc/quant/dequantize.hpp"
#include "slmc/quant/quantize.hpp"
#include "slmc/sparse/encode.hpp"
#include "slmc/sparse/layout.hpp"

namespace slmc {

const char* scale_search_name(ScaleSearch s) noexcept {
  switch (s) {
    case ScaleSearch::kAbsmax: return "absmax";
    case ScaleSearch::kMse: return "mse";
    case ScaleSearch::kWeighted: return "weighted";
  }
  return "invalid";
}

namespace {

// ------------------------------------------------------------------------------------------------
// Table entries
// ------------------------------------------------------------------------------------------------

constexpr uint8_t vt_bit(ValueType t) { return static_cast<uint8_t>(1u << static_cast<unsigned>(t)); }
constexpr uint8_t kFloatTypes = vt_bit(ValueType::kF32) | vt_bit(ValueType::kF16) | vt_bit(ValueType::kBF16);

int64_t float_bytes(ValueType t) { return t == ValueType::kF32 ? 4 : 2; }

Status unsupported(const std::string& what, const std::string& msg) {
  return make_error(ErrorCode::kUnsupported, what + ": " + msg);
}

/// Fields a family does not use must hold their defaults, so that one matrix has one spelling.
Status check_unused_quant(const Encoding& e, const std::string& what) {
  const Encoding d;
  const std::string vt = value_type_name(e.value_type);
  if (e.granularity != Granularity::kNone) {
    return unsupported(what, vt + " values take no scales (granularity " + std::to_string(int(e.granularity)) + ")");
  }
  if (e.group_size != 0) return unsupported(what, vt + " values take no scales (group size " + std::to_string(e.group_size) + ")");
  if (e.symmetric != d.symmetric) return unsupported(what, vt + " values take no mins (symmetric = false)");
  if (e.scale_dtype != d.scale_dtype) {
    return unsupported(what, vt + " values take no scales (scale dtype " + std::string(dtype_name(e.scale_dtype)) + ")");
  }
  if (e.search != d.search) {
    return unsupported(what, vt + " values take no scale search (search " + scale_search_name(e.search) + ")");
  }
  return Status::ok_status();
}

Status check_layout(const Encoding& e, bool interleave_allowed, const std::string& what) {
  const int r = static_cast<int>(e.layout);
  if (r != 1 && r != 4 && r != 8) return make_error(ErrorCode::kInvalidArgument, what + ": row layout " + std::to_string(r) + " is not 1, 4 or 8");
  if (r != 1 && !interleave_allowed) {
    return unsupported(what, "row interleave " + std::to_string(r) + " is only defined for dense and N:M int8/int4");
  }
  return Status::ok_status();
}

Status check_search(const Encoding& e, const std::string& what) {
  if (static_cast<unsigned>(e.search) > static_cast<unsigned>(ScaleSearch::kWeighted)) {
    return make_error(ErrorCode::kInvalidArgument, what + ": scale search " + std::to_string(int(e.search)) + " is unknown");
  }
  return Status::ok_status();
}

Status check_sparse_params(const Encoding& e, const std::string& what) {
  if (e.format != SparseFormat::kNM && (e.nm_n != 0 || e.nm_m != 0)) {
    return unsupported(what, "N:M parameters " + std::to_string(e.nm_n) + ":" + std::to_string(e.nm_m) + " on a non-N:M format");
  }
  if (e.format != SparseFormat::kBsr && (e.block_rows != 0 || e.block_cols != 0)) {
    return unsupported(what, "block shape " + std::to_string(e.block_rows) + "x" + std::to_string(e.block_cols) +
                                 " on a non-BSR format");
  }
  return Status::ok_status();
}

// Dense float: f32 / f16 / bf16 row-major, no scales.
RoleSet float_roles(const Encoding&) { return role_bit(SegmentRole::kValues); }
StorageUnit float_unit(const Encoding& e) { return {1, float_bytes(e.value_type)}; }
Status float_check(const Encoding& e, const std::string& what) {
  SLMC_RETURN_IF_ERROR(check_unused_quant(e, what));
  SLMC_RETURN_IF_ERROR(check_sparse_params(e, what));
  return check_layout(e, false, what);
}

// Dense int8 / int4: chunk records of 32 codes, scales, mins when asymmetric.
RoleSet quant_roles(const Encoding& e) {
  RoleSet r = role_bit(SegmentRole::kValues) | role_bit(SegmentRole::kScales);
  if (!e.symmetric) r |= role_bit(SegmentRole::kMins);
  return r;
}
StorageUnit chunk_unit(const Encoding& e) { return {kChunk, chunk_bytes(e.value_type)}; }
Status quant_check(const Encoding& e, const std::string& what) {
  SLMC_RETURN_IF_ERROR(check_quant_scheme(e.value_type, e.granularity, e.group_size, e.scale_dtype, what));
  if (e.granularity != Granularity::kGroup && e.group_size != 0) {
    return unsupported(what, "group size " + std::to_string(e.group_size) + " without group granularity");
  }
  if (e.value_type == ValueType::kNl4 && !e.symmetric) {
    return unsupported(what, "nl4 is symmetric only (its code book has both signs; sym=false)");
  }
  SLMC_RETURN_IF_ERROR(check_search(e, what));
  SLMC_RETURN_IF_ERROR(check_sparse_params(e, what));
  return check_layout(e, true, what);
}

// Sparse formats: the scale rules shared by every quantized sparse family. `unit` is the number
// of dense columns a scale group must be a multiple of (N:M: M; BSR: c; bitmask: 8; CSR: 1).
Status sparse_scales_check(const Encoding& e, int64_t unit, const std::string& what) {
  if (!e.is_quantized()) return check_unused_quant(e, what);
  if (!e.symmetric) return unsupported(what, "sparse formats store symmetric values (no mins)");
  if (e.granularity == Granularity::kTensor || e.granularity == Granularity::kNone) {
    return unsupported(what, "sparse formats take channel or group scales, not granularity " + std::to_string(int(e.granularity)));
  }
  SLMC_RETURN_IF_ERROR(check_quant_scheme(e.value_type, e.granularity, e.group_size, e.scale_dtype, what));
  if (e.granularity == Granularity::kGroup && e.group_size % unit != 0) {
    return unsupported(what, "group size " + std::to_string(e.group_size) + " is not a multiple of " + std::to_string(unit));
  }
  if (e.granularity != Granularity::kGroup && e.group_size != 0) {
    return unsupported(what, "group size " + std::to_string(e.group_size) + " without group granularity");
  }
  return check_search(e, what);
}

RoleSet sparse_scale_roles(const Encoding& e) {
  return e.is_quantized() ? role_bit(SegmentRole::kScales) : RoleSet{0};
}
int64_t sparse_value_bytes(const Encoding& e) { return e.value_type == ValueType::kF32 ? 4 : 1; }

RoleSet csr_roles(const Encoding& e) {
  return role_bit(SegmentRole::kValues) | role_bit(SegmentRole::kRowPtr) | role_bit(SegmentRole::kColIdx) |
         sparse_scale_roles(e);
}
StorageUnit value_unit(const Encoding& e) { return {1, sparse_value_bytes(e)}; }
Status csr_check(const Encoding& e, const std::string& what) {
  SLMC_RETURN_IF_ERROR(check_sparse_params(e, what));
  SLMC_RETURN_IF_ERROR(check_layout(e, false, what));
  return sparse_scales_check(e, 1, what);
}

StorageUnit bsr_unit(const Encoding& e) {
  const int64_t n = int64_t{e.block_rows} * e.block_cols;
  return {n, n * sparse_value_bytes(e)};
}
Status bsr_check(const Encoding& e, const std::string& what) {
  SLMC_RETURN_IF_ERROR(check_sparse_params(e, what));
  if (e.block_rows < 1 || e.block_cols < 1 || e.block_rows > kMaxBlockSide || e.block_cols > kMaxBlockSide ||
      e.block_rows * e.block_cols < 2) {
    return unsupported(what, "BSR block " + std::to_string(e.block_rows) + "x" + std::to_string(e.block_cols) +
                                 " is not RxC with 1 <= R, C <= 64 and R*C >= 2");
  }
  SLMC_RETURN_IF_ERROR(check_layout(e, false, what));
  return sparse_scales_check(e, e.block_cols, what);
}

RoleSet nm_roles(const Encoding& e) {
  return role_bit(SegmentRole::kValues) | role_bit(SegmentRole::kMeta) | sparse_scale_roles(e);
}
StorageUnit nm_unit(const Encoding& e) { return e.is_quantized() ? chunk_unit(e) : StorageUnit{1, 4}; }
Status nm_check(const Encoding& e, const std::string& what) {
  SLMC_RETURN_IF_ERROR(check_sparse_params(e, what));
  if (e.nm_n < 1 || e.nm_n >= e.nm_m || e.nm_m > kMaxNmM) {
    return unsupported(what, "N:M pattern " + std::to_string(e.nm_n) + ":" + std::to_string(e.nm_m) +
                                 " is not 1 <= N < M <= 16");
  }
  SLMC_RETURN_IF_ERROR(check_layout(e, e.is_quantized(), what));
  return sparse_scales_check(e, e.nm_m, what);
}

RoleSet bitmask_roles(const Encoding& e) {
  return role_bit(SegmentRole::kValues) | role_bit(SegmentRole::kRowPtr) | role_bit(SegmentRole::kMeta) |
         sparse_scale_roles(e);
}
Status bitmask_check(const Encoding& e, const std::string& what) {
  SLMC_RETURN_IF_ERROR(check_sparse_params(e, what));
  SLMC_RETURN_IF_ERROR(check_layout(e, false, what));
  return sparse_scales_check(e, 8, what);
}

// Quantizer entries (e already passed check_encoding).
Result<EncodedMatrix> encode_float_entry(std::string_view name, const float* w, int64_t rows, int64_t cols,
                                         const Encoding& e, const CodecOptions&) {
  return encode_float(name, w, rows, cols, e.value_type);
}
Result<EncodedMatrix> quantize_entry(std::string_view name, const float* w, int64_t rows, int64_t cols,
                                     const Encoding& e, const CodecOptions& options) {
  QuantConfig c = quant_config_from_encoding(e);
  c.importance = options.importance;
  c.gram = options.gram;
  c.num_threads = options.num_threads;
  return quantize(name, w, rows, cols, c);
}
Result<EncodedMatrix> encode_sparse_entry(std::string_view name, const float* w, int64_t rows, int64_t cols,
                                          const Encoding& e, const CodecOptions& options) {
  return encode_sparse(w, rows, cols, e, options.keep, name, options.importance);
}

const std::vector<CodecTraits>& table() {
  static const std::vector<CodecTraits> t = {
      {"float", SparseFormat::kDense, kFloatTypes, kKernelDenseLinear | kKernelGather, float_roles, float_unit,
       float_check, encode_float_entry, dequantize},
      {"int8", SparseFormat::kDense, vt_bit(ValueType::kInt8), kKernelDenseLinear | kKernelGather, quant_roles,
       chunk_unit, quant_check, quantize_entry, dequantize},
      {"int4", SparseFormat::kDense, vt_bit(ValueType::kInt4), kKernelDenseLinear | kKernelGather, quant_roles,
       chunk_unit, quant_check, quantize_entry, dequantize},
      {"nl4", SparseFormat::kDense, vt_bit(ValueType::kNl4), kKernelDenseLinear | kKernelGather, quant_roles,
       chunk_unit, quant_check, quantize_entry, dequantize},
      {"csr", SparseFormat::kCsr, vt_bit(ValueType::kF32) | vt_bit(ValueType::kInt8),
       kKernelSparseLinear | kKernelGather, csr_roles, value_unit, csr_check, encode_sparse_entry, decode_sparse},
      {"bsr", SparseFormat::kBsr, vt_bit(ValueType::kF32) | vt_bit(ValueType::kInt8),
       kKernelSparseLinear | kKernelGather, csr_roles, bsr_unit, bsr_check, encode_sparse_entry, decode_sparse},
      {"nm", SparseFormat::kNM, vt_bit(ValueType::kF32) | vt_bit(ValueType::kInt8) | vt_bit(ValueType::kInt4),
       kKernelSparseLinear | kKernelGather, nm_roles, nm_unit, nm_check, encode_sparse_entry, decode_sparse},
      {"bitmask", SparseFormat::kBitmask, vt_bit(ValueType::kF32) | vt_bit(ValueType::kInt8),
       kKernelSparseLinear | kKernelGather, bitmask_roles, value_unit, bitmask_check, encode_sparse_entry, decode_sparse},
  };
  return t;
}

// ------------------------------------------------------------------------------------------------
// Grammar helpers
// ------------------------------------------------------------------------------------------------

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    parts.push_back(s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
  return parts;
}

bool parse_int(std::string_view s, int64_t lo, int64_t hi, int64_t* out) {
  if (s.empty() || s.size() > 18) return false;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v < lo || v > hi) return false;
  *out = v;
  return true;
}

bool parse_double(std::string_view s, double* out) {
  std::string str(s);
  if (str.empty()) return false;
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(str.c_str(), &end);
  if (errno != 0 || end != str.c_str() + str.size() || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

/// The grammar's keyword for a value type ("fp32", not the file name "f32").
const char* scheme_keyword(ValueType t) {
  switch (t) {
    case ValueType::kF32: return "fp32";
    case ValueType::kF16: return "fp16";
    case ValueType::kBF16: return "bf16";
    case ValueType::kInt8: return "int8";
    case ValueType::kInt4: return "int4";
    case ValueType::kNl4: return "nl4";
  }
  return "?";
}

std::string format_keyword(const Encoding& e) {
  switch (e.format) {
    case SparseFormat::kDense: return "dense";
    case SparseFormat::kCsr: return "csr";
    case SparseFormat::kBsr: return "bsr" + std::to_string(e.block_rows) + "x" + std::to_string(e.block_cols);
    case SparseFormat::kNM: return "nm";
    case SparseFormat::kBitmask: return "bitmask";
  }
  return "?";
}

std::string format_double(double v) {
  std::ostringstream os;
  os.precision(6);
  os << v;
  return os.str();
}

/// The quantization keys of an Encoding, in canonical order, shared by both printers.
std::vector<std::string> encoding_keys(const Encoding& e) {
  std::vector<std::string> keys;
  if (e.is_quantized()) {
    if (e.granularity == Granularity::kGroup) keys.push_back("group=" + std::to_string(e.group_size));
    if (e.granularity == Granularity::kChannel) keys.push_back("group=channel");
    if (e.granularity == Granularity::kTensor) keys.push_back("group=tensor");
    keys.push_back(std::string("sym=") + (e.symmetric ? "true" : "false"));
    keys.push_back(std::string("search=") + scale_search_name(e.search));
    keys.push_back(std::string("scale_dtype=") + (e.scale_dtype == DType::kF16 ? "fp16" : "fp32"));
  }
  return keys;
}

std::string join_keys(std::string s, const std::vector<std::string>& keys) {
  for (size_t i = 0; i < keys.size(); ++i) s += (i == 0 ? ":" : ",") + keys[i];
  return s;
}

std::string layout_keyword(RowLayout l) {
  return l == RowLayout::kRows ? "rows" : l == RowLayout::kInterleave4 ? "i4" : "i8";
}

constexpr const char* kSchemeKeys = "group, sym, search, scale_dtype, sparsity, pattern, format, prune, layout";
constexpr const char* kEncodingKeys = "group, sym, search, scale_dtype, pattern, format, layout";

/// The grammar. `scheme`: the recipe form (pruning keys and the pruning rules); otherwise the
/// Encoding form (no pruning keys; pattern=N:M is stored as format=nm). Messages start with
/// "<kind> '<text>': ".
Result<Scheme> parse_grammar(std::string_view text, bool scheme_form) {
  const std::string kind = scheme_form ? "scheme" : "encoding";
  auto error = [&](const std::string& what) {
    return make_error(ErrorCode::kInvalidArgument, kind + " '" + std::string(text) + "': " + what);
  };
  Scheme scheme;
  Encoding& e = scheme.encoding;
  const size_t colon = text.find(':');
  const std::string_view base = text.substr(0, colon);
  if (base == "fp32") {
    e.value_type = ValueType::kF32;
  } else if (base == "fp16") {
    e.value_type = ValueType::kF16;
  } else if (base == "bf16") {
    e.value_type = ValueType::kBF16;
  } else if (base == "int8") {
    e.value_type = ValueType::kInt8;
    e.granularity = Granularity::kChannel;
    e.symmetric = true;
    e.search = ScaleSearch::kAbsmax;
    e.scale_dtype = DType::kF32;
  } else if (base == "int4" || base == "nl4") {  // nl4 takes int4's keys and defaults
    e.value_type = base == "int4" ? ValueType::kInt4 : ValueType::kNl4;
    e.granularity = Granularity::kGroup;
    e.group_size = 32;
    e.symmetric = true;
    e.search = ScaleSearch::kMse;
    e.scale_dtype = DType::kF16;
  } else {
    return error("unknown encoding '" + std::string(base) + "'; valid: fp32, fp16, bf16, int8, int4, nl4");
  }
  const char* valid_keys = scheme_form ? kSchemeKeys : kEncodingKeys;
  const bool quantized = e.is_quantized();
  bool format_given = false;
  bool layout_given = false;
  if (colon != std::string_view::npos) {
    const std::string_view rest = text.substr(colon + 1);
    if (rest.empty()) return error("empty key list after ':'");
    std::vector<std::string> seen;
    for (std::string_view kv : split(rest, ',')) {
      const size_t eq = kv.find('=');
      if (eq == std::string_view::npos || eq == 0 || eq + 1 == kv.size()) {
        return error("'" + std::string(kv) + "' is not key=value; valid keys: " + valid_keys);
      }
      const std::string key(kv.substr(0, eq));
      const std::string_view value = kv.substr(eq + 1);
      for (const auto& k : seen) {
        if (k == key) return error("key '" + key + "' given twice");
      }
      seen.push_back(key);
      auto bad_value = [&](const std::string& valid) {
        return error("invalid " + key + "='" + std::string(value) + "'; valid: " + valid);
      };
      const bool quant_key = key == "group" || key == "sym" || key == "search" || key == "scale_dtype";
      if (quant_key && !quantized) return error("key '" + key + "' applies to int8, int4 and nl4 only");
      if (key == "group") {
        int64_t g = 0;
        if (value == "channel") {
          e.granularity = Granularity::kChannel;
          e.group_size = 0;
        } else if (value == "tensor") {
          if (is_4bit(e.value_type)) return bad_value("16, 32, 64, 128, 256, channel (int4, nl4)");
          e.granularity = Granularity::kTensor;
          e.group_size = 0;
        } else if (parse_int(value, 1, 1 << 30, &g)) {
          if (is_4bit(e.value_type) && g != 16 && g != 32 && g != 64 && g != 128 && g != 256) {
            return bad_value("16, 32, 64, 128, 256, channel (int4, nl4)");
          }
          if (g % 16 != 0) return bad_value("a multiple of 16, channel, tensor (int8)");
          e.granularity = Granularity::kGroup;
          e.group_size = static_cast<int32_t>(g);
        } else {
          return bad_value(is_4bit(e.value_type) ? "16, 32, 64, 128, 256, channel"
                                                            : "a multiple of 16, channel, tensor");
        }
      } else if (key == "sym") {
        if (value == "true") e.symmetric = true;
        else if (value == "false") e.symmetric = false;
        else return bad_value("true, false");
      } else if (key == "search") {
        if (value == "absmax") e.search = ScaleSearch::kAbsmax;
        else if (value == "mse") e.search = ScaleSearch::kMse;
        else if (value == "weighted") e.search = ScaleSearch::kWeighted;
        else return bad_value("absmax, mse, weighted");
      } else if (key == "scale_dtype") {
        if (value == "fp16") e.scale_dtype = DType::kF16;
        else if (value == "fp32") e.scale_dtype = DType::kF32;
        else return bad_value("fp16, fp32");
      } else if (key == "sparsity" && scheme_form) {
        double f = 0;
        if (!parse_double(value, &f) || f < 0.0 || f >= 1.0) return bad_value("a number in [0, 1)");
        scheme.sparsity = f;
      } else if (key == "pattern") {
        const size_t c = value.find(':');
        int64_t n = 0, m = 0;
        if (c == std::string_view::npos || !parse_int(value.substr(0, c), 1, 15, &n) ||
            !parse_int(value.substr(c + 1), 2, 16, &m) || n >= m) {
          return bad_value("N:M with 1 <= N < M <= 16, e.g. 2:4");
        }
        e.nm_n = static_cast<uint8_t>(n);
        e.nm_m = static_cast<uint8_t>(m);
      } else if (key == "format") {
        format_given = true;
        if (value == "dense") e.format = SparseFormat::kDense;
        else if (value == "csr") e.format = SparseFormat::kCsr;
        else if (value == "bitmask") e.format = SparseFormat::kBitmask;
        else if (value == "nm") e.format = SparseFormat::kNM;
        else if (value.substr(0, 3) == "bsr") {
          const std::string_view dims = value.substr(3);
          const size_t x = dims.find('x');
          int64_t r = 0, cc = 0;
          if (x == std::string_view::npos || !parse_int(dims.substr(0, x), 1, 64, &r) ||
              !parse_int(dims.substr(x + 1), 1, 64, &cc) || r * cc < 2) {
            return bad_value("dense, csr, bsrRxC (1 <= R, C <= 64, e.g. bsr4x1), bitmask, nm");
          }
          e.format = SparseFormat::kBsr;
          e.block_rows = static_cast<uint8_t>(r);
          e.block_cols = static_cast<uint8_t>(cc);
        } else {
          return bad_value("dense, csr, bsrRxC (e.g. bsr4x1), bitmask, nm");
        }
      } else if (key == "prune" && scheme_form) {
        if (value == "magnitude") scheme.prune = PruneScore::kMagnitude;
        else if (value == "wanda") scheme.prune = PruneScore::kWanda;
        else return bad_value("magnitude, wanda");
      } else if (key == "layout") {
        layout_given = true;
        if (value == "rows") e.layout = RowLayout::kRows;
        else if (value == "i4") e.layout = RowLayout::kInterleave4;
        else if (value == "i8") e.layout = RowLayout::kInterleave8;
        else return bad_value("rows, i4, i8");
      } else {
        return error("unknown key '" + key + "'; valid keys: " + valid_keys);
      }
    }
  }
  // Cross-key consistency (in this order: messages for several faults name the first).
  if (e.nm_m != 0 && !format_given) e.format = SparseFormat::kNM;
  if (e.format == SparseFormat::kNM && e.nm_m == 0) return error("format=nm needs pattern=N:M");
  if (e.nm_m != 0 && scheme.sparsity > 0) return error("give either sparsity=F or pattern=N:M, not both");
  if (e.nm_m != 0 && e.format != SparseFormat::kNM && (e.format != SparseFormat::kDense || !scheme_form)) {
    // A scheme may prune N:M and store the result dense; an Encoding's pattern is its format.
    return error(scheme_form ? "pattern=N:M is stored as format=nm or format=dense" : "pattern=N:M is stored as format=nm");
  }
  if (scheme_form &&
      (e.format == SparseFormat::kCsr || e.format == SparseFormat::kBitmask || e.format == SparseFormat::kBsr) &&
      scheme.sparsity <= 0) {
    return error("format=" + format_keyword(e) + " needs sparsity=F > 0");
  }
  if (e.format != SparseFormat::kDense && e.format != SparseFormat::kNM &&
      !(e.value_type == ValueType::kF32 || e.value_type == ValueType::kInt8)) {
    return error(std::string("format=") + format_keyword(e) + " stores fp32 or int8 values, not " +
                 scheme_keyword(e.value_type));
  }
  if (e.format == SparseFormat::kNM && e.value_type != ValueType::kF32 && e.value_type != ValueType::kInt8 &&
      e.value_type != ValueType::kInt4) {
    return error(std::string("format=nm stores fp32, int8 or int4 values, not ") + scheme_keyword(e.value_type));
  }
  if (layout_given && (!quantized || e.format != SparseFormat::kDense) &&
      !(!scheme_form && quantized && e.format == SparseFormat::kNM)) {
    // The N:M values of an Encoding may be interleaved (the layout is stored); a recipe's N:M
    // scheme always stores plain rows.
    return error(scheme_form ? "layout= applies to dense int8 and int4 only"
                             : "layout= applies to dense and N:M int8 and int4 only");
  }
  if (e.format != SparseFormat::kDense && quantized && !e.symmetric) {
    return error("sparse formats store symmetric values: drop sym=false");
  }
  if (e.format != SparseFormat::kDense && quantized && e.granularity == Granularity::kTensor) {
    return error("sparse formats take group=channel or group=N scales, not group=tensor");
  }
  return scheme;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Public: grammar
// ------------------------------------------------------------------------------------------------

Result<Scheme> parse_scheme(std::string_view text) { return parse_grammar(text, /*scheme_form=*/true); }

std::string Scheme::to_string() const {
  const Encoding& e = encoding;
  std::vector<std::string> keys = encoding_keys(e);
  if (sparsity > 0) keys.push_back("sparsity=" + format_double(sparsity));
  if (e.nm_m != 0) keys.push_back("pattern=" + std::to_string(e.nm_n) + ":" + std::to_string(e.nm_m));
  if (e.format != SparseFormat::kDense || is_pruned()) keys.push_back("format=" + format_keyword(e));
  if (is_pruned()) keys.push_back(std::string("prune=") + (prune == PruneScore::kWanda ? "wanda" : "magnitude"));
  if (e.is_quantized() && e.format == SparseFormat::kDense) keys.push_back("layout=" + layout_keyword(e.layout));
  return join_keys(scheme_keyword(e.value_type), keys);
}

Result<Encoding> parse_encoding(std::string_view text) {
  SLMC_ASSIGN_OR_RETURN(Scheme s, parse_grammar(text, /*scheme_form=*/false));
  SLMC_RETURN_IF_ERROR(check_encoding(s.encoding, "encoding '" + std::string(text) + "'"));
  return s.encoding;
}

std::string encoding_to_string(const Encoding& e) {
  std::vector<std::string> keys = encoding_keys(e);
  if (e.nm_m != 0) keys.push_back("pattern=" + std::to_string(e.nm_n) + ":" + std::to_string(e.nm_m));
  if (e.format != SparseFormat::kDense) keys.push_back("format=" + format_keyword(e));
  if (e.is_quantized() && (e.format == SparseFormat::kDense || e.layout != RowLayout::kRows)) {
    keys.push_back("layout=" + layout_keyword(e.layout));
  }
  return join_keys(scheme_keyword(e.value_type), keys);
}

std::string encoding_name(const Encoding& e) {
  std::string s;
  switch (e.format) {
    case SparseFormat::kDense: break;
    case SparseFormat::kCsr: s = "csr_"; break;
    case SparseFormat::kBsr: s = "bsr" + std::to_string(e.block_rows) + "x" + std::to_string(e.block_cols) + "_"; break;
    case SparseFormat::kNM: s = "nm" + std::to_string(e.nm_n) + ":" + std::to_string(e.nm_m) + "_"; break;
    case SparseFormat::kBitmask: s = "bitmask_"; break;
    default: s = "format" + std::to_string(int(e.format)) + "_"; break;
  }
  s += value_type_name(e.value_type);
  if (e.is_quantized()) {
    switch (e.granularity) {
      case Granularity::kTensor: s += "_tensor"; break;
      case Granularity::kChannel: s += "_channel"; break;
      case Granularity::kGroup: s += "_g" + std::to_string(e.group_size); break;
      default: s += "_none"; break;
    }
    s += e.symmetric ? "_sym" : "_asym";
    s += e.scale_dtype == DType::kF16 ? "_f16" : "_f32";
  }
  if (e.layout != RowLayout::kRows) s += "_r" + std::to_string(static_cast<int>(e.layout));
  return s;
}

// ------------------------------------------------------------------------------------------------
// Public: table
// ------------------------------------------------------------------------------------------------

const std::vector<CodecTraits>& codecs() { return table(); }

const CodecTraits* find_codec(const Encoding& e) noexcept {
  if (static_cast<unsigned>(e.value_type) > static_cast<unsigned>(ValueType::kNl4)) return nullptr;
  for (const CodecTraits& c : table()) {
    if (c.format == e.format && (c.value_types & vt_bit(e.value_type)) != 0) return &c;
  }
  return nullptr;
}

Status check_encoding(const Encoding& e, const std::string& what) {
  if (static_cast<unsigned>(e.value_type) > static_cast<unsigned>(ValueType::kNl4)) {
    return make_error(ErrorCode::kInvalidArgument, what + ": value type " + std::to_string(int(e.value_type)) + " is unknown");
  }
  const CodecTraits* c = find_codec(e);
  if (c == nullptr) {
    const bool known_format = static_cast<unsigned>(e.format) <= static_cast<unsigned>(SparseFormat::kBitmask);
    return make_error(known_format ? ErrorCode::kUnsupported : ErrorCode::kInvalidArgument,
                      what + ": no codec stores " + value_type_name(e.value_type) + " values in format " +
                          (known_format ? std::string(sparse_format_name(e.format)) : std::to_string(int(e.format))));
  }
  return c->check(e, what);
}

Result<EncodedMatrix> encode(std::string_view tensor_name, const float* w, int64_t rows, int64_t cols,
                             const Encoding& e, const CodecOptions& options) {
  SLMC_RETURN_IF_ERROR(check_encoding(e, "tensor '" + std::string(tensor_name) + "'"));
  return find_codec(e)->encode(tensor_name, w, rows, cols, e, options);
}

std::vector<Encoding> enumerate_encodings() {
  std::vector<Encoding> out;
  auto add = [&](const Encoding& e) {
    if (check_encoding(e, "enumerate").ok()) out.push_back(e);
  };
  const ValueType all_types[] = {ValueType::kF32, ValueType::kF16, ValueType::kBF16, ValueType::kInt8, ValueType::kInt4,
                                 ValueType::kNl4};
  for (const CodecTraits& c : table()) {
    std::vector<Encoding> shapes;  // the family's sparse parameters
    Encoding base;
    base.format = c.format;
    if (c.format == SparseFormat::kBsr) {
      for (auto [r, cc] : {std::pair<int, int>{4, 1}, {2, 2}}) {
        base.block_rows = static_cast<uint8_t>(r);
        base.block_cols = static_cast<uint8_t>(cc);
        shapes.push_back(base);
      }
    } else if (c.format == SparseFormat::kNM) {
      for (auto [n, m] : {std::pair<int, int>{2, 4}, {1, 4}}) {
        base.nm_n = static_cast<uint8_t>(n);
        base.nm_m = static_cast<uint8_t>(m);
        shapes.push_back(base);
      }
    } else {
      shapes.push_back(base);
    }
    for (ValueType vt : all_types) {
      if ((c.value_types & vt_bit(vt)) == 0) continue;
      for (Encoding e : shapes) {
        e.value_type = vt;
        if (!e.is_quantized()) {
          add(e);
          continue;
        }
        std::vector<std::pair<Granularity, int>> grans = {{Granularity::kTensor, 0}, {Granularity::kChannel, 0}};
        const std::vector<int> sizes =
            vt == ValueType::kInt8 ? std::vector<int>{16, 32, 128} : std::vector<int>{16, 32, 64, 128, 256};
        for (int g : sizes) grans.push_back({Granularity::kGroup, g});
        for (auto [gran, g] : grans) {
          for (bool sym : {true, false}) {
            for (DType sd : {DType::kF16, DType::kF32}) {
              for (ScaleSearch s : {ScaleSearch::kAbsmax, ScaleSearch::kMse, ScaleSearch::kWeighted}) {
                for (RowLayout rl : {RowLayout::kRows, RowLayout::kInterleave4, RowLayout::kInterleave8}) {
                  e.granularity = gran;
                  e.group_size = g;
                  e.symmetric = sym;
                  e.scale_dtype = sd;
                  e.search = s;
                  e.layout = rl;
                  add(e);
                }
              }
            }
          }
        }
      }
    }
  }
  return out;
}

}  // namespace slmc
