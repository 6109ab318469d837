// slm-compress delta / apply: write the update from one .slm to another, and apply it
// (slmc/fleet/delta.hpp; the .slmdelta format is specified in docs/FLEET.md).
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <optional>
#include <iostream>

#include "commands.hpp"
#include "common.hpp"
#include "slmc/fleet/delta.hpp"
#include "slmc/fleet/signature.hpp"
#include "slmc/io/output.hpp"

namespace slmc::cli {
namespace {

struct DeltaArgs {
  std::string old_path, new_path, output, sign_key;
  int level = 19;
  bool json = false, force = false;
};

struct ApplyArgs {
  std::string old_path, delta_path, output, pubkey, sig;
  bool json = false, force = false;
};

int run_delta(const DeltaArgs& a) {
  if (a.level < 1 || a.level > 19) return fail_usage("--level " + std::to_string(a.level) + ": valid: 1..19");
  if (Status s = check_output_path(a.output, {a.old_path, a.new_path}, OutputKind::kFile, a.force); !s.ok()) {
    return fail_usage(s.message());
  }
  const std::string sig_path = default_signature_path(a.output);
  std::optional<PrivateKey> key;
  if (!a.sign_key.empty()) {  // the key is read before the work, so a bad key costs nothing
    if (Status s = check_output_path(sig_path, {a.old_path, a.new_path, a.sign_key}, OutputKind::kFile, a.force);
        !s.ok()) {
      return fail_usage(s.message());
    }
    auto k = load_private_key(a.sign_key);
    if (!k.ok()) return fail(k.status());
    key = *k;
  }
  DeltaOptions options;
  options.zstd_level = a.level;
  options.force = a.force;
  DeltaStats st;
  const auto t0 = std::chrono::steady_clock::now();
  if (Status s = write_delta(a.old_path, a.new_path, a.output, options, &st); !s.ok()) return fail(s);
  std::optional<SignatureInfo> signature;
  if (key) {
    auto info = sign_file(a.output, *key, sig_path, a.force);
    if (!info.ok()) {
      ::unlink(a.output.c_str());  // no unsigned delta where a signed one was asked for
      return fail(info.status());
    }
    signature = *info;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (a.json) {
    Json items = Json::array();
    for (const DeltaItem& it : st.items) {
      if (it.what == "padding") continue;  // not interesting per item
      items.push_back(Json{{"tensor", it.tensor},
                           {"what", it.what},
                           {"op", std::string(delta_op_kind_name(it.kind))},
                           {"codec", std::string(delta_codec_name(it.codec))},
                           {"bytes", it.bytes},
                           {"shipped", it.shipped}});
    }
    Json j{{"old", a.old_path},
           {"new", a.new_path},
           {"output", a.output},
           {"level", a.level},
           {"delta_bytes", st.delta_bytes},
           {"old_file_bytes", st.old_file_bytes},
           {"new_file_bytes", st.new_file_bytes},
           {"payload_bytes", st.payload_bytes},
           {"copied_bytes", st.copied_bytes},
           {"xor_bytes", st.xor_bytes},
           {"add_bytes", st.add_bytes},
           {"literal_bytes", st.literal_bytes},
           {"zero_bytes", st.zero_bytes},
           {"changed_segment_bytes", st.changed_segment_bytes},
           {"op_count", st.op_count},
           {"seconds", seconds},
           {"signature", signature ? Json{{"path", sig_path}, {"key_id", signature->key_id},
                                           {"sha256", signature->sha256}}
                                     : Json(nullptr)},
           {"items", items}};
    std::cout << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  } else {
    std::cout << "wrote " << terminal_safe(a.output) << ": " << st.delta_bytes << " bytes ("
              << human_bytes(st.delta_bytes) << ") for a " << human_bytes(st.new_file_bytes) << " file; "
              << human_bytes(st.copied_bytes) << " referenced from the base, " << human_bytes(st.xor_bytes)
              << " as xor, " << human_bytes(st.add_bytes) << " as differences, " << human_bytes(st.literal_bytes)
              << " whole\n";
    if (signature) std::cout << "signed: " << terminal_safe(sig_path) << " by key " << signature->key_id << "\n";
  }
  return kExitOk;
}

int run_apply(const ApplyArgs& a) {
  std::vector<std::string> inputs{a.old_path, a.delta_path};
  if (!a.pubkey.empty()) {
    inputs.push_back(a.pubkey);
    inputs.push_back(a.sig.empty() ? default_signature_path(a.delta_path) : a.sig);
  }
  if (Status s = check_output_path(a.output, inputs, OutputKind::kFile, a.force); !s.ok()) {
    return fail_usage(s.message());
  }
  ApplyOptions options;
  options.force = a.force;
  if (!a.sig.empty() && a.pubkey.empty()) return fail_usage("--sig needs --pubkey (the key to check it with)");
  if (!a.pubkey.empty()) {
    auto key = load_public_key(a.pubkey);
    if (!key.ok()) return fail(key.status());
    options.public_key = *key;
    options.signature_path = a.sig;
  }
  Progress progress("applying");
  // SLMC_TEST_STOP_AT=N: a test hook that stops the process (SIGSTOP) once N ops are applied, so a
  // test can interrupt apply mid-way (kill, or fill the disk) and check that nothing changed.
  const char* stop_env = std::getenv("SLMC_TEST_STOP_AT");
  const long long stop_at = stop_env ? std::atoll(stop_env) : -1;
  long long ops_done = 0;
  options.progress = [&](uint64_t done, uint64_t total) {
    progress.update(static_cast<size_t>(done >> 20), static_cast<size_t>(total >> 20), "MiB");
    if (++ops_done == stop_at) std::raise(SIGSTOP);
  };
  ApplyStats st;
  const auto t0 = std::chrono::steady_clock::now();
  if (Status s = apply_delta(a.old_path, a.delta_path, a.output, options, &st); !s.ok()) return fail(s);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(st.new_xxh64));
  if (a.json) {
    Json j{{"old", a.old_path},         {"delta", a.delta_path},
           {"output", a.output},        {"new_file_bytes", st.new_file_bytes},
           {"xxh64", hash},             {"op_count", st.op_count},
           {"segments_verified", st.segments_verified},
           {"signature_verified", st.signature_verified},
           {"signer_key_id", st.signature_verified ? Json(st.signer_key_id) : Json(nullptr)},
           {"seconds", seconds}};
    std::cout << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  } else {
    std::cout << "wrote " << terminal_safe(a.output) << ": " << st.new_file_bytes << " bytes, xxh64 " << hash << ", "
              << st.segments_verified << " segments verified"
              << (st.signature_verified ? ", signed by key " + st.signer_key_id : std::string()) << "\n";
  }
  return kExitOk;
}

}  // namespace

Command add_delta(CLI::App& app) {
  auto a = std::make_shared<DeltaArgs>();
  CLI::App* sub = app.add_subcommand("delta", "Write the update (.slmdelta) that turns OLD.slm into NEW.slm");
  sub->add_option("old", a->old_path, "The base .slm file devices have")->required();
  sub->add_option("new", a->new_path, "The .slm file they should get")->required();
  sub->add_option("-o,--output", a->output, "The delta to write")->required();
  sub->add_option("--level", a->level, "zstd level 1..19 (default 19; diff --level must match)");
  sub->add_flag("--json", a->json, "Print one JSON document to stdout");
  sub->add_flag("--force", a->force, "Replace an existing output that is not a regular file");
  sub->add_option("--sign", a->sign_key, "Sign the delta with this private key (writes OUTPUT.sig)");
  return {sub, [a] { return run_delta(*a); }};
}

Command add_apply(CLI::App& app) {
  auto a = std::make_shared<ApplyArgs>();
  CLI::App* sub = app.add_subcommand("apply", "Apply a .slmdelta to its base: reproduces NEW.slm byte for byte");
  sub->add_option("old", a->old_path, "The base .slm file the delta was made for")->required();
  sub->add_option("delta", a->delta_path, "The .slmdelta")->required();
  sub->add_option("-o,--output", a->output, "The .slm file to write")->required();
  sub->add_flag("--json", a->json, "Print one JSON document to stdout");
  sub->add_flag("--force", a->force, "Replace an existing output that is not a regular file");
  sub->add_option("--pubkey", a->pubkey, "Refuse the delta unless its signature verifies with this public key");
  sub->add_option("--sig", a->sig, "The delta's signature (default: DELTA.sig)");
  return {sub, [a] { return run_apply(*a); }};
}

}  // namespace slmc::cli
