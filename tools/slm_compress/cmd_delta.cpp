// slm-compress delta / apply: write the update from one .slm to another, and apply it
// (slmc/fleet/delta.hpp; the .slmdelta format is specified in docs/FLEET.md).
#include <chrono>
#include <iostream>

#include "commands.hpp"
#include "common.hpp"
#include "slmc/fleet/delta.hpp"
#include "slmc/io/output.hpp"

namespace slmc::cli {
namespace {

struct DeltaArgs {
  std::string old_path, new_path, output;
  int level = 19;
  bool json = false, force = false;
};

struct ApplyArgs {
  std::string old_path, delta_path, output;
  bool json = false, force = false;
};

int run_delta(const DeltaArgs& a) {
  if (a.level < 1 || a.level > 19) return fail_usage("--level " + std::to_string(a.level) + ": valid: 1..19");
  if (Status s = check_output_path(a.output, {a.old_path, a.new_path}, OutputKind::kFile, a.force); !s.ok()) {
    return fail_usage(s.message());
  }
  DeltaOptions options;
  options.zstd_level = a.level;
  options.force = a.force;
  DeltaStats st;
  const auto t0 = std::chrono::steady_clock::now();
  if (Status s = write_delta(a.old_path, a.new_path, a.output, options, &st); !s.ok()) return fail(s);
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
           {"items", items}};
    std::cout << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  } else {
    std::cout << "wrote " << terminal_safe(a.output) << ": " << st.delta_bytes << " bytes ("
              << human_bytes(st.delta_bytes) << ") for a " << human_bytes(st.new_file_bytes) << " file; "
              << human_bytes(st.copied_bytes) << " referenced from the base, " << human_bytes(st.xor_bytes)
              << " as xor, " << human_bytes(st.add_bytes) << " as differences, " << human_bytes(st.literal_bytes)
              << " whole\n";
  }
  return kExitOk;
}

int run_apply(const ApplyArgs& a) {
  if (Status s = check_output_path(a.output, {a.old_path, a.delta_path}, OutputKind::kFile, a.force); !s.ok()) {
    return fail_usage(s.message());
  }
  ApplyOptions options;
  options.force = a.force;
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
           {"segments_verified", st.segments_verified}, {"seconds", seconds}};
    std::cout << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  } else {
    std::cout << "wrote " << terminal_safe(a.output) << ": " << st.new_file_bytes << " bytes, xxh64 " << hash << ", "
              << st.segments_verified << " segments verified\n";
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
  return {sub, [a] { return run_apply(*a); }};
}

}  // namespace slmc::cli
