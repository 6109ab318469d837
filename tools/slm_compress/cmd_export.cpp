// slm-compress export: a .slm file's weights, decoded, back to safetensors (fp32 or fp16), for
// debugging and for round trips through other tools.
#include <cstring>
#include <iostream>

#include "commands.hpp"
#include "common.hpp"
#include "slmc/convert/safetensors_writer.hpp"
#include "slmc/format/model_file.hpp"
#include "slmc/half.hpp"

namespace slmc::cli {
namespace {

struct ExportArgs {
  std::string path, output, dtype = "fp32";
  bool json = false;
};

int run_export(const ExportArgs& a) {
  DType dtype;
  if (a.dtype == "fp32") dtype = DType::kF32;
  else if (a.dtype == "fp16") dtype = DType::kF16;
  else return fail_usage("--dtype '" + a.dtype + "': valid: fp32, fp16");
  auto file = ModelFile::open(a.path);
  if (!file.ok()) return fail(file.status());
  const ModelFile& f = **file;
  std::vector<SafetensorsEntry> entries;
  for (const StoredTensor& t : f.tensors()) entries.push_back({t.name, dtype, t.shape.dims()});
  std::map<std::string, std::string> meta{{"format", "pt"}, {"exported_from", a.path},
                                          {"producer", f.header().producer + " " + f.header().producer_version}};
  for (const auto& [k, v] : f.header().architecture) meta[k] = v.text;
  std::vector<float> decoded;
  Status s = write_safetensors(a.output, entries, meta, [&](size_t i, std::vector<uint8_t>& bytes) -> Status {
    const StoredTensor& t = f.tensors()[i];
    decoded.resize(static_cast<size_t>(t.shape.numel()));
    SLMC_RETURN_IF_ERROR(decode_matrix(t.view, decoded.data()).with_context(a.path + ": tensor '" + t.name + "'"));
    if (dtype == DType::kF32) {
      bytes.resize(decoded.size() * 4);
      std::memcpy(bytes.data(), decoded.data(), bytes.size());
    } else {
      bytes.resize(decoded.size() * 2);
      convert_fp32_to_fp16(decoded.data(), reinterpret_cast<uint16_t*>(bytes.data()), decoded.size());
    }
    return Status::ok_status();
  });
  if (!s.ok()) return fail(s);
  if (a.json) {
    Json j{{"input", a.path}, {"output", a.output}, {"dtype", a.dtype}, {"tensors", entries.size()}};
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << "wrote " << a.output << ": " << entries.size() << " tensors as " << a.dtype << "\n";
  }
  return kExitOk;
}

}  // namespace

Command add_export(CLI::App& app) {
  auto a = std::make_shared<ExportArgs>();
  CLI::App* sub = app.add_subcommand("export", "Decode a .slm file's weights back to safetensors");
  sub->add_option("file", a->path, ".slm file")->required();
  sub->add_option("-o,--output", a->output, "Output .safetensors file")->required();
  sub->add_option("--dtype", a->dtype, "fp32 or fp16")->capture_default_str();
  sub->add_flag("--json", a->json, "Print one JSON document to stdout");
  return {sub, [a] { return run_export(*a); }};
}

}  // namespace slmc::cli
