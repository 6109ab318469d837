// Byte layout of sparse matrices (CSR, BSR, N:M, bitmask). docs/LAYOUT.md, section "Sparse
// formats", is the specification; this header is its one implementation. Encoders write, the
// validator checks and kernels read with these functions, so the three cannot disagree.
//
// Summary (W is [M x K], row-major; all integers little-endian):
//   CSR      values[nnz] (f32 | int8), col_idx[nnz] (u16 if K <= 65536 else u32),
//            row_ptr[M+1] (u32, u64 iff nnz >= 2^32).
//   BSR r×c  values[nnzb][r][c] (row-major block, edge padding zero), col_idx[nnzb] = block column
//            (u16 if ceil(K/c) <= 65536 else u32), row_ptr[ceil(M/r)+1] (u32, u64 iff nnzb >= 2^32).
//   N:M      per row ceil(K/M) groups of exactly N slots; values = the dense-quantized layout of an
//            [M x slots] matrix (int8/int4, any row interleave) or plain [M][slots] f32; meta = per
//            row, one b-bit in-group position per slot (b = 1, 2 or 4), LSB-first, row stride a
//            multiple of 8 bytes.
//   bitmask  meta = per row ceil(K/64) u64 words, bit k%64 of word k/64 = column k kept;
//            values = kept values packed densely in row-major order + 32 zero bytes;
//            row_ptr[M+1] = offset of each row's first value (u32, u64 iff nnz >= 2^32).
//   Scales (int8/int4): f16 or f32; tensor (1), channel (M) or group (M x ceil(K/g), g dense
//   columns, computed over kept values only); symmetric only (w = d*q, int4 w = d*(u-8)).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "slmc/encoding.hpp"
#include "slmc/half.hpp"
#include "slmc/layout.hpp"
#include "slmc/status.hpp"
#include "slmc/tensor.hpp"

namespace slmc {

/// Bytes of zeros appended to a bitmask matrix's values segment, so that a decoder may load one
/// full 32-byte vector at any value position (shuffle-table decoding) without reading out of bounds.
inline constexpr uint64_t kBitmaskValuesTail = 32;
/// Row pointers switch from u32 to u64 when the stored count (nnz or blocks) reaches this.
inline constexpr uint64_t kU64PointerThreshold = uint64_t{1} << 32;
/// Column (or block-column) indices are u16 while the number of columns is at most this.
inline constexpr int64_t kU16IndexLimit = 65536;
/// Largest M of an N:M pattern (positions fit 4 bits).
inline constexpr int kMaxNmM = 16;
/// Largest BSR block side.
inline constexpr int kMaxBlockSide = 64;

constexpr bool is_sparse_format(SparseFormat f) noexcept {
  return f == SparseFormat::kCsr || f == SparseFormat::kBsr || f == SparseFormat::kNM ||
         f == SparseFormat::kBitmask;
}

constexpr std::string_view sparse_format_name(SparseFormat f) noexcept {
  switch (f) {
    case SparseFormat::kDense: return "dense";
    case SparseFormat::kCsr: return "csr";
    case SparseFormat::kBsr: return "bsr";
    case SparseFormat::kNM: return "nm";
    case SparseFormat::kBitmask: return "bitmask";
  }
  return "invalid";
}

/// Bits per N:M in-group position: 1 (M = 2), 2 (M <= 4) or 4 (M <= 16). Powers of two so that a
/// field never straddles a byte and 32 slots of 2:4 metadata are one u64.
constexpr int nm_position_bits(int m) noexcept { return m <= 2 ? 1 : (m <= 4 ? 2 : 4); }

/// Unaligned little-endian loads (the host is little-endian on every supported target).
template <typename T>
inline T load_le(const void* base, uint64_t index) noexcept {
  T v;
  std::memcpy(&v, static_cast<const uint8_t*>(base) + index * sizeof(T), sizeof(T));
  return v;
}

/// Reads a u32 or u64 entry (width in bytes: 4 or 8) as uint64.
inline uint64_t load_index(const void* base, uint64_t index, int64_t width) noexcept {
  switch (width) {
    case 2: return load_le<uint16_t>(base, index);
    case 4: return load_le<uint32_t>(base, index);
    default: return load_le<uint64_t>(base, index);
  }
}

/// Reads scale `index` stored as f16 or f32.
inline float load_scale(const void* base, uint64_t index, DType scale_dtype) noexcept {
  if (scale_dtype == DType::kF16) return fp16_to_fp32(load_le<uint16_t>(base, index));
  return load_le<float>(base, index);
}

/// Position (0..M-1) of slot `slot` inside its N:M group, from one row's metadata.
inline int nm_position(const uint8_t* row_meta, int64_t slot, int bits) noexcept {
  const int64_t bit = slot * bits;
  return (row_meta[bit >> 3] >> (bit & 7)) & ((1 << bits) - 1);
}

/// Shuffle table for bitmask decoding (one entry per mask byte m, i.e. 8 consecutive columns):
/// lane j (column 8b + j) takes packed value `lane[m][j]` (relative to the byte's first value) when
/// bit j of m is set, and 0x80 when it is clear — the pshufb / NEON tbl "zero this lane" index.
/// For f32 with vpermps use lane & 7 as the index and zero the lanes whose bit is clear. After the
/// byte, the value pointer advances by count[m] = popcount(m).
struct BitmaskExpandTable {
  uint8_t lane[256][8];
  uint8_t count[256];
};

constexpr BitmaskExpandTable make_bitmask_expand_table() noexcept {
  BitmaskExpandTable t{};
  for (int m = 0; m < 256; ++m) {
    int rank = 0;
    for (int j = 0; j < 8; ++j) {
      if ((m >> j) & 1) {
        t.lane[m][j] = static_cast<uint8_t>(rank++);
      } else {
        t.lane[m][j] = 0x80;
      }
    }
    t.count[m] = static_cast<uint8_t>(rank);
  }
  return t;
}

inline constexpr BitmaskExpandTable kBitmaskExpand = make_bitmask_expand_table();

/// Every size and offset of a sparse matrix, derived from (M, K, Encoding) alone plus the stored
/// count (nnz for CSR/bitmask, blocks for BSR; N:M needs none). Create with `create`, which
/// validates the Encoding; all members are then consistent and every size fits int64.
struct SparseLayout {
  int64_t rows = 0;  ///< M
  int64_t cols = 0;  ///< K
  Encoding encoding;
  int64_t value_bytes = 4;      ///< bytes per stored value: 4 (f32), 1 (int8); int4 is N:M only
  int64_t col_index_bytes = 0;  ///< CSR/BSR: 2 or 4 (derived from K or ceil(K/c))

  // BSR
  int64_t block_rows = 0, block_cols = 0;            ///< r, c
  int64_t block_row_count = 0, block_col_count = 0;  ///< ceil(M/r), ceil(K/c)

  // N:M
  int64_t nm_n = 0, nm_m = 0;
  int64_t nm_groups = 0;      ///< groups per row: ceil(K/M)
  int64_t nm_tail = 0;        ///< real columns in a row's last group (M when K % M == 0)
  int64_t slots = 0;          ///< stored slots per row: nm_groups * N
  int64_t meta_bits = 0;      ///< bits per position: nm_position_bits(M)
  int64_t meta_row_bytes = 0; ///< N:M: round_up(ceil(slots*bits/8), 8); bitmask: 8*ceil(K/64)
  DenseQuantLayout nm_values; ///< int8/int4 N:M: the dense layout of [M x slots]

  // Scales
  int64_t scale_group = 0;           ///< dense columns per scale group (K for channel/tensor)
  int64_t scale_groups_per_row = 0;  ///< ceil(K / scale_group), 1 for channel/tensor
  int64_t scale_count = 0;           ///< scales stored
  int64_t scale_bytes = 0;           ///< 2 (f16) or 4 (f32)

  /// Validates (rows, cols, e) for a sparse format and computes the layout. Errors name `name`.
  static Result<SparseLayout> create(int64_t rows, int64_t cols, const Encoding& e, std::string_view name);

  bool quantized() const noexcept { return encoding.is_quantized(); }
  SparseFormat format() const noexcept { return encoding.format; }

  /// Row-pointer entries: M+1 (CSR, bitmask), ceil(M/r)+1 (BSR), 0 (N:M).
  int64_t pointer_count() const noexcept {
    switch (encoding.format) {
      case SparseFormat::kCsr:
      case SparseFormat::kBitmask: return rows + 1;
      case SparseFormat::kBsr: return block_row_count + 1;
      default: return 0;
    }
  }
  /// Width of a row pointer for `stored` entries (nnz or blocks): 4, or 8 when stored >= 2^32.
  static int64_t pointer_width(uint64_t stored) noexcept { return stored >= kU64PointerThreshold ? 8 : 4; }

  /// Dense elements covered by one stored unit (1 value, or r*c for a BSR block).
  int64_t unit_elements() const noexcept {
    return encoding.format == SparseFormat::kBsr ? block_rows * block_cols : 1;
  }

  uint64_t values_segment_bytes(uint64_t stored) const noexcept {
    switch (encoding.format) {
      case SparseFormat::kCsr: return stored * static_cast<uint64_t>(value_bytes);
      case SparseFormat::kBsr: return stored * static_cast<uint64_t>(block_rows * block_cols * value_bytes);
      case SparseFormat::kBitmask: return stored * static_cast<uint64_t>(value_bytes) + kBitmaskValuesTail;
      case SparseFormat::kNM:
        if (quantized()) return static_cast<uint64_t>(nm_values.values_bytes());
        return static_cast<uint64_t>(rows * slots * value_bytes);
      default: return 0;
    }
  }
  uint64_t row_ptr_segment_bytes(uint64_t stored) const noexcept {
    return static_cast<uint64_t>(pointer_count()) * static_cast<uint64_t>(pointer_width(stored));
  }
  uint64_t col_idx_segment_bytes(uint64_t stored) const noexcept {
    if (encoding.format == SparseFormat::kCsr || encoding.format == SparseFormat::kBsr) {
      return stored * static_cast<uint64_t>(col_index_bytes);
    }
    return 0;
  }
  uint64_t meta_segment_bytes() const noexcept {
    if (encoding.format == SparseFormat::kNM || encoding.format == SparseFormat::kBitmask) {
      return static_cast<uint64_t>(rows * meta_row_bytes);
    }
    return 0;
  }
  uint64_t scales_segment_bytes() const noexcept { return static_cast<uint64_t>(scale_count * scale_bytes); }

  /// Exact size of a segment for `stored` units (ignored by N:M).
  uint64_t segment_bytes(SegmentRole role, uint64_t stored) const noexcept {
    switch (role) {
      case SegmentRole::kValues: return values_segment_bytes(stored);
      case SegmentRole::kScales: return scales_segment_bytes();
      case SegmentRole::kMins: return 0;
      case SegmentRole::kRowPtr: return row_ptr_segment_bytes(stored);
      case SegmentRole::kColIdx: return col_idx_segment_bytes(stored);
      case SegmentRole::kMeta: return meta_segment_bytes();
    }
    return 0;
  }
  uint64_t total_bytes(uint64_t stored) const noexcept {
    uint64_t n = 0;
    for (int r = 0; r < kSegmentRoles; ++r) n += segment_bytes(static_cast<SegmentRole>(r), stored);
    return n;
  }

  /// Stored units implied by a values segment of `nbytes` (exact division required), for N:M the
  /// number of stored slots M*slots. Error when nbytes is not a valid size.
  Result<uint64_t> stored_from_values_bytes(uint64_t nbytes, std::string_view name) const {
    uint64_t unit = static_cast<uint64_t>(value_bytes * unit_elements());
    uint64_t payload = nbytes;
    if (encoding.format == SparseFormat::kNM) {
      if (nbytes != values_segment_bytes(0)) {
        return make_error(ErrorCode::kInvalidFormat, "tensor '" + std::string(name) + "': N:M values segment has " +
                                                         std::to_string(nbytes) + " bytes, expected " +
                                                         std::to_string(values_segment_bytes(0)));
      }
      return static_cast<uint64_t>(rows * slots);
    }
    if (encoding.format == SparseFormat::kBitmask) {
      if (nbytes < kBitmaskValuesTail) {
        return make_error(ErrorCode::kInvalidFormat, "tensor '" + std::string(name) + "': bitmask values segment has " +
                                                         std::to_string(nbytes) + " bytes, less than its " +
                                                         std::to_string(kBitmaskValuesTail) + "-byte tail");
      }
      payload -= kBitmaskValuesTail;
    }
    if (payload % unit != 0) {
      return make_error(ErrorCode::kInvalidFormat, "tensor '" + std::string(name) + "': values segment of " +
                                                       std::to_string(nbytes) + " bytes is not a whole number of " +
                                                       std::to_string(unit) + "-byte units");
    }
    return payload / unit;
  }

  /// Index of the scale applying to dense element (row, col). Precondition: quantized().
  int64_t scale_index(int64_t row, int64_t col) const noexcept {
    if (encoding.granularity == Granularity::kTensor) return 0;
    const int64_t group = encoding.granularity == Granularity::kGroup ? col / scale_group : 0;
    if (encoding.format == SparseFormat::kNM) return nm_values.scale_index(row, group);
    return row * scale_groups_per_row + group;
  }

  /// Byte offset of row `row`'s metadata (N:M positions or bitmask words) in the meta segment.
  int64_t meta_offset(int64_t row) const noexcept { return row * meta_row_bytes; }
};

inline Result<SparseLayout> SparseLayout::create(int64_t rows, int64_t cols, const Encoding& e,
                                                 std::string_view name) {
  const std::string who = "tensor '" + std::string(name) + "': ";
  auto bad = [&](ErrorCode code, const std::string& what) { return make_error(code, who + what); };
  SparseLayout l;
  l.rows = rows;
  l.cols = cols;
  l.encoding = e;
  if (rows < 0 || cols < 0) {
    return bad(ErrorCode::kOutOfRange, "negative shape [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
  }
  if (cols != 0 && rows > kMaxTensorElements / cols) {
    return bad(ErrorCode::kOutOfRange, "shape [" + std::to_string(rows) + ", " + std::to_string(cols) +
                                           "] has more than 2^52 elements");
  }
  if (cols > int64_t{0xffffffff}) {
    return bad(ErrorCode::kOutOfRange, "K = " + std::to_string(cols) + " exceeds the u32 column index range");
  }
  if (!is_sparse_format(e.format)) {
    return bad(ErrorCode::kInvalidFormat,
               "encoding format value " + std::to_string(static_cast<int>(e.format)) + " is not a sparse format");
  }
  const std::string fmt(sparse_format_name(e.format));
  switch (e.value_type) {
    case ValueType::kF32: l.value_bytes = 4; break;
    case ValueType::kInt8: l.value_bytes = 1; break;
    case ValueType::kInt4:
      if (e.format != SparseFormat::kNM) return bad(ErrorCode::kUnsupported, "int4 values are only supported for N:M, not " + fmt);
      l.value_bytes = 1;  // only used through nm_values
      break;
    default:
      return bad(ErrorCode::kUnsupported, fmt + " does not support value type " +
                                              std::to_string(static_cast<int>(e.value_type)) + " (f32, int8, int4 for N:M)");
  }
  const int R = static_cast<int>(e.layout);
  if (R != 1 && R != 4 && R != 8) return bad(ErrorCode::kInvalidFormat, "row layout " + std::to_string(R) + " is not 1, 4 or 8");
  if (R != 1 && !(e.format == SparseFormat::kNM && e.is_quantized())) {
    return bad(ErrorCode::kUnsupported, "row interleave " + std::to_string(R) + " is only defined for int8/int4 N:M, not " +
                                            fmt + (e.is_quantized() ? "" : " with f32 values"));
  }
  // Parameters of other formats must be zero so that one matrix has one spelling.
  if (e.format != SparseFormat::kNM && (e.nm_n != 0 || e.nm_m != 0)) return bad(ErrorCode::kInvalidFormat, fmt + " with nonzero nm_n/nm_m");
  if (e.format != SparseFormat::kBsr && (e.block_rows != 0 || e.block_cols != 0)) {
    return bad(ErrorCode::kInvalidFormat, fmt + " with nonzero block_rows/block_cols");
  }

  // Scales.
  if (e.is_quantized()) {
    if (!e.symmetric) return bad(ErrorCode::kUnsupported, "sparse " + fmt + " values must be symmetric (no mins)");
    if (e.scale_dtype == DType::kF16) {
      l.scale_bytes = 2;
    } else if (e.scale_dtype == DType::kF32) {
      l.scale_bytes = 4;
    } else {
      return bad(ErrorCode::kInvalidFormat, "scale dtype " + std::to_string(static_cast<int>(e.scale_dtype)) + " is not f16 or f32");
    }
    switch (e.granularity) {
      case Granularity::kTensor:
        l.scale_group = cols;
        l.scale_groups_per_row = 1;
        l.scale_count = rows * cols > 0 ? 1 : 0;
        break;
      case Granularity::kChannel:
        l.scale_group = cols;
        l.scale_groups_per_row = 1;
        l.scale_count = rows;
        break;
      case Granularity::kGroup: {
        int64_t unit = 1;
        if (e.format == SparseFormat::kNM) unit = e.nm_m;
        if (e.format == SparseFormat::kBsr) unit = e.block_cols;
        if (e.format == SparseFormat::kBitmask) unit = 8;
        if (e.group_size <= 0 || unit <= 0 || e.group_size % unit != 0) {
          return bad(ErrorCode::kInvalidFormat, fmt + " group size " + std::to_string(e.group_size) +
                                                    " must be a positive multiple of " + std::to_string(unit));
        }
        l.scale_group = e.group_size;
        l.scale_groups_per_row = ceil_div(cols, e.group_size);
        l.scale_count = rows * l.scale_groups_per_row;
        break;
      }
      default:
        return bad(ErrorCode::kInvalidFormat, "quantized " + fmt + " needs tensor, channel or group scales (granularity " +
                                                  std::to_string(static_cast<int>(e.granularity)) + ")");
    }
  } else if (e.granularity != Granularity::kNone) {
    return bad(ErrorCode::kInvalidFormat, "f32 " + fmt + " values with scale granularity " +
                                              std::to_string(static_cast<int>(e.granularity)));
  }

  switch (e.format) {
    case SparseFormat::kCsr:
      l.col_index_bytes = cols <= kU16IndexLimit ? 2 : 4;
      break;
    case SparseFormat::kBsr:
      if (e.block_rows < 1 || e.block_cols < 1 || e.block_rows > kMaxBlockSide || e.block_cols > kMaxBlockSide) {
        return bad(ErrorCode::kInvalidFormat, "BSR block " + std::to_string(e.block_rows) + "x" +
                                                  std::to_string(e.block_cols) + " (sides must be 1.." +
                                                  std::to_string(kMaxBlockSide) + ")");
      }
      l.block_rows = e.block_rows;
      l.block_cols = e.block_cols;
      l.block_row_count = ceil_div(rows, l.block_rows);
      l.block_col_count = ceil_div(cols, l.block_cols);
      l.col_index_bytes = l.block_col_count <= kU16IndexLimit ? 2 : 4;
      break;
    case SparseFormat::kNM: {
      if (e.nm_m < 2 || e.nm_m > kMaxNmM || e.nm_n < 1 || e.nm_n >= e.nm_m) {
        return bad(ErrorCode::kInvalidFormat, "N:M pattern " + std::to_string(e.nm_n) + ":" + std::to_string(e.nm_m) +
                                                  " (need 1 <= N < M <= 16)");
      }
      l.nm_n = e.nm_n;
      l.nm_m = e.nm_m;
      l.nm_groups = ceil_div(cols, l.nm_m);
      l.nm_tail = cols % l.nm_m == 0 ? (cols == 0 ? 0 : l.nm_m) : cols % l.nm_m;
      l.slots = l.nm_groups * l.nm_n;
      l.meta_bits = nm_position_bits(e.nm_m);
      l.meta_row_bytes = round_up(ceil_div(l.slots * l.meta_bits, 8), 8);
      if (e.is_quantized()) {
        Encoding slot_enc = e;
        // Scale groups of g dense columns are g*N/M consecutive slots (g is a multiple of M).
        if (e.granularity == Granularity::kGroup) slot_enc.group_size = static_cast<int32_t>(e.group_size / l.nm_m * l.nm_n);
        l.nm_values = DenseQuantLayout(rows, l.slots, slot_enc);
      }
      break;
    }
    case SparseFormat::kBitmask:
      l.meta_row_bytes = ceil_div(cols, 64) * 8;
      break;
    default:
      break;
  }
  return l;
}

}  // namespace slmc
