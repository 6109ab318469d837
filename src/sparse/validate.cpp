// Validation of sparse matrices from untrusted files. Every read is bounds-checked against the
// segment sizes, which are themselves checked against the exact sizes the layout implies before
// any element is touched.
#include "slmc/sparse/validate.hpp"

#include <bitset>
#include <cstdint>
#include <cmath>
#include <string>
#include <vector>

#include "slmc/sparse/layout.hpp"

namespace slmc {
namespace {

class Checker {
 public:
  Checker(const EncodedMatrixView& m, std::string_view name) : m_(m), name_(name) {}

  Status error(ErrorCode code, const std::string& what) const {
    return make_error(code, "tensor '" + name_ + "': " + std::string(sparse_format_name(m_.encoding.format)) + ": " + what);
  }

  Status run() {
    SLMC_ASSIGN_OR_RETURN(l_, SparseLayout::create(m_.rows, m_.cols, m_.encoding, name_));
    for (int r = 0; r < kSegmentRoles; ++r) {
      const SegmentView& s = m_.segments[static_cast<size_t>(r)];
      if (s.nbytes != 0 && s.data == nullptr) {
        return error(ErrorCode::kInvalidArgument,
                     std::string(segment_role_name(static_cast<SegmentRole>(r))) + " segment has null data");
      }
    }
    SLMC_ASSIGN_OR_RETURN(stored_, l_.stored_from_values_bytes(m_.segment(SegmentRole::kValues).nbytes, name_));
    // Bound the stored count before any size product (hostile sizes cannot overflow below).
    uint64_t capacity = static_cast<uint64_t>(m_.rows) * static_cast<uint64_t>(m_.cols);
    if (l_.format() == SparseFormat::kBsr) {
      capacity = static_cast<uint64_t>(l_.block_row_count) * static_cast<uint64_t>(l_.block_col_count);
    }
    if (l_.format() != SparseFormat::kNM && stored_ > capacity) {
      return error(ErrorCode::kOutOfRange, "values segment holds " + std::to_string(stored_) + " stored units, more than the " +
                                               std::to_string(capacity) + " the shape allows");
    }
    for (int r = 0; r < kSegmentRoles; ++r) {
      const SegmentRole role = static_cast<SegmentRole>(r);
      const uint64_t want = l_.segment_bytes(role, stored_);
      const uint64_t have = m_.segment(role).nbytes;
      if (want != have) {
        return error(ErrorCode::kInvalidFormat, std::string(segment_role_name(role)) + " segment has " +
                                                    std::to_string(have) + " bytes, expected " + std::to_string(want));
      }
    }
    SLMC_RETURN_IF_ERROR(check_scales());
    switch (l_.format()) {
      case SparseFormat::kCsr: SLMC_RETURN_IF_ERROR(check_pointers_and_indices(m_.rows, m_.cols)); break;
      case SparseFormat::kBsr:
        SLMC_RETURN_IF_ERROR(check_pointers_and_indices(l_.block_row_count, l_.block_col_count));
        SLMC_RETURN_IF_ERROR(check_bsr_padding());
        break;
      case SparseFormat::kNM: SLMC_RETURN_IF_ERROR(check_nm()); break;
      case SparseFormat::kBitmask: SLMC_RETURN_IF_ERROR(check_bitmask()); break;
      default: break;
    }
    return check_float_values();
  }

 private:
  const void* seg(SegmentRole r) const { return m_.segment(r).data; }

  Status check_scales() const {
    const void* s = seg(SegmentRole::kScales);
    for (int64_t i = 0; i < l_.scale_count; ++i) {
      const float d = load_scale(s, static_cast<uint64_t>(i), l_.encoding.scale_dtype);
      if (!std::isfinite(d)) {
        return error(ErrorCode::kNonFinite, "scale " + std::to_string(i) + " is " + std::to_string(d));
      }
    }
    return Status::ok_status();
  }

  Status check_float_values() const {
    if (l_.encoding.value_type != ValueType::kF32) return Status::ok_status();
    const void* v = seg(SegmentRole::kValues);
    const uint64_t n = (m_.segment(SegmentRole::kValues).nbytes - (l_.format() == SparseFormat::kBitmask ? kBitmaskValuesTail : 0)) / 4;
    // Branch-free scan first (max of |bits| vectorizes), exact position only on failure.
    uint32_t max_bits = 0;
    for (uint64_t i = 0; i < n; ++i) max_bits = std::max(max_bits, load_le<uint32_t>(v, i) & 0x7fffffffu);
    if (max_bits < 0x7f800000u) return Status::ok_status();
    for (uint64_t i = 0; i < n; ++i) {
      const float x = load_le<float>(v, i);
      if (!std::isfinite(x)) return error(ErrorCode::kNonFinite, "value " + std::to_string(i) + " is " + std::to_string(x));
    }
    return Status::ok_status();
  }

  template <typename Index>
  static bool indices_ok(const void* ci, uint64_t b, uint64_t e, uint64_t ncols) noexcept {
    if (b == e) return true;
    // Increasing + last < ncols implies all in range. No loop-carried value: vectorizes.
    if (reinterpret_cast<uintptr_t>(ci) % alignof(Index) != 0) return false;  // exact (memcpy) path
    const Index* idx = static_cast<const Index*>(ci);
    uint32_t bad = 0;
    for (uint64_t p = b + 1; p < e; ++p) bad |= static_cast<uint32_t>(idx[p] <= idx[p - 1]);
    return bad == 0 && static_cast<uint64_t>(idx[e - 1]) < ncols;
  }
  bool rows_ok(const void* ci, uint64_t b, uint64_t e, uint64_t ncols) const noexcept {
    return l_.col_index_bytes == 2 ? indices_ok<uint16_t>(ci, b, e, ncols) : indices_ok<uint32_t>(ci, b, e, ncols);
  }

  /// CSR (rows, cols) or BSR (block rows, block cols): pointers from 0 to stored, monotone;
  /// indices < count and strictly increasing within a row.
  Status check_pointers_and_indices(int64_t nrows, int64_t ncols) const {
    const void* rp = seg(SegmentRole::kRowPtr);
    const void* ci = seg(SegmentRole::kColIdx);
    const int64_t pw = SparseLayout::pointer_width(stored_);
    const char* unit = l_.format() == SparseFormat::kBsr ? "block row " : "row ";
    if (load_index(rp, 0, pw) != 0) {
      return error(ErrorCode::kInvalidFormat, "row_ptr[0] = " + std::to_string(load_index(rp, 0, pw)) + ", expected 0");
    }
    uint64_t prev = 0;
    for (int64_t r = 0; r < nrows; ++r) {
      const uint64_t next = load_index(rp, static_cast<uint64_t>(r + 1), pw);
      if (next < prev) {
        return error(ErrorCode::kInvalidFormat, "row_ptr not monotone at " + std::string(unit) + std::to_string(r) +
                                                    ": " + std::to_string(prev) + " then " + std::to_string(next));
      }
      if (next > stored_) {
        return error(ErrorCode::kOutOfRange, "row_ptr[" + std::to_string(r + 1) + "] = " + std::to_string(next) +
                                                 " exceeds the stored count " + std::to_string(stored_));
      }
      // Fast check of the row (branch-free over typed indices); the exact loop below runs only to
      // name the first bad entry.
      if (rows_ok(ci, prev, next, static_cast<uint64_t>(ncols))) {
        prev = next;
        continue;
      }
      for (uint64_t p = prev; p < next; ++p) {
        const uint64_t c = load_index(ci, p, l_.col_index_bytes);
        if (c >= static_cast<uint64_t>(ncols)) {
          return error(ErrorCode::kOutOfRange, "index " + std::to_string(c) + " at entry " + std::to_string(p) + " of " +
                                                   unit + std::to_string(r) + " is out of range [0, " +
                                                   std::to_string(ncols) + ")");
        }
        if (p > prev && c <= load_index(ci, p - 1, l_.col_index_bytes)) {
          return error(ErrorCode::kInvalidFormat, "indices of " + std::string(unit) + std::to_string(r) +
                                                      " not strictly increasing at entry " + std::to_string(p) + " (" +
                                                      std::to_string(load_index(ci, p - 1, l_.col_index_bytes)) +
                                                      " then " + std::to_string(c) + ")");
        }
      }
      prev = next;
    }
    if (prev != stored_) {
      return error(ErrorCode::kInvalidFormat, "final row_ptr " + std::to_string(prev) + " != stored count " +
                                                  std::to_string(stored_));
    }
    return Status::ok_status();
  }

  bool value_is_zero(const uint8_t* values, uint64_t i) const {
    if (l_.encoding.value_type == ValueType::kF32) return load_le<float>(values, i) == 0.0f;
    return values[i] == 0;
  }

  Status check_bsr_padding() const {
    const int64_t br = l_.block_rows, bc = l_.block_cols;
    const bool row_edge = m_.rows % br != 0, col_edge = m_.cols % bc != 0;
    if (!row_edge && !col_edge) return Status::ok_status();
    const void* rp = seg(SegmentRole::kRowPtr);
    const void* ci = seg(SegmentRole::kColIdx);
    const uint8_t* values = static_cast<const uint8_t*>(seg(SegmentRole::kValues));
    const int64_t pw = SparseLayout::pointer_width(stored_);
    for (int64_t b = 0; b < l_.block_row_count; ++b) {
      const uint64_t p1 = load_index(rp, static_cast<uint64_t>(b + 1), pw);
      for (uint64_t p = load_index(rp, static_cast<uint64_t>(b), pw); p < p1; ++p) {
        const int64_t j = static_cast<int64_t>(load_index(ci, p, l_.col_index_bytes));
        for (int64_t i = 0; i < br; ++i) {
          for (int64_t k = 0; k < bc; ++k) {
            if (b * br + i < m_.rows && j * bc + k < m_.cols) continue;
            if (!value_is_zero(values, p * static_cast<uint64_t>(br * bc) + static_cast<uint64_t>(i * bc + k))) {
              return error(ErrorCode::kInvalidFormat, "edge block " + std::to_string(p) + " has a nonzero padding element (" +
                                                          std::to_string(i) + ", " + std::to_string(k) + ")");
            }
          }
        }
      }
    }
    return Status::ok_status();
  }

  Status check_nm() const {
    const uint8_t* meta = static_cast<const uint8_t*>(seg(SegmentRole::kMeta));
    const uint8_t* values = static_cast<const uint8_t*>(seg(SegmentRole::kValues));
    const ValueType vt = l_.encoding.value_type;
    const int bits = static_cast<int>(l_.meta_bits);
    const int64_t n = l_.nm_n, m = l_.nm_m;
    const int32_t zero_code = vt == ValueType::kInt4 ? 8 : 0;
    auto slot_is_zero = [&](int64_t r, int64_t s) {
      if (vt == ValueType::kF32) return load_le<float>(values, static_cast<uint64_t>(r * l_.slots + s)) == 0.0f;
      return read_code(l_.nm_values, vt, values, r, s) == zero_code;
    };
    // Fast path for full groups whose metadata fills whole bytes (or u16 words): a table says
    // whether every group in a byte/word has positions < M, strictly increasing. Rows where it
    // finds a problem (and groups it does not cover) take the exact per-slot check below, which
    // produces the error message.
    const int64_t gbits = n * bits;
    const int64_t full_groups = l_.nm_tail < m ? l_.nm_groups - 1 : l_.nm_groups;
    int64_t unit_bits = 0;
    if (gbits == 1 || gbits == 2 || gbits == 4 || gbits == 8) unit_bits = 8;
    if (gbits == 16 && m_.rows * full_groups >= 65536) unit_bits = 16;
    std::vector<uint8_t> table;
    if (unit_bits) {
      table.resize(size_t{1} << unit_bits);
      const uint32_t pmask = (1u << bits) - 1;
      for (uint32_t v = 0; v < table.size(); ++v) {
        bool ok = true;
        for (int64_t k = 0; k < unit_bits / gbits && ok; ++k) {
          int prev = -1;
          for (int64_t i = 0; i < n && ok; ++i) {
            const int pos = static_cast<int>((v >> (k * gbits + i * bits)) & pmask);
            ok = pos < m && pos > prev;
            prev = pos;
          }
        }
        table[v] = ok ? 1 : 0;
      }
    }
    for (int64_t r = 0; r < m_.rows; ++r) {
      const uint8_t* mrow = meta + l_.meta_offset(r);
      int64_t g_first = 0;
      if (unit_bits) {
        const int64_t units = full_groups * gbits / unit_bits;
        uint8_t ok = 1;
        if (unit_bits == 8) {
          for (int64_t u = 0; u < units; ++u) ok &= table[mrow[u]];
        } else {
          for (int64_t u = 0; u < units; ++u) ok &= table[load_le<uint16_t>(mrow, static_cast<uint64_t>(u))];
        }
        if (ok) g_first = units * unit_bits / gbits;
      }
      for (int64_t g = g_first; g < l_.nm_groups; ++g) {
        const int64_t real = std::min(m, m_.cols - g * m);
        int prev = -1;
        for (int64_t i = 0; i < n; ++i) {
          const int64_t s = g * n + i;
          const int pos = nm_position(mrow, s, bits);
          if (pos >= m) {
            return error(ErrorCode::kOutOfRange, "row " + std::to_string(r) + " group " + std::to_string(g) + " slot " +
                                                     std::to_string(i) + ": position " + std::to_string(pos) +
                                                     " >= M = " + std::to_string(m));
          }
          if (pos <= prev) {
            return error(ErrorCode::kInvalidFormat, "row " + std::to_string(r) + " group " + std::to_string(g) +
                                                        ": positions not strictly increasing (" + std::to_string(prev) +
                                                        " then " + std::to_string(pos) + ")");
          }
          prev = pos;
          if (pos >= real && !slot_is_zero(r, s)) {
            return error(ErrorCode::kInvalidFormat, "row " + std::to_string(r) + " tail group " + std::to_string(g) +
                                                        ": slot at position " + std::to_string(pos) +
                                                        " beyond K has a nonzero value");
          }
        }
      }
      // Padding bits after the last slot, up to the 8-byte row stride, are zero.
      const int64_t used_bits = l_.slots * bits;
      for (int64_t byte = used_bits >> 3; byte < l_.meta_row_bytes; ++byte) {
        const int keep_bits = byte == (used_bits >> 3) ? static_cast<int>(used_bits & 7) : 0;
        if ((mrow[byte] >> keep_bits) != 0) {
          return error(ErrorCode::kInvalidFormat, "row " + std::to_string(r) + ": nonzero metadata padding bits in byte " +
                                                      std::to_string(byte));
        }
      }
      // Padding slots of the last 32-slot chunk (quantized values only) hold the zero code.
      if (vt != ValueType::kF32) {
        for (int64_t s = l_.slots; s < l_.nm_values.chunks * kChunk; ++s) {
          if (read_code(l_.nm_values, vt, values, r, s) != zero_code) {
            return error(ErrorCode::kInvalidFormat, "row " + std::to_string(r) + ": padding slot " + std::to_string(s) +
                                                        " holds a nonzero code");
          }
        }
      }
    }
    return Status::ok_status();
  }

  Status check_bitmask() const {
    const void* rp = seg(SegmentRole::kRowPtr);
    const uint8_t* meta = static_cast<const uint8_t*>(seg(SegmentRole::kMeta));
    const uint8_t* values = static_cast<const uint8_t*>(seg(SegmentRole::kValues));
    const int64_t pw = SparseLayout::pointer_width(stored_);
    if (load_index(rp, 0, pw) != 0) {
      return error(ErrorCode::kInvalidFormat, "row offset[0] = " + std::to_string(load_index(rp, 0, pw)) + ", expected 0");
    }
    const int64_t words = l_.meta_row_bytes / 8;
    const int64_t tail_bits = m_.cols % 64;
    uint64_t prev = 0;
    for (int64_t r = 0; r < m_.rows; ++r) {
      uint64_t pop = 0;
      const uint8_t* mrow = meta + l_.meta_offset(r);
      for (int64_t wi = 0; wi < words; ++wi) {
        uint64_t word = load_le<uint64_t>(mrow, static_cast<uint64_t>(wi));
        if (wi == words - 1 && tail_bits != 0 && (word >> tail_bits) != 0) {
          return error(ErrorCode::kInvalidFormat, "row " + std::to_string(r) + ": mask bits set beyond K = " +
                                                      std::to_string(m_.cols));
        }
        pop += static_cast<uint64_t>(std::bitset<64>(word).count());
      }
      const uint64_t next = load_index(rp, static_cast<uint64_t>(r + 1), pw);
      if (next < prev || next > stored_) {
        return error(ErrorCode::kOutOfRange, "row offset[" + std::to_string(r + 1) + "] = " + std::to_string(next) +
                                                 " (previous " + std::to_string(prev) + ", stored " +
                                                 std::to_string(stored_) + ")");
      }
      if (next - prev != pop) {
        return error(ErrorCode::kInvalidFormat, "row " + std::to_string(r) + ": mask popcount " + std::to_string(pop) +
                                                    " != row offsets difference " + std::to_string(next - prev));
      }
      prev = next;
    }
    if (prev != stored_) {
      return error(ErrorCode::kInvalidFormat, "final row offset " + std::to_string(prev) + " != stored count " +
                                                  std::to_string(stored_));
    }
    const uint64_t payload = stored_ * static_cast<uint64_t>(l_.value_bytes);
    for (uint64_t i = 0; i < kBitmaskValuesTail; ++i) {
      if (values[payload + i] != 0) {
        return error(ErrorCode::kInvalidFormat, "values tail byte " + std::to_string(i) + " is nonzero");
      }
    }
    return Status::ok_status();
  }

  const EncodedMatrixView& m_;
  std::string name_;
  SparseLayout l_;
  uint64_t stored_ = 0;
};

}  // namespace

Status validate_sparse_matrix(const EncodedMatrixView& m, std::string_view tensor_name) {
  return Checker(m, tensor_name).run();
}

}  // namespace slmc
