// Sparse encoders, reference decoder and size accounting (docs/LAYOUT.md, "Sparse formats").
#include "slmc/sparse/encode.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "slmc/half.hpp"
#include "slmc/parallel.hpp"
#include "quant/detail/search.hpp"
#include "slmc/quant/quantize.hpp"
#include "slmc/sparse/validate.hpp"
#include "sparse/sparse_internal.hpp"

namespace slmc {
namespace {

std::string who(std::string_view name) { return "tensor '" + std::string(name) + "': "; }

/// Symmetric scales over the kept values, one per SparseLayout::scale_index; codes are computed
/// exactly as the dense quantizer computes them (quant_detail::code_of: multiply by 1/d, round
/// half to even, clamp), so sparse and dense int8 agree bit for bit on the same group.
struct ValueQuantizer {
  ValueType type = ValueType::kF32;
  quant_detail::QuantSpec spec;
  std::vector<float> scale;                     ///< stored scale (rounded to the scale dtype)
  std::vector<quant_detail::Inverse> inverse;   ///< 1/d per scale

  int32_t code(float w, int64_t scale_idx) const noexcept {
    const size_t i = static_cast<size_t>(scale_idx);
    return static_cast<int32_t>(quant_detail::code_of(w, quant_detail::GroupParams{scale[i], 0.0f}, inverse[i], spec));
  }
};

Status check_finite_kept(const float* w, const uint8_t* keep, int64_t rows, int64_t cols, std::string_view name) {
  // Fast path: all of W finite (the common case; a plain max over the bits vectorizes).
  uint32_t max_bits = 0;
  const int64_t n = rows * cols;
  for (int64_t i = 0; i < n; ++i) max_bits = std::max(max_bits, float_bits(w[i]) & 0x7fffffffu);
  if (max_bits < 0x7f800000u) return Status::ok_status();
  for (int64_t i = 0; i < n; ++i) {
    if ((keep == nullptr || keep[i]) && !std::isfinite(w[i])) {
      return make_error(ErrorCode::kNonFinite, who(name) + "non-finite weight " + std::to_string(w[i]) + " at [" +
                                                   std::to_string(i / cols) + ", " + std::to_string(i % cols) + "]");
    }
  }
  return Status::ok_status();
}

Status check_importance(const float* importance, int64_t cols, std::string_view name) {
  for (int64_t j = 0; j < cols; ++j) {
    if (!std::isfinite(importance[j]) || importance[j] < 0.0f) {
      return make_error(ErrorCode::kInvalidArgument, who(name) + "importance[" + std::to_string(j) + "] = " +
                                                         std::to_string(importance[j]) + " (must be finite and >= 0)");
    }
  }
  return Status::ok_status();
}

Status allocate_segment(EncodedMatrix& em, SegmentRole role, int64_t bytes, std::string_view name) {
  SLMC_ASSIGN_OR_RETURN(em.segment(role), AlignedBuffer::allocate(static_cast<size_t>(bytes),
                                                                  std::string(name) + ": " +
                                                                      std::string(segment_role_name(role))));
  return Status();
}

Result<ValueQuantizer> make_quantizer(const SparseLayout& l, const float* w, const uint8_t* keep,
                                      const float* importance, std::string_view name, AlignedBuffer* scales_out) {
  ValueQuantizer q;
  q.type = l.encoding.value_type;
  if (!l.quantized()) return q;
  const quant_detail::CodeRange range = quant_detail::code_range(q.type, true);
  q.spec.lo = static_cast<float>(range.lo);
  q.spec.hi = static_cast<float>(range.hi);
  q.spec.symmetric = true;
  q.spec.scale_dtype = l.encoding.scale_dtype;
  const ScaleSearch search = l.encoding.search;
  if (search != ScaleSearch::kAbsmax && search != ScaleSearch::kMse && search != ScaleSearch::kWeighted) {
    return make_error(ErrorCode::kInvalidArgument, who(name) + "unknown scale search " + std::to_string(static_cast<int>(search)));
  }
  const bool weighted = search == ScaleSearch::kWeighted;
  if (weighted) {
    if (importance == nullptr) {
      return make_error(ErrorCode::kInvalidArgument, who(name) + "search 'weighted' needs per-input-channel importance (K = " +
                                                         std::to_string(l.cols) + ")");
    }
    SLMC_RETURN_IF_ERROR(check_importance(importance, l.cols, name));
  }
  q.scale.assign(static_cast<size_t>(l.scale_count), 0.0f);
  auto kept = [&](int64_t r, int64_t c) { return keep ? keep[r * l.cols + c] != 0 : w[r * l.cols + c] != 0.0f; };
  if (search == ScaleSearch::kAbsmax) {
    // amax over the kept values of each scale group: whole column ranges, no per-element index math.
    std::vector<float> amax(q.scale.size(), 0.0f);
    for (int64_t r = 0; r < l.rows; ++r) {
      const float* wr = w + r * l.cols;
      const uint8_t* kr = keep ? keep + r * l.cols : nullptr;
      for (int64_t c0 = 0; c0 < l.cols; c0 += l.scale_group) {
        const int64_t c1 = std::min(l.cols, c0 + l.scale_group);
        float a = 0.0f;
        if (kr) {
          for (int64_t c = c0; c < c1; ++c) a = std::max(a, kr[c] ? std::fabs(wr[c]) : 0.0f);
        } else {
          for (int64_t c = c0; c < c1; ++c) a = std::max(a, std::fabs(wr[c]));
        }
        float& slot = amax[static_cast<size_t>(l.scale_index(r, c0))];
        slot = std::max(slot, a);
      }
    }
    for (size_t i = 0; i < amax.size(); ++i) {
      quant_detail::MinMax mm;
      mm.amax = amax[i];
      quant_detail::GroupParams p;
      if (!quant_detail::absmax_params(mm, q.spec, p)) {
        return make_error(ErrorCode::kOutOfRange, who(name) + "scale " + std::to_string(amax[i] / q.spec.hi) +
                                                      " (scale index " + std::to_string(i) + ") overflows f16");
      }
      q.scale[i] = p.d;
    }
  } else {
    // Error-minimizing search (the dense quantizer's, docs/QUANT.md) over each group's kept values.
    std::vector<float> xs, ws;
    auto solve = [&](int64_t idx) -> Status {
      quant_detail::GroupParams p;
      if (!xs.empty()) {
        const quant_detail::OneSpan span{xs.data(), weighted ? ws.data() : nullptr, static_cast<int64_t>(xs.size())};
        if (!quant_detail::choose_params(span, q.spec, search, weighted, p)) {
          return make_error(ErrorCode::kOutOfRange, who(name) + "scale of scale index " + std::to_string(idx) + " overflows f16");
        }
      }
      q.scale[static_cast<size_t>(idx)] = p.d;
      xs.clear();
      ws.clear();
      return Status::ok_status();
    };
    auto gather = [&](int64_t r, int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        if (!kept(r, c)) continue;
        xs.push_back(w[r * l.cols + c]);
        if (weighted) ws.push_back(importance[c]);
      }
    };
    if (l.encoding.granularity == Granularity::kTensor) {
      for (int64_t r = 0; r < l.rows; ++r) gather(r, 0, l.cols);
      if (l.scale_count > 0) SLMC_RETURN_IF_ERROR(solve(0));
    } else {
      for (int64_t r = 0; r < l.rows; ++r) {
        for (int64_t c0 = 0; c0 < l.cols; c0 += l.scale_group) {
          gather(r, c0, std::min(l.cols, c0 + l.scale_group));
          SLMC_RETURN_IF_ERROR(solve(l.scale_index(r, c0)));
        }
      }
    }
  }
  SLMC_ASSIGN_OR_RETURN(*scales_out, AlignedBuffer::allocate(static_cast<size_t>(l.scales_segment_bytes()),
                                                             std::string(name) + ": scales"));
  q.inverse.resize(q.scale.size());
  for (size_t i = 0; i < q.scale.size(); ++i) {
    if (l.encoding.scale_dtype == DType::kF16) {
      const uint16_t h = fp32_to_fp16(q.scale[i]);
      std::memcpy(scales_out->data() + 2 * i, &h, 2);
    } else {
      std::memcpy(scales_out->data() + 4 * i, &q.scale[i], 4);
    }
    q.inverse[i] = quant_detail::inverse_of(q.scale[i]);
  }
  return q;
}

void store_index(uint8_t* base, uint64_t i, int64_t width, uint64_t v) noexcept {
  if (width == 2) {
    const uint16_t x = static_cast<uint16_t>(v);
    std::memcpy(base + 2 * i, &x, 2);
  } else if (width == 4) {
    const uint32_t x = static_cast<uint32_t>(v);
    std::memcpy(base + 4 * i, &x, 4);
  } else {
    std::memcpy(base + 8 * i, &v, 8);
  }
}

/// Writes stored value `i` (f32 or int8) of a CSR/BSR/bitmask values segment.
inline void store_value(uint8_t* values, uint64_t i, const ValueQuantizer& q, float w, int64_t scale_idx) noexcept {
  if (q.type == ValueType::kF32) {
    std::memcpy(values + 4 * i, &w, 4);
  } else {
    values[i] = static_cast<uint8_t>(static_cast<int8_t>(q.code(w, scale_idx)));
  }
}

Result<EncodedMatrix> encode_csr_like(const SparseLayout& l, const float* w, const uint8_t* keep,
                                      const ValueQuantizer& q, EncodedMatrix em, std::string_view name) {
  const int64_t rows = l.rows, cols = l.cols;
  const bool bitmask = l.format() == SparseFormat::kBitmask;
  std::vector<uint64_t> ptr(static_cast<size_t>(rows + 1), 0);
  for (int64_t r = 0; r < rows; ++r) {
    const float* wr = w + r * cols;
    const uint8_t* kr = keep ? keep + r * cols : nullptr;
    uint64_t n = 0;
    for (int64_t c = 0; c < cols; ++c) n += kr ? (kr[c] != 0) : (wr[c] != 0.0f);
    ptr[static_cast<size_t>(r + 1)] = ptr[static_cast<size_t>(r)] + n;
  }
  const uint64_t nnz = ptr[static_cast<size_t>(rows)];
  const int64_t pw = SparseLayout::pointer_width(nnz);
  SLMC_RETURN_IF_ERROR(allocate_segment(em, SegmentRole::kValues, l.values_segment_bytes(nnz), name));
  SLMC_RETURN_IF_ERROR(allocate_segment(em, SegmentRole::kRowPtr, l.row_ptr_segment_bytes(nnz), name));
  if (bitmask) {
    SLMC_RETURN_IF_ERROR(allocate_segment(em, SegmentRole::kMeta, l.meta_segment_bytes(), name));
  } else {
    SLMC_RETURN_IF_ERROR(allocate_segment(em, SegmentRole::kColIdx, l.col_idx_segment_bytes(nnz), name));
  }
  uint8_t* values = em.segment(SegmentRole::kValues).data();
  uint8_t* rp = em.segment(SegmentRole::kRowPtr).data();
  uint8_t* ci = em.segment(SegmentRole::kColIdx).data();
  uint8_t* meta = em.segment(SegmentRole::kMeta).data();
  for (int64_t r = 0; r <= rows; ++r) store_index(rp, static_cast<uint64_t>(r), pw, ptr[static_cast<size_t>(r)]);
  parallel_for(rows, 16, 0, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* wr = w + r * cols;
      const uint8_t* kr = keep ? keep + r * cols : nullptr;
      uint64_t p = ptr[static_cast<size_t>(r)];
      uint8_t* mrow = bitmask ? meta + l.meta_offset(r) : nullptr;
      const int64_t group = l.quantized() ? l.scale_group : cols;
      for (int64_t c0 = 0; c0 < cols; c0 += group) {
        const int64_t c1 = std::min(cols, c0 + group);
        const int64_t sidx = l.quantized() ? l.scale_index(r, c0) : 0;
        for (int64_t c = c0; c < c1; ++c) {
          if (!(kr ? kr[c] != 0 : wr[c] != 0.0f)) continue;
          store_value(values, p, q, wr[c], sidx);
          if (bitmask) {
            mrow[c >> 3] = static_cast<uint8_t>(mrow[c >> 3] | (1u << (c & 7)));
          } else {
            store_index(ci, p, l.col_index_bytes, static_cast<uint64_t>(c));
          }
          ++p;
        }
      }
    }
  });
  return em;
}

Result<EncodedMatrix> encode_bsr(const SparseLayout& l, const float* w, const uint8_t* keep, const ValueQuantizer& q,
                                 EncodedMatrix em, std::string_view name) {
  const int64_t rows = l.rows, cols = l.cols, br = l.block_rows, bc = l.block_cols;
  auto kept = [&](int64_t r, int64_t c) {
    const int64_t i = r * cols + c;
    return keep ? keep[i] != 0 : w[i] != 0.0f;
  };
  // Block columns stored per block row.
  std::vector<std::vector<uint32_t>> stored(static_cast<size_t>(l.block_row_count));
  uint64_t nnzb = 0;
  std::vector<uint8_t> any(static_cast<size_t>(l.block_col_count));
  for (int64_t b = 0; b < l.block_row_count; ++b) {
    std::fill(any.begin(), any.end(), 0);
    const int64_t r1 = std::min(rows, (b + 1) * br);
    for (int64_t r = b * br; r < r1; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        if (kept(r, c)) any[static_cast<size_t>(c / bc)] = 1;
      }
    }
    for (int64_t j = 0; j < l.block_col_count; ++j) {
      if (any[static_cast<size_t>(j)]) stored[static_cast<size_t>(b)].push_back(static_cast<uint32_t>(j));
    }
    nnzb += stored[static_cast<size_t>(b)].size();
  }
  const int64_t pw = SparseLayout::pointer_width(nnzb);
  SLMC_RETURN_IF_ERROR(allocate_segment(em, SegmentRole::kValues, l.values_segment_bytes(nnzb), name));
  SLMC_RETURN_IF_ERROR(allocate_segment(em, SegmentRole::kRowPtr, l.row_ptr_segment_bytes(nnzb), name));
  SLMC_RETURN_IF_ERROR(allocate_segment(em, SegmentRole::kColIdx, l.col_idx_segment_bytes(nnzb), name));
  uint8_t* values = em.segment(SegmentRole::kValues).data();
  uint8_t* rp = em.segment(SegmentRole::kRowPtr).data();
  uint8_t* ci = em.segment(SegmentRole::kColIdx).data();
  uint64_t p = 0;
  for (int64_t b = 0; b < l.block_row_count; ++b) {
    store_index(rp, static_cast<uint64_t>(b), pw, p);
    for (uint32_t j : stored[static_cast<size_t>(b)]) {
      store_index(ci, p, l.col_index_bytes, j);
      for (int64_t i = 0; i < br; ++i) {
        for (int64_t k = 0; k < bc; ++k) {
          const int64_t r = b * br + i, c = int64_t{j} * bc + k;
          if (r >= rows || c >= cols || !kept(r, c)) continue;  // zero-initialized
          store_value(values, p * static_cast<uint64_t>(br * bc) + static_cast<uint64_t>(i * bc + k), q, w[r * cols + c],
                      q.type == ValueType::kF32 ? 0 : l.scale_index(r, c));
        }
      }
      ++p;
    }
  }
  store_index(rp, static_cast<uint64_t>(l.block_row_count), pw, p);
  return em;
}

Status encode_nm_row(const SparseLayout& l, const float* w, const uint8_t* keep, const ValueQuantizer& q,
                     uint8_t* values, uint8_t* meta, int64_t r, std::string_view name);

Result<EncodedMatrix> encode_nm(const SparseLayout& l, const float* w, const uint8_t* keep, const ValueQuantizer& q,
                                EncodedMatrix em, std::string_view name) {
  const int64_t rows = l.rows;
  SLMC_RETURN_IF_ERROR(allocate_segment(em, SegmentRole::kValues, l.values_segment_bytes(0), name));
  SLMC_RETURN_IF_ERROR(allocate_segment(em, SegmentRole::kMeta, l.meta_segment_bytes(), name));
  uint8_t* values = em.segment(SegmentRole::kValues).data();
  uint8_t* meta = em.segment(SegmentRole::kMeta).data();
  // Symmetric int4 zero is code 8 (0x88 per byte, padding slots included).
  if (q.type == ValueType::kInt4) std::memset(values, 0x88, em.segment(SegmentRole::kValues).size());
  // Rows are independent (distinct metadata rows and chunk records); the first error in row
  // order is reported whatever the thread count.
  std::vector<Status> row_error(static_cast<size_t>(rows));
  parallel_for(rows, 16, 0, [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) row_error[static_cast<size_t>(r)] = encode_nm_row(l, w, keep, q, values, meta, r, name);
  });
  for (const Status& st : row_error) SLMC_RETURN_IF_ERROR(st);
  return em;
}

Status encode_nm_row(const SparseLayout& l, const float* w, const uint8_t* keep, const ValueQuantizer& q,
                     uint8_t* values, uint8_t* meta, int64_t r, std::string_view name) {
  const int64_t cols = l.cols, n = l.nm_n, m = l.nm_m;
  {
    uint8_t* mrow = meta + l.meta_offset(r);
    for (int64_t g = 0; g < l.nm_groups; ++g) {
      const int64_t base = g * m;
      const int64_t real = std::min(m, cols - base);
      int pos[kMaxNmM];
      bool is_kept[kMaxNmM] = {};
      int count = 0;
      for (int64_t j = 0; j < real; ++j) {
        const int64_t i = r * cols + base + j;
        if (keep ? keep[i] != 0 : w[i] != 0.0f) {
          if (count == n) {
            return make_error(ErrorCode::kInvalidArgument,
                              who(name) + "row " + std::to_string(r) + ", N:M group " + std::to_string(g) +
                                  " (columns " + std::to_string(base) + ".." + std::to_string(base + real - 1) +
                                  ") keeps more than " + std::to_string(n) + " of " + std::to_string(m));
          }
          is_kept[j] = true;
          ++count;
        }
      }
      // Fill the group to exactly N slots with the lowest unused positions (explicit zeros; in the
      // tail group these may lie beyond K, where activations count as zero).
      for (int64_t j = 0; j < m && count < n; ++j) {
        if (!is_kept[j]) {
          is_kept[j] = true;
          ++count;
        }
      }
      int s = 0;
      for (int64_t j = 0; j < m; ++j) {
        if (is_kept[j]) pos[s++] = static_cast<int>(j);
      }
      for (int64_t i = 0; i < n; ++i) {
        const int64_t slot = g * n + i;
        const int64_t bit = slot * l.meta_bits;
        mrow[bit >> 3] = static_cast<uint8_t>(mrow[bit >> 3] | (pos[i] << (bit & 7)));
        const int64_t c = base + pos[i];
        const bool stored_weight = c < cols && (keep ? keep[r * cols + c] != 0 : w[r * cols + c] != 0.0f);
        const float v = stored_weight ? w[r * cols + c] : 0.0f;
        if (q.type == ValueType::kF32) {
          std::memcpy(values + 4 * (r * l.slots + slot), &v, 4);
        } else {
          const int32_t code = stored_weight ? q.code(v, l.scale_index(r, c)) : 0;
          write_code(l.nm_values, q.type, values, r, slot, q.type == ValueType::kInt4 ? code + 8 : code);
        }
      }
    }
  }
  return Status::ok_status();
}

}  // namespace

namespace detail {

void decode_rows(const EncodedMatrixView& m, const SparseLayout& l, uint64_t stored, int64_t row0, int64_t row1,
                 float* out) {
  const int64_t cols = l.cols;
  std::fill(out, out + (row1 - row0) * cols, 0.0f);
  const uint8_t* values = m.segment(SegmentRole::kValues).as<uint8_t>();
  const void* scales = m.segment(SegmentRole::kScales).data;
  const void* rp = m.segment(SegmentRole::kRowPtr).data;
  const void* ci = m.segment(SegmentRole::kColIdx).data;
  const uint8_t* meta = m.segment(SegmentRole::kMeta).as<uint8_t>();
  const int64_t pw = SparseLayout::pointer_width(stored);
  switch (l.format()) {
    case SparseFormat::kCsr:
      for (int64_t r = row0; r < row1; ++r) {
        float* o = out + (r - row0) * cols;
        const uint64_t p1 = load_index(rp, static_cast<uint64_t>(r + 1), pw);
        for (uint64_t p = load_index(rp, static_cast<uint64_t>(r), pw); p < p1; ++p) {
          const int64_t c = static_cast<int64_t>(load_index(ci, p, l.col_index_bytes));
          o[c] = sparse_value(l, values, scales, p, r, c);
        }
      }
      break;
    case SparseFormat::kBsr: {
      const int64_t br = l.block_rows, bc = l.block_cols;
      for (int64_t b = row0 / br; b * br < row1; ++b) {
        const uint64_t p1 = load_index(rp, static_cast<uint64_t>(b + 1), pw);
        for (uint64_t p = load_index(rp, static_cast<uint64_t>(b), pw); p < p1; ++p) {
          const int64_t j = static_cast<int64_t>(load_index(ci, p, l.col_index_bytes));
          for (int64_t i = 0; i < br; ++i) {
            const int64_t r = b * br + i;
            if (r < row0 || r >= row1) continue;
            for (int64_t k = 0; k < bc; ++k) {
              const int64_t c = j * bc + k;
              if (c >= cols) continue;
              out[(r - row0) * cols + c] =
                  sparse_value(l, values, scales, p * static_cast<uint64_t>(br * bc) + static_cast<uint64_t>(i * bc + k), r, c);
            }
          }
        }
      }
      break;
    }
    case SparseFormat::kNM: {
      const ValueType vt = l.encoding.value_type;
      for (int64_t r = row0; r < row1; ++r) {
        float* o = out + (r - row0) * cols;
        const uint8_t* mrow = meta + l.meta_offset(r);
        for (int64_t s = 0; s < l.slots; ++s) {
          const int64_t c = (s / l.nm_n) * l.nm_m + nm_position(mrow, s, static_cast<int>(l.meta_bits));
          if (c >= cols) continue;
          float v;
          if (vt == ValueType::kF32) {
            v = load_le<float>(values, static_cast<uint64_t>(r * l.slots + s));
          } else {
            int32_t code = read_code(l.nm_values, vt, values, r, s);
            if (vt == ValueType::kInt4) code -= 8;
            v = load_scale(scales, static_cast<uint64_t>(l.scale_index(r, c)), l.encoding.scale_dtype) *
                static_cast<float>(code);
          }
          o[c] = v;
        }
      }
      break;
    }
    case SparseFormat::kBitmask:
      for (int64_t r = row0; r < row1; ++r) {
        float* o = out + (r - row0) * cols;
        uint64_t p = load_index(rp, static_cast<uint64_t>(r), pw);
        const uint8_t* mrow = meta + l.meta_offset(r);
        for (int64_t wi = 0; wi < l.meta_row_bytes / 8; ++wi) {
          uint64_t word = load_le<uint64_t>(mrow, static_cast<uint64_t>(wi));
          while (word) {
            const int64_t c = wi * 64 + __builtin_ctzll(word);
            word &= word - 1;
            o[c] = sparse_value(l, values, scales, p++, r, c);
          }
        }
      }
      break;
    default:
      break;
  }
}

void decode_trusted(const EncodedMatrixView& m, const SparseLayout& l, uint64_t stored, float* out) {
  decode_rows(m, l, stored, 0, l.rows, out);
}

ErrorStats encoded_error_stats(const EncodedMatrixView& m, const SparseLayout& l, uint64_t stored, const float* w) {
  // Decode a few rows at a time (whole BSR block rows) instead of the whole matrix: no extra
  // full-size buffer. Sums run in row order, so the result is the same as one pass.
  ErrorStats s;
  const int64_t rows = l.rows, cols = l.cols, n = rows * cols;
  if (n <= 0) return s;
  const int64_t step = std::max<int64_t>(1, l.format() == SparseFormat::kBsr ? l.block_rows : 1) *
                       std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1));
  // Fixed chunks of `step` rows, partial sums per chunk, reduced in chunk order: the result does
  // not depend on the thread count.
  struct Partial {
    double err2 = 0, ref2 = 0, maxe = 0;
    int64_t zeros = 0;
  };
  const int64_t chunks = ceil_div(rows, step);
  std::vector<Partial> parts(static_cast<size_t>(chunks));
  parallel_for(chunks, 1, 0, [&](int64_t k0, int64_t k1) {
    std::vector<float> buf(static_cast<size_t>(std::min(rows, step) * cols));
    for (int64_t k = k0; k < k1; ++k) {
      const int64_t r0 = k * step, r1 = std::min(rows, r0 + step);
      decode_rows(m, l, stored, r0, r1, buf.data());
      const float* o = w + r0 * cols;
      Partial& p = parts[static_cast<size_t>(k)];
      for (int64_t i = 0, e = (r1 - r0) * cols; i < e; ++i) {
        const double d = static_cast<double>(o[i]) - static_cast<double>(buf[static_cast<size_t>(i)]);
        p.err2 += d * d;
        p.ref2 += static_cast<double>(o[i]) * o[i];
        p.maxe = std::max(p.maxe, std::fabs(d));
        p.zeros += buf[static_cast<size_t>(i)] == 0.0f;
      }
    }
  });
  double err2 = 0, ref2 = 0, maxe = 0;
  int64_t zeros = 0;
  for (const Partial& p : parts) {
    err2 += p.err2;
    ref2 += p.ref2;
    maxe = std::max(maxe, p.maxe);
    zeros += p.zeros;
  }
  s.rmse = std::sqrt(err2 / static_cast<double>(n));
  s.rel_error = ref2 > 0 ? std::sqrt(err2 / ref2) : (err2 > 0 ? std::numeric_limits<double>::infinity() : 0.0);
  s.sqnr_db = err2 > 0 ? (ref2 > 0 ? 10.0 * std::log10(ref2 / err2) : -999.0) : 999.0;
  s.max_abs_error = maxe;
  s.sparsity = static_cast<double>(zeros) / static_cast<double>(n);
  s.bits_per_weight = 8.0 * static_cast<double>(m.total_bytes()) / static_cast<double>(n);
  return s;
}

}  // namespace detail

Result<EncodedMatrix> encode_sparse(const float* w, int64_t rows, int64_t cols, const Encoding& encoding,
                                    const uint8_t* keep, std::string_view tensor_name, const float* importance) {
  SLMC_ASSIGN_OR_RETURN(SparseLayout l, SparseLayout::create(rows, cols, encoding, tensor_name));
  if (rows * cols > 0 && w == nullptr) {
    return make_error(ErrorCode::kInvalidArgument, who(tensor_name) + "null weights");
  }
  SLMC_RETURN_IF_ERROR(check_finite_kept(w, keep, rows, cols, tensor_name));
  EncodedMatrix em;
  em.rows = rows;
  em.cols = cols;
  em.encoding = encoding;
  SLMC_ASSIGN_OR_RETURN(ValueQuantizer q, make_quantizer(l, w, keep, importance, tensor_name, &em.segment(SegmentRole::kScales)));
  Result<EncodedMatrix> r = Status(ErrorCode::kInternal, "unreachable");
  switch (encoding.format) {
    case SparseFormat::kCsr:
    case SparseFormat::kBitmask: r = encode_csr_like(l, w, keep, q, std::move(em), tensor_name); break;
    case SparseFormat::kBsr: r = encode_bsr(l, w, keep, q, std::move(em), tensor_name); break;
    case SparseFormat::kNM: r = encode_nm(l, w, keep, q, std::move(em), tensor_name); break;
    default: break;
  }
  if (!r.ok()) return r;
  EncodedMatrix out = std::move(r).value();
  const EncodedMatrixView v = out.view();
  SLMC_ASSIGN_OR_RETURN(uint64_t stored, l.stored_from_values_bytes(v.segment(SegmentRole::kValues).nbytes, tensor_name));
  out.stats = detail::encoded_error_stats(v, l, stored, w);
  return out;
}

Status decode_sparse(const EncodedMatrixView& m, float* dense_out) {
  SLMC_RETURN_IF_ERROR(validate_sparse_matrix(m, "<decode>"));
  SLMC_ASSIGN_OR_RETURN(SparseLayout l, SparseLayout::create(m.rows, m.cols, m.encoding, "<decode>"));
  SLMC_ASSIGN_OR_RETURN(uint64_t stored, l.stored_from_values_bytes(m.segment(SegmentRole::kValues).nbytes, "<decode>"));
  if (m.rows * m.cols > 0 && dense_out == nullptr) return make_error(ErrorCode::kInvalidArgument, "decode_sparse: null output");
  detail::decode_trusted(m, l, stored, dense_out);
  return Status::ok_status();
}

ErrorStats sparse_error_stats(const float* original, const float* approx, int64_t rows, int64_t cols,
                              uint64_t total_bytes) {
  ErrorStats s;
  const int64_t n = rows * cols;
  if (n <= 0) return s;
  double err2 = 0, ref2 = 0, maxe = 0;
  int64_t zeros = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double e = static_cast<double>(original[i]) - static_cast<double>(approx[i]);
    err2 += e * e;
    ref2 += static_cast<double>(original[i]) * original[i];
    maxe = std::max(maxe, std::fabs(e));
    zeros += approx[i] == 0.0f;
  }
  s.rmse = std::sqrt(err2 / static_cast<double>(n));
  s.rel_error = ref2 > 0 ? std::sqrt(err2 / ref2) : (err2 > 0 ? std::numeric_limits<double>::infinity() : 0.0);
  s.sqnr_db = err2 > 0 ? (ref2 > 0 ? 10.0 * std::log10(ref2 / err2) : -999.0) : 999.0;
  s.max_abs_error = maxe;
  s.sparsity = static_cast<double>(zeros) / static_cast<double>(n);
  s.bits_per_weight = 8.0 * static_cast<double>(total_bytes) / static_cast<double>(n);
  return s;
}

Result<SparseSize> sparse_size(int64_t rows, int64_t cols, const Encoding& encoding, uint64_t stored) {
  SLMC_ASSIGN_OR_RETURN(SparseLayout l, SparseLayout::create(rows, cols, encoding, "<size>"));
  SparseSize s;
  s.values = l.values_segment_bytes(stored);
  s.scales = l.scales_segment_bytes();
  s.row_ptr = l.row_ptr_segment_bytes(stored);
  s.col_idx = l.col_idx_segment_bytes(stored);
  s.meta = l.meta_segment_bytes();
  s.total = s.values + s.scales + s.row_ptr + s.col_idx + s.meta;
  s.bits_per_weight = rows * cols > 0 ? 8.0 * static_cast<double>(s.total) / static_cast<double>(rows * cols) : 0.0;
  return s;
}

Result<SparseSize> predict_sparse_size(int64_t rows, int64_t cols, const Encoding& encoding, double sparsity) {
  if (!(sparsity >= 0.0 && sparsity <= 1.0)) {
    return make_error(ErrorCode::kInvalidArgument, "predict_sparse_size: sparsity " + std::to_string(sparsity) + " not in [0, 1]");
  }
  SLMC_ASSIGN_OR_RETURN(SparseLayout l, SparseLayout::create(rows, cols, encoding, "<size>"));
  long double units = static_cast<long double>(rows) * static_cast<long double>(cols);
  if (encoding.format == SparseFormat::kBsr) {
    units = static_cast<long double>(l.block_row_count) * static_cast<long double>(l.block_col_count);
  }
  const uint64_t stored = static_cast<uint64_t>(std::floor((1.0L - sparsity) * units + 0.5L));
  return sparse_size(rows, cols, encoding, stored);
}

uint64_t dense_size_bytes(int64_t rows, int64_t cols, const Encoding& encoding) {
  if (!encoding.is_quantized()) {
    const int64_t b = encoding.value_type == ValueType::kF32 ? 4 : 2;
    return static_cast<uint64_t>(rows * cols * b);
  }
  Encoding e = encoding;
  e.format = SparseFormat::kDense;
  const DenseQuantLayout d(rows, cols, e);
  const int64_t sb = e.scale_dtype == DType::kF16 ? 2 : 4;
  return static_cast<uint64_t>(d.values_bytes() + d.scale_count() * sb * (e.symmetric ? 1 : 2));
}

}  // namespace slmc
