// Byte layout of dense matrices (docs/LAYOUT.md is the specification; this is its one
// implementation). Quantizers write, kernels read and the loader validates with these functions,
// so the three can never disagree.
//
// Dense float (f32/f16/bf16): plain row-major [M][K], no padding, no interleave.
// Dense int8/int4: K is padded to a multiple of 32 (a "chunk"); each row is a sequence of chunk
// records (32 bytes for int8, 16 bytes for int4). With row layout R (4 or 8) the first
// floor(M/R)*R rows are interleaved chunk by chunk in groups of R rows; the remaining rows follow
// in plain order. Scales (and mins) follow the same row interleave, per scale group.
#pragma once

#include <cstdint>

#include "slmc/encoding.hpp"

namespace slmc {

inline constexpr int64_t kChunk = 32;  ///< elements per chunk record along K (int8 and int4)

constexpr int64_t ceil_div(int64_t a, int64_t b) noexcept { return (a + b - 1) / b; }
constexpr int64_t round_up(int64_t a, int64_t b) noexcept { return ceil_div(a, b) * b; }

/// Bytes of one chunk record of 32 codes: 32 (int8) or 16 (int4, nl4).
constexpr int64_t chunk_bytes(ValueType t) noexcept { return is_4bit(t) ? 16 : 32; }

/// The nl4 code book (docs/LAYOUT.md, "nl4"): code u stands for d * kNl4Levels[u]. Part of the
/// file format: a different table is a different value type. Levels are int8 so that the integer
/// kernels multiply them with int8 activations exactly; derived by Lloyd iterations (alternating
/// nearest-level codes with per-group least-squares scales, groups of 32) on the linear weights of
/// all-MiniLM-L6-v2, weights that were never quantized (docs/QUANT.md, "nl4").
inline constexpr int8_t kNl4Levels[16] = {-127, -98, -77, -61, -47, -34, -22, -11, 0, 11, 23, 35, 48, 63, 81, 105};

/// Offsets inside a dense quantized (int8/int4) matrix. Construct only from an Encoding that passed
/// validation (group_size > 0 for kGroup; rows, cols >= 0).
struct DenseQuantLayout {
  int64_t rows = 0;            ///< M
  int64_t cols = 0;            ///< K
  int64_t chunks = 0;          ///< chunk records per row: ceil(K / 32)
  int64_t chunk_bytes = 0;     ///< bytes per chunk record
  int64_t group_size = 0;      ///< elements per scale group (K for channel, M*K for tensor)
  int64_t groups = 0;          ///< scale groups per row (1 for channel and tensor)
  int64_t interleave = 1;      ///< R
  int64_t interleaved_rows = 0;  ///< rows stored interleaved: floor(M / R) * R
  bool per_tensor = false;

  DenseQuantLayout() = default;
  DenseQuantLayout(int64_t m, int64_t k, const Encoding& e) noexcept
      : rows(m), cols(k), chunks(ceil_div(k, kChunk)), chunk_bytes(slmc::chunk_bytes(e.value_type)),
        interleave(static_cast<int64_t>(e.layout)) {
    per_tensor = e.granularity == Granularity::kTensor;
    if (e.granularity == Granularity::kGroup) {
      group_size = e.group_size;
      groups = ceil_div(k, group_size);
    } else {
      group_size = k;
      groups = 1;
    }
    if (interleave < 1) interleave = 1;
    interleaved_rows = m / interleave * interleave;
  }

  /// Bytes of one row's codes (padded to whole chunks).
  int64_t row_bytes() const noexcept { return chunks * chunk_bytes; }
  /// Size of the values segment.
  int64_t values_bytes() const noexcept { return rows * row_bytes(); }
  /// Number of scales (and of mins, when asymmetric).
  int64_t scale_count() const noexcept { return per_tensor ? (rows * cols > 0 ? 1 : 0) : rows * groups; }

  /// Byte offset of chunk record `chunk` of row `row` in the values segment.
  int64_t chunk_offset(int64_t row, int64_t chunk) const noexcept {
    if (row < interleaved_rows) {
      const int64_t block = row / interleave, r = row % interleave;
      return ((block * chunks + chunk) * interleave + r) * chunk_bytes;
    }
    return (interleaved_rows * chunks + (row - interleaved_rows) * chunks + chunk) * chunk_bytes;
  }

  /// Index of the scale (and min) of group `group` of row `row`.
  int64_t scale_index(int64_t row, int64_t group) const noexcept {
    if (per_tensor) return 0;
    if (row < interleaved_rows) {
      const int64_t block = row / interleave, r = row % interleave;
      return (block * groups + group) * interleave + r;
    }
    return interleaved_rows * groups + (row - interleaved_rows) * groups + group;
  }
};

/// Reads code `k` of row `row` (int8: the signed code; int4 and nl4: the unsigned nibble 0..15).
inline int32_t read_code(const DenseQuantLayout& l, ValueType t, const uint8_t* values, int64_t row,
                         int64_t k) noexcept {
  const uint8_t* chunk = values + l.chunk_offset(row, k / kChunk);
  const int64_t j = k % kChunk;
  if (t == ValueType::kInt8) return static_cast<int8_t>(chunk[j]);
  // int4: byte j (0..15) holds element j in its low nibble and element j + 16 in its high nibble.
  return j < 16 ? (chunk[j] & 0x0f) : (chunk[j - 16] >> 4);
}

/// Writes code `k` of row `row` (int8: -128..127; int4 and nl4: 0..15).
inline void write_code(const DenseQuantLayout& l, ValueType t, uint8_t* values, int64_t row, int64_t k,
                       int32_t code) noexcept {
  uint8_t* chunk = values + l.chunk_offset(row, k / kChunk);
  const int64_t j = k % kChunk;
  if (t == ValueType::kInt8) {
    chunk[j] = static_cast<uint8_t>(static_cast<int8_t>(code));
  } else if (j < 16) {
    chunk[j] = static_cast<uint8_t>((chunk[j] & 0xf0) | (code & 0x0f));
  } else {
    chunk[j - 16] = static_cast<uint8_t>((chunk[j - 16] & 0x0f) | ((code & 0x0f) << 4));
  }
}

}  // namespace slmc
