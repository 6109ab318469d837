// Internal: the kernel ISAs and picking a kernel family's function table for one.
//
// kIsas is the one table of ISAs: name, the ISA whose kernels serve when a family has none of its
// own (fallback), and what the CPU needs to run it. Adding an ISA = an enum value in slmc/cpu.hpp,
// a row here, its flags in cmake/SlmcIsa.cmake, and kernel files kernels/<family>/<family>_<isa>.cpp
// for the families it speeds up (docs/KERNELS.md, "How to add an ISA"). Nothing else names ISAs.
//
// Each family in kernels/<family>/ declares a table struct of function pointers in
// kernels/<family>/<family>.hpp and one accessor per ISA, `const Table& <family>_kernels_<isa>()`,
// defined in that ISA's file. CMake writes slmc_kernel_isas.inc (build tree) listing, per family,
// the compiled ISAs that have a file; SLMC_KERNEL_TABLES(Table, family) turns that list into an
// IsaTables, so an ISA file that exists is registered and one that does not falls back.
#pragma once

#include <array>
#include <cstddef>
#include <initializer_list>
#include <type_traits>
#include <string_view>
#include <utility>

#include "slmc/check.hpp"
#include "slmc/cpu.hpp"
#include "slmc_kernel_isas.inc"

namespace slmc::detail {

struct IsaInfo {
  Isa isa;
  std::string_view name;  ///< SLMC_ISA value, report and benchmark spelling
  Isa fallback;           ///< serves when a family has no kernels for `isa` (scalar: itself)
  bool (*supported)(const CpuFeatures&);
};

inline constexpr IsaInfo kIsas[] = {
    {Isa::kScalar, "scalar", Isa::kScalar, [](const CpuFeatures&) { return true; }},
    {Isa::kAvx2, "avx2", Isa::kScalar, [](const CpuFeatures& f) { return f.avx2 && f.fma && f.f16c; }},
    {Isa::kNeon, "neon", Isa::kScalar, [](const CpuFeatures& f) { return f.neon; }},
    {Isa::kNeonDotprod, "neon_dotprod", Isa::kNeon, [](const CpuFeatures& f) { return f.neon && f.dotprod; }},
    {Isa::kAvxVnni, "avxvnni", Isa::kAvx2,
     [](const CpuFeatures& f) { return f.avx2 && f.fma && f.f16c && f.avx_vnni; }},
    // Not a fallback of avxvnni: AVX-512 VNNI CPUs without AVX-VNNI exist (Ice Lake, Cascade Lake).
    {Isa::kAvx512, "avx512", Isa::kAvx2,
     [](const CpuFeatures& f) {
       return f.avx2 && f.fma && f.f16c && f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni;
     }},
};
inline constexpr size_t kIsaCount = sizeof(kIsas) / sizeof(kIsas[0]);

constexpr bool isa_table_is_indexed() {
  for (size_t i = 0; i < kIsaCount; ++i) {
    if (static_cast<size_t>(kIsas[i].isa) != i) return false;
    if (static_cast<size_t>(kIsas[i].fallback) > i || (i > 0 && static_cast<size_t>(kIsas[i].fallback) == i)) {
      return false;  // a fallback is an earlier ISA, so every chain ends at scalar
    }
  }
  return true;
}
static_assert(isa_table_is_indexed(), "kIsas: row i is Isa value i, and every fallback is an earlier row");

constexpr const IsaInfo& isa_info(Isa isa) { return kIsas[static_cast<size_t>(isa)]; }

inline void no_isa_has_this_name() {}  // not constexpr: reaching it in a constant expression fails

/// The Isa named `name` (the spelling of kIsas). In a constant expression (kernel registration) an
/// unknown name does not compile; at run time it gives kScalar.
constexpr Isa isa_id(std::string_view name) {
  for (const IsaInfo& i : kIsas) {
    if (i.name == name) return i.isa;
  }
  no_isa_has_this_name();
  return Isa::kScalar;
}

/// Whether kernels compiled for `isa` may use what `base` guarantees: `base` is on the fallback
/// chain of `isa` (every ISA implies scalar; neon_dotprod implies neon).
constexpr bool isa_implies(Isa isa, Isa base) {
  for (;;) {
    if (isa == base) return true;
    if (isa == Isa::kScalar) return false;
    isa = isa_info(isa).fallback;
  }
}

/// The ISA kernels should use now: active_isa(), or (once warned on stderr) the best runnable ISA
/// when SLMC_ISA is invalid. APIs that return Status report an invalid SLMC_ISA themselves.
Isa kernel_isa();

/// A kernel family's tables by ISA. get(isa) returns the family's table for `isa`, or for the
/// first ISA on its fallback chain that has one; every family has a scalar table.
template <typename Table>
class IsaTables {
 public:
  IsaTables(std::initializer_list<std::pair<Isa, const Table*>> entries) {
    for (const auto& e : entries) tables_[static_cast<size_t>(e.first)] = e.second;
    SLMC_CHECK(tables_[0] != nullptr, "IsaTables: a kernel family without a scalar table");
  }

  const Table& get(Isa isa) const {
    while (tables_[static_cast<size_t>(isa)] == nullptr) isa = isa_info(isa).fallback;
    return *tables_[static_cast<size_t>(isa)];
  }
  /// The table registered for `isa` itself, or null.
  const Table* own(Isa isa) const { return tables_[static_cast<size_t>(isa)]; }

 private:
  std::array<const Table*, kIsaCount> tables_{};
};

}  // namespace slmc::detail

// {Isa, &<family>_kernels_<isa>()} for every compiled ISA that has kernels/<family>/<family>_<isa>.cpp.
#define SLMC_DETAIL_KERNEL_ENTRY(family, isa) \
  {std::integral_constant<::slmc::Isa, ::slmc::detail::isa_id(#isa)>::value, &family##_kernels_##isa()},
#define SLMC_KERNEL_TABLES(Table, family) \
  ::slmc::detail::IsaTables<Table> { SLMC_KERNELS_##family(SLMC_DETAIL_KERNEL_ENTRY) }
