// The one decoder (include/slmc/decode.hpp).
#include "slmc/decode.hpp"

#include "slmc/codec.hpp"
#include "slmc/quant/dequantize.hpp"
#include "slmc/sparse/encode.hpp"

namespace slmc {

Status decode(const EncodedMatrixView& view, float* out) {
  if (view.rows == 0 || view.cols == 0) {
    // An empty tensor (FORMAT.md §2.2): dense float without data; nothing to write.
    for (const SegmentView& s : view.segments) {
      if (s.nbytes != 0) return make_error(ErrorCode::kInvalidFormat, "decode: an empty tensor has data");
    }
    if (view.rows < 0 || view.cols < 0 || view.encoding.format != SparseFormat::kDense || view.encoding.is_quantized()) {
      return make_error(ErrorCode::kInvalidFormat, "decode: an empty tensor must be dense float");
    }
    return Status::ok_status();
  }
  // The family's reference decoder (codec table); an encoding of no family goes to the dense or
  // sparse decoder by format, whose validator names what is wrong.
  if (const CodecTraits* c = find_codec(view.encoding)) return c->decode(view, out);
  return view.encoding.format == SparseFormat::kDense ? dequantize(view, out) : decode_sparse(view, out);
}

}  // namespace slmc
