// How one weight matrix W[M x K] is stored: the Encoding (value type, quantization, sparsity, row
// layout), its data segments, and the owning / non-owning containers that compressors produce,
// the file stores and the kernels read. The byte layouts are specified in docs/LAYOUT.md; for
// dense quantized matrices slmc/layout.hpp computes every offset.
//
// All enum values here are written into .slm files: they are stable, never renumber or reuse one.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "slmc/buffer.hpp"
#include "slmc/dtype.hpp"
#include "slmc/status.hpp"

namespace slmc {

/// Element type of the stored (kept) values.
enum class ValueType : uint8_t {
  kF32 = 0,
  kF16 = 1,
  kBF16 = 2,
  kInt8 = 3,  ///< int8 codes; w = d*q (symmetric, q in [-127,127]) or d*q + m (asymmetric)
  kInt4 = 4,  ///< 4-bit codes u in [0,15]; w = d*(u-8) (symmetric) or d*u + m (asymmetric)
  kNl4 = 5,   ///< 4-bit codes u in [0,15] into the fixed non-uniform table kNl4Levels
              ///< (slmc/layout.hpp): w = d*kNl4Levels[u]; symmetric only (format 1.2)
};

/// Stable short name of a value type as files, kernels and reports spell it: "f32", "f16",
/// "bf16", "int8", "int4", "nl4" ("invalid" otherwise). (The scheme grammar's keywords, "fp32" and "fp16",
/// are parse_scheme's.)
constexpr const char* value_type_name(ValueType t) noexcept {
  switch (t) {
    case ValueType::kF32: return "f32";
    case ValueType::kF16: return "f16";
    case ValueType::kBF16: return "bf16";
    case ValueType::kInt8: return "int8";
    case ValueType::kInt4: return "int4";
    case ValueType::kNl4: return "nl4";
  }
  return "invalid";
}

/// What one scale (and min) covers.
enum class Granularity : uint8_t {
  kNone = 0,     ///< float values, no scales
  kTensor = 1,   ///< one scale for the whole matrix
  kChannel = 2,  ///< one scale per output row
  kGroup = 3,    ///< one scale per `group_size` consecutive elements of a row (along K)
};

/// How scales were chosen (provenance; the stored data does not depend on it).
enum class ScaleSearch : uint8_t {
  kAbsmax = 0,    ///< round to nearest with d = amax / qmax (min/max for asymmetric)
  kMse = 1,       ///< scale (clipping) minimizing each group's squared error
  kWeighted = 2,  ///< the same, weighted by per-input-channel importance
};

/// Sparse storage format.
enum class SparseFormat : uint8_t {
  kDense = 0,
  kCsr = 1,
  kBsr = 2,
  kNM = 3,
  kBitmask = 4,
};

/// Row layout of dense quantized values (docs/LAYOUT.md): plain rows, or R rows interleaved
/// chunk by chunk. The enum value is R.
enum class RowLayout : uint8_t {
  kRows = 1,
  kInterleave4 = 4,
  kInterleave8 = 8,
};

/// Roles of the data segments of an encoded matrix. Unused roles are empty.
enum class SegmentRole : uint8_t {
  kValues = 0,  ///< stored values (dense, or the kept values of a sparse format)
  kScales = 1,  ///< quantization scales (scale_dtype)
  kMins = 2,    ///< asymmetric offsets m (scale_dtype)
  kRowPtr = 3,  ///< CSR/BSR row (block-row) pointers, bitmask per-row value offsets
  kColIdx = 4,  ///< CSR column / BSR block-column indices
  kMeta = 5,    ///< N:M in-group indices, bitmask bits
};
inline constexpr int kSegmentRoles = 6;

constexpr std::string_view segment_role_name(SegmentRole role) noexcept {
  switch (role) {
    case SegmentRole::kValues: return "values";
    case SegmentRole::kScales: return "scales";
    case SegmentRole::kMins: return "mins";
    case SegmentRole::kRowPtr: return "row_ptr";
    case SegmentRole::kColIdx: return "col_idx";
    case SegmentRole::kMeta: return "meta";
  }
  return "invalid";
}

/// The complete description of how a matrix is stored.
struct Encoding {
  ValueType value_type = ValueType::kF32;

  // Quantization (value_type kInt8 / kInt4).
  Granularity granularity = Granularity::kNone;
  int32_t group_size = 0;            ///< elements per group along K (kGroup only)
  bool symmetric = true;             ///< false: a min per scale (SegmentRole::kMins)
  DType scale_dtype = DType::kF32;   ///< kF16 or kF32
  ScaleSearch search = ScaleSearch::kAbsmax;

  // Sparsity.
  SparseFormat format = SparseFormat::kDense;
  uint8_t nm_n = 0, nm_m = 0;          ///< N:M: keep nm_n of every nm_m along K
  uint8_t block_rows = 0, block_cols = 0;  ///< BSR block shape

  RowLayout layout = RowLayout::kRows;

  bool is_quantized() const noexcept {
    return value_type == ValueType::kInt8 || value_type == ValueType::kInt4 || value_type == ValueType::kNl4;
  }
  bool operator==(const Encoding& o) const noexcept {
    return value_type == o.value_type && granularity == o.granularity && group_size == o.group_size &&
           symmetric == o.symmetric && scale_dtype == o.scale_dtype && search == o.search &&
           format == o.format && nm_n == o.nm_n && nm_m == o.nm_m && block_rows == o.block_rows &&
           block_cols == o.block_cols && layout == o.layout;
  }
  bool operator!=(const Encoding& o) const noexcept { return !(*this == o); }
};

/// Error of an encoded matrix against the fp32 original (computed by the compressors).
struct ErrorStats {
  double rmse = 0;          ///< sqrt(mean((W - W')^2))
  double rel_error = 0;     ///< ||W - W'||_F / ||W||_F (0 when W == 0 and W' == 0)
  double sqnr_db = 0;       ///< 10 log10(||W||^2 / ||W - W'||^2); +inf reported as 999
  double max_abs_error = 0;
  double sparsity = 0;      ///< fraction of zeros in W'
  double bits_per_weight = 0;  ///< 8 * (all segment bytes) / (M * K)
};

/// One data segment: bytes owned by someone else (an mmap, or an EncodedMatrix).
struct SegmentView {
  const void* data = nullptr;
  uint64_t nbytes = 0;
  bool empty() const noexcept { return nbytes == 0; }
  template <typename T>
  const T* as() const noexcept { return static_cast<const T*>(data); }
};

/// Non-owning view of an encoded matrix: what kernels read (zero-copy from a loaded file).
struct EncodedMatrixView {
  int64_t rows = 0;  ///< M (out features)
  int64_t cols = 0;  ///< K (in features)
  Encoding encoding;
  std::array<SegmentView, kSegmentRoles> segments{};

  const SegmentView& segment(SegmentRole role) const noexcept { return segments[static_cast<size_t>(role)]; }
  uint64_t total_bytes() const noexcept {
    uint64_t n = 0;
    for (const auto& s : segments) n += s.nbytes;
    return n;
  }
};

/// Owning encoded matrix: what the compressors return.
struct EncodedMatrix {
  int64_t rows = 0;
  int64_t cols = 0;
  Encoding encoding;
  std::array<AlignedBuffer, kSegmentRoles> segments;
  ErrorStats stats;

  AlignedBuffer& segment(SegmentRole role) noexcept { return segments[static_cast<size_t>(role)]; }
  const AlignedBuffer& segment(SegmentRole role) const noexcept { return segments[static_cast<size_t>(role)]; }

  EncodedMatrixView view() const noexcept {
    EncodedMatrixView v;
    v.rows = rows;
    v.cols = cols;
    v.encoding = encoding;
    for (size_t i = 0; i < segments.size(); ++i) v.segments[i] = SegmentView{segments[i].data(), segments[i].size()};
    return v;
  }
  uint64_t total_bytes() const noexcept { return view().total_bytes(); }
};

/// Value types stored as 4-bit codes (two a byte, 16-byte chunk records): int4 and nl4.
constexpr bool is_4bit(ValueType t) noexcept { return t == ValueType::kInt4 || t == ValueType::kNl4; }

/// The one legality rule of quantized dense encodings (docs/QUANT.md), shared by the quantizer,
/// the loader's validator and the kernels' argument check: int8 per tensor, per channel or in
/// groups of a positive multiple of 16; int4 and nl4 per channel or in groups of 16, 32, 64, 128 or 256;
/// scales f16 or f32. kUnsupported (kInvalidArgument for values outside the enums) naming `what`.
Status check_quant_scheme(ValueType value_type, Granularity granularity, int64_t group_size, DType scale_dtype,
                          const std::string& what);

}  // namespace slmc
