// Generates the seed corpora of the fuzz targets into <out>/{safetensors,gguf,llama2c,slm}/:
// the known-bad corpus (regenerated from tests/data/bad_corpus.hpp, not copied), small valid
// files of every kind, and small files derived from the real models (their headers, metadata
// and a few small tensors) when <models_dir> has them. Nothing is copied into the repository.
//   usage: slmc_fuzz_seeds <out_dir> [<models_dir>]
#include <sys/stat.h>

#include <cstdio>
#include <string>

#include "data/bad_corpus.hpp"
#include "fuzz_delta_models.hpp"
#include "slmc/fleet/delta.hpp"
#include "io/gguf_test_writer.hpp"
#include "slmc/format/model_file.hpp"
#include "slmc/io/model_source.hpp"

using namespace slmc;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

int written = 0;
void put(const std::string& dir, const std::string& name, const std::vector<uint8_t>& bytes) {
  if (test::write_bytes(dir + "/" + name, bytes)) ++written;
}

/// A small .slm of the model's tensors of at most `max_bytes`, with its real header data.
std::vector<uint8_t> small_slm(const ModelSource& src, uint64_t max_bytes) {
  test::TempDir dir;
  ModelHeader h;
  h.sources = src.files();
  h.architecture = src.architecture();
  h.metadata = src.metadata();
  h.producer_version = "seed";
  auto w = ModelFileWriter::create(dir.file("s.slm"), h);
  if (!w.ok()) return {};
  for (size_t i = 0; i < src.tensors().size(); ++i) {
    if (src.tensors()[i].nbytes > max_bytes) continue;
    AlignedBuffer bytes;
    auto loaded = src.load(i, bytes);
    if (!loaded.ok()) return {};
    const TensorView& t = *loaded;
    auto v = dense_float_view(t);
    if (!v.ok()) continue;
    TensorInfo info;
    info.name = t.name;
    info.shape = t.shape;
    info.transposed = src.origins()[i].transposed;
    if (!(*w)->add(info, *v).ok()) return {};
  }
  if (!(*w)->finish().ok()) return {};
  return test::read_bytes(dir.file("s.slm"));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <out_dir> [<models_dir>]\n", argv[0]);
    return 2;
  }
  const std::string out = argv[1];
  const std::string models = argc > 2 ? argv[2] : "";
  const std::string st = out + "/safetensors", gg = out + "/gguf", l2 = out + "/llama2c", sl = out + "/slm";
  for (const std::string& d : {out, st, gg, l2, sl}) ::mkdir(d.c_str(), 0755);

  for (const auto& f : test::make_bad_corpus()) {
    const std::string& n = f.name;
    if (ends_with(n, ".safetensors") || ends_with(n, ".json")) put(st, n, f.bytes);
    else if (ends_with(n, ".gguf")) put(gg, n, f.bytes);
    else if (ends_with(n, ".slm")) put(sl, n, f.bytes);
    else put(l2, n, f.bytes);
  }
  // Valid small files.
  put(st, "good.safetensors", test::bad_detail::good_safetensors());
  put(sl, "good.slm", test::bad_detail::good_slm());
  {
    test::GgufWriter w(3, 32);
    w.kv_string("general.architecture", "llama");
    w.kv("llama.block_count", test::GgufWriter::U32, uint32_t{1});
    w.kv("f", test::GgufWriter::F64, 0.5);
    w.kv_string_array("tokenizer.ggml.tokens", {"a", "b"});
    w.kv_nested("n", {{1}, {2, 3}});
    std::vector<float> x(64);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i) * 0.1f - 3.0f;
    std::vector<float> e;
    w.tensor("f32", {32, 2}, test::GgufWriter::T_F32, test::float_bytes(x));
    w.tensor("q8", {32, 2}, test::GgufWriter::T_Q8_0, test::quantize_q8_0(x, e));
    w.tensor("q40", {32, 2}, test::GgufWriter::T_Q4_0, test::quantize_q4_0(x, e));
    w.tensor("q41", {32, 2}, test::GgufWriter::T_Q4_1, test::quantize_q4_1(x, e));
    put(gg, "good.gguf", w.bytes());
  }
  {
    // A tiny llama2.c checkpoint (dim 4, hidden 6, 1 layer, 2 heads, vocab 5, seq 2).
    const int32_t h[7] = {4, 6, 1, 2, 2, 5, 2};
    const size_t floats = 5 * 4 + 4 + 16 + 2 * 16 + 16 + 4 + 3 * 24 + 4 + 2 * 2;
    std::vector<uint8_t> b(28 + 4 * floats, 0);
    std::memcpy(b.data(), h, 28);
    for (size_t i = 0; i < floats; ++i) {
      const float f = 0.01f * static_cast<float>(i);
      std::memcpy(b.data() + 28 + 4 * i, &f, 4);
    }
    put(l2, "tiny.bin", b);
  }
  // Deltas for fuzz_apply: the valid delta from its fixed base to NEW, as is (mode 0) and for the
  // checksum-repairing mode (1), at two zstd levels.
  {
    const std::string ap = out + "/apply";
    ::mkdir(ap.c_str(), 0755);
    test::TempDir dir;
    if (!fuzz::write_delta_model(dir.file("old.slm"), false).ok() ||
        !fuzz::write_delta_model(dir.file("new.slm"), true).ok()) {
      std::fprintf(stderr, "seeds: cannot write the delta models\n");
      return 1;
    }
    for (int level : {1, 19}) {
      DeltaOptions o;
      o.zstd_level = level;
      if (!write_delta(dir.file("old.slm"), dir.file("new.slm"), dir.file("u.slmdelta"), o).ok()) return 1;
      const std::vector<uint8_t> d = test::read_bytes(dir.file("u.slmdelta"));
      for (uint8_t mode : {0, 1}) {
        std::vector<uint8_t> seed{mode};
        seed.insert(seed.end(), d.begin(), d.end());
        put(ap, "delta-l" + std::to_string(level) + "-m" + std::to_string(mode), seed);
      }
    }
    // The identical-files delta (header + one copy).
    if (write_delta(dir.file("old.slm"), dir.file("old.slm"), dir.file("same.slmdelta")).ok()) {
      std::vector<uint8_t> seed{1};
      const std::vector<uint8_t> d = test::read_bytes(dir.file("same.slmdelta"));
      seed.insert(seed.end(), d.begin(), d.end());
      put(ap, "same-m1", seed);
    }
  }
  // Derived from the real models: headers and small tensors only.
  if (!models.empty()) {
    for (const char* rel : {"capp-gpt2-236K/model.safetensors", "stories260K/stories260K.bin"}) {
      auto src = open_model(models + "/" + rel);
      if (!src.ok()) {
        std::fprintf(stderr, "seeds: skipping %s: %s\n", rel, src.status().to_string().c_str());
        continue;
      }
      const std::string base = std::string(rel).substr(0, std::string(rel).find('/'));
      put(sl, base + ".slm", small_slm(**src, 1024));
      if ((*src)->format() == SourceFormat::kSafetensors) {
        // The real header with the data buffer cut to the first 4 KiB.
        const std::vector<uint8_t> all = test::read_bytes(models + "/" + rel);
        uint64_t n = 0;
        std::memcpy(&n, all.data(), 8);
        put(st, base + "-header.safetensors",
            std::vector<uint8_t>(all.begin(), all.begin() + static_cast<long>(std::min<uint64_t>(all.size(), 8 + n + 4096))));
      } else {
        const std::vector<uint8_t> all = test::read_bytes(models + "/" + rel);
        put(l2, base + "-head.bin", std::vector<uint8_t>(all.begin(), all.begin() + 4096));
      }
    }
  }
  std::printf("seeds: %d files in %s\n", written, out.c_str());
  return 0;
}
