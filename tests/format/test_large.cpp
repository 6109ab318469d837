// Large files: > 2 GiB data sections (written sparse, never allocated) and the writer's peak memory
// on a >= 1 GiB model of many tensors.
#include <catch2/catch.hpp>

#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "format/format_test_util.hpp"
#include "io/io_test_util.hpp"
#include "slmc/format/model_file.hpp"
#include "slmc/io/hash.hpp"

using namespace slmc;
using slmc::test::info_of;

namespace {

/// Peak resident set in bytes: /proc VmHWM (resettable), else getrusage.
uint64_t peak_rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;
}

uint64_t rusage_max_rss_bytes() {
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;
}

}  // namespace

TEST_CASE("slm files over 2 GiB work", "[format][large]") {
  // 9 x 2^26 f32 = 2.25 GiB of zeros from an untouched read-only anonymous mapping (the zero
  // page: no memory is committed), then a small tensor that lands beyond 2 GiB.
  const int64_t rows = 9, cols = int64_t{1} << 26;
  const uint64_t big_bytes = static_cast<uint64_t>(rows * cols) * 4;
  void* zeros = ::mmap(nullptr, big_bytes, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  REQUIRE(zeros != MAP_FAILED);
  std::vector<float> tail(1000);
  for (size_t i = 0; i < tail.size(); ++i) tail[i] = 0.5f * static_cast<float>(i) - 7.0f;

  test::TempDir dir;
  const std::string path = dir.file("big.slm");
  {
    auto w = ModelFileWriter::create(path, ModelHeader{});
    REQUIRE(w.ok());
    EncodedMatrixView big;
    big.rows = rows;
    big.cols = cols;
    big.segments[0] = SegmentView{zeros, big_bytes};
    REQUIRE((*w)->add(info_of("big", Shape{rows, cols}), big).ok());
    EncodedMatrixView small;
    small.rows = 10;
    small.cols = 100;
    small.segments[0] = SegmentView{tail.data(), tail.size() * 4};
    REQUIRE((*w)->add(info_of("tail", Shape{10, 100}), small).ok());
    Status s = (*w)->finish();
    INFO(s.to_string());
    REQUIRE(s.ok());
  }
  ::munmap(zeros, big_bytes);
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK(static_cast<uint64_t>(st.st_size) > big_bytes);
  CHECK(static_cast<uint64_t>(st.st_blocks) * 512 < (uint64_t{64} << 20));  // holes stayed holes

  auto f = ModelFile::open(path);
  INFO((f.ok() ? std::string() : f.status().to_string()));
  REQUIRE(f.ok());
  const StoredTensor* t = (*f)->find("tail");
  REQUIRE(t);
  const SegmentView& v = t->view.segment(SegmentRole::kValues);
  const auto* file_begin = static_cast<const uint8_t*>((*f)->find("big")->view.segment(SegmentRole::kValues).data) -
                           (*f)->data_offset() - (*f)->find("big")->segments[0].offset;
  CHECK(static_cast<uint64_t>(static_cast<const uint8_t*>(v.data) - file_begin) > (uint64_t{1} << 31));
  CHECK(t->segments[0].offset > (uint64_t{1} << 31));
  CHECK(std::memcmp(v.data, tail.data(), v.nbytes) == 0);
  CHECK(reinterpret_cast<uintptr_t>(v.data) % 64 == 0);
  CHECK(xxh64(v.data, v.nbytes) == t->segments[0].xxh64);
  CHECK((*f)->verify().ok());
}

TEST_CASE("slm writer peak memory stays near one tensor", "[format][large]") {
  // 16 tensors of 64 MiB (1 GiB) generated one at a time, streamed to the writer.
  const int64_t rows = 4096, cols = 4096;  // f32: 64 MiB
  const uint64_t tensor_bytes = static_cast<uint64_t>(rows * cols) * 4;
  const int n_tensors = 16;
  // Reset the high-water mark so earlier tests in this process do not count (Linux >= 4.0).
  if (FILE* f = std::fopen("/proc/self/clear_refs", "w")) {
    std::fputs("5", f);
    std::fclose(f);
  }
  const uint64_t before = peak_rss_bytes();
  test::TempDir dir;
  const auto t0 = std::chrono::steady_clock::now();
  {
    auto w = ModelFileWriter::create(dir.file("mem.slm"), ModelHeader{});
    REQUIRE(w.ok());
    for (int i = 0; i < n_tensors; ++i) {
      AlignedBuffer buf(tensor_bytes);
      auto* p = buf.as<uint32_t>();
      const uint64_t n = tensor_bytes / 4;
      for (uint64_t j = 0; j < n; ++j) p[j] = static_cast<uint32_t>(j * 2654435761u) ^ static_cast<uint32_t>(i + 1);
      EncodedMatrixView v;
      v.rows = rows;
      v.cols = cols;
      v.segments[0] = SegmentView{buf.data(), buf.size()};
      REQUIRE((*w)->add(info_of("layer." + std::to_string(i), Shape{rows, cols}), v).ok());
    }
    REQUIRE((*w)->finish().ok());
    CHECK((*w)->data_bytes() >= uint64_t{n_tensors} * tensor_bytes);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const uint64_t peak = peak_rss_bytes();
  // Under AddressSanitizer freed blocks wait in its quarantine (256 MiB by default) and shadow
  // memory adds an eighth: a looser bound (measured 325 MiB), still far below the 1 GiB written.
#if defined(__SANITIZE_ADDRESS__)
  const uint64_t limit = tensor_bytes + (uint64_t{320} << 20);
#else
  const uint64_t limit = 2 * tensor_bytes + (uint64_t{64} << 20);
#endif
  std::printf("writer memory: %d x %llu MiB in %.2f s, peak RSS %llu MiB (baseline %llu MiB, getrusage %llu MiB), "
              "limit %llu MiB\n",
              n_tensors, static_cast<unsigned long long>(tensor_bytes >> 20), secs,
              static_cast<unsigned long long>(peak >> 20), static_cast<unsigned long long>(before >> 20),
              static_cast<unsigned long long>(rusage_max_rss_bytes() >> 20), static_cast<unsigned long long>(limit >> 20));
  CHECK(peak < limit);
  // When this test runs in its own process (ctest), getrusage's lifetime peak must obey it too.
  if (before < (uint64_t{64} << 20)) CHECK(rusage_max_rss_bytes() < limit);
  auto f = ModelFile::open(dir.file("mem.slm"));
  REQUIRE(f.ok());
  CHECK((*f)->tensors().size() == static_cast<size_t>(n_tensors));
}
