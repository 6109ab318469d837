// slm-compress verify: structure and checksums; with --source, recompute every tensor's error
// against the original weights and compare it with what the file records.
#include <cmath>
#include <iostream>
#include <optional>

#include "commands.hpp"
#include "common.hpp"
#include "slmc/fleet/manifest.hpp"
#include "slmc/fleet/signature.hpp"
#include "slmc/format/model_file.hpp"
#include "slmc/io/input_file.hpp"
#include "slmc/io/model_source.hpp"
#include "slmc/quant/error_stats.hpp"

namespace slmc::cli {
namespace {

struct VerifyArgs {
  std::string path, source, pubkey, sig;
  bool json = false;
};

// The compressors sum their statistics in float blocks, verify in double: they agree to about
// 1e-5 relative. 1e-4 leaves room for that and still catches any real mismatch (a different
// source or tampered statistics differ by orders of magnitude more).
bool close_enough(double recorded, double recomputed) {
  if (std::isinf(recorded) && std::isinf(recomputed)) return true;
  return std::fabs(recorded - recomputed) <= 1e-4 * std::max(std::fabs(recorded), std::fabs(recomputed)) + 1e-12;
}

/// The file's first 8 bytes (empty when shorter or unreadable: the loaders report why).
std::string magic_of(const std::string& path) {
  auto f = InputFile::open(path);
  if (!f.ok() || (*f)->size() < 8) return {};
  auto head = (*f)->read_string(0, 8);
  return head.ok() ? *head : std::string();
}

/// A release manifest: JSON text (its first non-blank byte is '{').
bool looks_like_manifest(const std::string& path) {
  auto f = InputFile::open(path);
  if (!f.ok()) return false;
  auto head = (*f)->read_string(0, std::min<uint64_t>((*f)->size(), 64));
  if (!head.ok()) return false;
  const size_t i = head->find_first_not_of(" \t\r\n");
  return i != std::string::npos && (*head)[i] == '{';
}

/// verify MANIFEST [--pubkey PUB]: the manifest's signature (with a key), then every file it lists.
int run_verify_manifest(const VerifyArgs& a) {
  std::optional<PublicKey> key;
  if (!a.pubkey.empty()) {
    auto k = load_public_key(a.pubkey);
    if (!k.ok()) return fail(k.status());
    key = *k;
  }
  auto check = verify_manifest(a.path, key ? &*key : nullptr, a.sig);
  if (!check.ok()) {
    if (a.json) {
      Json j{{"path", a.path}, {"kind", "manifest"}, {"ok", false}, {"error", check.status().message()}};
      std::cout << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
    }
    return fail(check.status());
  }
  if (a.json) {
    Json files = Json::array();
    for (const ManifestFile& f : check->files) {
      files.push_back({{"profile", f.profile}, {"role", f.role}, {"file", f.file}, {"size", f.size},
                       {"sha256", f.sha256}, {"signature", f.signature.empty() ? Json(nullptr) : Json(f.signature)}});
    }
    Json j{{"path", a.path},
           {"kind", "manifest"},
           {"ok", true},
           {"release", check->release},
           {"signature_verified", check->signature_verified},
           {"key_id", check->signature_verified ? Json(check->key_id) : Json(nullptr)},
           {"file_signatures_verified", check->file_signatures_verified},
           {"files", files}};
    std::cout << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  } else {
    std::cout << terminal_safe(a.path) << ": release manifest '" << terminal_safe(check->release) << "' ok: "
              << check->files.size() << " files, sizes and SHA-256 match";
    if (check->signature_verified) {
      std::cout << "; signed by key " << check->key_id << " (" << check->file_signatures_verified
                << " file signatures verified)";
    } else {
      std::cout << "; signature not checked (no --pubkey)";
    }
    std::cout << "\n";
  }
  return kExitOk;
}

int run_verify(const VerifyArgs& a) {
  Json j;
  j["path"] = a.path;
  if (!a.sig.empty() && a.pubkey.empty()) return fail_usage("--sig needs --pubkey (the key to check it with)");
  if (looks_like_manifest(a.path)) return run_verify_manifest(a);
  // With a key, the signature comes first: nothing of the file is parsed before it holds.
  if (!a.pubkey.empty()) {
    auto key = load_public_key(a.pubkey);
    if (!key.ok()) return fail(key.status());
    const std::string sig = a.sig.empty() ? default_signature_path(a.path) : a.sig;
    auto info = verify_file_signature(a.path, *key, sig);
    if (!info.ok()) {
      if (a.json) {
        j["ok"] = false;
        j["signature"] = {{"ok", false}, {"path", sig}, {"error", info.status().message()}};
        std::cout << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
      }
      return fail(info.status());
    }
    j["signature"] = {{"ok", true},          {"path", sig},           {"key_id", info->key_id},
                      {"kind", signed_kind_name(info->kind)}, {"sha256", info->sha256}};
    if (!a.json) {
      std::cout << terminal_safe(a.path) << ": signature ok (" << terminal_safe(sig) << ", key " << info->key_id
                << ", sha256 " << info->sha256 << ")\n";
    }
    if (magic_of(a.path) != "SLMCFILE") {
      // A delta's structure is checked against its base by apply.
      j["ok"] = true;
      if (a.json) std::cout << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
      return kExitOk;
    }
  }
  auto file = ModelFile::open(a.path);
  if (!file.ok()) {
    if (a.json) {
      j["ok"] = false;
      j["structure"] = {{"ok", false}, {"error", file.status().message()}};
      std::cout << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
    }
    return fail(file.status());
  }
  j["structure"] = {{"ok", true}};
  Status checksums = (*file)->verify();
  j["checksums"] = {{"ok", checksums.ok()}};
  if (!checksums.ok()) j["checksums"]["error"] = checksums.message();
  std::vector<std::string> mismatches;
  size_t compared = 0;
  if (!a.source.empty() && checksums.ok()) {
    auto source = open_model(a.source);
    if (!source.ok()) return fail(source.status());
    for (const StoredTensor& t : (*file)->tensors()) {
      const int64_t src_index = (*source)->index_of(t.name);
      const SourceTensor* src = src_index < 0 ? nullptr : &(*source)->tensors()[static_cast<size_t>(src_index)];
      if (!src) {
        mismatches.push_back("tensor '" + t.name + "' is not in the source " + a.source);
        continue;
      }
      if (src->shape != t.shape) {
        mismatches.push_back("tensor '" + t.name + "': shape " + t.shape.to_string() + " in the file, " +
                             src->shape.to_string() + " in the source");
        continue;
      }
      auto original = (*source)->load_f32(static_cast<size_t>(src_index));  // one tensor at a time
      if (!original.ok()) return fail(original.status().with_context(a.source));
      const int64_t n = t.shape.numel();
      std::vector<float> decoded(static_cast<size_t>(n));
      Status s = decode(t.view, decoded.data());
      if (!s.ok()) return fail(s.with_context(a.path + ": tensor '" + t.name + "'"));
      ErrorStats re = compute_error_stats(original->as<float>(), decoded.data(), n,
                                          t.view.total_bytes());
      ++compared;
      if (!close_enough(t.stats.rel_error, re.rel_error) || !close_enough(t.stats.max_abs_error, re.max_abs_error)) {
        char buf[256];
        std::snprintf(buf, sizeof(buf), "tensor '%s': recorded rel_error %.9g, max_abs_error %.9g; recomputed %.9g, %.9g",
                      t.name.c_str(), t.stats.rel_error, t.stats.max_abs_error, re.rel_error, re.max_abs_error);
        mismatches.push_back(buf);
      }
    }
    j["source"] = {{"path", a.source}, {"tensors_compared", compared}, {"ok", mismatches.empty()},
                   {"mismatches", mismatches}};
  }
  const bool ok = checksums.ok() && mismatches.empty();
  j["ok"] = ok;
  if (a.json) {
    std::cout << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  } else {
    std::cout << terminal_safe(a.path) << ": structure ok, " << (*file)->tensors().size() << " tensors\n";
    std::cout << "checksums: " << (checksums.ok() ? "ok" : "FAILED: " + terminal_safe(checksums.message())) << "\n";
    if (!a.source.empty() && checksums.ok()) {
      std::cout << "statistics against " << a.source << ": "
                << (mismatches.empty() ? "ok (" + std::to_string(compared) + " tensors)" : "FAILED") << "\n";
      for (const auto& m : mismatches) std::cout << "  " << terminal_safe(m) << "\n";
    }
  }
  if (!checksums.ok()) {
    std::cerr << "slm-compress: verification failed: checksum mismatch: " << checksums.message() << "\n";
    return kExitVerifyFailed;
  }
  if (!mismatches.empty()) {
    std::cerr << "slm-compress: verification failed: " << mismatches.front()
              << (mismatches.size() > 1 ? " (and " + std::to_string(mismatches.size() - 1) + " more)" : "") << "\n";
    return kExitVerifyFailed;
  }
  return kExitOk;
}

}  // namespace

Command add_verify(CLI::App& app) {
  auto a = std::make_shared<VerifyArgs>();
  CLI::App* sub = app.add_subcommand("verify", "Check a .slm file's structure and checksums (and, with --source, "
                                               "its recorded error statistics)");
  sub->add_option("file", a->path, ".slm file, or a release manifest (checks every file it lists)")->required();
  sub->add_option("--source", a->source, "The model it was converted from: recompute every tensor's error");
  sub->add_option("--pubkey", a->pubkey, "Check the file's Ed25519 signature with this public key first "
                                         "(a .slm, .slmdelta or release manifest)");
  sub->add_option("--sig", a->sig, "The signature (default: FILE.sig)");
  sub->add_flag("--json", a->json, "Print one JSON document to stdout");
  return {sub, [a] { return run_verify(*a); }};
}

}  // namespace slmc::cli
