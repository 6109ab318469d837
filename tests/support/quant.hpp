// Helpers shared by the quantization tests: a QuantConfig in one call, dequantization to a vector,
// byte equality of two encoded matrices.
#pragma once

#include <catch2/catch.hpp>

#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "quant/detail/common.hpp"
#include "slmc/layout.hpp"
#include "slmc/quant/dequantize.hpp"
#include "slmc/codec.hpp"
#include "slmc/quant/quantize.hpp"

namespace slmc::test {

inline QuantConfig make_cfg(ValueType vt, Granularity g, int gs, bool sym, ScaleSearch s = ScaleSearch::kAbsmax,
                            DType sd = DType::kF16, RowLayout rl = RowLayout::kRows) {
  QuantConfig c;
  c.value_type = vt;
  c.granularity = g;
  c.group_size = gs;
  c.symmetric = sym;
  c.search = s;
  c.scale_dtype = sd;
  c.layout = rl;
  return c;
}

/// The config's scheme in the one grammar (codec.hpp), for messages.
inline std::string cfg_name(const QuantConfig& c) { return encoding_to_string(encoding_from_quant_config(c)); }

inline std::vector<float> dequant(const EncodedMatrix& e) {
  std::vector<float> out(static_cast<size_t>(e.rows * e.cols));
  const Status s = dequantize(e.view(), out.data());
  REQUIRE(s.ok());
  return out;
}

/// Sum of the per-row (or per-group) errors the tests compare.
inline double sum(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0); }

/// Every segment of a and b holds the same bytes.
inline bool same_bytes(const EncodedMatrix& a, const EncodedMatrix& b) {
  if (a.segments.size() != b.segments.size()) return false;
  for (size_t i = 0; i < a.segments.size(); ++i) {
    if (a.segments[i].size() != b.segments[i].size()) return false;
    if (a.segments[i].size() && std::memcmp(a.segments[i].data(), b.segments[i].data(), a.segments[i].size()) != 0)
      return false;
  }
  return true;
}

}  // namespace slmc::test
