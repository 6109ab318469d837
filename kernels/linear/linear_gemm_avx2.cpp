// AVX2 GEMM micro-kernels (see linear_avx2.hpp for the split), run by gemm_panels (driver.hpp):
// 16 output rows at a time; the weights of a K block are repacked into an L1/L2-resident panel once
// and reused for every row of X:
//   fp32 mode: panel [k][16 rows] fp32, outer-product micro-kernel 16 x 6 (12 accumulators).
//   int8 mode: panel [k/4][16 rows][4 codes]: one vpmaddubsw multiplies 8 rows x 4 k with a
//              broadcast of 4 activation bytes, so output lanes are rows (no horizontal sums) and
//              int4 products accumulate in int16 over 32 k (8 vpmaddubsw) before one vpmaddwd.
//              int8 codes use |w| and vpsignb; their products are widened every step.
#include "linear/linear_avx2.hpp"

namespace slmc::detail {
namespace {

// ------------------------------------------------------------------------------------------------
// GEMM, fp32 activations: panel [k][16] fp32, micro-kernel 16 x NR
// ------------------------------------------------------------------------------------------------

// Packs rows mb..mb+rows-1 (rows <= 16; missing rows are zero), elements [kb, kb+kc), into
// panel[(k - kb) * 16 + row].
template <ValueType kVt>
void pack_f32(const LinearArgs& a, int64_t mb, int64_t rows, int64_t kb, int64_t kc, float* panel) {
  constexpr bool kQuant = kVt == ValueType::kInt8 || kVt == ValueType::kInt4;
  const int64_t kc8 = kQuant ? (kc + 7) / 8 * 8 : kc / 8 * 8;  // quantized: padded codes readable
  for (int64_t h = 0; h < 2; ++h) {
    RowStream s[8];
    __m256 d[8], m[8];
    SLMC_UNROLL
    for (int j = 0; j < 8; ++j) {
      d[j] = m[j] = _mm256_setzero_ps();
      if (kQuant && h * 8 + j < rows) s[j] = row_stream(a, mb + h * 8 + j);
    }
    int64_t group_end = -1;  // first element of the next scale group (no division per step)
    // 16 elements (a whole cache line of fp32 rows) per row and step: rows 16 KiB apart share L1
    // sets, so a line must be consumed before the next rows evict it.
    for (int64_t k = 0; k < kc8; k += 16) {
      const int subs = k + 8 < kc8 ? 2 : 1;
      for (int sub = 0; sub < subs; ++sub) {
        const int64_t kk = k + 8 * sub;
        if constexpr (kQuant) {
          if (kb + kk >= group_end) {
            const int64_t g = (kb + kk) / a.layout.group_size;
            group_end = (g + 1) * a.layout.group_size;
            SLMC_UNROLL
            for (int j = 0; j < 8; ++j) {
              if (h * 8 + j >= rows) continue;
              float dd, mm;
              scale_min(a, s[j], g, &dd, &mm);
              d[j] = _mm256_set1_ps(dd);
              m[j] = _mm256_set1_ps(mm);
            }
          }
        }
        __m256 v[8];
        SLMC_UNROLL
        for (int j = 0; j < 8; ++j) {
          const int64_t row = h * 8 + j;
          if (row >= rows) {
            v[j] = _mm256_setzero_ps();
          } else if constexpr (kQuant) {
            v[j] = _mm256_fmadd_ps(codes8<kVt == ValueType::kInt4>(s[j], kb + kk), d[j], m[j]);
          } else {
            v[j] = float8<kVt>(a.values, (mb + row) * a.k + kb + kk);
          }
        }
        transpose8(v);
        SLMC_UNROLL
        for (int j = 0; j < 8; ++j) _mm256_store_ps(panel + (kk + j) * kMr + h * 8, v[j]);
      }
    }
    if (!kQuant) {
      for (int64_t k = kc8; k < kc; ++k) {
        SLMC_UNROLL
        for (int j = 0; j < 8; ++j) {
          const int64_t row = h * 8 + j;
          panel[k * kMr + row] = row < rows ? float_weight(a, mb + row, kb + k) : 0.0f;
        }
      }
    }
  }
}

// C[j * ldc + 0:16] (+)= sum_k panel[k][0:16] * xp[k * 6 + j] for j < nr <= 6. The twelve
// accumulators are named variables: as an array GCC keeps them in memory and stores each one in
// every iteration (measured 2x slower). Columns j >= nr repeat column nr-1 and are not stored.
void mk_f32_any(int nr, const float* panel, int64_t kc, const float* xp, float* c, int64_t ldc, bool first) {
  const float *x0 = xp, *x1 = xp + 1, *x2 = xp + 2, *x3 = xp + 3, *x4 = xp + 4, *x5 = xp + 5;
  __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
  c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 a0 = _mm256_load_ps(panel + k * kMr), a1 = _mm256_load_ps(panel + k * kMr + 8);
    __m256 b = _mm256_broadcast_ss(x0 + k * kNrF32);
    c00 = _mm256_fmadd_ps(a0, b, c00);
    c01 = _mm256_fmadd_ps(a1, b, c01);
    b = _mm256_broadcast_ss(x1 + k * kNrF32);
    c10 = _mm256_fmadd_ps(a0, b, c10);
    c11 = _mm256_fmadd_ps(a1, b, c11);
    b = _mm256_broadcast_ss(x2 + k * kNrF32);
    c20 = _mm256_fmadd_ps(a0, b, c20);
    c21 = _mm256_fmadd_ps(a1, b, c21);
    b = _mm256_broadcast_ss(x3 + k * kNrF32);
    c30 = _mm256_fmadd_ps(a0, b, c30);
    c31 = _mm256_fmadd_ps(a1, b, c31);
    b = _mm256_broadcast_ss(x4 + k * kNrF32);
    c40 = _mm256_fmadd_ps(a0, b, c40);
    c41 = _mm256_fmadd_ps(a1, b, c41);
    b = _mm256_broadcast_ss(x5 + k * kNrF32);
    c50 = _mm256_fmadd_ps(a0, b, c50);
    c51 = _mm256_fmadd_ps(a1, b, c51);
  }
  const __m256 acc[6][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  for (int j = 0; j < nr; ++j) {
    float* cj = c + j * ldc;
    if (first) {
      _mm256_storeu_ps(cj, acc[j][0]);
      _mm256_storeu_ps(cj + 8, acc[j][1]);
    } else {
      _mm256_storeu_ps(cj, _mm256_add_ps(_mm256_loadu_ps(cj), acc[j][0]));
      _mm256_storeu_ps(cj + 8, _mm256_add_ps(_mm256_loadu_ps(cj + 8), acc[j][1]));
    }
  }
}

// The fp32-mode panel of gemm_panels (driver.hpp): weights [k][16 rows] fp32, micro-kernel 16 x 6.
// Activations of one K block are packed per tile of 6 rows as [k][6]: one stream for the
// broadcasts (rows of X 16 KiB apart would share L1 sets with each other and the panel).
template <ValueType kVt>
struct F32Panel {
  static constexpr bool kQuant = kVt == ValueType::kInt8 || kVt == ValueType::kInt4;
  static constexpr int64_t kMr = detail::kMr, kNr = kNrF32;
  const LinearArgs& a;
  int64_t kend, kc_max = kKcF32;
  float* panel;
  float* tilebuf;  ///< [kNr][kMr] partial tiles
  float* xpack;

  F32Panel(const LinearArgs& args, uint8_t* scratch)
      : a(args), kend(args.k), panel(reinterpret_cast<float*>(scratch)), tilebuf(panel + kKcF32 * kMr),
        xpack(tilebuf + kNrF32 * kMr) {}

  void pack_x(int64_t kb, int64_t kc) {
    const float* x = kQuant ? a.xpad : a.x;
    const int64_t ldx = kQuant ? a.kpad : a.k;
    const int64_t tiles = (a.n + kNrF32 - 1) / kNrF32;
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t nb = t * kNrF32, nr = std::min(kNrF32, a.n - nb);
      float* dst = xpack + t * kKcF32 * kNrF32;
      for (int64_t j = 0; j < kNrF32; ++j) {
        const float* src = x + (nb + std::min(j, nr - 1)) * ldx + kb;
        for (int64_t k = 0; k < kc; ++k) dst[k * kNrF32 + j] = src[k];
      }
    }
  }
  void pack_w(int64_t kb, int64_t kc, int64_t mb, int64_t rows) { pack_f32<kVt>(a, mb, rows, kb, kc, panel); }
  void tile(int64_t, int64_t kc, int64_t mb, int64_t rows, int64_t nb, int nr, bool first) {
    on_tile<kMr>(a, mb, rows, nb, nr, first, tilebuf, [&](float* c, int64_t ldc, bool f) {
      mk_f32_any(nr, panel, kc, xpack + nb / kNrF32 * kKcF32 * kNrF32, c, ldc, f);
    });
  }
  void finish(int64_t m0, int64_t m1) { add_bias(a, m0, m1, 0, a.n); }
};

template <ValueType kVt>
void gemm_f32(const LinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch) {
  F32Panel<kVt> panel(a, scratch);
  gemm_panels(a, m0, m1, panel);
}

// ------------------------------------------------------------------------------------------------
// GEMM, int8 activations: panel [k/4][16 rows][4 codes], micro-kernel 16 x NR
// ------------------------------------------------------------------------------------------------

struct I8Panel {
  uint8_t* u;      // [kc/4][16][4]: int4 codes u, or |w| for int8
  int8_t* w;       // int8 only: the signed codes (for vpsignb)
  float* d;        // [spans][16] scales of each span of the block
  float* m;        // [groups][16] offsets of every group (whole K)
  float* tile;     // [kNrI8][16] partial-tile buffer
};

// Packs chunks [cb, cb + nch) of rows mb..mb+rows-1 into the panel (missing rows: code 0).
template <bool kInt4>
void pack_i8(const RowStream* s, int64_t rows, int64_t cb, int64_t nch, I8Panel& p) {
  const __m256i nib = _mm256_set1_epi8(15);
  const __m256i shift = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);
  for (int64_t h = 0; h < 2; ++h) {
    for (int64_t c = 0; c < nch; ++c) {
      __m256 u[8], w[8];
      SLMC_UNROLL
      for (int j = 0; j < 8; ++j) {
        const int64_t row = h * 8 + j;
        if (row >= rows) {
          u[j] = w[j] = _mm256_setzero_ps();
          continue;
        }
        const uint8_t* src = s[row].w + (cb + c) * s[row].wstride;
        if (kInt4) {
          const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src)));
          u[j] = _mm256_castsi256_ps(_mm256_and_si256(_mm256_srlv_epi32(b, shift), nib));
        } else {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src));
          u[j] = _mm256_castsi256_ps(_mm256_abs_epi8(v));
          w[j] = _mm256_castsi256_ps(v);
        }
      }
      transpose8(u);
      SLMC_UNROLL
      for (int j = 0; j < 8; ++j) _mm256_store_ps(reinterpret_cast<float*>(p.u + ((c * 8 + j) * kMr + h * 8) * 4), u[j]);
      if (!kInt4) {
        transpose8(w);
        SLMC_UNROLL
        for (int j = 0; j < 8; ++j) _mm256_store_ps(reinterpret_cast<float*>(p.w + ((c * 8 + j) * kMr + h * 8) * 4), w[j]);
      }
    }
  }
}

// C[j][0:16] (+)= sum over spans of d[span][0:16] * isum_span[j][0:16], for j < NR.
// steps: k/4 steps in the block; span_steps: k/4 steps per scale span (a multiple of 8).
// Not inlined: the loop needs more than the 16 ymm registers, and where GCC spills depended on
// the code it was inlined into. Inlined into the panel driver (I8Gemm::tile), it kept the int8
// codes in memory (six vpsignb with memory operands per step) and spilled an accumulator: the
// int8 GEMM at N = 128 ran 4-13 % slower than compiled on its own, as here.
template <bool kInt4, int NR>
__attribute__((noinline)) void mk_i8(const I8Panel& p, int64_t steps, int64_t span_steps, const int8_t* xp, float* c,
                                     int64_t ldc, bool first) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[NR][2];
  SLMC_UNROLL
  for (int j = 0; j < NR; ++j) {
    acc[j][0] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(c + j * ldc);
    acc[j][1] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(c + j * ldc + 8);
  }
  for (int64_t s0 = 0; s0 < steps; s0 += span_steps) {
    const __m256 d0 = _mm256_load_ps(p.d + s0 / span_steps * kMr);
    const __m256 d1 = _mm256_load_ps(p.d + s0 / span_steps * kMr + 8);
    const int64_t s1 = std::min(steps, s0 + span_steps);
    if (kInt4) {
      for (int64_t t = s0; t < s1; t += 8) {
        __m256i i16[NR][2];
        SLMC_UNROLL
        for (int j = 0; j < NR; ++j) i16[j][0] = i16[j][1] = _mm256_setzero_si256();
        for (int64_t q = t; q < t + 8; ++q) {
          const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.u + q * 64));
          const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.u + q * 64 + 32));
          SLMC_UNROLL
          for (int j = 0; j < NR; ++j) {
            const __m256i xb = load_bcast_i32(xp + (q * kNrI8 + j) * 4);
            i16[j][0] = _mm256_add_epi16(i16[j][0], _mm256_maddubs_epi16(w0, xb));
            i16[j][1] = _mm256_add_epi16(i16[j][1], _mm256_maddubs_epi16(w1, xb));
          }
        }
        SLMC_UNROLL
        for (int j = 0; j < NR; ++j) {
          acc[j][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(i16[j][0], ones)), d0, acc[j][0]);
          acc[j][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(i16[j][1], ones)), d1, acc[j][1]);
        }
      }
    } else {
      __m256i i32[NR][2];
      SLMC_UNROLL
      for (int j = 0; j < NR; ++j) i32[j][0] = i32[j][1] = _mm256_setzero_si256();
      for (int64_t q = s0; q < s1; ++q) {
        const __m256i a0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.u + q * 64));
        const __m256i a1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.u + q * 64 + 32));
        const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.w + q * 64));
        const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.w + q * 64 + 32));
        SLMC_UNROLL
        for (int j = 0; j < NR; ++j) {
          const __m256i xb = load_bcast_i32(xp + (q * kNrI8 + j) * 4);
          i32[j][0] = _mm256_add_epi32(i32[j][0], _mm256_madd_epi16(_mm256_maddubs_epi16(a0, _mm256_sign_epi8(xb, w0)), ones));
          i32[j][1] = _mm256_add_epi32(i32[j][1], _mm256_madd_epi16(_mm256_maddubs_epi16(a1, _mm256_sign_epi8(xb, w1)), ones));
        }
      }
      SLMC_UNROLL
      for (int j = 0; j < NR; ++j) {
        acc[j][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i32[j][0]), d0, acc[j][0]);
        acc[j][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i32[j][1]), d1, acc[j][1]);
      }
    }
  }
  SLMC_UNROLL
  for (int j = 0; j < NR; ++j) {
    _mm256_storeu_ps(c + j * ldc, acc[j][0]);
    _mm256_storeu_ps(c + j * ldc + 8, acc[j][1]);
  }
}

template <bool kInt4>
void mk_i8_any(int nr, const I8Panel& p, int64_t steps, int64_t span_steps, const int8_t* x, float* c,
               int64_t ldc, bool first) {
  switch (nr) {
    case 1: mk_i8<kInt4, 1>(p, steps, span_steps, x, c, ldc, first); break;
    case 2: mk_i8<kInt4, 2>(p, steps, span_steps, x, c, ldc, first); break;
    default: mk_i8<kInt4, 3>(p, steps, span_steps, x, c, ldc, first); break;
  }
}

// The int8-mode panel of gemm_panels (driver.hpp). K blocks of whole scale groups (the int8
// activation slice, N x kc bytes, stays in L2); y accumulates sum_spans d * isum, then finish
// applies y = xscale * y + sum_g m_g * xsum_g + bias.
template <bool kInt4>
struct I8Gemm {
  static constexpr int64_t kMr = detail::kMr, kNr = kNrI8;
  const LinearArgs& a;
  const DenseQuantLayout& l;
  int64_t kend, kc_max;
  bool grouped;
  int64_t span_k;
  I8Panel p;
  // Activations of one K block, packed per tile of kNrI8 rows as [k/4][kNrI8][4 bytes]: one
  // sequential stream for the broadcasts (rows of X kpad bytes apart alias in L1 at K = 4096).
  int8_t* xpack;
  RowStream s[kMr];

  I8Gemm(const LinearArgs& args, uint8_t* scratch)
      : a(args), l(args.layout), kend(args.kpad), kc_max(i8_kc(args)), grouped(grouped_scales(args)),
        span_k(grouped ? l.group_size : kc_max) {
    uint8_t* q = scratch;
    p.u = q;
    q += kc_max * kMr;
    p.w = reinterpret_cast<int8_t*>(q);
    q += kInt4 ? 0 : kc_max * kMr;
    p.d = reinterpret_cast<float*>(q);
    q += (kc_max / span_k + 1) * kMr * 4;
    p.m = reinterpret_cast<float*>(q);
    q += l.groups * kMr * 4;
    p.tile = reinterpret_cast<float*>(q);
    q += kNrI8 * kMr * 4;
    xpack = reinterpret_cast<int8_t*>(q);
  }

  void pack_x(int64_t kb, int64_t kc) {  // kc: a multiple of 32
    const int64_t tiles = (a.n + kNrI8 - 1) / kNrI8;
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t nb = t * kNrI8, nr = std::min(kNrI8, a.n - nb);
      int8_t* dst = xpack + t * kc * kNrI8;
      for (int64_t k4 = 0; k4 < kc / 4; ++k4) {
        for (int64_t j = 0; j < kNrI8; ++j) {
          std::memcpy(dst + (k4 * kNrI8 + j) * 4, a.xq + (nb + std::min(j, nr - 1)) * a.kpad + kb + k4 * 4, 4);
        }
      }
    }
  }

  void pack_w(int64_t kb, int64_t kc, int64_t mb, int64_t rows) {
    const int64_t spans = (kc + span_k - 1) / span_k;
    for (int64_t r = 0; r < rows; ++r) s[r] = row_stream(a, mb + r);
    for (int64_t sp = 0; sp < spans; ++sp) {
      const int64_t g = grouped ? (kb / span_k + sp) : 0;
      for (int64_t r = 0; r < kMr; ++r) {
        float d = 0.0f, m = 0.0f;
        if (r < rows) scale_min(a, s[r], g, &d, &m);
        p.d[sp * kMr + r] = d;
      }
    }
    pack_i8<kInt4>(s, rows, kb / kChunk, kc / kChunk, p);
  }

  void tile(int64_t, int64_t kc, int64_t mb, int64_t rows, int64_t nb, int nr, bool first) {
    const int8_t* x = xpack + nb / kNrI8 * kc * kNrI8;
    on_tile<kMr>(a, mb, rows, nb, nr, first, p.tile, [&](float* c, int64_t ldc, bool f) {
      mk_i8_any<kInt4>(nr, p, kc / 4, span_k / 4, x, c, ldc, f);
    });
  }

  // y = xscale * y + sum_g m_g * xsum_g + bias.
  void finish(int64_t m0, int64_t m1) {
    const bool has_m = !a.symmetric || kInt4;
    for (int64_t mb = m0; mb < m1; mb += kMr) {
      const int64_t rows = std::min(kMr, m1 - mb);
      if (has_m) {
        for (int64_t r = 0; r < rows; ++r) s[r] = row_stream(a, mb + r);
        for (int64_t g = 0; g < l.groups; ++g) {
          for (int64_t r = 0; r < kMr; ++r) {
            float d = 0.0f, m = 0.0f;
            if (r < rows) scale_min(a, s[r], g, &d, &m);
            p.m[g * kMr + r] = m;
          }
        }
      }
      for (int64_t n = 0; n < a.n; ++n) {
        alignas(32) float mt[kMr] = {};
        if (has_m) {
          const float* xs = a.xsum + n * l.groups;
          __m256 t0 = _mm256_setzero_ps(), t1 = _mm256_setzero_ps();
          for (int64_t g = 0; g < l.groups; ++g) {
            const __m256 xg = _mm256_set1_ps(xs[g]);
            t0 = _mm256_fmadd_ps(_mm256_load_ps(p.m + g * kMr), xg, t0);
            t1 = _mm256_fmadd_ps(_mm256_load_ps(p.m + g * kMr + 8), xg, t1);
          }
          _mm256_store_ps(mt, t0);
          _mm256_store_ps(mt + 8, t1);
        }
        float* y = a.y + n * a.m + mb;
        const float sx = a.xscale[n];
        for (int64_t r = 0; r < rows; ++r) y[r] = sx * y[r] + mt[r] + (a.bias ? a.bias[mb + r] : 0.0f);
      }
    }
  }
};

template <bool kInt4>
void gemm_i8(const LinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch) {
  I8Gemm<kInt4> panel(a, scratch);
  gemm_panels(a, m0, m1, panel);
}

}  // namespace

void avx2::gemm_fp32(const LinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch) {
  switch (a.vt) {
    case ValueType::kF32: return gemm_f32<ValueType::kF32>(a, m0, m1, scratch);
    case ValueType::kF16: return gemm_f32<ValueType::kF16>(a, m0, m1, scratch);
    case ValueType::kBF16: return gemm_f32<ValueType::kBF16>(a, m0, m1, scratch);
    case ValueType::kInt8: return gemm_f32<ValueType::kInt8>(a, m0, m1, scratch);
    case ValueType::kInt4: return gemm_f32<ValueType::kInt4>(a, m0, m1, scratch);
    case ValueType::kNl4: break;  // never here: nl4 runs the scalar table in fp32 mode (src/kernels/linear.cpp)
  }
}

void avx2::gemm_int8(const LinearArgs& a, int64_t m0, int64_t m1, uint8_t* scratch) {
  return a.vt == ValueType::kInt4 ? gemm_i8<true>(a, m0, m1, scratch) : gemm_i8<false>(a, m0, m1, scratch);
}

}  // namespace slmc::detail
