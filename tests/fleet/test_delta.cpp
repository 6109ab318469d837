// Library API of .slmdelta updates (slmc/fleet/delta.hpp): round trips at sizes that cross apply's
// 1 MiB streaming chunks, exact measure_delta sizes, the wrong base, and outputs naming inputs.
#include <catch2/catch.hpp>

#include <dirent.h>

#include <cstring>
#include <set>

#include "format/format_test_util.hpp"
#include "io/io_test_util.hpp"
#include "slmc/fleet/delta.hpp"
#include "slmc/format/model_file.hpp"

using namespace slmc;
using slmc::test::info_of;
using slmc::test::TempDir;

namespace {

std::set<std::string> list_dir(const std::string& dir) {
  std::set<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.insert(e->d_name);
    }
    ::closedir(d);
  }
  return names;
}

/// f32 matrix with a deterministic pattern; `bump` changes every `stride`-th value slightly.
EncodedMatrix pattern_matrix(int64_t rows, int64_t cols, uint64_t seed, float bump = 0, int stride = 1) {
  EncodedMatrix m = test::make_float_matrix(rows, cols, ValueType::kF32, seed);
  if (bump != 0) {
    float* v = m.segment(SegmentRole::kValues).as<float>();
    for (int64_t i = 0; i < rows * cols; i += stride) v[i] += bump * v[i];
  }
  return m;
}

void write_model(const std::string& path, const std::vector<std::pair<std::string, const EncodedMatrix*>>& tensors,
                 const std::string& recipe) {
  ModelHeader h;
  h.recipe = recipe;
  auto w = ModelFileWriter::create(path, h);
  REQUIRE(w.ok());
  for (const auto& [name, m] : tensors) {
    REQUIRE((*w)->add(info_of(name, Shape{m->rows, m->cols}), m->view()).ok());
  }
  REQUIRE((*w)->finish().ok());
}

}  // namespace

TEST_CASE("delta round trip across streaming chunks", "[fleet]") {
  TempDir dir;
  // 768 x 1024 f32 = 3 MiB per tensor: every op spans several 1 MiB chunks of apply.
  const EncodedMatrix same = pattern_matrix(768, 1024, 1);
  const EncodedMatrix old_b = pattern_matrix(768, 1024, 2);
  const EncodedMatrix new_b = pattern_matrix(768, 1024, 2, 1e-3f, 97);  // a sparse change: xor
  const EncodedMatrix old_c = pattern_matrix(64, 32, 3);
  const EncodedMatrix new_c = pattern_matrix(64, 48, 3);                // another shape: whole
  const EncodedMatrix added = pattern_matrix(16, 16, 4);
  write_model(dir.file("old.slm"), {{"a", &same}, {"b", &old_b}, {"c", &old_c}, {"tied", &same}}, "{\"v\":1}");
  write_model(dir.file("new.slm"), {{"a", &same}, {"b", &new_b}, {"c", &new_c}, {"d", &added}, {"tied", &same}},
              "{\"v\":2}");

  DeltaStats stats;
  REQUIRE(write_delta(dir.file("old.slm"), dir.file("new.slm"), dir.file("u.slmdelta"), {}, &stats).ok());
  const auto delta = test::read_bytes(dir.file("u.slmdelta"));
  CHECK(stats.delta_bytes == delta.size());
  auto measured = measure_delta(dir.file("old.slm"), dir.file("new.slm"));
  REQUIRE(measured.ok());
  CHECK(measured->delta_bytes == delta.size());
  CHECK(stats.copied_bytes >= 768 * 1024 * 4);
  CHECK(stats.xor_bytes + stats.add_bytes == 768 * 1024 * 4);
  CHECK(stats.changed_segment_bytes == 768 * 1024 * 4 + 64 * 48 * 4 + 16 * 16 * 4);
  CHECK(delta.size() < 768 * 1024 * 4 / 4);  // the sparse change compresses well as a xor

  ApplyStats applied;
  REQUIRE(apply_delta(dir.file("old.slm"), dir.file("u.slmdelta"), dir.file("out.slm"), {}, &applied).ok());
  CHECK(test::read_bytes(dir.file("out.slm")) == test::read_bytes(dir.file("new.slm")));
  CHECK(applied.segments_verified == 4);  // a (shared with tied), b, c, d
  // A second apply replaces the existing output (rename), still byte-identical.
  REQUIRE(apply_delta(dir.file("old.slm"), dir.file("u.slmdelta"), dir.file("out.slm")).ok());
  CHECK(test::read_bytes(dir.file("out.slm")) == test::read_bytes(dir.file("new.slm")));
  auto loaded = ModelFile::open(dir.file("out.slm"), LoadOptions{true});
  REQUIRE(loaded.ok());
  CHECK((*loaded)->header().recipe == "{\"v\":2}");

  // Deterministic: the same inputs give the same delta.
  REQUIRE(write_delta(dir.file("old.slm"), dir.file("new.slm"), dir.file("u2.slmdelta")).ok());
  CHECK(test::read_bytes(dir.file("u2.slmdelta")) == delta);
}

TEST_CASE("apply refuses another base and writes nothing", "[fleet]") {
  TempDir dir;
  const EncodedMatrix a = pattern_matrix(64, 64, 1), b = pattern_matrix(64, 64, 2);
  write_model(dir.file("old.slm"), {{"w", &a}}, "");
  write_model(dir.file("new.slm"), {{"w", &b}}, "");
  write_model(dir.file("other.slm"), {{"w", &b}}, "x");
  REQUIRE(write_delta(dir.file("old.slm"), dir.file("new.slm"), dir.file("u.slmdelta")).ok());
  const std::set<std::string> before = list_dir(dir.path());
  Status s = apply_delta(dir.file("other.slm"), dir.file("u.slmdelta"), dir.file("out.slm"));
  CHECK(s.code() == ErrorCode::kChecksumMismatch);
  CHECK(s.message().find("wrong base") != std::string::npos);
  CHECK(list_dir(dir.path()) == before);
  // Same size, one byte different: still another base.
  auto bytes = test::read_bytes(dir.file("old.slm"));
  bytes[bytes.size() - 7] ^= 0x01;
  REQUIRE(test::write_bytes(dir.file("old2.slm"), bytes));
  CHECK(apply_delta(dir.file("old2.slm"), dir.file("u.slmdelta"), dir.file("out.slm")).code() ==
        ErrorCode::kChecksumMismatch);
  CHECK(list_dir(dir.path()).count("out.slm") == 0);
  // Outputs naming an input are refused by both directions.
  CHECK(apply_delta(dir.file("old.slm"), dir.file("u.slmdelta"), dir.file("old.slm")).code() ==
        ErrorCode::kInvalidArgument);
  CHECK(write_delta(dir.file("old.slm"), dir.file("new.slm"), dir.file("new.slm")).code() ==
        ErrorCode::kInvalidArgument);
  DeltaOptions bad_level;
  bad_level.zstd_level = 0;
  CHECK(measure_delta(dir.file("old.slm"), dir.file("new.slm"), bad_level).status().code() ==
        ErrorCode::kInvalidArgument);
}
