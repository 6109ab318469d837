// CPU feature detection (cpuid + xgetbv on x86-64, HWCAP on aarch64) and ISA selection.
#include "slmc/cpu.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define SLMC_X86 1
#elif defined(__aarch64__)
#include <sys/auxv.h>
#define SLMC_ARM64 1
#endif

#include "dispatch.hpp"

namespace slmc {
namespace {

#if defined(SLMC_X86)
uint64_t read_xcr0() {
  uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

void detect(CpuFeatures& f) {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return;
  const unsigned max_leaf = a;
  __get_cpuid(1, &a, &b, &c, &d);
  f.sse42 = (c >> 20) & 1;
  const bool osxsave = (c >> 27) & 1;
  const bool cpu_avx = (c >> 28) & 1;
  const bool cpu_fma = (c >> 12) & 1;
  const bool cpu_f16c = (c >> 29) & 1;
  uint64_t xcr0 = osxsave ? read_xcr0() : 0;
  const bool os_ymm = (xcr0 & 0x6) == 0x6;     // XMM and YMM state
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;   // plus opmask and ZMM state
  f.avx = cpu_avx && os_ymm;
  f.fma = cpu_fma && f.avx;
  f.f16c = cpu_f16c && f.avx;
  if (max_leaf >= 7) {
    __get_cpuid_count(7, 0, &a, &b, &c, &d);
    f.avx2 = f.avx && ((b >> 5) & 1);
    f.avx512f = os_zmm && ((b >> 16) & 1);
    f.avx512bw = os_zmm && ((b >> 30) & 1);
    f.avx512vl = os_zmm && ((b >> 31) & 1);
    f.avx512vnni = os_zmm && ((c >> 11) & 1);
    __get_cpuid_count(7, 1, &a, &b, &c, &d);
    f.avx_vnni = f.avx && ((a >> 4) & 1);
  }
  unsigned ext = __get_cpuid_max(0x80000000u, nullptr);
  if (ext >= 0x80000004u) {
    char brand[49] = {};
    for (unsigned i = 0; i < 3; ++i) {
      __get_cpuid(0x80000002u + i, &a, &b, &c, &d);
      std::memcpy(brand + 16 * i, &a, 4);
      std::memcpy(brand + 16 * i + 4, &b, 4);
      std::memcpy(brand + 16 * i + 8, &c, 4);
      std::memcpy(brand + 16 * i + 12, &d, 4);
    }
    f.brand = brand;
    while (!f.brand.empty() && f.brand.back() == ' ') f.brand.pop_back();
  }
}
#elif defined(SLMC_ARM64)
void detect(CpuFeatures& f) {
  // Bit numbers from the Linux arm64 uapi hwcap.h, spelled out so old headers still build.
  const unsigned long hw = getauxval(AT_HWCAP);
  const unsigned long hw2 = getauxval(AT_HWCAP2);
  f.neon = (hw >> 1) & 1;                             // HWCAP_ASIMD
  f.fp16 = ((hw >> 9) & 1) && ((hw >> 10) & 1);       // HWCAP_FPHP, HWCAP_ASIMDHP
  f.dotprod = (hw >> 20) & 1;                         // HWCAP_ASIMDDP
  f.i8mm = (hw2 >> 13) & 1;                           // HWCAP2_I8MM
  f.brand = "aarch64";
}
#else
void detect(CpuFeatures&) {}
#endif

std::mutex g_isa_mutex;
std::optional<Isa> g_override;  // guarded by g_isa_mutex

}  // namespace

std::string CpuFeatures::to_string() const {
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(sse42, "sse4.2");
  add(avx, "avx");
  add(avx2, "avx2");
  add(fma, "fma");
  add(f16c, "f16c");
  add(avx512f, "avx512f");
  add(avx512bw, "avx512bw");
  add(avx512vl, "avx512vl");
  add(avx512vnni, "avx512vnni");
  add(avx_vnni, "avx-vnni");
  add(neon, "neon");
  add(fp16, "fp16");
  add(dotprod, "dotprod");
  add(i8mm, "i8mm");
  return s.empty() ? "none" : s;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = [] {
    CpuFeatures f;
    detect(f);
    return f;
  }();
  return features;
}

std::string_view isa_name(Isa isa) noexcept {
  const auto i = static_cast<size_t>(isa);
  return i < detail::kIsaCount ? detail::kIsas[i].name : std::string_view("invalid");
}

std::optional<Isa> isa_from_name(std::string_view name) noexcept {
  for (const detail::IsaInfo& i : detail::kIsas) {
    if (i.name == name) return i.isa;
  }
  return std::nullopt;
}

const std::vector<Isa>& compiled_isas() {
  // The list CMake wrote (slmc_kernel_isas.inc), in kIsas order: best last.
#define SLMC_DETAIL_ISA_ID(isa) detail::isa_id(#isa),
  static const std::vector<Isa> isas = [] {
    std::vector<Isa> v{SLMC_COMPILED_ISAS(SLMC_DETAIL_ISA_ID)};
    std::sort(v.begin(), v.end());
    return v;
  }();
#undef SLMC_DETAIL_ISA_ID
  return isas;
}

bool cpu_supports(Isa isa) noexcept {
  const auto i = static_cast<size_t>(isa);
  return i < detail::kIsaCount && detail::kIsas[i].supported(cpu_features());
}

std::vector<Isa> runnable_isas() {
  std::vector<Isa> v;
  for (Isa isa : compiled_isas()) {
    if (cpu_supports(isa)) v.push_back(isa);
  }
  return v;
}

namespace {
std::string valid_isa_list() {
  std::string s;
  for (Isa isa : runnable_isas()) {
    if (!s.empty()) s += ", ";
    s += isa_name(isa);
  }
  return s;
}

}  // namespace

Result<Isa> resolve_isa(const char* env) {
  if (env == nullptr || *env == '\0') return runnable_isas().back();
  std::optional<Isa> isa = isa_from_name(env);
  if (!isa) {
    return make_error(ErrorCode::kInvalidArgument, std::string("SLMC_ISA=") + env +
                                                       ": unknown ISA; valid on this CPU: " + valid_isa_list());
  }
  bool compiled = false;
  for (Isa c : compiled_isas()) compiled |= (c == *isa);
  if (!compiled) {
    return make_error(ErrorCode::kUnsupported, std::string("SLMC_ISA=") + env +
                                                   ": not compiled into this build; valid here: " + valid_isa_list());
  }
  if (!cpu_supports(*isa)) {
    return make_error(ErrorCode::kUnsupported, std::string("SLMC_ISA=") + env + ": this CPU (" +
                                                   cpu_features().to_string() +
                                                   ") lacks it; valid here: " + valid_isa_list());
  }
  return *isa;
}

Result<Isa> active_isa() {
  {
    std::lock_guard<std::mutex> lock(g_isa_mutex);
    if (g_override) return *g_override;
  }
  static const Result<Isa> from_env = resolve_isa(std::getenv("SLMC_ISA"));
  return from_env;
}

ScopedIsaOverride::ScopedIsaOverride(Isa isa) {
  SLMC_CHECK(cpu_supports(isa), "ScopedIsaOverride(%s): ISA not runnable here", std::string(isa_name(isa)).c_str());
  std::lock_guard<std::mutex> lock(g_isa_mutex);
  previous_ = g_override;
  g_override = isa;
}

ScopedIsaOverride::~ScopedIsaOverride() {
  std::lock_guard<std::mutex> lock(g_isa_mutex);
  g_override = previous_;
}

namespace detail {
Isa kernel_isa() {
  Result<Isa> isa = active_isa();
  if (isa.ok()) return *isa;
  static std::once_flag warned;
  std::call_once(warned, [&] {
    std::fprintf(stderr, "slmc: warning: %s; using %s\n", isa.status().message().c_str(),
                 std::string(isa_name(runnable_isas().back())).c_str());
  });
  return runnable_isas().back();
}
}  // namespace detail

}  // namespace slmc
