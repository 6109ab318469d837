// Internal: linear() on sparse weights (CSR, BSR, N:M, bitmask; docs/LAYOUT.md "Sparse formats"),
// fp32 activations. A portable row-wise kernel: each output row walks its stored entries once and
// applies each weight to all N rows of X, in a fixed order (thread-count independent).
#pragma once

#include <cstdint>

#include "slmc/encoding.hpp"
#include "slmc/sparse/layout.hpp"

namespace slmc::detail {

struct SparseLinearArgs {
  const EncodedMatrixView* w = nullptr;  ///< validated by validate_sparse_matrix
  SparseLayout layout;
  int64_t pointer_width = 4;             ///< bytes per row_ptr entry
  int64_t n = 0;
  const float* x = nullptr;              ///< [n][K]
  const float* bias = nullptr;           ///< [M] or null
  float* y = nullptr;                    ///< [n][M]
};

/// y[:, m0:m1) for all n. `acc`: n floats of scratch.
void sparse_linear_rows(const SparseLinearArgs& a, int64_t m0, int64_t m1, float* acc);

/// out[0:K) = dense row r (zeros where nothing is stored).
void sparse_gather_row(const SparseLinearArgs& a, int64_t r, float* out);

}  // namespace slmc::detail
