// A small GGUF writer for tests, written from the GGUF specification (ggml/docs/gguf.md)
// independently of the reader in src/io/gguf.cpp. It also carries its own reference quantizers for
// Q8_0, Q4_0 and Q4_1 (block layouts of ggml-common.h) and their expected dequantized values.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "slmc/half.hpp"

namespace slmc::test {

class GgufWriter {
 public:
  // Metadata value types of the spec.
  enum Type : uint32_t { U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STRING = 8,
                         ARRAY = 9, U64 = 10, I64 = 11, F64 = 12 };
  // ggml tensor types used here.
  enum TensorType : uint32_t { T_F32 = 0, T_F16 = 1, T_Q4_0 = 2, T_Q4_1 = 3, T_Q5_0 = 6, T_Q8_0 = 8, T_Q4_K = 12,
                               T_BF16 = 30 };

  explicit GgufWriter(uint32_t version = 3, uint64_t alignment = 32) : version_(version), alignment_(alignment) {}

  // --- metadata: each call appends one KV (key, type, value) ---
  template <typename T>
  void kv(const std::string& key, Type type, T value) {
    str(kvs_, key);
    pod(kvs_, static_cast<uint32_t>(type));
    pod(kvs_, value);
    ++n_kv_;
  }
  void kv_string(const std::string& key, const std::string& value) {
    str(kvs_, key);
    pod(kvs_, static_cast<uint32_t>(STRING));
    str(kvs_, value);
    ++n_kv_;
  }
  template <typename T>
  void kv_array(const std::string& key, Type elem, const std::vector<T>& values) {
    str(kvs_, key);
    pod(kvs_, static_cast<uint32_t>(ARRAY));
    pod(kvs_, static_cast<uint32_t>(elem));
    pod(kvs_, static_cast<uint64_t>(values.size()));
    for (const T& v : values) pod(kvs_, v);
    ++n_kv_;
  }
  void kv_string_array(const std::string& key, const std::vector<std::string>& values) {
    str(kvs_, key);
    pod(kvs_, static_cast<uint32_t>(ARRAY));
    pod(kvs_, static_cast<uint32_t>(STRING));
    pod(kvs_, static_cast<uint64_t>(values.size()));
    for (const auto& v : values) str(kvs_, v);
    ++n_kv_;
  }
  /// An array of arrays of i32.
  void kv_nested(const std::string& key, const std::vector<std::vector<int32_t>>& values) {
    str(kvs_, key);
    pod(kvs_, static_cast<uint32_t>(ARRAY));
    pod(kvs_, static_cast<uint32_t>(ARRAY));
    pod(kvs_, static_cast<uint64_t>(values.size()));
    for (const auto& inner : values) {
      pod(kvs_, static_cast<uint32_t>(I32));
      pod(kvs_, static_cast<uint64_t>(inner.size()));
      for (int32_t v : inner) pod(kvs_, v);
    }
    ++n_kv_;
  }
  /// Raw bytes appended to the KV section (for malformed files); counts as `count` KVs.
  void kv_raw(const std::vector<uint8_t>& bytes, uint64_t count) {
    kvs_.insert(kvs_.end(), bytes.begin(), bytes.end());
    n_kv_ += count;
  }

  // --- tensors: ne is innermost first, as in the file ---
  void tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, std::vector<uint8_t> data) {
    tensors_.push_back(T{name, std::move(ne), type, std::move(data), UINT64_MAX});
  }
  /// Forces the stored offset of the last tensor (for malformed files).
  void set_last_offset(uint64_t offset) { tensors_.back().forced_offset = offset; }
  void set_counts_override(uint64_t n_tensors, uint64_t n_kv) {
    override_counts_ = true;
    n_tensors_override_ = n_tensors;
    n_kv_override_ = n_kv;
  }

  std::vector<uint8_t> bytes() const {
    std::vector<uint8_t> out;
    out.insert(out.end(), {'G', 'G', 'U', 'F'});
    pod(out, version_);
    pod(out, override_counts_ ? n_tensors_override_ : static_cast<uint64_t>(tensors_.size()));
    pod(out, override_counts_ ? n_kv_override_ : n_kv_);
    out.insert(out.end(), kvs_.begin(), kvs_.end());
    uint64_t offset = 0;
    std::vector<uint64_t> offsets;
    for (const T& t : tensors_) {
      str(out, t.name);
      pod(out, static_cast<uint32_t>(t.ne.size()));
      for (uint64_t d : t.ne) pod(out, d);
      pod(out, t.type);
      const uint64_t off = t.forced_offset != UINT64_MAX ? t.forced_offset : offset;
      pod(out, off);
      offsets.push_back(off);
      offset = align(offset + t.data.size());
    }
    out.resize(align(out.size()), 0);
    const size_t data_start = out.size();
    for (size_t i = 0; i < tensors_.size(); ++i) {
      if (offsets[i] > (uint64_t{1} << 30)) continue;  // a forced absurd offset: data not written
      const size_t need = data_start + offsets[i] + tensors_[i].data.size();
      if (out.size() < need) out.resize(need, 0);
      std::copy(tensors_[i].data.begin(), tensors_[i].data.end(), out.begin() + static_cast<long>(data_start + offsets[i]));
    }
    return out;
  }

 private:
  struct T {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    std::vector<uint8_t> data;
    uint64_t forced_offset;
  };
  template <typename V>
  static void pod(std::vector<uint8_t>& out, V v) {
    uint8_t b[sizeof(V)];
    std::memcpy(b, &v, sizeof(V));
    out.insert(out.end(), b, b + sizeof(V));
  }
  static void str(std::vector<uint8_t>& out, const std::string& s) {
    pod(out, static_cast<uint64_t>(s.size()));
    out.insert(out.end(), s.begin(), s.end());
  }
  uint64_t align(uint64_t x) const { return (x + alignment_ - 1) / alignment_ * alignment_; }

  uint32_t version_;
  uint64_t alignment_;
  std::vector<uint8_t> kvs_;
  uint64_t n_kv_ = 0;
  std::vector<T> tensors_;
  bool override_counts_ = false;
  uint64_t n_tensors_override_ = 0, n_kv_override_ = 0;
};

// --- reference block quantizers (ggml's reference rounding) ---

/// Q8_0: per 32 values, fp16 d = amax/127 and int8 q = round(x/d). Returns the blocks and writes
/// the values the blocks decode to into `expected`.
inline std::vector<uint8_t> quantize_q8_0(const std::vector<float>& x, std::vector<float>& expected) {
  std::vector<uint8_t> out;
  expected.clear();
  for (size_t b = 0; b < x.size() / 32; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    const float d = amax / 127.0f;
    const float id = d ? 1.0f / d : 0.0f;
    const uint16_t dh = fp32_to_fp16(d);
    out.push_back(static_cast<uint8_t>(dh & 0xff));
    out.push_back(static_cast<uint8_t>(dh >> 8));
    for (int j = 0; j < 32; ++j) {
      const int8_t q = static_cast<int8_t>(std::lround(x[b * 32 + j] * id));
      out.push_back(static_cast<uint8_t>(q));
      expected.push_back(fp16_to_fp32(dh) * q);
    }
  }
  return out;
}

/// Q4_0: d = (value of largest magnitude) / -8, q = min(15, int(x/d + 8.5)), value (q - 8) * d.
/// Byte j holds element j (low nibble) and element j + 16 (high nibble).
inline std::vector<uint8_t> quantize_q4_0(const std::vector<float>& x, std::vector<float>& expected) {
  std::vector<uint8_t> out;
  expected.assign(x.size(), 0.0f);
  for (size_t b = 0; b < x.size() / 32; ++b) {
    float amax = 0, max = 0;
    for (int j = 0; j < 32; ++j) {
      const float v = x[b * 32 + j];
      if (std::fabs(v) > amax) amax = std::fabs(v), max = v;
    }
    const float d = max / -8.0f;
    const float id = d ? 1.0f / d : 0.0f;
    const uint16_t dh = fp32_to_fp16(d);
    out.push_back(static_cast<uint8_t>(dh & 0xff));
    out.push_back(static_cast<uint8_t>(dh >> 8));
    for (int j = 0; j < 16; ++j) {
      const int lo = std::min(15, static_cast<int>(x[b * 32 + j] * id + 8.5f));
      const int hi = std::min(15, static_cast<int>(x[b * 32 + j + 16] * id + 8.5f));
      out.push_back(static_cast<uint8_t>(lo | (hi << 4)));
      expected[b * 32 + j] = static_cast<float>(lo - 8) * fp16_to_fp32(dh);
      expected[b * 32 + j + 16] = static_cast<float>(hi - 8) * fp16_to_fp32(dh);
    }
  }
  return out;
}

/// Q4_1: d = (max - min) / 15, m = min, q = min(15, int((x - min)/d + 0.5)), value q * d + m.
inline std::vector<uint8_t> quantize_q4_1(const std::vector<float>& x, std::vector<float>& expected) {
  std::vector<uint8_t> out;
  expected.assign(x.size(), 0.0f);
  for (size_t b = 0; b < x.size() / 32; ++b) {
    float lo = x[b * 32], hi = x[b * 32];
    for (int j = 0; j < 32; ++j) lo = std::min(lo, x[b * 32 + j]), hi = std::max(hi, x[b * 32 + j]);
    const float d = (hi - lo) / 15.0f;
    const float id = d ? 1.0f / d : 0.0f;
    const uint16_t dh = fp32_to_fp16(d), mh = fp32_to_fp16(lo);
    for (uint16_t h : {dh, mh}) {
      out.push_back(static_cast<uint8_t>(h & 0xff));
      out.push_back(static_cast<uint8_t>(h >> 8));
    }
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::min(15, static_cast<int>((x[b * 32 + j] - lo) * id + 0.5f));
      const int q1 = std::min(15, static_cast<int>((x[b * 32 + j + 16] - lo) * id + 0.5f));
      out.push_back(static_cast<uint8_t>(q0 | (q1 << 4)));
      expected[b * 32 + j] = static_cast<float>(q0) * fp16_to_fp32(dh) + fp16_to_fp32(mh);
      expected[b * 32 + j + 16] = static_cast<float>(q1) * fp16_to_fp32(dh) + fp16_to_fp32(mh);
    }
  }
  return out;
}

inline std::vector<uint8_t> float_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

}  // namespace slmc::test
