// Helpers shared by the sparse-format tests.
#pragma once

#include <catch2/catch.hpp>

#include <vector>

#include "slmc/sparse/encode.hpp"

namespace slmc::test {

/// The dense matrix an encoded sparse matrix decodes to. The output starts at -1 everywhere, so a
/// decoder that skips an element (instead of writing its zero) is caught.
inline std::vector<float> decode(const EncodedMatrix& em) {
  std::vector<float> out(static_cast<size_t>(em.rows * em.cols), -1.0f);
  const Status s = decode_sparse(em.view(), out.data());
  INFO(s.to_string());
  REQUIRE(s.ok());
  return out;
}

}  // namespace slmc::test
