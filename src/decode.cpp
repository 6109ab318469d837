// The one decoder (include/slmc/decode.hpp).
#include "slmc/decode.hpp"

#include "slmc/quant/dequantize.hpp"
#include "slmc/sparse/encode.hpp"

namespace slmc {

Status decode(const EncodedMatrixView& view, float* out) {
  return view.encoding.format == SparseFormat::kDense ? dequantize(view, out) : decode_sparse(view, out);
}

}  // namespace slmc
