// libFuzzer target: the input files read by path beside or with a model, through the same calls
// the CLI makes. The first byte picks the file, the rest is its content, written to a private
// temporary directory: 0 config.json beside a small valid model.safetensors (open_model of the
// directory), 1 a calibration file (load_calibration), 2 a device profile (load_profile),
// 3 a tokenizer file of any kind (Tokenizer::load: .slm, GGUF, tokenizer.json or llama2.c
// tokenizer.bin, detected from the content), 4 tokenizer_config.json beside a valid tokenizer.json.
// None may crash or hang; every error must be a Status, and a wrong JSON type must be one too.
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "profile.hpp"
#include "slmc/convert/converter.hpp"
#include "slmc/io/model_source.hpp"
#include "slmc/text/tokenizer.hpp"

namespace {

const std::string& work_dir() {
  static const std::string dir = [] {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/slmc_fuzz_XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    return tmpl;
  }();
  // Removed when the fuzzer exits normally (-max_total_time, -runs); a crash leaves it for the
  // artifact's reproduction.
  static const bool cleanup_registered = [] {
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(work_dir(), ec);
    });
    return true;
  }();
  (void)cleanup_registered;
  return dir;
}

void put(const std::string& path, const void* data, size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
}
void put(const std::string& path, const std::string& text) { put(path, text.data(), text.size()); }

// A valid safetensors file: one F32 [2, 2] tensor named like a Llama weight.
std::string small_safetensors() {
  const std::string header = R"({"model.layers.0.mlp.up_proj.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  out += header;
  const float w[4] = {0.5f, -1.0f, 2.0f, 0.25f};
  out.append(reinterpret_cast<const char*>(w), sizeof(w));
  return out;
}

const char* kTokenizerJson =
    R"({"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2,"<s>":3},"merges":["a b"]},)"
    R"("added_tokens":[{"id":3,"content":"<s>","special":true}],)"
    R"("pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"use_regex":true},"decoder":null,"normalizer":null})";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string& dir = work_dir();
  const uint8_t* body = data + 1;
  const size_t n = size - 1;
  switch (data[0] % 5) {
    case 0: {
      put(dir + "/model.safetensors", small_safetensors());
      put(dir + "/config.json", body, n);
      ::unlink((dir + "/tokenizer.json").c_str());
      auto src = slmc::open_model(dir, slmc::OpenOptions{false});
      if (src.ok()) {
        for (size_t i = 0; i < (*src)->tensors().size(); ++i) (void)(*src)->load_f32(i);
      }
      ::unlink((dir + "/config.json").c_str());
      break;
    }
    case 1: {
      put(dir + "/calibration.json", body, n);
      (void)slmc::load_calibration(dir + "/calibration.json");
      break;
    }
    case 2: {
      put(dir + "/profile.json", body, n);
      (void)slmc::cli::load_profile(dir + "/profile.json");
      break;
    }
    case 3: {
      const std::string path = dir + "/tokenizer.any";
      put(path, body, n);
      auto tok = slmc::Tokenizer::load(path, 0);
      if (tok.ok()) (void)(*tok)->encode("fuzz text 123 <s> \xc3\xa9", true, true);
      break;
    }
    case 4: {
      const std::string sub = dir + "/hf";
      ::mkdir(sub.c_str(), 0700);
      put(sub + "/tokenizer.json", kTokenizerJson);
      put(sub + "/tokenizer_config.json", body, n);
      auto d = slmc::read_hf_tokenizer(sub + "/tokenizer.json");
      if (d.ok()) {
        auto tok = slmc::Tokenizer::create(*d);
        if (tok.ok()) (void)(*tok)->encode("ab <s>", true, true);
      }
      break;
    }
  }
  return 0;
}
