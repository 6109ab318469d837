// CPU feature detection and kernel ISA selection.
//
// Kernels are compiled once per ISA (object libraries slmc_kernels_<isa>) and picked at run time.
// The choice is resolved once and cached: the best ISA that is both compiled in and supported by
// this CPU, unless the environment variable SLMC_ISA=scalar|avx2|avxvnni|avx512|neon|neon_dotprod forces one.
// Tests and benchmarks force a path with ScopedIsaOverride to run every compiled ISA.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "slmc/status.hpp"

namespace slmc {

struct CpuFeatures {
  // x86-64
  bool sse42 = false;
  bool avx = false;     ///< AVX with OS support for YMM state (XGETBV)
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;   ///< AVX-512 Foundation with OS support for ZMM and opmask state
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512vnni = false;
  bool avx_vnni = false;   ///< AVX-VNNI: VEX-encoded vpdpbusd on YMM (no AVX-512 needed)
  // aarch64
  bool neon = false;     ///< HWCAP_ASIMD
  bool dotprod = false;  ///< HWCAP_ASIMDDP (sdot/udot)
  bool i8mm = false;     ///< HWCAP2_I8MM
  bool fp16 = false;     ///< HWCAP_FPHP + HWCAP_ASIMDHP

  std::string brand;  ///< CPU model string where the platform exposes one
  /// "avx2 fma f16c" — the supported features, space separated.
  std::string to_string() const;
};

/// Features of the CPU this process runs on (detected once).
const CpuFeatures& cpu_features();

/// Kernel instruction sets. Values are stable (reports, benchmark names).
enum class Isa : uint8_t {
  kScalar = 0,
  kAvx2 = 1,         ///< AVX2 + FMA + F16C
  kNeon = 2,         ///< AArch64 Advanced SIMD
  kNeonDotprod = 3,  ///< AArch64 Advanced SIMD + dot product (sdot/udot)
  kAvxVnni = 4,      ///< AVX2 + FMA + F16C + AVX-VNNI (vpdpbusd on YMM)
  kAvx512 = 5,       ///< AVX2 + FMA + F16C + AVX-512 F/BW/VL/VNNI
};

std::string_view isa_name(Isa isa) noexcept;
std::optional<Isa> isa_from_name(std::string_view name) noexcept;

/// ISAs whose kernels are compiled into this build (scalar always), best last.
const std::vector<Isa>& compiled_isas();
/// Whether this CPU can run kernels of `isa`.
bool cpu_supports(Isa isa) noexcept;
/// Compiled ISAs this CPU supports, best last. Tests loop over this list.
std::vector<Isa> runnable_isas();

/// Parses an SLMC_ISA value: the named ISA if it is compiled in and this CPU runs it; an empty
/// or null value means the best runnable ISA. Errors list the valid choices.
Result<Isa> resolve_isa(const char* name);

/// The ISA kernels use: the override if one is active, else SLMC_ISA from the environment, else
/// the best runnable ISA. An error when SLMC_ISA names an unknown ISA, one not compiled in, or one
/// this CPU lacks; the message lists the valid choices.
Result<Isa> active_isa();

/// Forces kernels onto one ISA for the lifetime of the object (tests, benchmarks). Not thread-safe
/// with respect to kernels running concurrently on other threads. `isa` must be runnable.
class ScopedIsaOverride {
 public:
  explicit ScopedIsaOverride(Isa isa);
  ~ScopedIsaOverride();
  ScopedIsaOverride(const ScopedIsaOverride&) = delete;
  ScopedIsaOverride& operator=(const ScopedIsaOverride&) = delete;

 private:
  std::optional<Isa> previous_;
};

}  // namespace slmc
