// A tiny synthetic Llama (2 layers, dim 64, vocab 256) converted with a preset, for runtime tests
// that need a real .slm but not a real model's numbers (measure_e2e, stored activation rules).
#pragma once

#include <catch2/catch.hpp>

#include <string>

#include "slmc/convert/converter.hpp"
#include "slmc/convert/synthetic.hpp"
#include "slmc/io/model_source.hpp"

namespace slmc::test {

/// Writes the synthetic source model into `src` (a directory path) once.
inline void write_tiny_llama(const std::string& src) {
  SyntheticLlamaConfig sc;
  sc.dim = 64;
  sc.hidden_dim = 128;
  sc.layers = 2;
  sc.heads = 4;
  sc.kv_heads = 2;
  sc.vocab = 256;
  sc.context = 64;
  REQUIRE(write_synthetic_llama(src, sc).ok());
}

/// Converts the source at `src` to `dst` with the preset `recipe`, adding `metadata` to the file.
inline void convert_tiny_llama(const std::string& src, const std::string& dst, const std::string& recipe,
                               const Metadata& metadata = {}) {
  auto source = open_model(src);
  REQUIRE(source.ok());
  ConvertOptions co;
  auto r = load_recipe(recipe);
  REQUIRE(r.ok());
  co.recipe = *r;
  co.metadata = metadata;
  const auto report = convert_model(**source, "src", dst, co);
  INFO(report.status().to_string());
  REQUIRE(report.ok());
}

}  // namespace slmc::test
