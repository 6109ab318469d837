// Scalar linear kernels: plain loops, portable C++, the reference every other ISA is tested
// against (besides the fp64 oracle in the tests). Structure per output (quantized weights):
//   y = sum_g [ d_g * S_g + m_g * X_g ] (+ bias)
// where S_g = sum_{k in g} c_k * x_k (fp32 mode: float x; int8 mode: integer xq, times xscale) and
// X_g = sum_{k in g} x_k is the exact fp32 group sum prepared by the front end.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "linear/linear.hpp"

namespace slmc::detail {
namespace {

void fp32_float_weights(const LinearArgs& a, int64_t m0, int64_t m1) {
  for (int64_t i = 0; i < a.n; ++i) {
    const float* x = a.x + i * a.k;
    for (int64_t r = m0; r < m1; ++r) {
      float acc = 0.0f;
      for (int64_t c = 0; c < a.k; ++c) acc += float_weight(a, r, c) * x[c];
      a.y[i * a.m + r] = acc + (a.bias ? a.bias[r] : 0.0f);
    }
  }
}

// Codes of chunk `chunk` of row r as the integers the weights are multiples of (w = d * c + m):
// int8: signed q; int4: nibble u; nl4: the code book level kNl4Levels[u].
inline void load_chunk_codes(const LinearArgs& a, int64_t r, int64_t chunk, int32_t* codes) {
  const uint8_t* p = static_cast<const uint8_t*>(a.values) + a.layout.chunk_offset(r, chunk);
  if (a.vt == ValueType::kInt8) {
    for (int j = 0; j < 32; ++j) codes[j] = static_cast<int8_t>(p[j]);
  } else {
    for (int j = 0; j < 16; ++j) {
      codes[j] = p[j] & 0x0f;
      codes[j + 16] = p[j] >> 4;
    }
    if (a.vt == ValueType::kNl4) {
      for (int j = 0; j < 32; ++j) codes[j] = kNl4Levels[codes[j]];
    }
  }
}

// fp32 mode: every weight is dequantized (w = d*c + m) and multiplied with x; chunk partial sums
// keep the float error small for long rows.
void quantized_fp32(const LinearArgs& a, int64_t m0, int64_t m1) {
  const DenseQuantLayout& l = a.layout;
  int32_t codes[32];
  for (int64_t i = 0; i < a.n; ++i) {
    const float* x = a.xpad + i * a.kpad;
    for (int64_t r = m0; r < m1; ++r) {
      float acc = 0.0f;
      for (int64_t chunk = 0; chunk < l.chunks; ++chunk) {
        load_chunk_codes(a, r, chunk, codes);
        float part = 0.0f;
        float d = 0.0f, mn = 0.0f;
        for (int64_t j = 0; j < kChunk; ++j) {
          const int64_t c = chunk * kChunk + j;
          if (c >= a.k) break;
          if (c % l.group_size == 0 || j == 0) group_params(a, r, c / l.group_size, &d, &mn);
          part += (d * static_cast<float>(codes[j]) + mn) * x[c];
        }
        acc += part;
      }
      a.y[i * a.m + r] = acc + (a.bias ? a.bias[r] : 0.0f);
    }
  }
}

// int8-row mode: y = sum_g [ d_g * xscale * sum_{k in g} c_k xq_k + m_g * xsum_g ], integer inner sums.
void quantized_int8(const LinearArgs& a, int64_t m0, int64_t m1) {
  const DenseQuantLayout& l = a.layout;
  // Symmetric int8 has no offset (m = 0): the term is skipped, as in the SIMD kernels, so a NaN
  // or infinite activation (quantized to code 0) gives the same output in every ISA.
  const bool has_m = has_offset_term(a);
  int32_t codes[32];
  for (int64_t i = 0; i < a.n; ++i) {
    const float* xs = a.xsum + i * l.groups;
    const int8_t* xq = a.xq + i * a.kpad;
    for (int64_t r = m0; r < m1; ++r) {
      float acc = 0.0f;
      for (int64_t g = 0; g < l.groups; ++g) {
        const int64_t k0 = g * l.group_size;
        const int64_t k1 = k0 + l.group_size < a.k ? k0 + l.group_size : a.k;
        float d, mn;
        group_params(a, r, g, &d, &mn);
        int64_t isum = 0;
        for (int64_t c = k0; c < k1; ++c) {
          if (c == k0 || c % kChunk == 0) load_chunk_codes(a, r, c / kChunk, codes);
          isum += static_cast<int64_t>(codes[c % kChunk]) * xq[c];
        }
        acc += d * (static_cast<float>(isum) * a.xscale[i]) + (has_m ? mn * xs[g] : 0.0f);
      }
      a.y[i * a.m + r] = acc + (a.bias ? a.bias[r] : 0.0f);
    }
  }
}

}  // namespace

// int8 (block) mode: y = sum_j s_j * sum_{k in chunk j} d_g(k) c_k xq_k + sum_g m_g * xsum_g with
// s_j = xbs[j] the scale of 32-value block j of x and integer sums over each piece of a chunk that
// shares one weight scale (the whole chunk when the group size is a multiple of 32). Per-row and
// per-tensor scales factor out: y = d * sum_j s_j * isum_j + m * xsum.
void linear_int8_block_scalar(const LinearArgs& a, int64_t m0, int64_t m1, uint8_t*) {
  const DenseQuantLayout& l = a.layout;
  const bool has_m = has_offset_term(a);
  const bool per_row = l.groups == 1;
  int32_t codes[32];
  for (int64_t i = 0; i < a.n; ++i) {
    const float* xs = a.xsum + i * l.groups;
    const float* xb = a.xbs + i * l.chunks;
    const int8_t* xq = a.xq + i * a.kpad;
    for (int64_t r = m0; r < m1; ++r) {
      float acc = 0.0f;
      float d = 0.0f, mn = 0.0f;
      if (per_row) group_params(a, r, 0, &d, &mn);
      for (int64_t chunk = 0; chunk < l.chunks; ++chunk) {
        load_chunk_codes(a, r, chunk, codes);
        const int64_t end = std::min(a.k, (chunk + 1) * kChunk);
        for (int64_t c0 = chunk * kChunk; c0 < end;) {
          const int64_t g = c0 / l.group_size;
          const int64_t c1 = std::min(end, (g + 1) * l.group_size);
          int32_t isum = 0;
          for (int64_t c = c0; c < c1; ++c) isum += codes[c % kChunk] * xq[c];
          if (per_row) {
            acc += xb[chunk] * static_cast<float>(isum);
          } else {
            group_params(a, r, g, &d, &mn);
            acc += (d * xb[chunk]) * static_cast<float>(isum);
          }
          c0 = c1;
        }
      }
      if (per_row) acc *= d;
      float offset = 0.0f;
      if (has_m) {
        for (int64_t g = 0; g < l.groups; ++g) {
          group_params(a, r, g, &d, &mn);
          offset += mn * xs[g];
        }
      }
      a.y[i * a.m + r] = acc + offset + (a.bias ? a.bias[r] : 0.0f);
    }
  }
}

namespace {

void fp32(const LinearArgs& a, int64_t m0, int64_t m1, uint8_t*) {
  if (a.vt == ValueType::kInt8 || is_4bit(a.vt)) {
    quantized_fp32(a, m0, m1);
  } else {
    fp32_float_weights(a, m0, m1);
  }
}

void int8_row(const LinearArgs& a, int64_t m0, int64_t m1, uint8_t*) { quantized_int8(a, m0, m1); }

size_t scratch_bytes(const LinearArgs&) { return 0; }

}  // namespace

void linear_gather_scalar(const LinearArgs& a, const int64_t* rows, int64_t count, float* out) {
  int32_t codes[32];
  for (int64_t i = 0; i < count; ++i) {
    const int64_t r = rows[i];
    float* o = out + i * a.k;
    if (a.vt != ValueType::kInt8 && !is_4bit(a.vt)) {
      for (int64_t c = 0; c < a.k; ++c) o[c] = float_weight(a, r, c);
      continue;
    }
    for (int64_t chunk = 0; chunk < a.layout.chunks; ++chunk) {
      load_chunk_codes(a, r, chunk, codes);
      for (int64_t c = chunk * kChunk; c < (chunk + 1) * kChunk && c < a.k; ++c) {
        float d, mn;
        group_params(a, r, c / a.layout.group_size, &d, &mn);
        o[c] = d * static_cast<float>(codes[c % kChunk]) + mn;
      }
    }
  }
}

// Round to nearest even for |v| < 2^22 with the default rounding mode: adding and subtracting
// 1.5 * 2^23 leaves the integer part (the SIMD quantizers do the same two additions).
float quantize_x_scalar(const float* x, int64_t k, int64_t kpad, int8_t* xq) {
  constexpr float kMagic = 12582912.0f;
  float amax = 0.0f;
  for (int64_t c = 0; c < k; ++c) amax = std::max(amax, std::fabs(x[c]));  // NaN never wins
  const float scale = amax / 127.0f;
  const float inv = amax > 0.0f && std::isfinite(amax) ? 127.0f / amax : 0.0f;
  for (int64_t c = 0; c < k; ++c) {
    float v = x[c] * inv;
    if (!(v == v)) v = 0.0f;  // NaN input (or inf * 0): any code is fine, UB is not
    v = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
    xq[c] = static_cast<int8_t>((v + kMagic) - kMagic);
  }
  std::memset(xq + k, 0, static_cast<size_t>(kpad - k));
  return scale;
}

void quantize_x_blocks_scalar(const float* x, int64_t k, int64_t kpad, int8_t* xq, float* xbs) {
  for (int64_t j = 0; j < kpad / kChunk; ++j) {
    const int64_t c0 = j * kChunk, len = std::max<int64_t>(0, std::min<int64_t>(kChunk, k - c0));
    xbs[j] = quantize_x_scalar(x + c0, len, kChunk, xq + c0);
  }
}

const LinearKernels& linear_kernels_scalar() {
  static const LinearKernels k{"scalar", fp32, int8_row, linear_int8_block_scalar, scratch_bytes,
                               linear_gather_scalar, quantize_x_scalar, quantize_x_blocks_scalar};
  return k;
}

}  // namespace slmc::detail
