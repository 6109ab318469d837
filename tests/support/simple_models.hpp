// Test-only readers for the two real models in SLMC_MODELS_DIR, used by the quantizer tests until
// the real readers (src/io) are wired in: llama2.c legacy .bin (stories260K) and safetensors with
// F32 tensors (capp-gpt2-236K). They return the linear weights as [out, in] row-major matrices
// (GPT-2 Conv1D [in, out] weights are transposed). Minimal checking: test data is trusted, but a
// truncated file fails the test instead of reading out of bounds.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace slmc::test {

struct NamedMatrix {
  std::string name;
  int64_t rows = 0, cols = 0;  ///< [out, in]
  std::vector<float> data;     ///< rows * cols, row-major
};

inline std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::vector<uint8_t> bytes;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error("cannot open " + path);
  uint8_t buf[65536];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof(buf), f)) > 0) bytes.insert(bytes.end(), buf, buf + got);
  std::fclose(f);
  return bytes;
}

/// stories260K.bin (llama2.c version-0 format, see the models README): the token embedding and
/// every per-layer linear weight (wq, wk, wv, wo, w1, w2, w3), named like "layers.0.wq".
inline std::vector<NamedMatrix> read_llama2c_matrices(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  if (bytes.size() < 28) throw std::runtime_error(path + ": truncated header");
  int32_t h[7];
  std::memcpy(h, bytes.data(), sizeof(h));
  const int64_t dim = h[0], hidden = h[1], layers = h[2], heads = h[3], kv_heads = h[4];
  const int64_t vocab = h[5] < 0 ? -h[5] : h[5];
  const int64_t kv_dim = dim * kv_heads / heads;
  size_t off = 28;
  auto take = [&](int64_t rows, int64_t cols, const std::string& name) {
    NamedMatrix m{name, rows, cols, std::vector<float>(static_cast<size_t>(rows * cols))};
    const size_t n = static_cast<size_t>(rows * cols) * 4;
    if (off + n > bytes.size()) throw std::runtime_error(path + ": truncated at " + name);
    std::memcpy(m.data.data(), bytes.data() + off, n);
    off += n;
    return m;
  };
  std::vector<NamedMatrix> out;
  out.push_back(take(vocab, dim, "token_embedding"));
  take(layers, dim, "rms_att");
  std::vector<NamedMatrix> wq, wk, wv, wo, w1, w2, w3;
  auto per_layer = [&](std::vector<NamedMatrix>& v, int64_t r, int64_t c, const char* n) {
    for (int64_t l = 0; l < layers; ++l) v.push_back(take(r, c, "layers." + std::to_string(l) + "." + n));
  };
  per_layer(wq, dim, dim, "wq");
  per_layer(wk, kv_dim, dim, "wk");
  per_layer(wv, kv_dim, dim, "wv");
  per_layer(wo, dim, dim, "wo");
  take(layers, dim, "rms_ffn");
  per_layer(w1, hidden, dim, "w1");
  per_layer(w2, dim, hidden, "w2");
  per_layer(w3, hidden, dim, "w3");
  for (auto* v : {&wq, &wk, &wv, &wo, &w1, &w2, &w3}) {
    for (auto& m : *v) out.push_back(std::move(m));
  }
  return out;
}

/// Every rank-2 F32 tensor of a safetensors file. With `conv1d_transpose` (GPT-2), tensors whose
/// name ends in ".weight" and that are not embeddings (wte/wpe) are transposed from [in, out].
inline std::vector<NamedMatrix> read_safetensors_matrices(const std::string& path, bool conv1d_transpose) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  if (bytes.size() < 8) throw std::runtime_error(path + ": truncated");
  uint64_t hlen = 0;
  std::memcpy(&hlen, bytes.data(), 8);
  if (hlen > bytes.size() - 8) throw std::runtime_error(path + ": bad header length");
  const auto header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<int64_t>(hlen));
  const size_t base = 8 + hlen;
  std::vector<NamedMatrix> out;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__" || info.at("dtype") != "F32" || info.at("shape").size() != 2) continue;
    const int64_t r = info.at("shape")[0], c = info.at("shape")[1];
    const uint64_t b = info.at("data_offsets")[0], e = info.at("data_offsets")[1];
    if (e - b != static_cast<uint64_t>(r * c) * 4 || base + e > bytes.size()) throw std::runtime_error(path + ": " + name);
    std::vector<float> v(static_cast<size_t>(r * c));
    std::memcpy(v.data(), bytes.data() + base + b, static_cast<size_t>(e - b));
    const bool embedding = name.find("wte") != std::string::npos || name.find("wpe") != std::string::npos;
    if (conv1d_transpose && !embedding) {
      std::vector<float> t(v.size());
      for (int64_t i = 0; i < r; ++i)
        for (int64_t j = 0; j < c; ++j) t[static_cast<size_t>(j * r + i)] = v[static_cast<size_t>(i * c + j)];
      out.push_back(NamedMatrix{name, c, r, std::move(t)});
    } else {
      out.push_back(NamedMatrix{name, r, c, std::move(v)});
    }
  }
  return out;
}

}  // namespace slmc::test
