// Release manifests (include/slmc/fleet/manifest.hpp; schema in docs/FLEET.md §7).
#include "slmc/fleet/manifest.hpp"

#include <nlohmann/json.hpp>

#include "slmc/io/safe_input.hpp"
#include "io/bytes.hpp"

namespace slmc {
namespace {

using io_detail::to_hex;

using Json = nlohmann::json;

std::string dir_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

bool is_sha256_hex(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

/// A plain name inside the manifest's directory: a manifest cannot make verify read elsewhere.
bool is_plain_name(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos && s.find('\0') == std::string::npos;
}

/// One listed file from `j` (an object with file, size, sha256 and an optional signature).
Result<ManifestFile> parse_file(const Json& j, const std::string& where, const std::string& profile,
                                const std::string& role) {
  auto bad = [&where](const std::string& m) { return make_error(ErrorCode::kInvalidFormat, where + ": " + m); };
  if (!j.is_object()) return bad("must be an object");
  ManifestFile f;
  f.profile = profile;
  f.role = role;
  auto file = j.find("file");
  if (file == j.end() || !file->is_string() || !is_plain_name(file->get<std::string>())) {
    return bad("\"file\" must be a file name without a directory");
  }
  f.file = file->get<std::string>();
  auto size = j.find("size");
  if (size == j.end() || !size->is_number_unsigned()) return bad("\"size\" must be a non-negative integer");
  f.size = size->get<uint64_t>();
  auto sha = j.find("sha256");
  if (sha == j.end() || !sha->is_string() || !is_sha256_hex(sha->get<std::string>())) {
    return bad("\"sha256\" must be 64 lower-case hex digits");
  }
  f.sha256 = sha->get<std::string>();
  if (auto sig = j.find("signature"); sig != j.end() && !sig->is_null()) {
    if (!sig->is_string() || !is_plain_name(sig->get<std::string>())) {
      return bad("\"signature\" must be null or a file name without a directory");
    }
    f.signature = sig->get<std::string>();
  }
  return f;
}

}  // namespace

std::string min_library_version_for_format(int major, int minor) {
  // slmc 0.1.0 introduced format 1.0 and 1.1 (the tokenizer), 0.2.0 format 1.2 (nl4); later
  // versions add rows here.
  if (major == 1 && (minor == 0 || minor == 1)) return "0.1.0";
  if (major == 1 && minor == 2) return "0.2.0";
  return {};
}

namespace {

/// The manifest in `text` (read from `path`).
Result<ManifestCheck> parse_manifest(const std::string& text, const std::string& path) {
  SLMC_RETURN_IF_ERROR(check_json_depth(text, path));
  auto bad = [&path](const std::string& m) { return make_error(ErrorCode::kInvalidFormat, path + ": " + m); };
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return bad("not valid JSON");
  if (!j.is_object()) return bad("a manifest is a JSON object");
  auto format = j.find("format");
  if (format == j.end() || !format->is_string() || *format != kManifestFormat) {
    return bad(std::string("\"format\" must be \"") + kManifestFormat + "\"");
  }
  auto version = j.find("version");
  if (version == j.end() || !version->is_number_integer()) return bad("\"version\" must be an integer");
  if (version->get<int64_t>() != kManifestVersion) {
    return make_error(ErrorCode::kUnsupported, path + ": manifest version " + std::to_string(version->get<int64_t>()) +
                                                   " is not supported (this reader: " +
                                                   std::to_string(kManifestVersion) + ")");
  }
  ManifestCheck out;
  if (auto r = j.find("release"); r != j.end()) {
    if (!r->is_string()) return bad("\"release\" must be a string");
    out.release = r->get<std::string>();
  }
  auto profiles = j.find("profiles");
  if (profiles == j.end() || !profiles->is_array()) return bad("\"profiles\" must be an array");
  for (size_t i = 0; i < profiles->size(); ++i) {
    const Json& p = (*profiles)[i];
    const std::string where = path + ": profiles[" + std::to_string(i) + "]";
    if (!p.is_object()) return make_error(ErrorCode::kInvalidFormat, where + ": must be an object");
    auto name = p.find("profile");
    if (name == p.end() || !name->is_string() || name->get<std::string>().empty()) {
      return make_error(ErrorCode::kInvalidFormat, where + ": \"profile\" must be a non-empty string");
    }
    const std::string profile = name->get<std::string>();
    auto model = p.find("model");
    if (model == p.end()) return make_error(ErrorCode::kInvalidFormat, where + ": \"model\" is missing");
    SLMC_ASSIGN_OR_RETURN(ManifestFile mf, parse_file(*model, where + ".model", profile, "model"));
    out.files.push_back(std::move(mf));
    if (auto delta = p.find("delta"); delta != p.end() && !delta->is_null()) {
      SLMC_ASSIGN_OR_RETURN(ManifestFile df, parse_file(*delta, where + ".delta", profile, "delta"));
      out.files.push_back(std::move(df));
    }
  }
  return out;
}

}  // namespace

Result<ManifestCheck> read_manifest(const std::string& path) {
  SLMC_ASSIGN_OR_RETURN(std::string text, read_input_file(path, kMaxManifestBytes));
  return parse_manifest(text, path);
}

Result<ManifestCheck> verify_manifest(const std::string& path, const PublicKey* key,
                                      const std::string& signature_path) {
  // Read once: the bytes whose signature is checked are the bytes parsed.
  SLMC_ASSIGN_OR_RETURN(std::string text, read_input_file(path, kMaxManifestBytes));
  std::string key_id;
  if (key != nullptr) {
    // The manifest's signature before a byte of it is parsed.
    Sha256Stream sha;
    sha.update(text.data(), text.size());
    const std::string sig = signature_path.empty() ? default_signature_path(path) : signature_path;
    auto info = check_signature(sig, *key, text.size(), sha.digest());
    if (!info.ok()) return info.status().code() == ErrorCode::kChecksumMismatch ? info.status().with_context(path)
                                                                                 : info.status();
    key_id = info->key_id;
  }
  SLMC_ASSIGN_OR_RETURN(ManifestCheck check, parse_manifest(text, path));
  check.signature_verified = key != nullptr;
  check.key_id = key_id;
  const std::string dir = dir_of(path);
  for (const ManifestFile& f : check.files) {
    const std::string file_path = dir + "/" + f.file;
    const std::string what = path + ": profile '" + f.profile + "' " + f.role + " " + f.file;
    uint64_t size = 0;
    auto digest = sha256_of_file(file_path, &size);
    if (!digest.ok()) return digest.status().with_context(what);
    if (size != f.size) {
      return make_error(ErrorCode::kChecksumMismatch, what + ": " + std::to_string(size) +
                                                          " bytes, the manifest says " + std::to_string(f.size));
    }
    const std::string hex = to_hex(digest->data(), digest->size());
    if (hex != f.sha256) {
      return make_error(ErrorCode::kChecksumMismatch, what + ": SHA-256 " + hex + ", the manifest says " + f.sha256);
    }
    if (key != nullptr && !f.signature.empty()) {
      auto sig = check_signature(dir + "/" + f.signature, *key, size, *digest);
      if (!sig.ok()) return sig.status().with_context(what);
      ++check.file_signatures_verified;
    }
  }
  return check;
}

}  // namespace slmc
