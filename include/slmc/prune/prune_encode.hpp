// Prune, then quantize the survivors and encode, in one call.
#pragma once

#include <cstdint>
#include <string_view>

#include "slmc/encoding.hpp"
#include "slmc/prune/prune.hpp"
#include "slmc/status.hpp"

namespace slmc {

/// Prunes W[rows x cols] with `spec`, then encodes the kept elements in the sparse format of
/// `encoding` (int8/int4 scales computed over the kept values only; see slmc/sparse/encode.hpp).
/// The result's `stats` compare the decoded matrix with the original W (pruning and quantization
/// error together); `stats.sparsity` counts the zeros of the decoded matrix.
/// An N:M encoding needs PruneMethod::kNM with the same N and M (or kNone on a matrix that
/// already fits the pattern). `achieved` (optional) receives the mask. `importance` (length
/// cols) weights the scale search when encoding.search is kWeighted (see encode_sparse).
Result<EncodedMatrix> prune_and_encode(const float* w, int64_t rows, int64_t cols, const PruneSpec& spec,
                                       const Encoding& encoding, std::string_view tensor_name,
                                       PruneMask* achieved = nullptr, const float* importance = nullptr);

}  // namespace slmc
