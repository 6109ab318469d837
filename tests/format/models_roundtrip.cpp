// Round trips on every real model in SLMC_MODELS_DIR: read -> write .slm (fp32, f16, and with
// quantized int8/int4 matrices built per docs/LAYOUT.md) -> load -> compare bytes.
#include <catch2/catch.hpp>

#include <cstring>

#include "format/format_test_util.hpp"
#include "io/io_test_util.hpp"
#include "slmc/format/model_file.hpp"
#include "slmc/io/model_source.hpp"
#include "support/models.hpp"

using namespace slmc;

namespace {

const char* kModels[] = {"stories260K/stories260K.bin", "capp-gpt2-236K/model.safetensors"};

void check_header(const ModelFile& f, const ModelSource& src) {
  REQUIRE(f.header().sources.size() == src.files().size());
  for (size_t i = 0; i < src.files().size(); ++i) {
    CHECK(f.header().sources[i].name == src.files()[i].name);
    CHECK(f.header().sources[i].sha256 == src.files()[i].sha256);
    CHECK(f.header().sources[i].size == src.files()[i].size);
    CHECK(f.header().sources[i].format == src.files()[i].format);
  }
  CHECK(f.header().architecture == src.architecture());
  CHECK(f.header().metadata == src.metadata());
}

}  // namespace

TEST_CASE("real models round trip through slm as f32", "[models][format]") {
  for (const char* rel : kModels) {
    INFO(rel);
    auto src = open_model(test::model_path(rel));
    REQUIRE(src.ok());
    test::TempDir dir;
    const std::string out = dir.file("m.slm");
    REQUIRE(write_dense_model(**src, out, ValueType::kF32, R"({"preset":"f32"})").ok());
    auto f = ModelFile::open(out, LoadOptions{true});
    INFO((f.ok() ? std::string() : f.status().to_string()));
    REQUIRE(f.ok());
    check_header(**f, **src);
    CHECK((*f)->header().recipe == R"({"preset":"f32"})");
    REQUIRE((*f)->tensors().size() == (*src)->tensors().size());
    for (size_t i = 0; i < (*src)->tensors().size(); ++i) {
      AlignedBuffer bytes;
      auto loaded = (*src)->load(i, bytes);
      REQUIRE(loaded.ok());
      const TensorView& t = *loaded;
      const StoredTensor& s = (*f)->tensors()[i];
      INFO(t.name);
      CHECK(s.name == t.name);
      CHECK(s.shape == t.shape);
      CHECK(s.transposed == (*src)->origins()[i].transposed);
      CHECK(s.view.encoding.value_type == ValueType::kF32);
      const SegmentView& v = s.view.segment(SegmentRole::kValues);
      REQUIRE(v.nbytes == t.nbytes);
      CHECK(reinterpret_cast<uintptr_t>(v.data) % 64 == 0);
      CHECK(std::memcmp(v.data, t.data, t.nbytes) == 0);
    }
    if (std::string(rel).find("stories") != std::string::npos) {
      // The shared classifier is stored once.
      CHECK((*f)->find("lm_head.weight")->view.segment(SegmentRole::kValues).data ==
            (*f)->find("model.embed_tokens.weight")->view.segment(SegmentRole::kValues).data);
      CHECK((*f)->encodings_used().size() == 1);
    }
    // Writing the same model again gives the same bytes.
    REQUIRE(write_dense_model(**src, dir.file("again.slm"), ValueType::kF32, R"({"preset":"f32"})").ok());
    CHECK(test::read_bytes(out) == test::read_bytes(dir.file("again.slm")));
  }
}

TEST_CASE("real models round trip through slm quantized", "[models][format]") {
  for (const char* rel : kModels) {
    INFO(rel);
    auto src = open_model(test::model_path(rel));
    REQUIRE(src.ok());
    test::TempDir dir;
    const std::string out = dir.file("q.slm");
    ModelHeader header;
    header.sources = (*src)->files();
    header.architecture = (*src)->architecture();
    header.metadata = (*src)->metadata();
    header.recipe = R"({"rules":[{"pattern":"*.weight","scheme":"int4_g32 / int8_channel"}]})";
    auto w = ModelFileWriter::create(out, header);
    REQUIRE(w.ok());
    std::vector<EncodedMatrix> expected;
    int quantized = 0;
    for (size_t i = 0; i < (*src)->tensors().size(); ++i) {
      AlignedBuffer bytes;
      auto loaded = (*src)->load(i, bytes);
      REQUIRE(loaded.ok());
      const TensorView& t = *loaded;
      TensorInfo info;
      info.name = t.name;
      info.shape = t.shape;
      info.transposed = (*src)->origins()[i].transposed;
      EncodedMatrix m;
      if (t.shape.rank() == 2 && t.shape.cols() >= 32) {
        // Alternate int4 g32 (interleave 4 or 8) and int8 per-channel, asymmetric every third.
        const Encoding e = i % 2 == 0 ? test::quant_encoding(ValueType::kInt4, Granularity::kGroup, 32, i % 3 != 0,
                                                             DType::kF16, i % 4 == 0 ? RowLayout::kInterleave8 : RowLayout::kInterleave4)
                                      : test::quant_encoding(ValueType::kInt8, Granularity::kChannel, 0, i % 3 != 0,
                                                             DType::kF32, RowLayout::kRows);
        m = test::quantize_for_test(t.data_as<float>(), t.shape.rows(), t.shape.cols(), e);
        ++quantized;
      } else {
        auto f16 = encode_dense_float(t, ValueType::kF16);
        REQUIRE(f16.ok());
        m = std::move(*f16);
      }
      info.stats = m.stats;
      Status s = (*w)->add(info, m.view());
      INFO(s.to_string());
      REQUIRE(s.ok());
      expected.push_back(std::move(m));
    }
    CHECK(quantized >= 10);
    REQUIRE((*w)->finish().ok());
    auto f = ModelFile::open(out, LoadOptions{true});
    INFO((f.ok() ? std::string() : f.status().to_string()));
    REQUIRE(f.ok());
    check_header(**f, **src);
    REQUIRE((*f)->tensors().size() == expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      const StoredTensor& s = (*f)->tensors()[i];
      INFO(s.name);
      CHECK(s.view.encoding == expected[i].encoding);
      CHECK(s.stats.bits_per_weight == expected[i].stats.bits_per_weight);
      for (int r = 0; r < kSegmentRoles; ++r) {
        const SegmentView& v = s.view.segments[static_cast<size_t>(r)];
        const AlignedBuffer& e = expected[i].segments[static_cast<size_t>(r)];
        REQUIRE(v.nbytes == e.size());
        if (v.nbytes) {
          CHECK(reinterpret_cast<uintptr_t>(v.data) % 64 == 0);
          CHECK(std::memcmp(v.data, e.data(), v.nbytes) == 0);
        }
      }
    }
    CHECK((*f)->encodings_used().size() >= 3);
  }
}
