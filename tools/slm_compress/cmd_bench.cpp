// slm-compress bench: runs the real linear kernel of every 2-D tensor of a .slm file (or of one
// given shape and scheme) on this CPU and reports time, weight GB/s, GFLOP/s and the speed-up over
// slmc's own fp32 kernel on the same (decoded) weights, measured in the same run. With --e2e it
// times the whole model instead, as llama-bench does: prefill (pp) and decode (tg) tokens/s.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>

#include "commands.hpp"
#include "common.hpp"
#include "slmc/codec.hpp"  // parse_scheme, encoding_name
#include "slmc/convert/converter.hpp"
#include "slmc/cpu.hpp"
#include "slmc/format/model_file.hpp"
#include "slmc/kernels/linear.hpp"
#include "slmc/parallel.hpp"
#include "slmc/quant/quantize.hpp"
#include "slmc/runtime/e2e.hpp"
#include "slmc/runtime/llama.hpp"

namespace slmc::cli {
namespace {

struct BenchArgs {
  std::string path, shape, encoding, act = "auto";
  int64_t batch = 1;
  int threads = 0;
  double min_time = 0.2;
  bool json = false, no_verify = false;
  // --e2e: the whole model, llama-bench's pp / tg tests.
  bool e2e = false;
  int64_t prompt_tokens = 512, gen_tokens = 128;
  int repetitions = 5;
  bool batch_given = false, shape_options_given = false;
};

struct Timing {
  double seconds = 0;  ///< median time of one call
  Status status;
};

// Median seconds per call of fn(), running for at least `min_time` seconds and 5 calls.
template <typename Fn>
Timing time_calls(Fn&& fn, double min_time) {
  using clock = std::chrono::steady_clock;
  Timing t;
  t.status = fn();  // warm-up (also grows scratch memory)
  if (!t.status.ok()) return t;
  std::vector<double> samples;
  const auto start = clock::now();
  while (samples.size() < 5 || std::chrono::duration<double>(clock::now() - start).count() < min_time) {
    const auto a = clock::now();
    Status s = fn();
    const auto b = clock::now();
    if (!s.ok()) {
      t.status = s;
      return t;
    }
    samples.push_back(std::chrono::duration<double>(b - a).count());
    if (samples.size() >= 100000) break;
  }
  std::nth_element(samples.begin(), samples.begin() + static_cast<std::ptrdiff_t>(samples.size() / 2), samples.end());
  t.seconds = samples[samples.size() / 2];
  return t;
}

struct Row {
  std::string name, encoding, act, note;
  int64_t m = 0, k = 0;
  uint64_t weight_bytes = 0;
  double seconds = 0, baseline_seconds = 0;
};

Status bench_one(const EncodedMatrixView& w, const std::string& name, const BenchArgs& a, ActMode act,
                 LinearContext& ctx, Row& row) {
  row.name = name;
  row.m = w.rows;
  row.k = w.cols;
  row.weight_bytes = w.total_bytes();
  row.act = act_mode_name(act == ActMode::kAuto ? default_act_mode(w.encoding) : act);
  std::vector<float> x(static_cast<size_t>(a.batch * w.cols)), y(static_cast<size_t>(a.batch * w.rows));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i)));
  Timing t = time_calls([&] { return linear(ctx, x.data(), a.batch, w, nullptr, y.data(), act); }, a.min_time);
  if (!t.status.ok()) return t.status;
  row.seconds = t.seconds;
  // Baseline: slmc's fp32 kernel on the decoded weights.
  std::vector<float> dense(static_cast<size_t>(w.rows * w.cols));
  SLMC_RETURN_IF_ERROR(decode(w, dense.data()));
  SLMC_ASSIGN_OR_RETURN(EncodedMatrix fp32, encode_float(name, dense.data(), w.rows, w.cols, ValueType::kF32));
  const EncodedMatrixView fv = fp32.view();
  Timing b = time_calls([&] { return linear(ctx, x.data(), a.batch, fv, nullptr, y.data(), ActMode::kFp32); },
                        a.min_time);
  if (!b.status.ok()) return b.status;
  row.baseline_seconds = b.seconds;
  return Status::ok_status();
}

// ---- --e2e: the whole model, measured the way llama-bench measures it (slmc/runtime/e2e.hpp) ----

int run_bench_e2e(const BenchArgs& a, Isa isa, ActMode act) {
  if (a.path.empty()) return fail_usage("bench --e2e: give a .slm FILE holding a language model");
  if (a.shape_options_given) return fail_usage("bench --e2e times a model file: --shape and --encoding do not apply");
  if (a.batch_given) return fail_usage("bench --e2e: --batch does not apply (use --prompt-tokens)");
  if (a.prompt_tokens < 0 || a.gen_tokens < 0) return fail_usage("--prompt-tokens and --gen-tokens must be >= 0");
  if (a.prompt_tokens == 0 && a.gen_tokens == 0) return fail_usage("bench --e2e: --prompt-tokens and --gen-tokens are both 0");
  if (a.repetitions < 1 || a.repetitions > 1000) return fail_usage("--repetitions must be in 1..1000");

  LlamaOptions options;
  options.num_threads = a.threads;
  options.act_mode = act;
  options.verify_checksums = !a.no_verify;
  auto loaded = LlamaModel::load(a.path, options);
  if (!loaded.ok()) return fail(loaded.status());
  LlamaModel& model = **loaded;
  const LlamaConfig& c = model.config();
  const int64_t positions = std::max(a.prompt_tokens, a.gen_tokens);
  if (positions > c.context) {
    return fail_usage("bench --e2e: " + std::to_string(positions) + " positions exceed the model's context length " +
                      std::to_string(c.context));
  }
  uint64_t params = 0;
  for (const StoredTensor& t : model.file().tensors()) params += static_cast<uint64_t>(t.shape.numel());
  uint64_t file_bytes = 0;
  for (const StoredTensor& t : model.file().tensors()) file_bytes += t.view.total_bytes();

  E2EOptions eo;
  eo.prompt_tokens = a.prompt_tokens;
  eo.gen_tokens = a.gen_tokens;
  eo.repetitions = a.repetitions;
  auto measured = measure_e2e(model, eo);
  if (!measured.ok()) return fail(measured.status().with_context(a.path));
  const TokenRate& pps = measured->prefill;
  const TokenRate& tgs = measured->decode;
  const CpuFeatures& f = cpu_features();
  const int threads = options.num_threads > 0 ? options.num_threads : default_num_threads();
  const std::string act_name = a.act;

  if (a.json) {
    Json j;
    j["file"] = a.path;
    j["architecture"] = c.arch;
    j["parameters"] = params;
    j["tensor_bytes"] = file_bytes;
    j["cpu"] = {{"brand", f.brand}, {"features", f.to_string()}};
    j["isa"] = std::string(isa_name(isa));
    j["kernel_isa"] = linear_kernel_isa();
    j["threads"] = threads;
    j["act"] = act_name;
    j["prompt_tokens"] = a.prompt_tokens;
    j["gen_tokens"] = a.gen_tokens;
    j["repetitions"] = a.repetitions;
    if (a.prompt_tokens > 0) {
      j["prefill_tokens_per_s"] = pps.median;
      j["prefill"] = token_rate_json(pps);
    }
    if (a.gen_tokens > 0) {
      j["decode_tokens_per_s"] = tgs.median;
      j["decode"] = token_rate_json(tgs);
    }
    std::cout << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
    return kExitOk;
  }
  std::cout << "cpu " << terminal_safe(f.brand) << " (" << f.to_string() << ")\n"
            << "isa " << isa_name(isa) << ", kernel isa " << linear_kernel_isa() << ", " << threads
            << " threads, act " << act_name << "\n"
            << terminal_safe(a.path) << ": " << c.arch << ", " << fmt("%.1f", static_cast<double>(params) / 1e6)
            << " M parameters, " << human_bytes(file_bytes) << "\n\n";
  std::vector<std::vector<std::string>> table{{"test", "t/s median", "± stddev", "min", "max", "reps"}};
  auto row = [&](const std::string& name, const TokenRate& s) {
    table.push_back({name, fmt("%.2f", s.median), fmt("%.2f", s.stddev), fmt("%.2f", s.min), fmt("%.2f", s.max),
                     std::to_string(s.samples.size())});
  };
  if (a.prompt_tokens > 0) row("pp" + std::to_string(a.prompt_tokens), pps);
  if (a.gen_tokens > 0) row("tg" + std::to_string(a.gen_tokens), tgs);
  print_table(std::cout, table);
  return kExitOk;
}

int run_bench(const BenchArgs& a) {
  Result<Isa> isa = active_isa();
  if (!isa.ok()) return fail_usage(isa.status().message());
  const std::optional<ActMode> parsed = act_mode_from_name(a.act);
  if (!parsed) return fail_usage("--act '" + a.act + "': valid: auto, fp32, int8, int8-row");
  const ActMode act = *parsed;
  if (a.e2e) return run_bench_e2e(a, *isa, act);
  if (a.path.empty() == a.shape.empty()) return fail_usage("bench: give a .slm FILE or --shape MxK --encoding SCHEME");
  if (a.batch < 1) return fail_usage("--batch must be >= 1");
  LinearContext ctx(a.threads);
  ctx.set_check_sparse_contents(false);  // ModelFile::open and encode_sparse give validated weights
  std::vector<Row> rows;

  if (!a.shape.empty()) {
    const size_t x = a.shape.find('x');
    int64_t m = 0, k = 0;
    try {
      if (x == std::string::npos) throw std::invalid_argument("no x");
      size_t p1 = 0, p2 = 0;
      m = std::stoll(a.shape.substr(0, x), &p1);
      k = std::stoll(a.shape.substr(x + 1), &p2);
      if (p1 != x || p2 != a.shape.size() - x - 1 || m <= 0 || k <= 0 || m * k > (int64_t{1} << 32)) {
        throw std::invalid_argument("range");
      }
    } catch (const std::exception&) {
      return fail_usage("--shape '" + a.shape + "': expected MxK, e.g. 4096x4096");
    }
    auto scheme = parse_scheme(a.encoding.empty() ? "int4" : a.encoding);
    if (!scheme.ok()) return fail(scheme.status());
    std::vector<float> w(static_cast<size_t>(m * k));
    uint64_t state = 12345;
    for (auto& v : w) {  // deterministic, roughly Gaussian (sum of uniforms)
      double s = 0;
      for (int i = 0; i < 4; ++i) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        s += static_cast<double>(state >> 11) / 9007199254740992.0 - 0.5;
      }
      v = static_cast<float>(s / std::sqrt(static_cast<double>(k)));
    }
    auto enc = encode_with_scheme("bench", w.data(), m, k, *scheme, nullptr, a.threads);
    if (!enc.ok()) return fail(enc.status());
    Row row;
    row.encoding = scheme->to_string();
    Status s = bench_one(enc->view(), a.shape, a, act, ctx, row);
    if (!s.ok()) return fail(s);
    rows.push_back(row);
  } else {
    LoadOptions load;
    load.verify_checksums = !a.no_verify;
    auto file = ModelFile::open(a.path, load);
    if (!file.ok()) return fail(file.status());
    for (const StoredTensor& t : (*file)->tensors()) {
      if (t.shape.rank() != 2) continue;
      Row row;
      row.encoding = encoding_name(t.view.encoding);
      Status s = bench_one(t.view, t.name, a, act, ctx, row);
      if (!s.ok()) {
        if (s.code() != ErrorCode::kUnsupported) return fail(s.with_context(a.path + ": tensor '" + t.name + "'"));
        row.note = "no kernel: " + s.message();
      }
      rows.push_back(row);
    }
  }

  const double n = static_cast<double>(a.batch);
  double total = 0, total_base = 0;
  uint64_t total_bytes = 0;
  for (const Row& r : rows) {
    if (!r.note.empty()) continue;
    total += r.seconds;
    total_base += r.baseline_seconds;
    total_bytes += r.weight_bytes;
  }
  if (a.json) {
    Json j;
    j["isa"] = std::string(isa_name(*isa));
    j["kernel_isa"] = linear_kernel_isa();
    j["threads"] = ctx.num_threads();
    j["batch"] = a.batch;
    Json list = Json::array();
    for (const Row& r : rows) {
      Json rj{{"name", r.name}, {"shape", {r.m, r.k}}, {"encoding", r.encoding}, {"act", r.act},
              {"weight_bytes", r.weight_bytes}};
      if (!r.note.empty()) {
        rj["skipped"] = r.note;
      } else {
        rj["seconds"] = r.seconds;
        rj["weight_GBps"] = static_cast<double>(r.weight_bytes) / r.seconds / 1e9;
        rj["GFLOPs"] = 2.0 * static_cast<double>(r.m * r.k) * n / r.seconds / 1e9;
        rj["baseline_fp32_seconds"] = r.baseline_seconds;
        rj["speedup_vs_fp32"] = r.baseline_seconds / r.seconds;
      }
      list.push_back(rj);
    }
    j["tensors"] = list;
    j["total"] = {{"seconds", total}, {"baseline_fp32_seconds", total_base},
                  {"speedup_vs_fp32", total > 0 ? total_base / total : 0.0},
                  {"weight_GBps", total > 0 ? static_cast<double>(total_bytes) / total / 1e9 : 0.0}};
    std::cout << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
    return kExitOk;
  }
  std::cout << "kernel ISA " << linear_kernel_isa() << ", " << ctx.num_threads() << " threads, batch " << a.batch
            << "; baseline: slmc fp32 kernel on the decoded weights, same run\n\n";
  std::vector<std::vector<std::string>> table{
      {"tensor", "MxK", "encoding", "act", "time us", "weight GB/s", "GFLOP/s", "fp32 us", "speed-up"}};
  for (const Row& r : rows) {
    const std::string mk = std::to_string(r.m) + "x" + std::to_string(r.k);
    if (!r.note.empty()) {
      table.push_back({r.name, mk, r.encoding, "-", "-", "-", "-", "-", r.note});
      continue;
    }
    table.push_back({r.name, mk, r.encoding, r.act, fmt("%.1f", r.seconds * 1e6),
                     fmt("%.2f", static_cast<double>(r.weight_bytes) / r.seconds / 1e9),
                     fmt("%.2f", 2.0 * static_cast<double>(r.m * r.k) * n / r.seconds / 1e9),
                     fmt("%.1f", r.baseline_seconds * 1e6), fmt("%.2fx", r.baseline_seconds / r.seconds)});
  }
  print_table(std::cout, table);
  if (total > 0) {
    std::cout << "\ntotal: " << fmt("%.1f", total * 1e6) << " us vs fp32 " << fmt("%.1f", total_base * 1e6)
              << " us (" << fmt("%.2fx", total_base / total) << ")\n";
  }
  return kExitOk;
}

}  // namespace

Command add_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* sub = app.add_subcommand("bench", "Time the kernels of a .slm file (or of one shape and scheme) on "
                                             "this CPU against an fp32 baseline");
  sub->add_option("file", a->path, ".slm file");
  CLI::Option* shape = sub->add_option("--shape", a->shape, "MxK: benchmark one synthetic matrix instead of a file");
  CLI::Option* encoding = sub->add_option("--encoding", a->encoding, "Scheme for --shape (default int4)");
  CLI::Option* batch =
      sub->add_option("--batch", a->batch, "Rows of X (1 = decode/GEMV, more = prefill/GEMM)")->capture_default_str();
  sub->add_option("--act", a->act, "Activation mode: auto, fp32, int8 (a scale per 32 values), int8-row (a scale per row)")->capture_default_str();
  sub->add_option("--threads", a->threads, "Threads (default: all cores)")->check(CLI::NonNegativeNumber);
  sub->add_option("--min-time", a->min_time, "Seconds to run each measurement")->capture_default_str();
  sub->add_flag("--json", a->json, "Print one JSON document to stdout");
  sub->add_flag("--no-verify", a->no_verify, "Skip the checksum pass over the file");
  sub->add_flag("--e2e", a->e2e, "Time the whole model as llama-bench does: prefill (pp) and decode (tg) tokens/s");
  sub->add_option("--prompt-tokens", a->prompt_tokens, "--e2e: prompt length of the prefill test (0: skip it)")
      ->capture_default_str();
  sub->add_option("--gen-tokens", a->gen_tokens, "--e2e: tokens of the decode test (0: skip it)")->capture_default_str();
  sub->add_option("--repetitions", a->repetitions, "--e2e: timed runs of each test")->capture_default_str();
  return {sub, [a, shape, encoding, batch] {
            a->shape_options_given = shape->count() > 0 || encoding->count() > 0;
            a->batch_given = batch->count() > 0;
            return run_bench(*a);
          }};
}

}  // namespace slmc::cli
