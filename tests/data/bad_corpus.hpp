// Deterministic generator of the known-bad file corpus in tests/data/bad/ (one file per defect,
// each with the error code readers must return). Regenerate the committed files with
//   SLMC_REGENERATE_BAD_CORPUS=1 build/tests/slmc_test_format "bad corpus regenerate"
// (tests/data/bad/EXPECTED.tsv lists name, expected code and what is wrong).
#pragma once

#include <cstring>
#include <string>
#include <vector>

#include "format/format_test_util.hpp"
#include "io/gguf_test_writer.hpp"
#include "io/io_test_util.hpp"
#include "slmc/format/model_file.hpp"
#include "slmc/format/slm_generated.h"
#include "slmc/io/hash.hpp"

namespace slmc::test {

struct BadFile {
  std::string name;  ///< file name; ".slm" files go to the .slm loader, others to open_model
  std::vector<uint8_t> bytes;
  ErrorCode expected;
  std::string what;
};

namespace bad_detail {

inline std::vector<uint8_t> str_bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

inline std::vector<uint8_t> good_safetensors() {
  SafetensorsBuilder b;
  std::vector<float> w(16);
  for (size_t i = 0; i < w.size(); ++i) w[i] = 0.25f * static_cast<float>(i);
  b.add("a.weight", "F32", {4, 4}, w.data(), 64);
  b.add("a.bias", "F32", {4}, w.data(), 16);
  b.metadata("format", "pt");
  return b.bytes();
}

inline std::vector<uint8_t> st(const std::string& header, size_t buffer_bytes = 64) {
  return safetensors_bytes(header, std::vector<uint8_t>(buffer_bytes, 0x3c));
}

inline GgufWriter gguf_base() {
  GgufWriter w(3, 32);
  w.kv_string("general.architecture", "llama");
  w.kv("llama.block_count", GgufWriter::U32, uint32_t{1});
  return w;
}

inline std::vector<uint8_t> gguf_f32(const std::string& name = "t") {
  GgufWriter w = gguf_base();
  std::vector<float> x(64, 1.0f);
  w.tensor(name, {64}, GgufWriter::T_F32, float_bytes(x));
  return w.bytes();
}

/// A small valid .slm: a float norm, an int4 g32 matrix and an int8 asymmetric matrix. Written
/// through a temporary directory (the writer's only output is a file).
inline std::vector<uint8_t> good_slm() {
  TempDir dir;
  ModelHeader h;
  h.producer_version = "corpus";  // fixed: the corpus does not change with the library version
  h.architecture["general.architecture"] = MetaValue::string("llama");
  auto w = ModelFileWriter::create(dir.file("good.slm"), h);
  if (!w.ok()) return {};
  std::vector<float> x(64 * 40);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i));
  // Values from sin(), not <random>: the bytes must not depend on the standard library.
  EncodedMatrix norm;
  norm.rows = 1;
  norm.cols = 64;
  norm.segment(SegmentRole::kValues) = AlignedBuffer(x.data(), 64 * 4);
  norm.stats.bits_per_weight = 32;
  EncodedMatrix q4 = quantize_for_test(x.data(), 40, 64, quant_encoding(ValueType::kInt4, Granularity::kGroup, 32, true,
                                                                         DType::kF16, RowLayout::kInterleave4));
  EncodedMatrix q8 = quantize_for_test(x.data(), 64, 40, quant_encoding(ValueType::kInt8, Granularity::kChannel, 0, false,
                                                                         DType::kF32, RowLayout::kRows));
  auto add = [&](const char* name, Shape s, const EncodedMatrix& m) {
    TensorInfo info;
    info.name = name;
    info.shape = std::move(s);
    info.stats = m.stats;
    return (*w)->add(info, m.view());
  };
  if (!add("norm", Shape{64}, norm).ok() || !add("q4", Shape{40, 64}, q4).ok() || !add("q8", Shape{64, 40}, q8).ok() ||
      !(*w)->finish().ok()) {
    return {};
  }
  return read_bytes(dir.file("good.slm"));
}

inline void fix_preamble_checksum(std::vector<uint8_t>& b) {
  const uint64_t h = xxh64(b.data(), 56);
  std::memcpy(b.data() + 56, &h, 8);
}

/// Overwrites byte i of a tensor's name in place. Through the address as an integer: a store
/// derived from c_str() makes GCC's -Wstringop-overflow see the 1-byte Table base object instead.
inline void set_name_byte(fb::Tensor* t, size_t i, char c) {
  const uintptr_t at = reinterpret_cast<uintptr_t>(t->name()->c_str()) + i;
  *reinterpret_cast<char*>(at) = c;
}

template <typename F>
std::vector<uint8_t> tamper_slm(const std::vector<uint8_t>& good, F&& mutate) {
  std::vector<uint8_t> b = good;
  mutate(fb::GetMutableModel(b.data() + kPreambleBytes));
  return b;
}

}  // namespace bad_detail

inline std::vector<BadFile> make_bad_corpus() {
  using namespace bad_detail;
  using E = ErrorCode;
  std::vector<BadFile> c;
  auto add = [&](std::string name, std::vector<uint8_t> bytes, E e, std::string what) {
    c.push_back(BadFile{std::move(name), std::move(bytes), e, std::move(what)});
  };

  // --- safetensors ---
  {
    std::vector<uint8_t> t = good_safetensors();
    t.resize(t.size() - 10);
    add("st_truncated.safetensors", t, E::kOutOfRange, "data buffer cut short: offsets beyond the end");
    std::vector<uint8_t> h = good_safetensors();
    const uint64_t n = 1000000;
    std::memcpy(h.data(), &n, 8);
    add("st_header_beyond_file.safetensors", h, E::kOutOfRange, "header length larger than the file");
  }
  add("st_overlap.safetensors",
      st(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})"),
      E::kInvalidFormat, "two tensors share bytes");
  add("st_offset_out_of_range.safetensors", st(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[56,72]}})"),
      E::kOutOfRange, "data_offsets past the buffer");
  add("st_offsets_reversed.safetensors", st(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[16,0]}})"),
      E::kOutOfRange, "begin > end");
  add("st_shape_overflow.safetensors",
      st(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,16]}})"), E::kOutOfRange,
      "element count overflows");
  add("st_negative_dim.safetensors", st(R"({"a":{"dtype":"F32","shape":[-1,4],"data_offsets":[0,16]}})"),
      E::kInvalidFormat, "negative dimension");
  add("st_dtype_size_mismatch.safetensors", st(R"({"a":{"dtype":"F16","shape":[4],"data_offsets":[0,16]}})"),
      E::kInvalidFormat, "F16 x 4 is 8 bytes, offsets give 16");
  add("st_unknown_dtype.safetensors", st(R"({"a":{"dtype":"F8_E5M2","shape":[4],"data_offsets":[0,4]}})"),
      E::kUnsupported, "dtype not supported");
  add("st_invalid_json.safetensors", st(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]})"),
      E::kInvalidFormat, "unterminated JSON object");
  add("st_bad_utf8_name.safetensors", st("{\"a\xc0\xaf\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}"),
      E::kInvalidFormat, "overlong UTF-8 in a tensor name");
  add("st_duplicate_name.safetensors",
      st(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"a":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}})"),
      E::kInvalidFormat, "the same tensor name twice");
  add("st_not_object.safetensors", st(R"(["a","b"])"), E::kInvalidFormat, "header is an array");
  add("st_entry_fields_missing.safetensors", st(R"({"a":{"dtype":"F32","shape":[4]}})"), E::kInvalidFormat,
      "no data_offsets");
  add("st_metadata_not_object.safetensors", st(R"({"__metadata__":[1]})"), E::kInvalidFormat,
      "__metadata__ is not an object");

  // --- sharded index ---
  add("index_path_traversal.json", str_bytes(R"({"weight_map":{"a":"../../etc/passwd"}})"), E::kInvalidFormat,
      "shard file name with a directory");
  add("index_missing_shard.json", str_bytes(R"({"weight_map":{"a":"model-00001-of-00009.safetensors"}})"), E::kIoError,
      "the named shard does not exist");
  add("index_no_weight_map.json", str_bytes(R"({"metadata":{}})"), E::kInvalidFormat, "no weight_map");

  // --- GGUF ---
  {
    std::vector<uint8_t> t = gguf_f32();
    t.resize(60);
    add("gguf_truncated.gguf", t, E::kInvalidFormat, "cut inside the metadata");
  }
  {
    GgufWriter w = gguf_base();
    w.set_counts_override(uint64_t{1} << 62, 2);
    add("gguf_absurd_tensor_count.gguf", w.bytes(), E::kOutOfRange, "tensor count 2^62");
    GgufWriter w2 = gguf_base();
    w2.set_counts_override(0, uint64_t{1} << 61);
    add("gguf_absurd_kv_count.gguf", w2.bytes(), E::kOutOfRange, "metadata count 2^61");
  }
  {
    GgufWriter w = gguf_base();
    std::vector<uint8_t> raw = {4, 0, 0, 0, 0, 0, 0, 0, 'h', 'u', 'g', 'e', 9, 0, 0, 0, 10, 0, 0, 0,
                                0, 0, 0, 0, 0, 0, 0, 0x20};
    w.kv_raw(raw, 1);
    add("gguf_absurd_array_length.gguf", w.bytes(), E::kOutOfRange, "array of 2^61 u64");
    GgufWriter w2 = gguf_base();
    std::vector<uint8_t> raw2 = {1, 'k', 0, 0, 0, 0, 0, 0};  // key length 0x6b01: past the end
    w2.kv_raw(raw2, 1);
    add("gguf_string_beyond_file.gguf", w2.bytes(), E::kOutOfRange, "key length beyond the file");
    GgufWriter w3 = gguf_base();
    std::vector<uint8_t> raw3 = {1, 0, 0, 0, 0, 0, 0, 0, 'd', 9, 0, 0, 0};  // key "d", type array
    for (int i = 0; i < 6; ++i) raw3.insert(raw3.end(), {9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0});  // of 1 array
    w3.kv_raw(raw3, 1);
    add("gguf_deep_nesting.gguf", w3.bytes(), E::kInvalidFormat, "arrays nested 6 deep");
  }
  {
    GgufWriter w = gguf_base();
    w.tensor("blk.0.ffn_down.weight", {256, 2}, GgufWriter::T_Q4_K, std::vector<uint8_t>(288));
    add("gguf_unsupported_type.gguf", w.bytes(), E::kUnsupported, "Q4_K tensor");
    GgufWriter w2(1, 32);
    add("gguf_version_1.gguf", w2.bytes(), E::kUnsupported, "GGUF v1");
    GgufWriter w3 = gguf_base();
    std::vector<float> x(64, 1.0f);
    w3.tensor("t", {64}, GgufWriter::T_F32, float_bytes(x));
    w3.tensor("t", {64}, GgufWriter::T_F32, float_bytes(x));
    add("gguf_duplicate_name.gguf", w3.bytes(), E::kInvalidFormat, "tensor name twice");
    add("gguf_bad_utf8_name.gguf", gguf_f32("bad\xed\xa0\x80"), E::kInvalidFormat, "UTF-16 surrogate in a name");
    GgufWriter w4 = gguf_base();
    w4.tensor("t", {uint64_t{1} << 30, uint64_t{1} << 30, uint64_t{1} << 30}, GgufWriter::T_F32, {});
    add("gguf_shape_overflow.gguf", w4.bytes(), E::kOutOfRange, "2^90 elements");
    GgufWriter w5 = gguf_base();
    w5.tensor("t", {64}, GgufWriter::T_F32, float_bytes(x));
    w5.set_last_offset(uint64_t{1} << 40);
    add("gguf_offset_out_of_range.gguf", w5.bytes(), E::kOutOfRange, "tensor data past the end");
    GgufWriter w6 = gguf_base();
    w6.tensor("a", {64}, GgufWriter::T_F32, float_bytes(x));
    w6.tensor("b", {64}, GgufWriter::T_F32, float_bytes(x));
    w6.set_last_offset(224);
    add("gguf_overlap.gguf", w6.bytes(), E::kInvalidFormat, "tensors overlap");
    GgufWriter w7 = gguf_base();
    w7.tensor("a", {64}, GgufWriter::T_F32, float_bytes(x));
    w7.set_last_offset(4);
    add("gguf_misaligned_offset.gguf", w7.bytes(), E::kInvalidFormat, "offset not a multiple of 32");
    GgufWriter w8 = gguf_base();
    w8.kv("general.alignment", GgufWriter::U32, uint32_t{0});
    add("gguf_zero_alignment.gguf", w8.bytes(), E::kInvalidFormat, "general.alignment 0");
    GgufWriter w9 = gguf_base();
    w9.tensor("q", {40}, GgufWriter::T_Q8_0, std::vector<uint8_t>(34));
    add("gguf_partial_block.gguf", w9.bytes(), E::kInvalidFormat, "Q8_0 row of 40 values");
  }

  // --- llama2.c and unknown ---
  {
    std::vector<uint8_t> b(28 + 4 * 100, 0);
    const int32_t h[7] = {64, 172, 5, 8, 4, 512, 512};
    std::memcpy(b.data(), h, 28);
    add("llama2c_size_mismatch.bin", b, E::kInvalidFormat, "header of stories260K, 400 bytes of data");
    add("unknown_format.bin", str_bytes("hello, this is not a model"), E::kInvalidFormat, "no known format");
    add("empty.bin", {}, E::kInvalidFormat, "empty file");
  }

  // --- .slm ---
  const std::vector<uint8_t> good = good_slm();
  if (good.empty()) return c;
  {
    std::vector<uint8_t> t = good;
    t.resize(t.size() - 100);
    add("slm_truncated.slm", t, E::kOutOfRange, "data section cut short");
    std::vector<uint8_t> t2(good.begin(), good.begin() + 40);
    add("slm_truncated_preamble.slm", t2, E::kInvalidFormat, "40 bytes");
    std::vector<uint8_t> m = good;
    m[3] = 'X';
    add("slm_bad_magic.slm", m, E::kInvalidFormat, "magic");
    std::vector<uint8_t> v = good;
    v[8] = 9;  // major 9
    fix_preamble_checksum(v);
    add("slm_newer_major.slm", v, E::kUnsupported, "format 9.0");
    std::vector<uint8_t> v0 = good;
    v0[8] = 0;
    fix_preamble_checksum(v0);
    add("slm_major_zero.slm", v0, E::kInvalidFormat, "format 0.0");
    std::vector<uint8_t> pc = good;
    pc[40] ^= 1;
    add("slm_preamble_checksum.slm", pc, E::kChecksumMismatch, "data size changed without the checksum");
    std::vector<uint8_t> fo = good;
    const uint64_t big = uint64_t{1} << 50;
    std::memcpy(fo.data() + 24, &big, 8);
    fix_preamble_checksum(fo);
    add("slm_flatbuffer_size.slm", fo, E::kOutOfRange, "flatbuffer size 2^50");
    std::vector<uint8_t> ro = good;
    const uint32_t root = 0x7ffffff0;
    std::memcpy(ro.data() + kPreambleBytes, &root, 4);
    add("slm_root_offset.slm", ro, E::kInvalidFormat, "flatbuffer root offset outside (verifier)");
    std::vector<uint8_t> id = good;
    id[kPreambleBytes + 4] = 'X';
    add("slm_file_identifier.slm", id, E::kInvalidFormat, "flatbuffer identifier not SLMC (verifier)");
  }
  auto seg = [](fb::Model* m, int t, int s) {
    return m->mutable_tensors()->GetMutableObject(t)->mutable_segments()->GetMutableObject(s);
  };
  add("slm_segment_out_of_range.slm", tamper_slm(good, [&](fb::Model* m) { seg(m, 1, 0)->mutate_offset(uint64_t{1} << 40); }),
      E::kOutOfRange, "segment offset 2^40");
  add("slm_segment_size_overflow.slm",
      tamper_slm(good, [&](fb::Model* m) { seg(m, 1, 0)->mutate_size(~uint64_t{0} - 10); }), E::kOutOfRange,
      "offset + size wraps around");
  add("slm_segment_misaligned.slm", tamper_slm(good, [&](fb::Model* m) { seg(m, 1, 0)->mutate_offset(seg(m, 1, 0)->offset() + 4); }),
      E::kInvalidFormat, "segment offset not a multiple of 64");
  add("slm_segment_overlap.slm", tamper_slm(good, [&](fb::Model* m) { seg(m, 2, 0)->mutate_offset(seg(m, 1, 0)->offset() + 64); }),
      E::kInvalidFormat, "two segments partially overlap");
  add("slm_segment_size_mismatch.slm", tamper_slm(good, [&](fb::Model* m) { seg(m, 1, 0)->mutate_size(seg(m, 1, 0)->size() - 64); }),
      E::kInvalidFormat, "values segment smaller than the encoding needs");
  add("slm_segment_role.slm", tamper_slm(good, [&](fb::Model* m) { seg(m, 1, 0)->mutate_role(17); }), E::kInvalidFormat,
      "unknown segment role");
  add("slm_shape_overflow.slm",
      tamper_slm(good, [&](fb::Model* m) {
        auto* shape = m->mutable_tensors()->GetMutableObject(1)->mutable_shape();
        shape->Mutate(0, int64_t{1} << 40);
        shape->Mutate(1, int64_t{1} << 40);
      }),
      E::kOutOfRange, "2^80 elements");
  add("slm_negative_dim.slm",
      tamper_slm(good, [&](fb::Model* m) { m->mutable_tensors()->GetMutableObject(1)->mutable_shape()->Mutate(0, -40); }),
      E::kOutOfRange, "negative dimension");
  add("slm_shape_mismatch.slm",
      tamper_slm(good, [&](fb::Model* m) { m->mutable_tensors()->GetMutableObject(1)->mutable_shape()->Mutate(0, 41); }),
      E::kInvalidFormat, "shape no longer matches the segment sizes");
  add("slm_duplicate_name.slm",
      tamper_slm(good, [&](fb::Model* m) {
        set_name_byte(m->mutable_tensors()->GetMutableObject(2), 1, '4');  // "q8" -> "q4"
      }),
      E::kInvalidFormat, "two tensors named q4");
  add("slm_bad_utf8_name.slm",
      tamper_slm(good, [&](fb::Model* m) {
        set_name_byte(m->mutable_tensors()->GetMutableObject(2), 1, '\xff');
      }),
      E::kInvalidFormat, "name not UTF-8");
  add("slm_value_type.slm",
      tamper_slm(good, [&](fb::Model* m) { m->mutable_tensors()->GetMutableObject(1)->mutable_encoding()->mutate_value_type(42); }),
      E::kInvalidFormat, "unknown value type");
  add("slm_granularity.slm",
      tamper_slm(good, [&](fb::Model* m) { m->mutable_tensors()->GetMutableObject(1)->mutable_encoding()->mutate_granularity(9); }),
      E::kInvalidFormat, "unknown granularity");
  add("slm_sparse_format.slm",
      tamper_slm(good, [&](fb::Model* m) { m->mutable_tensors()->GetMutableObject(0)->mutable_encoding()->mutate_format(1); }),
      E::kInvalidFormat, "dense f32 data declared CSR");
  add("slm_tensor_count.slm", tamper_slm(good, [&](fb::Model* m) { m->mutate_tensor_count(1000); }), E::kInvalidFormat,
      "tensor_count differs from the tensors stored");
  add("slm_meta_kind.slm",
      tamper_slm(good, [&](fb::Model* m) {
        m->mutable_architecture()->GetMutableObject(0)->mutate_kind(static_cast<fb::MetaKind>(7));
      }),
      E::kInvalidFormat, "unknown metadata kind");
  {
    // A NaN scale: structurally valid, numerically poisonous.
    std::vector<uint8_t> b = good;
    const fb::Model* m = fb::GetModel(b.data() + kPreambleBytes);
    uint64_t data_off;
    std::memcpy(&data_off, b.data() + 32, 8);
    const fb::Segment* scales = m->tensors()->Get(1)->segments()->Get(1);
    const uint16_t nan16 = 0x7e00;
    std::memcpy(b.data() + data_off + scales->offset() + 6, &nan16, 2);
    add("slm_nan_scale.slm", b, E::kNonFinite, "an fp16 scale is NaN");
    std::vector<uint8_t> d = good;
    const fb::Segment* values = m->tensors()->Get(1)->segments()->Get(0);
    d[data_off + values->offset() + 100] ^= 0x10;
    add("slm_data_checksum.slm", d, E::kChecksumMismatch, "one flipped bit in a values segment (verify)");
  }
  return c;
}

inline const char* error_code_enum_name(ErrorCode c) { return error_code_name(c); }

}  // namespace slmc::test
