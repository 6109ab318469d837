// Release manifests: one JSON document per release that lists, per device profile, the `.slm`
// file (and the delta from the previous release) with its size, SHA-256, recipe, quality and speed
// figures, format version and the minimum library version that reads it. `slm-compress release`
// writes it (and signs it); verify_manifest() is what a device or a pipeline runs before using any
// file it lists. Schema: docs/FLEET.md §7.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "slmc/fleet/signature.hpp"
#include "slmc/status.hpp"

namespace slmc {

inline constexpr char kManifestFormat[] = "slmc-release-manifest";
inline constexpr int kManifestVersion = 1;
/// A manifest larger than this is refused before it is parsed.
inline constexpr uint64_t kMaxManifestBytes = uint64_t{16} << 20;

/// One file a manifest lists (a profile's model or its delta), as verify_manifest reads it.
struct ManifestFile {
  std::string profile;    ///< the device profile it is for
  std::string role;       ///< "model" or "delta"
  std::string file;       ///< a plain file name in the manifest's directory (no '/', not "." or "..")
  uint64_t size = 0;
  std::string sha256;     ///< 64 lower-case hex digits
  std::string signature;  ///< its detached signature's file name; empty: none listed
};

struct ManifestCheck {
  std::string release;                ///< the manifest's "release" field
  std::vector<ManifestFile> files;    ///< every file listed, each checked
  bool signature_verified = false;    ///< the manifest's own signature (with a key)
  std::string key_id;
  uint64_t file_signatures_verified = 0;  ///< per-file signatures checked (with a key)
};

/// Parses the manifest at `path` (a safe input, at most kMaxManifestBytes, JSON depth and types
/// checked: kInvalidFormat naming the key) and returns the files it lists.
Result<ManifestCheck> read_manifest(const std::string& path);

/// With `key`: checks the manifest's signature (`signature_path`, default `path` + ".sig") before
/// parsing it. Then every listed file, in the manifest's directory: its size and SHA-256 (a
/// missing file: kIoError; another size or hash: kChecksumMismatch naming the file, the profile
/// and both values) and, with `key`, each per-file signature the manifest lists.
Result<ManifestCheck> verify_manifest(const std::string& path, const PublicKey* key,
                                      const std::string& signature_path = {});

/// The first library version that reads `.slm` format major.minor (for the manifest's
/// "min_library_version"); empty for a version this library does not know.
std::string min_library_version_for_format(int major, int minor);

}  // namespace slmc
