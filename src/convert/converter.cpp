// The conversion pipeline (include/slmc/convert/converter.hpp).
#include "slmc/decode.hpp"
#include "slmc/io/safe_input.hpp"
#include "slmc/convert/converter.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

#include "slmc/format/model_file.hpp"
#include "slmc/half.hpp"
#include "slmc/prune/prune_encode.hpp"
#include "slmc/quant/dequantize.hpp"
#include "slmc/quant/error_stats.hpp"
#include "slmc/quant/quantize.hpp"
#include "slmc/sparse/encode.hpp"
#include "slmc/version.hpp"

namespace slmc {

// ---------------------------------------------------------------------------------------------
// Calibration files
// ---------------------------------------------------------------------------------------------

Result<Calibration> parse_calibration_json(std::string_view text, const std::string& origin) {
  auto err = [&](const std::string& what) {
    return make_error(ErrorCode::kInvalidFormat, "calibration " + origin + ": " + what);
  };
  if (Status s = check_json_depth(text, "calibration " + origin); !s.ok()) return s;
  nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded()) return err("not valid JSON");
  const auto format = j.is_object() ? j.find("format") : j.end();
  if (!j.is_object() || format == j.end() || !format->is_string() || *format != "slmc-calibration") {
    return err("expected {\"format\": \"slmc-calibration\", \"version\": 1, \"tensors\": {...}}");
  }
  if (!j.contains("version") || j["version"] != 1) return err("unsupported \"version\" (this slmc reads 1)");
  if (!j.contains("tensors") || !j["tensors"].is_object()) return err("\"tensors\" must be an object");
  Calibration cal;
  for (auto it = j["tensors"].begin(); it != j["tensors"].end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& t = it.value();
    if (!t.is_object() || !t.contains("mean_sq") || !t["mean_sq"].is_array() || !t.contains("count") ||
        !t["count"].is_number()) {
      return err("tensor '" + name + "': needs {\"mean_sq\": [K numbers], \"count\": N}");
    }
    CalibrationEntry e;
    e.count = t["count"].get<double>();
    if (!(e.count > 0) || !std::isfinite(e.count)) return err("tensor '" + name + "': count must be > 0");
    e.mean_sq.reserve(t["mean_sq"].size());
    size_t index = 0;
    for (const auto& v : t["mean_sq"]) {
      if (!v.is_number()) return err("tensor '" + name + "': mean_sq[" + std::to_string(index) + "] is not a number");
      const double d = v.get<double>();
      if (!std::isfinite(d) || d < 0) {
        return err("tensor '" + name + "': mean_sq[" + std::to_string(index) + "] = " + v.dump() +
                   " (must be finite and >= 0)");
      }
      e.mean_sq.push_back(static_cast<float>(d));
      ++index;
    }
    if (t.contains("gram")) {
      const nlohmann::json& g = t["gram"];
      const size_t k = e.mean_sq.size();
      if (!g.is_array() || g.size() != k * (k + 1) / 2) {
        return err("tensor '" + name + "': gram must hold K (K + 1) / 2 = " + std::to_string(k * (k + 1) / 2) +
                   " numbers (the upper triangle, row by row)");
      }
      e.gram.assign(k * k, 0.0f);
      size_t at = 0;
      for (size_t i = 0; i < k; ++i) {
        for (size_t c = i; c < k; ++c, ++at) {
          const nlohmann::json& v = g[at];
          const double d = v.is_number() ? v.get<double>() : std::nan("");
          if (!std::isfinite(d) || (c == i && d < 0)) {
            return err("tensor '" + name + "': gram[" + std::to_string(i) + ", " + std::to_string(c) + "] = " +
                       v.dump() + (c == i ? " (must be finite and >= 0)" : " (must be finite)"));
          }
          e.gram[i * k + c] = e.gram[c * k + i] = static_cast<float>(d);
        }
      }
    }
    cal.tensors.emplace(name, std::move(e));
  }
  return cal;
}

Result<Calibration> load_calibration(const std::string& path) {
  auto text = read_input_file(path);
  if (!text.ok()) return text.status().with_context("calibration");
  if (is_calibration_binary(*text)) return parse_calibration_binary(*text, path);
  return parse_calibration_json(*text, path);
}

std::string calibration_to_json(const Calibration& calibration) {
  nlohmann::ordered_json j;
  j["format"] = "slmc-calibration";
  j["version"] = 1;
  nlohmann::ordered_json tensors = nlohmann::ordered_json::object();
  for (const auto& [name, e] : calibration.tensors) {
    tensors[name] = {{"mean_sq", e.mean_sq}, {"count", e.count}};
    const size_t k = e.mean_sq.size();
    if (!e.gram.empty() && e.gram.size() == k * k) {
      std::vector<float> upper;
      upper.reserve(k * (k + 1) / 2);
      for (size_t i = 0; i < k; ++i) upper.insert(upper.end(), e.gram.begin() + i * k + i, e.gram.begin() + (i + 1) * k);
      tensors[name]["gram"] = upper;
    }
  }
  j["tensors"] = tensors;
  return j.dump();
}

// ---------------------------------------------------------------------------------------------
// One tensor
// ---------------------------------------------------------------------------------------------

namespace {

Status need_calibration(const std::string& name, int64_t cols, const CalibrationEntry* cal, const char* why) {
  if (cal == nullptr) {
    return make_error(ErrorCode::kInvalidArgument, "tensor '" + name + "': " + why +
                                                       " needs calibration statistics (--calibration FILE) for it");
  }
  if (static_cast<int64_t>(cal->mean_sq.size()) != cols) {
    return make_error(ErrorCode::kInvalidArgument,
                      "tensor '" + name + "': calibration has " + std::to_string(cal->mean_sq.size()) +
                          " channels, the weight has K = " + std::to_string(cols));
  }
  return Status::ok_status();
}

// Replaces the stats of `m` by the error of its decoding against the unpruned original `w`.
Status restat(EncodedMatrix& m, const float* w, int64_t rows, int64_t cols) {
  AlignedBuffer decoded(static_cast<size_t>(rows * cols) * sizeof(float));
  EncodedMatrixView v = m.view();
  Status s = decode(v, decoded.as<float>());
  SLMC_RETURN_IF_ERROR(s);
  m.stats = compute_error_stats(w, decoded.as<float>(), rows * cols, m.total_bytes());
  return Status::ok_status();
}

}  // namespace

Result<EncodedMatrix> encode_with_scheme(const std::string& name, const float* w, int64_t rows, int64_t cols,
                                         const Scheme& scheme, const CalibrationEntry* cal, int num_threads) {
  const Encoding& e = scheme.encoding;
  std::vector<float> wanda_norms;
  const float* col_norms = nullptr;
  if (scheme.is_pruned() && scheme.prune == PruneScore::kWanda) {
    SLMC_RETURN_IF_ERROR(need_calibration(name, cols, cal, "prune=wanda"));
    SLMC_ASSIGN_OR_RETURN(wanda_norms, wanda_column_norms(cal->mean_sq.data(), cols, cal->count, name));
    col_norms = wanda_norms.data();
  }
  const float* importance = nullptr;
  if (e.is_quantized() && e.search == ScaleSearch::kWeighted) {
    SLMC_RETURN_IF_ERROR(need_calibration(name, cols, cal, "search=weighted"));
    importance = cal->mean_sq.data();
  }

  PruneSpec spec;
  if (scheme.is_pruned()) {
    // Wanda ranks within each output row (as in the paper); magnitude ranks over the tensor.
    spec.scope = scheme.prune == PruneScore::kWanda ? PruneScope::kRow : PruneScope::kTensor;
    spec.col_norms = col_norms;
    spec.sparsity = scheme.sparsity;
    if (e.nm_m != 0) {
      spec.method = PruneMethod::kNM;
      spec.n = e.nm_n;
      spec.m = e.nm_m;
    } else if (e.format == SparseFormat::kBsr) {
      spec.method = PruneMethod::kBlock;
      spec.block_rows = e.block_rows;
      spec.block_cols = e.block_cols;
    } else {
      spec.method = PruneMethod::kMagnitude;
    }
  }

  if (e.format != SparseFormat::kDense) {
    if (!scheme.is_pruned()) spec.method = PruneMethod::kNone;
    return prune_and_encode(w, rows, cols, spec, e, name, nullptr, importance);
  }

  // Dense storage: prune first (zeros stay in the dense matrix), then quantize or convert.
  std::vector<float> pruned;
  const float* src = w;
  if (scheme.is_pruned()) {
    SLMC_ASSIGN_OR_RETURN(PruneMask mask, prune(w, rows, cols, spec, name));
    pruned.assign(w, w + rows * cols);
    for (int64_t i = 0; i < rows * cols; ++i) {
      if (!mask.keep[static_cast<size_t>(i)]) pruned[static_cast<size_t>(i)] = 0.0f;
    }
    src = pruned.data();
  }
  Result<EncodedMatrix> out = [&]() -> Result<EncodedMatrix> {
    if (e.is_quantized()) {
      QuantConfig qc = quant_config_from_encoding(e);
      qc.importance = importance;
      // Error compensation needs every weight free to move: not for pruned matrices.
      if (importance && !scheme.is_pruned() && cal->gram.size() == static_cast<size_t>(cols * cols)) {
        qc.gram = cal->gram.data();
      }
      qc.num_threads = num_threads;
      return quantize(name, src, rows, cols, qc);
    }
    return encode_float(name, src, rows, cols, e.value_type);
  }();
  if (!out.ok()) return out;
  if (scheme.is_pruned()) SLMC_RETURN_IF_ERROR(restat(*out, w, rows, cols));
  return out;
}

// ---------------------------------------------------------------------------------------------
// A whole model
// ---------------------------------------------------------------------------------------------

namespace {

bool is_float_dtype(DType d) { return is_weight_dtype(d); }  // floats and GGUF block types

struct Choice {
  uint64_t bytes = 0;
  double sse = 0;  ///< squared error sum ||W - W'||^2
};

// Multiple-choice knapsack by the Lagrangian greedy (see docs/CLI.md, "--target-size"): every
// tensor starts at its smallest candidate; then, repeatedly, the upgrade with the largest error
// reduction per extra byte along each tensor's lower convex hull of (bytes, error) is taken while
// the total still fits. Returns the chosen candidate per tensor, or nothing if even the smallest
// choices exceed the target.
std::optional<std::vector<size_t>> choose_within(const std::vector<std::vector<Choice>>& options, uint64_t target) {
  const size_t n = options.size();
  std::vector<std::vector<size_t>> hulls(n);
  for (size_t t = 0; t < n; ++t) {
    std::vector<size_t> order(options[t].size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      const Choice &x = options[t][a], &y = options[t][b];
      return x.bytes != y.bytes ? x.bytes < y.bytes : x.sse < y.sse;
    });
    // Keep points that strictly reduce error as size grows, then the lower convex hull.
    std::vector<size_t> hull;
    for (size_t i : order) {
      if (!hull.empty() && options[t][i].sse >= options[t][hull.back()].sse) continue;
      if (!hull.empty() && options[t][i].bytes == options[t][hull.back()].bytes) hull.pop_back();
      while (hull.size() >= 2) {
        const Choice &a = options[t][hull[hull.size() - 2]], &b = options[t][hull.back()], &c = options[t][i];
        const double s_ab = (b.sse - a.sse) / static_cast<double>(b.bytes - a.bytes);
        const double s_ac = (c.sse - a.sse) / static_cast<double>(c.bytes - a.bytes);
        if (s_ac <= s_ab) hull.pop_back();  // b lies above the chord a-c
        else break;
      }
      hull.push_back(i);
    }
    hulls[t] = hull;
  }
  std::vector<size_t> pos(n, 0);
  uint64_t total = 0;
  for (size_t t = 0; t < n; ++t) total += options[t][hulls[t][0]].bytes;
  if (total > target) return std::nullopt;
  while (true) {
    double best_gain = 0;
    size_t best = n;
    for (size_t t = 0; t < n; ++t) {
      if (pos[t] + 1 >= hulls[t].size()) continue;
      const Choice &cur = options[t][hulls[t][pos[t]]], &next = options[t][hulls[t][pos[t] + 1]];
      const uint64_t extra = next.bytes - cur.bytes;
      if (total + extra > target) continue;
      const double gain = (cur.sse - next.sse) / static_cast<double>(extra);
      if (gain > best_gain) {
        best_gain = gain;
        best = t;
      }
    }
    if (best == n) break;
    total += options[best][hulls[best][pos[best] + 1]].bytes - options[best][hulls[best][pos[best]]].bytes;
    ++pos[best];
  }
  std::vector<size_t> chosen(n);
  for (size_t t = 0; t < n; ++t) chosen[t] = hulls[t][pos[t]];
  return chosen;
}

std::string format_bytes(uint64_t b) { return std::to_string(b) + " bytes"; }

}  // namespace

Result<ConvertReport> convert_model(const ModelSource& source, const std::string& source_name,
                                    const std::string& output, const ConvertOptions& options) {
  ConvertReport report;
  report.source = source_name;
  report.recipe_json = options.recipe.to_json();
  const std::vector<SourceTensor>& tensors = source.tensors();
  const size_t n = tensors.size();

  report.warnings = source.warnings();
  for (const RecipeRule& r : options.recipe.rules) {
    if (r.source.rfind("preset ", 0) == 0) continue;  // presets cover every family; not all apply
    bool used = false;
    for (size_t i = 0; i < n && !used; ++i) used = rule_matches(r.pattern, tensors[i].name);
    if (!used) report.warnings.push_back("rule '" + r.pattern + "' (" + r.source + ") matches no tensor");
  }
  // Candidates per tensor (non-float tensors are not weights: skipped and reported).
  std::vector<std::vector<Scheme>> candidates(n);
  for (size_t i = 0; i < n; ++i) {
    if (!is_float_dtype(tensors[i].dtype)) continue;
    // An empty tensor is stored as dense float without data whatever the recipe says.
    candidates[i] = tensors[i].shape.numel() == 0 ? std::vector<Scheme>{Scheme{}}
                                                  : options.recipe.candidates_for(tensors[i].name, tensors[i].shape.rank());
  }
  auto calibration_for = [&](const std::string& name) -> const CalibrationEntry* {
    if (!options.calibration) return nullptr;
    auto it = options.calibration->tensors.find(name);
    return it == options.calibration->tensors.end() ? nullptr : &it->second;
  };
  // Tensor data is read from the source one tensor at a time (ModelSource::load_f32: pread, never
  // a mapping of a file we do not own), so peak memory is the largest tensor's fp32 plus what its
  // encoding needs.
  auto load = [&](size_t i) -> Result<AlignedBuffer> {
    if (tensors[i].shape.numel() == 0) return AlignedBuffer();
    auto w = source.load_f32(i);
    if (!w.ok()) return w.status().with_context(source_name);
    return w;
  };
  auto encode = [&](size_t i, const float* w, const Scheme& scheme) -> Result<EncodedMatrix> {
    const SourceTensor& t = tensors[i];
    if (t.shape.numel() == 0) {
      // Empty tensors are valid (FORMAT.md §2.2): dense float with no segments, whatever the scheme.
      EncodedMatrix empty;
      empty.rows = t.shape.rows();
      empty.cols = t.shape.cols();
      empty.stats.sqnr_db = 999;  // nothing lost
      return empty;
    }
    auto r = encode_with_scheme(t.name, w, t.shape.rows(), t.shape.cols(), scheme, calibration_for(t.name),
                                options.num_threads);
    if (!r.ok()) return r.status().with_context(source_name);
    return r;
  };

  // --target-size: measure every candidate, then choose.
  std::vector<size_t> chosen(n, 0);
  if (options.target_size) {
    std::vector<std::vector<Choice>> measured(n);
    std::vector<size_t> index_of;  // tensors that take part
    for (size_t i = 0; i < n; ++i) {
      if (candidates[i].empty()) continue;
      SLMC_ASSIGN_OR_RETURN(const AlignedBuffer w, load(i));
      for (const Scheme& s : candidates[i]) {
        SLMC_ASSIGN_OR_RETURN(EncodedMatrix m, encode(i, w.as<float>(), s));
        const double count = static_cast<double>(tensors[i].shape.numel());
        measured[i].push_back(Choice{m.total_bytes(), m.stats.rmse * m.stats.rmse * count});
      }
      index_of.push_back(i);
    }
    std::vector<std::vector<Choice>> opts;
    for (size_t i : index_of) opts.push_back(measured[i]);
    std::optional<std::vector<size_t>> pick = choose_within(opts, *options.target_size);
    if (!pick) {
      uint64_t smallest = 0;
      for (const auto& o : opts) {
        uint64_t m = UINT64_MAX;
        for (const Choice& c : o) m = std::min(m, c.bytes);
        smallest += m;
      }
      report.gate_failures.push_back("--target-size " + format_bytes(*options.target_size) +
                                     " is below the smallest possible size " + format_bytes(smallest));
    } else {
      for (size_t k = 0; k < index_of.size(); ++k) chosen[index_of[k]] = (*pick)[k];
    }
  }

  // Header: provenance, architecture and metadata travel with the file.
  ModelHeader header;
  header.producer = "slm-compress";
  header.producer_version = kVersionString;
  header.sources = source.files();
  header.recipe = report.recipe_json;
  header.architecture = source.architecture();
  header.metadata = source.metadata();
  header.tokenizer = options.tokenizer.empty() ? source.tokenizer() : options.tokenizer;
  for (const auto& [k, v] : options.metadata) header.metadata[k] = v;

  std::unique_ptr<ModelFileWriter> writer;
  if (report.gate_failures.empty()) {
    // --dry-run lays the file out without writing it: the same sizes, nothing on disk.
    auto w = options.dry_run ? ModelFileWriter::create_sizer(output, header) : ModelFileWriter::create(output, header);
    if (!w.ok()) return w.status();
    writer = std::move(*w);
  }

  for (size_t i = 0; i < n; ++i) {
    const SourceTensor& t = tensors[i];
    const TensorOrigin& origin = source.origins()[i];
    TensorReport tr;
    tr.name = t.name;
    tr.shape = t.shape.dims();
    tr.source_dtype = std::string(dtype_name(origin.source_dtype));
    tr.transposed = origin.transposed;
    // Bytes as stored in the source file (a GGUF Q4_0 tensor counts its blocks, not the f32 it
    // was dequantized to on import).
    auto source_bytes = dtype_byte_size(origin.source_dtype, t.shape.numel());
    tr.bytes_in = source_bytes.ok() ? *source_bytes : t.nbytes;
    if (candidates[i].empty()) {
      tr.scheme = "skipped";
      tr.note = "non-float dtype " + std::string(dtype_name(t.dtype)) + " is not a weight";
      report.tensors.push_back(tr);
      if (options.progress) options.progress(i + 1, n, t.name);
      continue;
    }
    const Scheme& scheme = candidates[i][chosen[i]];
    Result<EncodedMatrix> m = [&]() -> Result<EncodedMatrix> {  // the fp32 copy is freed before the write
      SLMC_ASSIGN_OR_RETURN(const AlignedBuffer w, load(i));
      return encode(i, w.as<float>(), scheme);
    }();
    if (!m.ok()) {
      if (writer) writer->abort();
      return m.status();
    }
    tr.scheme = scheme.to_string();
    tr.bytes_out = m->total_bytes();
    tr.bits_per_weight = m->stats.bits_per_weight;
    tr.rel_error = m->stats.rel_error;
    tr.sqnr_db = m->stats.sqnr_db;
    tr.max_abs_error = m->stats.max_abs_error;
    tr.sparsity = m->stats.sparsity;
    if (candidates[i].size() > 1) {
      tr.note = "candidate " + std::to_string(chosen[i] + 1) + " of " + std::to_string(candidates[i].size());
    }
    report.bytes_in += tr.bytes_in;
    report.bytes_out += tr.bytes_out;
    report.weights += static_cast<uint64_t>(t.shape.numel());
    if (options.max_rel_error && !(tr.rel_error <= *options.max_rel_error)) {
      char numbers[96];
      std::snprintf(numbers, sizeof(numbers), "relative error %.6g exceeds --max-rel-error %.6g", tr.rel_error,
                    *options.max_rel_error);
      report.gate_failures.push_back("tensor '" + t.name + "': " + numbers + " (scheme " + tr.scheme + ")");
    }
    if (writer && report.gate_failures.empty()) {
      TensorInfo info{t.name, t.shape, m->stats, origin.source_dtype, origin.transposed};
      Status s = writer->add(info, m->view());
      if (!s.ok()) {
        writer->abort();
        return s.with_context(source_name);
      }
    }
    report.tensors.push_back(std::move(tr));
    if (options.progress) options.progress(i + 1, n, t.name);
  }
  report.bits_per_weight =
      report.weights ? 8.0 * static_cast<double>(report.bytes_out) / static_cast<double>(report.weights) : 0.0;
  if (options.max_size && report.bytes_out > *options.max_size) {
    report.gate_failures.push_back("total size " + format_bytes(report.bytes_out) + " exceeds --max-size " +
                                   format_bytes(*options.max_size));
  }
  if (!report.gate_failures.empty()) {
    if (writer) writer->abort();
    return report;
  }
  SLMC_RETURN_IF_ERROR(writer->finish());
  report.file_size = writer->file_size();
  if (!options.dry_run) report.output = output;
  return report;
}

}  // namespace slmc
