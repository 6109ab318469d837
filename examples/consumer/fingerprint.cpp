// Quantizes a fixed, heavy-tailed matrix with several schemes and prints a fingerprint of every
// result (FNV-1a of each segment's bytes, the error statistics to 17 digits). Built twice by the
// test slmc_install_consumer: in the slmc build with its own flags, and in this downstream project
// with -O3 -march=native -ffp-contract=fast. The outputs must be identical: the quantizer is
// compiled into the library, so a consumer's flags cannot change the bytes it gets.
#include <slmc/slmc.hpp>

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <vector>

namespace {

uint64_t fnv1a(const uint8_t* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

std::vector<float> matrix(int64_t rows, int64_t cols) {
  std::vector<float> w(static_cast<size_t>(rows * cols));
  uint64_t s = 42;
  for (float& x : w) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const double u = static_cast<double>((s >> 11) + 1) / 9007199254740993.0;  // (0, 1)
    const double t = std::tan(3.14159265358979 * (u - 0.5)) * 0.05;          // heavy tails
    x = static_cast<float>(std::fmax(-4.0, std::fmin(4.0, t)));
  }
  return w;
}

}  // namespace

int main() {
  const int64_t rows = 48, cols = 320;
  const std::vector<float> w = matrix(rows, cols);
  std::vector<float> importance(static_cast<size_t>(cols));
  for (int64_t k = 0; k < cols; ++k) importance[static_cast<size_t>(k)] = 1.0f + static_cast<float>(k % 7);
  const char* schemes[] = {"int8",
                           "int8:group=32,sym=false,search=mse",
                           "int4:group=32,search=mse",
                           "int4:group=64,sym=false,search=mse,layout=i8",
                           "int4:group=32,search=weighted",
                           "int4:group=128,search=mse,scale_dtype=fp32,layout=i4"};
  for (const char* text : schemes) {
    slmc::Result<slmc::Scheme> scheme = slmc::parse_scheme(text);
    if (!scheme.ok()) {
      std::fprintf(stderr, "%s\n", scheme.status().to_string().c_str());
      return 1;
    }
    slmc::QuantConfig config = slmc::quant_config_from_encoding(scheme->encoding);
    if (scheme->encoding.search == slmc::ScaleSearch::kWeighted) config.importance = importance.data();
    slmc::Result<slmc::EncodedMatrix> q = slmc::quantize(text, w.data(), rows, cols, config);
    if (!q.ok()) {
      std::fprintf(stderr, "%s\n", q.status().to_string().c_str());
      return 1;
    }
    std::printf("%s:", text);
    for (int r = 0; r < 6; ++r) {
      const slmc::AlignedBuffer& b = q->segment(static_cast<slmc::SegmentRole>(r));
      std::printf(" %016" PRIx64, fnv1a(b.data(), b.size()));
    }
    std::printf(" rmse=%.17g rel=%.17g sqnr=%.17g max=%.17g\n", q->stats.rmse, q->stats.rel_error, q->stats.sqnr_db,
                q->stats.max_abs_error);
  }
  return 0;
}
