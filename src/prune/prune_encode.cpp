#include "slmc/prune/prune_encode.hpp"

#include <string>

#include "slmc/sparse/encode.hpp"

namespace slmc {

Result<EncodedMatrix> prune_and_encode(const float* w, int64_t rows, int64_t cols, const PruneSpec& spec,
                                       const Encoding& encoding, std::string_view tensor_name, PruneMask* achieved,
                                       const float* importance) {
  if (encoding.format == SparseFormat::kNM && spec.method != PruneMethod::kNone &&
      (spec.method != PruneMethod::kNM || spec.n != encoding.nm_n || spec.m != encoding.nm_m)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "tensor '" + std::string(tensor_name) + "': N:M encoding " + std::to_string(encoding.nm_n) + ":" +
                          std::to_string(encoding.nm_m) + " needs N:M pruning with the same pattern");
  }
  SLMC_ASSIGN_OR_RETURN(PruneMask mask, prune(w, rows, cols, spec, tensor_name));
  SLMC_ASSIGN_OR_RETURN(EncodedMatrix em, encode_sparse(w, rows, cols, encoding, mask.keep.data(), tensor_name, importance));
  if (achieved) *achieved = std::move(mask);
  return em;
}

}  // namespace slmc
