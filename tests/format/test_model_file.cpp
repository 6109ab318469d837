// .slm writer and loader: round trips of every encoding, deduplication, reproducibility, atomic
// writes, corruption and tampering, version checks.
#include <catch2/catch.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <set>

#include "format/format_test_util.hpp"
#include "io/io_test_util.hpp"
#include "slmc/format/model_file.hpp"
#include "slmc/format/slm_generated.h"
#include "slmc/io/hash.hpp"
#include "slmc/version.hpp"

using namespace slmc;
using slmc::test::info_of;
using slmc::test::TempDir;

namespace {

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return names;
  while (dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) names.push_back(e->d_name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

ModelHeader sample_header() {
  ModelHeader h;
  h.sources.push_back(SourceFileInfo{"model.safetensors", "/x/model.safetensors", std::string(64, 'a'), 123,
                                     SourceFormat::kSafetensors});
  h.recipe = R"({"rules":[{"pattern":"*","scheme":"int4_g32"}]})";
  h.architecture["general.architecture"] = MetaValue::string("llama");
  h.architecture["llama.block_count"] = MetaValue::json("2");
  h.metadata["note"] = MetaValue::string("héllo");
  return h;
}

struct Sample {
  std::string name;
  Shape shape;
  EncodedMatrix m;
  bool transposed = false;
};

std::vector<Sample> sample_tensors() {
  std::vector<Sample> s;
  auto add = [&](std::string name, Shape shape, EncodedMatrix m, bool tr = false) {
    s.push_back(Sample{std::move(name), std::move(shape), std::move(m), tr});
  };
  add("norm.weight", Shape{37}, test::make_float_matrix(1, 37, ValueType::kF32, 1));
  add("embed", Shape{11, 19}, test::make_float_matrix(11, 19, ValueType::kF16, 2));
  add("conv", Shape{2, 3, 5}, test::make_float_matrix(6, 5, ValueType::kBF16, 3), true);
  add("empty", Shape{0, 8}, [] {
    EncodedMatrix m;
    m.cols = 8;
    return m;
  }());
  struct Q {
    ValueType vt;
    Granularity g;
    int32_t group;
    bool sym;
    DType sdt;
    RowLayout layout;
    int64_t rows, cols;
  };
  const Q qs[] = {
      {ValueType::kInt4, Granularity::kGroup, 32, true, DType::kF16, RowLayout::kInterleave4, 13, 70},
      {ValueType::kInt4, Granularity::kGroup, 16, false, DType::kF32, RowLayout::kInterleave8, 17, 33},
      {ValueType::kInt8, Granularity::kChannel, 0, false, DType::kF32, RowLayout::kInterleave8, 9, 40},
      {ValueType::kInt8, Granularity::kTensor, 0, true, DType::kF16, RowLayout::kRows, 1, 31},
      {ValueType::kInt8, Granularity::kGroup, 48, true, DType::kF32, RowLayout::kInterleave4, 8, 100},
      {ValueType::kNl4, Granularity::kGroup, 32, true, DType::kF16, RowLayout::kInterleave8, 11, 70},  // makes it 1.2
  };
  int i = 0;
  for (const Q& q : qs) {
    const std::vector<float> w = test::gaussian(static_cast<size_t>(q.rows * q.cols), 100 + i);
    add("q" + std::to_string(i++), Shape{q.rows, q.cols},
        test::quantize_for_test(w.data(), q.rows, q.cols, test::quant_encoding(q.vt, q.g, q.group, q.sym, q.sdt, q.layout)));
  }
  return s;
}

void write_samples(const std::string& path, const std::vector<Sample>& samples) {
  auto w = ModelFileWriter::create(path, sample_header());
  REQUIRE(w.ok());
  for (const auto& s : samples) {
    TensorInfo info;
    info.name = s.name;
    info.shape = s.shape;
    info.stats = s.m.stats;
    info.stats.rel_error = 0.125;
    info.transposed = s.transposed;
    info.source_dtype = DType::kBF16;
    Status st = (*w)->add(info, s.m.view());
    INFO(st.to_string());
    REQUIRE(st.ok());
  }
  Status st = (*w)->finish();
  INFO(st.to_string());
  REQUIRE(st.ok());
}

}  // namespace

TEST_CASE("slm round trip of every encoding", "[format]") {
  TempDir dir;
  const auto samples = sample_tensors();
  const std::string path = dir.file("m.slm");
  write_samples(path, samples);
  CHECK(list_dir(dir.path()) == std::vector<std::string>{"m.slm"});  // no temporaries left
  auto f = ModelFile::open(path, LoadOptions{true});
  INFO((f.ok() ? std::string() : f.status().to_string()));
  REQUIRE(f.ok());
  const ModelFile& mf = **f;
  const ModelHeader& h = mf.header();
  const ModelHeader ref = sample_header();
  CHECK(h.format_major == kFormatMajor);
  CHECK(h.format_minor == kFormatMinor);
  CHECK(h.producer == "slm-compress");
  CHECK(h.producer_version == kVersionString);
  REQUIRE(h.sources.size() == 1);
  CHECK(h.sources[0].name == "model.safetensors");
  CHECK(h.sources[0].sha256 == ref.sources[0].sha256);
  CHECK(h.sources[0].size == 123);
  CHECK(h.recipe == ref.recipe);
  CHECK(h.architecture == ref.architecture);
  CHECK(h.metadata == ref.metadata);
  CHECK(mf.data_offset() % 64 == 0);
  REQUIRE(mf.tensors().size() == samples.size());
  std::set<std::string> names;
  for (size_t i = 0; i < samples.size(); ++i) {
    const StoredTensor& t = mf.tensors()[i];
    const Sample& s = samples[i];
    INFO(s.name);
    CHECK(t.name == s.name);
    CHECK(t.shape == s.shape);
    CHECK(t.view.rows == s.m.rows);
    CHECK(t.view.cols == s.m.cols);
    CHECK(t.view.encoding == s.m.encoding);
    CHECK(t.transposed == s.transposed);
    CHECK(t.source_dtype == DType::kBF16);
    CHECK(t.stats.bits_per_weight == s.m.stats.bits_per_weight);
    CHECK(t.stats.rel_error == 0.125);
    for (int r = 0; r < kSegmentRoles; ++r) {
      const SegmentView& sv = t.view.segments[static_cast<size_t>(r)];
      const AlignedBuffer& ref_seg = s.m.segments[static_cast<size_t>(r)];
      REQUIRE(sv.nbytes == ref_seg.size());
      if (sv.nbytes) {
        CHECK(reinterpret_cast<uintptr_t>(sv.data) % 64 == 0);
        CHECK(std::memcmp(sv.data, ref_seg.data(), sv.nbytes) == 0);
      }
    }
    names.insert(encoding_name(t.view.encoding));
  }
  CHECK(mf.find("q2") == &mf.tensors()[6]);
  CHECK(mf.find("nope") == nullptr);
  std::set<std::string> used;
  uint64_t counted = 0;
  for (const auto& u : mf.encodings_used()) {
    used.insert(u.name);
    counted += u.tensor_count;
    CHECK(encoding_name(u.encoding) == u.name);
  }
  CHECK(used == names);
  CHECK(counted == samples.size());
  CHECK(used.count("int4_g32_sym_f16_r4") == 1);
  CHECK(used.count("int8_channel_asym_f32_r8") == 1);
  CHECK(mf.row_layouts_used() == std::vector<RowLayout>{RowLayout::kRows, RowLayout::kInterleave4, RowLayout::kInterleave8});
  CHECK(mf.verify().ok());
}

TEST_CASE("slm output is byte identical for the same input", "[format]") {
  TempDir dir;
  const auto samples = sample_tensors();
  write_samples(dir.file("a.slm"), samples);
  write_samples(dir.file("b.slm"), samples);
  const auto a = test::read_bytes(dir.file("a.slm")), b = test::read_bytes(dir.file("b.slm"));
  REQUIRE(!a.empty());
  CHECK(a == b);
}

TEST_CASE("slm identical tensors are stored once", "[format]") {
  TempDir dir;
  EncodedMatrix m = test::make_float_matrix(64, 32, ValueType::kF32, 7);
  EncodedMatrix other = test::make_float_matrix(64, 32, ValueType::kF32, 8);
  auto w = ModelFileWriter::create(dir.file("d.slm"), ModelHeader{});
  REQUIRE(w.ok());
  REQUIRE((*w)->add(info_of("embed", Shape{64, 32}), m.view()).ok());
  REQUIRE((*w)->add(info_of("other", Shape{64, 32}), other.view()).ok());
  REQUIRE((*w)->add(info_of("lm_head", Shape{64, 32}), m.view()).ok());
  CHECK((*w)->deduplicated_bytes() == 64 * 32 * 4);
  CHECK((*w)->data_bytes() == 2 * 64 * 32 * 4);
  REQUIRE((*w)->finish().ok());
  auto f = ModelFile::open(dir.file("d.slm"));
  REQUIRE(f.ok());
  CHECK((*f)->find("embed")->view.segment(SegmentRole::kValues).data ==
        (*f)->find("lm_head")->view.segment(SegmentRole::kValues).data);
  CHECK((*f)->find("other")->view.segment(SegmentRole::kValues).data !=
        (*f)->find("lm_head")->view.segment(SegmentRole::kValues).data);
  CHECK((*f)->verify().ok());
}

TEST_CASE("slm writer rejects bad tensors and leaves nothing behind", "[format]") {
  TempDir dir;
  {
    auto w = ModelFileWriter::create(dir.file("x.slm"), ModelHeader{});
    REQUIRE(w.ok());
    EncodedMatrix m = test::make_float_matrix(4, 8, ValueType::kF32, 1);
    REQUIRE((*w)->add(info_of("a", Shape{4, 8}), m.view()).ok());
    CHECK((*w)->add(info_of("a", Shape{4, 8}), m.view()).code() == ErrorCode::kInvalidArgument);
    CHECK((*w)->add(info_of("b", Shape{8, 4}), m.view()).code() == ErrorCode::kInvalidArgument);
    CHECK((*w)->add(info_of("bad\xff", Shape{4, 8}), m.view()).code() == ErrorCode::kInvalidArgument);
    EncodedMatrixView v = m.view();
    v.segments[0].nbytes -= 4;  // size inconsistent with the encoding
    CHECK((*w)->add(info_of("c", Shape{4, 8}), v).code() == ErrorCode::kInvalidFormat);
    CHECK(list_dir(dir.path()).empty());  // data goes to an unlinked temporary
    // destroyed without finish()
  }
  CHECK(list_dir(dir.path()).empty());
  auto bad_dir = ModelFileWriter::create(dir.file("no/such/dir/x.slm"), ModelHeader{});
  CHECK(bad_dir.status().code() == ErrorCode::kIoError);
  CHECK(list_dir(dir.path()).empty());
}

TEST_CASE("slm checksum verification catches flipped data bytes", "[format]") {
  TempDir dir;
  const auto samples = sample_tensors();
  const std::string path = dir.file("c.slm");
  write_samples(path, samples);
  const std::vector<uint8_t> good = test::read_bytes(path);
  auto f = ModelFile::open(path);
  REQUIRE(f.ok());
  const uint64_t data_off = (*f)->data_offset();
  std::vector<std::pair<uint64_t, uint64_t>> segs;
  for (const auto& t : (*f)->tensors()) {
    for (const auto& s : t.segments) segs.emplace_back(data_off + s.offset, s.size);
  }
  f = Status(ErrorCode::kInternal, "closed");
  REQUIRE(!segs.empty());
  int checked = 0, caught_at_open = 0;
  for (const auto& [off, size] : segs) {
    // first, last and a few positions in between of every segment
    for (uint64_t pos : {uint64_t{0}, size - 1, size / 2, size / 3, (size * 7) / 9}) {
      for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}}) {
        std::vector<uint8_t> bad = good;
        bad[off + pos] ^= mask;
        auto mf = ModelFile::open_mapped(MappedFile::borrow(bad.data(), bad.size(), "flipped.slm"));
        ++checked;
        if (!mf.ok()) {  // e.g. a scale became NaN: the structural validation caught it
          ++caught_at_open;
          continue;
        }
        Status s = (*mf)->verify();
        INFO("offset " << off + pos);
        CHECK(s.code() == ErrorCode::kChecksumMismatch);
      }
    }
  }
  CHECK(checked >= 100);
  CHECK(caught_at_open < checked);
}

TEST_CASE("slm flatbuffer tampering is rejected", "[format]") {
  TempDir dir;
  const auto samples = sample_tensors();
  const std::string path = dir.file("t.slm");
  write_samples(path, samples);
  const std::vector<uint8_t> good = test::read_bytes(path);
  uint64_t fb_size;
  std::memcpy(&fb_size, good.data() + 24, 8);
  // Root offset pointing outside the buffer: the verifier rejects it.
  {
    std::vector<uint8_t> bad = good;
    const uint32_t root = static_cast<uint32_t>(fb_size + 100);
    std::memcpy(bad.data() + 64, &root, 4);
    auto mf = ModelFile::open_mapped(MappedFile::borrow(bad.data(), bad.size(), "root.slm"));
    REQUIRE_FALSE(mf.ok());
    CHECK(mf.status().message().find("verifier") != std::string::npos);
  }
  // File identifier.
  {
    std::vector<uint8_t> bad = good;
    bad[64 + 4] = 'X';
    auto mf = ModelFile::open_mapped(MappedFile::borrow(bad.data(), bad.size(), "ident.slm"));
    REQUIRE_FALSE(mf.ok());
    CHECK(mf.status().message().find("verifier") != std::string::npos);
  }
  // Every single byte of the flatbuffer, flipped: never a crash; rejected at open or by verify().
  int rejected_at_open = 0;
  for (uint64_t i = 0; i < fb_size; ++i) {
    std::vector<uint8_t> bad = good;
    bad[64 + i] ^= 0x5a;
    auto mf = ModelFile::open_mapped(MappedFile::borrow(bad.data(), bad.size(), "flip.slm"));
    if (!mf.ok()) {
      ++rejected_at_open;
      continue;
    }
    INFO("flatbuffer byte " << i);
    CHECK((*mf)->verify().code() == ErrorCode::kChecksumMismatch);
  }
  CHECK(rejected_at_open > 0);
}

TEST_CASE("slm tampered segment offsets are rejected", "[format]") {
  TempDir dir;
  const auto samples = sample_tensors();
  const std::string path = dir.file("o.slm");
  write_samples(path, samples);
  const std::vector<uint8_t> good = test::read_bytes(path);
  auto tamper = [&](auto&& mutate) {
    std::vector<uint8_t> bad = good;
    fb::Model* m = fb::GetMutableModel(bad.data() + 64);
    mutate(m);
    return ModelFile::open_mapped(MappedFile::borrow(bad.data(), bad.size(), "tampered.slm"));
  };
  auto seg = [](fb::Model* m, int t) { return m->mutable_tensors()->GetMutableObject(t)->mutable_segments()->GetMutableObject(0); };
  auto r1 = tamper([&](fb::Model* m) { seg(m, 1)->mutate_offset(uint64_t{1} << 40); });
  CHECK(r1.status().code() == ErrorCode::kOutOfRange);
  auto r2 = tamper([&](fb::Model* m) { seg(m, 1)->mutate_offset(seg(m, 1)->offset() + 8); });
  CHECK(r2.status().code() == ErrorCode::kInvalidFormat);  // not 64-aligned
  auto r3 = tamper([&](fb::Model* m) { seg(m, 1)->mutate_offset(seg(m, 0)->offset() + 64); });
  CHECK_FALSE(r3.ok());  // partial overlap
  auto r4 = tamper([&](fb::Model* m) { seg(m, 1)->mutate_size(seg(m, 1)->size() - 2); });
  CHECK(r4.status().code() == ErrorCode::kInvalidFormat);  // size inconsistent with the encoding
  auto r5 = tamper([&](fb::Model* m) { m->mutable_tensors()->GetMutableObject(4)->mutable_shape()->Mutate(0, int64_t{1} << 40); });
  CHECK_FALSE(r5.ok());  // shape overflow / size mismatch
  auto r6 = tamper([&](fb::Model* m) { m->mutable_tensors()->GetMutableObject(4)->mutable_encoding()->mutate_layout(3); });
  CHECK(r6.status().code() == ErrorCode::kInvalidFormat);
  auto r7 = tamper([&](fb::Model* m) { m->mutate_tensor_count(3); });
  CHECK(r7.status().code() == ErrorCode::kInvalidFormat);
}

TEST_CASE("slm newer major version is rejected clearly", "[format]") {
  TempDir dir;
  const std::string path = dir.file("v.slm");
  write_samples(path, sample_tensors());
  std::vector<uint8_t> bytes = test::read_bytes(path);
  const uint16_t major = kFormatMajor + 1;
  std::memcpy(bytes.data() + 8, &major, 2);
  const uint64_t h = xxh64(bytes.data(), 56);
  std::memcpy(bytes.data() + 56, &h, 8);
  auto mf = ModelFile::open_mapped(MappedFile::borrow(bytes.data(), bytes.size(), "new.slm"));
  REQUIRE_FALSE(mf.ok());
  CHECK(mf.status().code() == ErrorCode::kUnsupported);
  CHECK(mf.status().message().find("newer") != std::string::npos);
  // A newer minor of the same major is read (minor versions only add fields).
  std::vector<uint8_t> minor = test::read_bytes(path);
  const uint16_t mi = kFormatMinor + 1;
  std::memcpy(minor.data() + 10, &mi, 2);
  // ... but the header flatbuffer repeats the version, so bump it there too.
  fb::GetMutableModel(minor.data() + 64)->mutate_format_minor(mi);
  const uint64_t h2 = xxh64(minor.data(), 56);
  std::memcpy(minor.data() + 56, &h2, 8);
  auto ok = ModelFile::open_mapped(MappedFile::borrow(minor.data(), minor.size(), "minor.slm"));
  INFO((ok.ok() ? std::string() : ok.status().to_string()));
  CHECK(ok.ok());
}

TEST_CASE("slm works on a read only file", "[format]") {
  TempDir dir;
  const std::string path = dir.file("ro.slm");
  write_samples(path, sample_tensors());
  REQUIRE(::chmod(path.c_str(), 0444) == 0);
  auto mf = ModelFile::open(path, LoadOptions{true});
  REQUIRE(mf.ok());
  CHECK((*mf)->tensors().size() == 10);
}
