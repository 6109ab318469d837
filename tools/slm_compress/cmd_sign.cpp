// slm-compress keygen / sign: Ed25519 keys and detached signatures of .slm files, deltas and
// release manifests (slmc/fleet/signature.hpp; docs/FLEET.md §6). verify --pubkey and
// apply --pubkey check them.
#include <iostream>

#include "commands.hpp"
#include "common.hpp"
#include "slmc/fleet/signature.hpp"
#include "slmc/io/output.hpp"

namespace slmc::cli {
namespace {

struct KeygenArgs {
  std::string output, public_output;
  bool json = false, force = false;
};

struct SignArgs {
  std::string path, key, output;
  bool json = false, force = false;
};

int run_keygen(const KeygenArgs& a) {
  const std::string pub = a.public_output.empty() ? a.output + ".pub" : a.public_output;
  auto key = generate_key();
  if (!key.ok()) return fail(key.status());
  if (Status s = write_key_pair(*key, a.output, pub, a.force); !s.ok()) return fail(s);
  const std::string id = key->public_key.key_id();
  if (a.json) {
    Json j{{"private_key", a.output}, {"public_key", pub}, {"key_id", id}};
    std::cout << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  } else {
    std::cout << "wrote " << terminal_safe(a.output) << " (private, mode 0600: keep it on the signing machine) and "
              << terminal_safe(pub) << " (public: give it to the devices); key id " << id << "\n";
  }
  return kExitOk;
}

int run_sign(const SignArgs& a) {
  const std::string out = a.output.empty() ? default_signature_path(a.path) : a.output;
  if (Status s = check_output_path(out, {a.path, a.key}, OutputKind::kFile, a.force); !s.ok()) {
    return fail_usage(s.message());
  }
  auto key = load_private_key(a.key);
  if (!key.ok()) return fail(key.status());
  auto info = sign_file(a.path, *key, out, a.force);
  if (!info.ok()) return fail(info.status());
  if (a.json) {
    Json j{{"file", a.path},          {"signature", out},   {"kind", signed_kind_name(info->kind)},
           {"bytes", info->file_bytes}, {"sha256", info->sha256}, {"key_id", info->key_id}};
    std::cout << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  } else {
    std::cout << "wrote " << terminal_safe(out) << ": Ed25519 signature of " << terminal_safe(a.path) << " ("
              << signed_kind_name(info->kind) << ", " << info->file_bytes << " bytes, sha256 " << info->sha256
              << ") by key " << info->key_id << "\n";
  }
  return kExitOk;
}

}  // namespace

Command add_keygen(CLI::App& app) {
  auto a = std::make_shared<KeygenArgs>();
  CLI::App* sub = app.add_subcommand("keygen", "Create an Ed25519 key pair for signing releases and deltas");
  sub->add_option("-o,--output", a->output, "The private key to write (PEM, mode 0600)")->required();
  sub->add_option("--public-output", a->public_output, "The public key to write (default: OUTPUT.pub)");
  sub->add_flag("--json", a->json, "Print one JSON document to stdout");
  sub->add_flag("--force", a->force, "Replace existing key files");
  return {sub, [a] { return run_keygen(*a); }};
}

Command add_sign(CLI::App& app) {
  auto a = std::make_shared<SignArgs>();
  CLI::App* sub = app.add_subcommand("sign", "Sign a .slm, .slmdelta or release manifest (detached FILE.sig)");
  sub->add_option("file", a->path, "The file to sign")->required();
  sub->add_option("--key", a->key, "The private key (PEM, from keygen or openssl genpkey -algorithm ed25519)")
      ->required();
  sub->add_option("-o,--output", a->output, "The signature to write (default: FILE.sig)");
  sub->add_flag("--json", a->json, "Print one JSON document to stdout");
  sub->add_flag("--force", a->force, "Replace an existing output that is not a regular file");
  return {sub, [a] { return run_sign(*a); }};
}

}  // namespace slmc::cli
