// An on-device updater in a few lines: applies a .slmdelta to the installed model and swaps the
// result in. Usage: example_ota_update MODEL.slm UPDATE.slmdelta
//
// apply_delta checks the update's checksums and that MODEL.slm is the base it was made for before
// writing anything, writes MODEL.slm.next beside it (temporary + rename) and verifies every
// checksum of the result. Only then is it renamed over MODEL.slm: a process that has the old model
// mapped keeps its (unlinked) file, and a crash at any point leaves either the old or the new model.
#include <slmc/fleet/delta.hpp>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s MODEL.slm UPDATE.slmdelta\n", argv[0]);
    return 2;
  }
  const std::string model = argv[1], next = model + ".next";
  slmc::ApplyStats stats;
  const slmc::Status s = slmc::apply_delta(model, argv[2], next, {}, &stats);
  if (!s.ok()) {
    // kChecksumMismatch: the update is for another base, or corrupted; MODEL.slm is untouched.
    std::fprintf(stderr, "update refused: %s\n", s.to_string().c_str());
    return s.code() == slmc::ErrorCode::kChecksumMismatch ? 5 : 3;
  }
  if (std::rename(next.c_str(), model.c_str()) != 0) {
    std::perror("rename");
    return 1;
  }
  std::printf("updated %s: %llu bytes, %llu segments verified\n", model.c_str(),
              static_cast<unsigned long long>(stats.new_file_bytes),
              static_cast<unsigned long long>(stats.segments_verified));
  return 0;
}
