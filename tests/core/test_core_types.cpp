// Status / Result, the dtype traits table, shapes and tensor views, CPU detection and ISA choice.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>
#include <set>
#include <string>

#include "dispatch.hpp"
#include "slmc/slmc.hpp"

using namespace slmc;

namespace {
Result<int> parse_positive(int x) {
  if (x <= 0) return make_error(ErrorCode::kInvalidArgument, "x = " + std::to_string(x) + " is not positive");
  return x;
}
Result<int> doubled(int x) {
  SLMC_ASSIGN_OR_RETURN(int v, parse_positive(x));
  return 2 * v;
}
Status check_all(int a, int b) {
  SLMC_RETURN_IF_ERROR(parse_positive(a).status());
  SLMC_RETURN_IF_ERROR(parse_positive(b).status());
  return Status::ok_status();
}
}  // namespace

TEST_CASE("Status and Result carry codes and messages", "[status]") {
  REQUIRE(doubled(21).ok());
  REQUIRE(*doubled(21) == 42);
  Result<int> bad = doubled(-3);
  REQUIRE_FALSE(bad.ok());
  REQUIRE(bad.status().code() == ErrorCode::kInvalidArgument);
  REQUIRE(bad.status().to_string() == "invalid_argument: x = -3 is not positive");
  REQUIRE(check_all(1, 2).ok());
  Status s = check_all(1, 0).with_context("model.bin");
  REQUIRE(s.message() == "model.bin: x = 0 is not positive");
  // Stable numbering: these values are part of reports and must never change.
  STATIC_REQUIRE(static_cast<int>(ErrorCode::kInvalidFormat) == 3);
  STATIC_REQUIRE(static_cast<int>(ErrorCode::kChecksumMismatch) == 6);
  STATIC_REQUIRE(static_cast<int>(ErrorCode::kBudgetExceeded) == 11);
  for (int c = 0; c <= 11; ++c) REQUIRE(std::string(error_code_name(static_cast<ErrorCode>(c))) != "unknown");
}

TEST_CASE("dtype traits table is consistent and names round-trip", "[dtype]") {
  std::set<int> values;
  std::set<std::string_view> names;
  for (const DTypeTraits& t : kDTypeTraits) {
    REQUIRE(values.insert(static_cast<int>(t.dtype)).second);
    REQUIRE(names.insert(t.name).second);
    REQUIRE(dtype_from_name(t.name) == t.dtype);
    REQUIRE(is_valid_dtype(static_cast<uint32_t>(t.dtype)));
    // bytes per block agree with bits per element, plus the block scales for GGUF block types.
    REQUIRE(t.block_bytes * 8 >= t.bits * t.block_size);
  }
  REQUIRE(dtype_traits(DType::kQ4_0).block_bytes == 18);
  REQUIRE(dtype_traits(DType::kQ8_0).block_bytes == 34);
  REQUIRE_FALSE(is_valid_dtype(200));
  REQUIRE_FALSE(is_valid_dtype(1000));
  REQUIRE(dtype_name(static_cast<DType>(99)) == "invalid");
}

TEST_CASE("shapes validate rank, sign and overflow", "[tensor]") {
  REQUIRE(Shape{64, 172}.validate().ok());
  REQUIRE(Shape{64, 172}.numel() == 64 * 172);
  REQUIRE(Shape{}.numel() == 1);
  REQUIRE(Shape{0, 5}.numel() == 0);
  REQUIRE(Shape{2, 3, 4}.rows() == 6);
  REQUIRE(Shape{2, 3, 4}.cols() == 4);
  REQUIRE(Shape{5}.rows() == 1);
  REQUIRE(Shape{-1, 4}.validate().code() == ErrorCode::kOutOfRange);
  REQUIRE(Shape{int64_t{1} << 40, int64_t{1} << 20}.validate().code() == ErrorCode::kOutOfRange);
  REQUIRE(Shape{INT64_MAX, 2}.validate().code() == ErrorCode::kOutOfRange);
  REQUIRE(Shape{1, 1, 1, 1, 1, 1, 1, 1, 1}.validate().code() == ErrorCode::kOutOfRange);
  REQUIRE(Shape{0, INT64_MAX}.validate().ok());
}

TEST_CASE("tensor views check byte sizes against shape and dtype", "[tensor]") {
  float data[6] = {};
  TensorView v{"w", Shape{2, 3}, DType::kF32, data, sizeof(data)};
  REQUIRE(v.validate().ok());
  v.nbytes = 20;
  Status s = v.validate();
  REQUIRE(s.code() == ErrorCode::kInvalidFormat);
  REQUIRE(s.message().find("'w'") != std::string::npos);
  REQUIRE(s.message().find("24") != std::string::npos);
  REQUIRE(*dtype_byte_size(DType::kQ4_0, 64) == 36);
  REQUIRE(dtype_byte_size(DType::kQ4_0, 33).status().code() == ErrorCode::kInvalidArgument);
  REQUIRE(*dtype_byte_size(DType::kI4, 64) == 32);
  REQUIRE(dtype_byte_size(static_cast<DType>(77), 4).status().code() == ErrorCode::kUnsupported);
}

TEST_CASE("AlignedBuffer::allocate reports running out of memory as a Status", "[buffer]") {
  for (size_t n : {size_t{0}, size_t{1}, size_t{63}, size_t{4096}, size_t{3} << 20}) {
    Result<AlignedBuffer> b = AlignedBuffer::allocate(n, "x");
    REQUIRE(b.ok());
    REQUIRE(b->size() == n);
    if (n > 0) {
      REQUIRE(reinterpret_cast<uintptr_t>(b->data()) % kBufferAlignment == 0);
      for (size_t i = 0; i < n; i += 61) REQUIRE(b->data()[i] == 0);  // zero-filled
    }
  }
  // More than any address space: refused with the size and the caller's words, never thrown.
  for (size_t n : {size_t{1} << 60, SIZE_MAX, SIZE_MAX - 10}) {
    Result<AlignedBuffer> b = AlignedBuffer::allocate(n, "tensor 'w': codes");
    REQUIRE(b.status().code() == ErrorCode::kOutOfMemory);
    REQUIRE(b.status().message().find(std::to_string(n)) != std::string::npos);
    REQUIRE(b.status().message().find("tensor 'w': codes") != std::string::npos);
  }
  REQUIRE_THROWS_AS(AlignedBuffer(size_t{1} << 60), std::bad_alloc);
  const char text[] = "seventeen bytes!";
  Result<AlignedBuffer> c = AlignedBuffer::copy_of(text, sizeof(text));
  REQUIRE(c.ok());
  REQUIRE(std::memcmp(c->data(), text, sizeof(text)) == 0);
}

TEST_CASE("CPU features and ISA selection", "[cpu]") {
  const CpuFeatures& f = cpu_features();
  REQUIRE_FALSE(f.to_string().empty());
  REQUIRE(compiled_isas().front() == Isa::kScalar);
  REQUIRE(cpu_supports(Isa::kScalar));
  std::vector<Isa> runnable = runnable_isas();
  REQUIRE_FALSE(runnable.empty());
#if defined(__x86_64__)
  REQUIRE(cpu_supports(Isa::kAvx2) == (f.avx2 && f.fma && f.f16c));
  REQUIRE_FALSE(cpu_supports(Isa::kNeon));
#endif
  for (Isa isa : runnable) {
    REQUIRE(isa_from_name(isa_name(isa)) == isa);
    REQUIRE(*resolve_isa(std::string(isa_name(isa)).c_str()) == isa);
    ScopedIsaOverride force(isa);
    REQUIRE(*active_isa() == isa);
  }
  REQUIRE(*resolve_isa(nullptr) == runnable.back());
  REQUIRE(*resolve_isa("") == runnable.back());
  Result<Isa> bad = resolve_isa("sve2");
  REQUIRE(bad.status().code() == ErrorCode::kInvalidArgument);
  REQUIRE(bad.status().message().find("scalar") != std::string::npos);  // lists valid choices
#if defined(__x86_64__)
  Result<Isa> absent = resolve_isa("neon");
  REQUIRE(absent.status().code() == ErrorCode::kUnsupported);
#endif
}

TEST_CASE("ISA table: one row per ISA, fallback chains, registration from the kernel files", "[cpu]") {
  using namespace slmc::detail;
  for (const IsaInfo& i : kIsas) {
    REQUIRE(isa_name(i.isa) == i.name);
    REQUIRE(isa_from_name(i.name) == i.isa);
    REQUIRE(isa_implies(i.isa, Isa::kScalar));  // every chain ends at scalar
    REQUIRE(isa_implies(i.isa, i.isa));
  }
  REQUIRE(isa_implies(Isa::kNeonDotprod, Isa::kNeon));
  REQUIRE_FALSE(isa_implies(Isa::kNeon, Isa::kNeonDotprod));
  REQUIRE_FALSE(isa_implies(Isa::kAvx2, Isa::kNeon));
  REQUIRE_FALSE(isa_implies(Isa::kScalar, Isa::kAvx2));
  REQUIRE(isa_name(static_cast<Isa>(kIsaCount)) == "invalid");
  REQUIRE_FALSE(cpu_supports(static_cast<Isa>(kIsaCount)));

  struct Fake {
    int id;
  };
  const Fake scalar{0}, neon{2};
  const IsaTables<Fake> tables{{Isa::kScalar, &scalar}, {Isa::kNeon, &neon}};
  REQUIRE(tables.get(Isa::kNeonDotprod).id == 2);  // no table of its own: its fallback's
  REQUIRE(tables.get(Isa::kNeon).id == 2);
  REQUIRE(tables.get(Isa::kAvx2).id == 0);
  REQUIRE(tables.own(Isa::kNeonDotprod) == nullptr);

  // Every compiled ISA with a file in kernels/linear/ must be registered as itself (CMake's
  // slmc_kernel_isas.inc), not served by its fallback; one without (an ISA that so far brings only
  // other families, e.g. kernels/ops/) is served by its fallback chain.
#define SLMC_TEST_LINEAR_FILE(family, isa) std::string(#isa),
  const std::vector<std::string> linear_files{SLMC_KERNELS_linear(SLMC_TEST_LINEAR_FILE)};
#undef SLMC_TEST_LINEAR_FILE
  for (Isa isa : runnable_isas()) {
    ScopedIsaOverride force(isa);
    const std::string name(isa_name(isa));
    if (std::find(linear_files.begin(), linear_files.end(), name) != linear_files.end()) {
      REQUIRE(std::string(linear_kernel_isa()) == name);
    } else {
      REQUIRE(isa_implies(isa, *isa_from_name(linear_kernel_isa())));
    }
  }
}

TEST_CASE("parallel_for covers the range once, in chunks of the grain", "[parallel]") {
  for (int threads : {1, 2, 3}) {
    for (int64_t n : {0, 1, 7, 64, 1000}) {
      // Catch2 assertions are not thread-safe: record inside the parallel region, check after.
      std::vector<int> hits(static_cast<size_t>(n), 0);
      std::vector<int> misaligned(static_cast<size_t>(n), 0);
      parallel_for(n, 8, threads, [&](int64_t b, int64_t e) {
        if (b % 8 != 0) misaligned[static_cast<size_t>(b)] = 1;
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)] += 1;
      });
      for (int h : hits) REQUIRE(h == 1);
      for (int m : misaligned) REQUIRE(m == 0);
    }
  }
}
