// slm-compress diff: which tensors were added, removed or changed (by content hash) between two
// .slm files, and how many bytes an update from A to B has to ship: update_bytes is the exact size
// of the .slmdelta `slm-compress delta A B` writes (the same planner, measure_delta, with a
// counting sink), changed_segment_bytes the raw size of B's segments that A does not hold.
#include <iostream>
#include <map>
#include <set>

#include "commands.hpp"
#include "common.hpp"
#include "slmc/fleet/delta.hpp"
#include "slmc/format/model_file.hpp"

namespace slmc::cli {
namespace {

struct DiffArgs {
  std::string a, b;
  int level = 19;
  bool json = false, no_verify = false;
};

int run_diff(const DiffArgs& args) {
  if (args.level < 1 || args.level > 19) return fail_usage("--level " + std::to_string(args.level) + ": valid: 1..19");
  LoadOptions load;
  load.verify_checksums = !args.no_verify;  // the stored hashes diff compares must be true
  auto fa = ModelFile::open(args.a, load);
  if (!fa.ok()) return fail(fa.status());
  auto fb = ModelFile::open(args.b, load);
  if (!fb.ok()) return fail(fb.status());
  std::map<std::string, const StoredTensor*> in_a, in_b;
  std::set<std::pair<uint64_t, uint64_t>> a_segments;  // (xxh64, size) of every segment of A
  for (const StoredTensor& t : (*fa)->tensors()) {
    in_a[t.name] = &t;
    for (const auto& s : t.segments) a_segments.insert({s.xxh64, s.size});
  }
  for (const StoredTensor& t : (*fb)->tensors()) in_b[t.name] = &t;

  std::vector<std::string> added, removed, changed, unchanged;
  uint64_t ship = 0;
  std::set<std::pair<uint64_t, uint64_t>> shipped;
  auto same = [](const StoredTensor& x, const StoredTensor& y) {
    if (x.shape != y.shape || x.view.encoding != y.view.encoding || x.segments.size() != y.segments.size()) return false;
    for (size_t i = 0; i < x.segments.size(); ++i) {
      if (x.segments[i].role != y.segments[i].role || x.segments[i].xxh64 != y.segments[i].xxh64 ||
          x.segments[i].size != y.segments[i].size) {
        return false;
      }
    }
    return true;
  };
  for (const auto& [name, tb] : in_b) {
    auto it = in_a.find(name);
    if (it == in_a.end()) added.push_back(name);
    else if (same(*it->second, *tb)) unchanged.push_back(name);
    else changed.push_back(name);
    for (const auto& s : tb->segments) {
      std::pair<uint64_t, uint64_t> key{s.xxh64, s.size};
      if (!a_segments.count(key) && shipped.insert(key).second) ship += s.size;
    }
  }
  for (const auto& [name, ta] : in_a) {
    if (!in_b.count(name)) removed.push_back(name);
  }
  // The update's exact size: the delta writer's own planner (it compresses every changed segment).
  DeltaOptions delta_options;
  delta_options.zstd_level = args.level;
  auto delta = measure_delta(args.a, args.b, delta_options);
  if (!delta.ok()) return fail(delta.status());
  const uint64_t update = delta->delta_bytes;
  if (args.json) {
    Json j{{"a", args.a},           {"b", args.b},         {"added", added},
           {"removed", removed},    {"changed", changed},  {"unchanged", unchanged.size()},
           {"update_bytes", update}, {"changed_segment_bytes", ship}, {"level", args.level},
           {"b_file_size", (*fb)->file_size()}};
    std::cout << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  } else {
    for (const auto& n : added) std::cout << "+ " << terminal_safe(n) << "\n";
    for (const auto& n : removed) std::cout << "- " << terminal_safe(n) << "\n";
    for (const auto& n : changed) std::cout << "~ " << terminal_safe(n) << "\n";
    std::cout << added.size() << " added, " << removed.size() << " removed, " << changed.size() << " changed, "
              << unchanged.size() << " unchanged; the update (slm-compress delta) is " << update << " bytes ("
              << human_bytes(update) << ") for a " << human_bytes((*fb)->file_size()) << " file; "
              << human_bytes(ship) << " of tensor data changed\n";
  }
  return kExitOk;
}

}  // namespace

Command add_diff(CLI::App& app) {
  auto a = std::make_shared<DiffArgs>();
  CLI::App* sub = app.add_subcommand("diff", "Compare two .slm files: tensors added, removed, changed; update size");
  sub->add_option("a", a->a, "Old .slm file")->required();
  sub->add_option("b", a->b, "New .slm file")->required();
  sub->add_flag("--json", a->json, "Print one JSON document to stdout");
  sub->add_flag("--no-verify", a->no_verify, "Skip the checksum pass over both files");
  sub->add_option("--level", a->level, "zstd level 1..19 the update is measured at (as delta --level; default 19)");
  return {sub, [a] { return run_diff(*a); }};
}

}  // namespace slmc::cli
