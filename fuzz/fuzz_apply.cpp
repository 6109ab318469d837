// libFuzzer target: apply_delta (the on-device updater's parser and decoder) on mutated deltas
// against a fixed valid base (fuzz_delta_models.hpp). The first byte picks the mode: 0 applies
// the bytes as they are (preamble, checksums and signatures must refuse them); 1 first repairs the
// delta's size, body xxh64 and preamble xxh64, as a forger or a buggy writer would, so mutations
// reach the op-table validator, the zstd decoder and the reconstruction checks. Nothing may
// crash, hang or allocate without bound, and a delta that applies must yield a file that loads
// with every checksum verified.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "fuzz_delta_models.hpp"
#include "slmc/fleet/delta.hpp"
#include "slmc/format/model_file.hpp"
#include "slmc/io/hash.hpp"

namespace {

const std::string& work_dir() {
  static const std::string dir = [] {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/slmc_fuzz_apply_XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    if (!slmc::fuzz::write_delta_model(tmpl + "/old.slm", false).ok()) std::abort();
    return tmpl;
  }();
  // Registered after `dir` is constructed, so it runs before dir's destructor at exit.
  static const bool cleanup_registered = [] {
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(work_dir(), ec);
    });
    return true;
  }();
  (void)cleanup_registered;
  return dir;
}

void put_u64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string& dir = work_dir();
  std::vector<uint8_t> delta(data + 1, data + size);
  if ((data[0] & 1) != 0 && delta.size() >= slmc::kDeltaPreambleBytes) {
    put_u64(delta.data() + 16, delta.size());
    put_u64(delta.data() + 112, slmc::xxh64(delta.data() + 128, delta.size() - 128));
    put_u64(delta.data() + 120, slmc::xxh64(delta.data(), 120));
  }
  const std::string delta_path = dir + "/u.slmdelta", out = dir + "/out.slm";
  std::FILE* f = std::fopen(delta_path.c_str(), "wb");
  if (!f) std::abort();
  if (!delta.empty() && std::fwrite(delta.data(), 1, delta.size(), f) != delta.size()) std::abort();
  std::fclose(f);
  ::unlink(out.c_str());
  slmc::ApplyStats stats;
  const slmc::Status s = slmc::apply_delta(dir + "/old.slm", delta_path, out, {}, &stats);
  if (s.ok()) {
    // apply verified NEW's checksums before the rename: the loader must agree.
    slmc::LoadOptions load;
    load.verify_checksums = true;
    if (!slmc::ModelFile::open(out, load).ok()) __builtin_trap();
  } else if (::access(out.c_str(), F_OK) == 0) {
    __builtin_trap();  // a failed apply left an output
  }
  return 0;
}
