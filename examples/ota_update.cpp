// An on-device updater in a few lines: applies a .slmdelta to the installed model and swaps the
// result in. Usage: example_ota_update MODEL.slm UPDATE.slmdelta [RELEASE.pub]
//
// With RELEASE.pub (the release key's public half, docs/FLEET.md §6) the update must carry a valid
// signature (UPDATE.slmdelta.sig) by that key; it is checked before the update is used.
//
// apply_delta checks the update's checksums and that MODEL.slm is the base it was made for before
// writing anything, writes MODEL.slm.next beside it (temporary + rename) and verifies every
// checksum of the result. Only then is it renamed over MODEL.slm: a process that has the old model
// mapped keeps its (unlinked) file, and a crash at any point leaves either the old or the new model.
#include <slmc/fleet/delta.hpp>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    std::fprintf(stderr, "usage: %s MODEL.slm UPDATE.slmdelta [RELEASE.pub]\n", argv[0]);
    return 2;
  }
  const std::string model = argv[1], next = model + ".next";
  slmc::ApplyOptions options;
  if (argc == 4) {
    // A device would rather compile the 32 key bytes in: slmc::PublicKey::from_raw.
    slmc::Result<slmc::PublicKey> key = slmc::load_public_key(argv[3]);
    if (!key.ok()) {
      std::fprintf(stderr, "%s\n", key.status().to_string().c_str());
      return 3;
    }
    options.public_key = *key;
  }
  slmc::ApplyStats stats;
  const slmc::Status s = slmc::apply_delta(model, argv[2], next, options, &stats);
  if (!s.ok()) {
    // kChecksumMismatch: the update is for another base, corrupted or not signed by the key;
    // MODEL.slm is untouched.
    std::fprintf(stderr, "update refused: %s\n", s.to_string().c_str());
    return s.code() == slmc::ErrorCode::kChecksumMismatch ? 5 : 3;
  }
  if (std::rename(next.c_str(), model.c_str()) != 0) {
    std::perror("rename");
    return 1;
  }
  std::printf("updated %s: %llu bytes, %llu segments verified%s%s\n", model.c_str(),
              static_cast<unsigned long long>(stats.new_file_bytes),
              static_cast<unsigned long long>(stats.segments_verified),
              stats.signature_verified ? ", signed by key " : "", stats.signer_key_id.c_str());
  return 0;
}
