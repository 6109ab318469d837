// slm-compress inspect: header, provenance, metadata and the per-tensor table of a .slm file.
#include <iostream>

#include "commands.hpp"
#include "common.hpp"
#include "slmc/codec.hpp"  // encoding_name
#include "slmc/io/safe_input.hpp"
#include "slmc/format/model_file.hpp"
#include "slmc/kernels/linear.hpp"

namespace slmc::cli {
namespace {

Json tokenizer_json(const TokenizerData& t) {
  return Json{{"kind", std::string(tokenizer_kind_name(t.kind))},
              {"pre", t.pre},
              {"tokens", t.tokens.size()},
              {"merges", t.merges.size()},
              {"bos_id", t.bos_id},
              {"eos_id", t.eos_id},
              {"unk_id", t.unk_id},
              {"pad_id", t.pad_id},
              {"eog_ids", t.eog_ids},
              {"add_bos", t.add_bos},
              {"add_eos", t.add_eos},
              {"add_space_prefix", t.add_space_prefix},
              {"chat_template_bytes", t.chat_template.size()}};
}

Json meta_json(const Metadata& m) {
  Json j = Json::object();
  for (const auto& [k, v] : m) {
    if (v.kind == MetaValue::Kind::kJson) {
      Json parsed = check_json_depth(v.text, "").ok() ? Json::parse(v.text, nullptr, false) : Json(Json::value_t::discarded);
      j[k] = parsed.is_discarded() ? Json(v.text) : parsed;
    } else {
      j[k] = v.text;
    }
  }
  return j;
}

// The kernel table this build and CPU run the encoding with (dense and sparse families have their
// own tables; an ISA without sparse kernels of its own uses its fallback's, e.g. avx512 -> avx2).
std::string kernel_for(const Encoding& e) {
  if (e.format == SparseFormat::kDense) return linear_kernel_isa();
  return sparse_linear_kernel_isa();
}

int run_inspect(const std::string& path, bool json) {
  auto file = ModelFile::open(path);
  if (!file.ok()) return fail(file.status());
  const ModelFile& f = **file;
  const ModelHeader& h = f.header();
  if (json) {
    Json j;
    j["path"] = path;
    j["file_size"] = f.file_size();
    j["format_version"] = std::to_string(h.format_major) + "." + std::to_string(h.format_minor);
    j["producer"] = {{"name", h.producer}, {"version", h.producer_version}};
    Json sources = Json::array();
    for (const auto& s : h.sources) {
      sources.push_back({{"name", s.name}, {"sha256", s.sha256}, {"size", s.size},
                         {"format", std::string(source_format_name(s.format))}});
    }
    j["sources"] = sources;
    Json recipe = check_json_depth(h.recipe, "").ok() ? Json::parse(h.recipe, nullptr, false)
                                                       : Json(Json::value_t::discarded);
    j["recipe"] = recipe.is_discarded() ? Json(h.recipe) : recipe;
    j["architecture"] = meta_json(h.architecture);
    j["metadata"] = meta_json(h.metadata);
    if (!h.tokenizer.empty()) j["tokenizer"] = tokenizer_json(h.tokenizer);
    Json encodings = Json::array();
    for (const auto& e : f.encodings_used()) {
      encodings.push_back({{"name", e.name}, {"tensors", e.tensor_count}, {"kernel", kernel_for(e.encoding)}});
    }
    j["encodings"] = encodings;
    Json tensors = Json::array();
    uint64_t total = 0;
    for (const StoredTensor& t : f.tensors()) {
      uint64_t bytes = 0;
      for (const auto& s : t.segments) bytes += s.size;
      total += bytes;
      tensors.push_back({{"name", t.name},
                         {"shape", t.shape.dims()},
                         {"encoding", encoding_name(t.view.encoding)},
                         {"bytes", bytes},
                         {"bits_per_weight", json_number(t.stats.bits_per_weight)},
                         {"rel_error", json_number(t.stats.rel_error)},
                         {"sqnr_db", json_number(t.stats.sqnr_db)},
                         {"sparsity", json_number(t.stats.sparsity)},
                         {"source_dtype", std::string(dtype_name(t.source_dtype))},
                         {"transposed", t.transposed}});
    }
    j["tensors"] = tensors;
    j["tensor_count"] = f.tensors().size();
    j["tensor_bytes"] = total;
    std::cout << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
    return kExitOk;
  }
  std::cout << "file:      " << path << " (" << f.file_size() << " bytes, " << human_bytes(f.file_size()) << ")\n"
            << "format:    slm " << h.format_major << "." << h.format_minor << ", written by " << terminal_safe(h.producer) << " "
            << terminal_safe(h.producer_version) << "\n";
  for (const auto& s : h.sources) {
    std::cout << "source:    " << terminal_safe(s.name) << " (" << source_format_name(s.format) << ", " << s.size
              << " bytes, sha256 " << s.sha256 << ")\n";
  }
  std::cout << "recipe:    " << terminal_safe(h.recipe) << "\n";
  for (const auto& [k, v] : h.architecture) {
    std::cout << "arch:      " << terminal_safe(k) << " = " << terminal_safe(v.text) << "\n";
  }
  for (const auto& [k, v] : h.metadata) {
    std::string text = v.text.size() > 100 ? v.text.substr(0, 97) + "..." : v.text;
    std::cout << "metadata:  " << terminal_safe(k) << " = " << terminal_safe(text) << "\n";
  }
  if (!h.tokenizer.empty()) {
    const TokenizerData& t = h.tokenizer;
    std::cout << "tokenizer: " << tokenizer_kind_name(t.kind) << (t.pre.empty() ? "" : " (pre-tokenizer " + t.pre + ")")
              << ", " << t.tokens.size() << " tokens, " << t.merges.size() << " merges, BOS " << t.bos_id << " EOS "
              << t.eos_id << ", add BOS " << (t.add_bos ? "yes" : "no")
              << (t.chat_template.empty() ? "" : ", chat template " + std::to_string(t.chat_template.size()) + " bytes")
              << "\n";
  }
  for (const auto& e : f.encodings_used()) {
    std::cout << "encoding:  " << e.name << ": " << e.tensor_count << " tensors, kernel on this CPU: "
              << kernel_for(e.encoding) << "\n";
  }
  std::cout << "\n";
  std::vector<std::vector<std::string>> rows{
      {"tensor", "shape", "encoding", "bytes", "bits/w", "rel err", "SQNR dB", "sparsity"}};
  for (const StoredTensor& t : f.tensors()) {
    uint64_t bytes = 0;
    for (const auto& s : t.segments) bytes += s.size;
    rows.push_back({t.name, shape_string(t.shape.dims()), encoding_name(t.view.encoding), std::to_string(bytes),
                    fmt("%.3f", t.stats.bits_per_weight), fmt("%.5f", t.stats.rel_error),
                    t.stats.sqnr_db >= 998 ? "exact" : fmt("%.2f", t.stats.sqnr_db), fmt("%.3f", t.stats.sparsity)});
  }
  print_table(std::cout, rows);
  return kExitOk;
}

}  // namespace

Command add_inspect(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  CLI::App* sub = app.add_subcommand("inspect", "Show a .slm file's header, provenance, metadata and tensors");
  sub->add_option("file", *path, ".slm file")->required();
  sub->add_flag("--json", *json, "Print one JSON document to stdout");
  return {sub, [path, json] { return run_inspect(*path, *json); }};
}

}  // namespace slmc::cli
