// Quantization scheme of one tensor: what quantize() (slmc/quant/quantize.hpp) is asked to do.
// Name it with encoding_to_string(encoding_from_quant_config(c)) (slmc/codec.hpp).
// The enums are those of the Encoding (slmc/encoding.hpp), so a QuantConfig maps one to one onto
// the stored Encoding.
#pragma once

#include <string>

#include "slmc/dtype.hpp"
#include "slmc/encoding.hpp"

namespace slmc {

/// How to quantize one weight matrix W[M x K] (groups run along K).
///
/// Supported combinations (anything else is rejected with kUnsupported / kInvalidArgument):
///   int8: granularity tensor, channel, or group with group_size a multiple of 16 (>= 16);
///   int4 and nl4: channel, or group with group_size in {16, 32, 64, 128, 256}; nl4 symmetric only.
/// Both: symmetric or asymmetric, scales fp16 or fp32, any search, any row layout.
struct QuantConfig {
  ValueType value_type = ValueType::kInt4;    ///< kInt8, kInt4 or kNl4
  Granularity granularity = Granularity::kGroup;
  int group_size = 32;                        ///< elements per scale along K (kGroup only)
  bool symmetric = true;                      ///< false: a min per scale ("asymmetric")
  DType scale_dtype = DType::kF16;            ///< kF16 or kF32: how scales and mins are stored
  ScaleSearch search = ScaleSearch::kMse;     ///< how scales are chosen
  RowLayout layout = RowLayout::kRows;        ///< plain rows or R-row interleave (docs/LAYOUT.md)
  /// kWeighted only: K non-negative, finite per-input-channel importances (e.g. the mean squared
  /// activation of each input channel over a calibration run). Not owned; read during quantize()
  /// only. Ignored (may be null) for the other searches.
  const float* importance = nullptr;
  /// Optional: the K x K Gram matrix of the layer's inputs, mean(x x^T) over a calibration run
  /// (row-major and symmetric; only the upper triangle is read; its diagonal is the mean squared
  /// activation). When set, the codes are chosen with error compensation (GPTQ, docs/QUANT.md):
  /// each row keeps whichever of the compensated and the plainly rounded result has the smaller
  /// output error e^T G e (e = w - w_hat). Any search; not owned; read during quantize() only.
  const float* gram = nullptr;
  int num_threads = 0;                        ///< <= 0: slmc::default_num_threads()
};

// The one mapping between QuantConfig and a dense Encoding, both ways (the codec table's quantizer
// entry, the converter and quantize() use these; slmc/codec.hpp prints and parses the Encoding).

/// The QuantConfig that reproduces a quantized Encoding (e.g. one parsed from a recipe scheme):
/// value type, granularity, group size, symmetry, scale dtype, search and row layout. Importance
/// and threads are left at their defaults; quantize() validates the result.
inline QuantConfig quant_config_from_encoding(const Encoding& e) {
  QuantConfig c;
  c.value_type = e.value_type;
  c.granularity = e.granularity;
  c.group_size = e.granularity == Granularity::kGroup ? e.group_size : 0;
  c.symmetric = e.symmetric;
  c.scale_dtype = e.scale_dtype;
  c.search = e.search;
  c.layout = e.layout;
  return c;
}

/// The dense Encoding quantize() stores for `c`: its inverse (group_size 0 unless kGroup).
inline Encoding encoding_from_quant_config(const QuantConfig& c) {
  Encoding e;
  e.value_type = c.value_type;
  e.granularity = c.granularity;
  e.group_size = c.granularity == Granularity::kGroup ? c.group_size : 0;
  e.symmetric = c.symmetric;
  e.scale_dtype = c.scale_dtype;
  e.search = c.search;
  e.format = SparseFormat::kDense;
  e.layout = c.layout;
  return e;
}

}  // namespace slmc
