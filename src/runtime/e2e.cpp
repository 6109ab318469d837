#include "slmc/runtime/e2e.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <string>

namespace slmc {

TokenRate token_rate_of(std::vector<double> samples) {
  TokenRate r;
  r.samples = samples;
  if (samples.empty()) return r;
  std::sort(samples.begin(), samples.end());
  const size_t n = samples.size();
  r.median = n % 2 ? samples[n / 2] : 0.5 * (samples[n / 2 - 1] + samples[n / 2]);
  r.mean = std::accumulate(samples.begin(), samples.end(), 0.0) / static_cast<double>(n);
  double var = 0;
  for (double v : samples) var += (v - r.mean) * (v - r.mean);
  r.stddev = n > 1 ? std::sqrt(var / static_cast<double>(n - 1)) : 0.0;
  r.min = samples.front();
  r.max = samples.back();
  return r;
}

Result<E2EResult> measure_e2e(LlamaModel& model, const E2EOptions& o) {
  if (o.prompt_tokens < 0 || o.gen_tokens < 0) {
    return make_error(ErrorCode::kInvalidArgument, "end-to-end benchmark: token counts must be >= 0");
  }
  if (o.prompt_tokens == 0 && o.gen_tokens == 0) {
    return make_error(ErrorCode::kInvalidArgument, "end-to-end benchmark: prompt and decode token counts are both 0");
  }
  if (o.repetitions < 1 || o.repetitions > 1000) {
    return make_error(ErrorCode::kInvalidArgument, "end-to-end benchmark: repetitions must be in 1..1000");
  }
  const LlamaConfig& c = model.config();
  const int64_t positions = std::max(o.prompt_tokens, o.gen_tokens);
  if (positions > c.context) {
    return make_error(ErrorCode::kInvalidArgument, "end-to-end benchmark: " + std::to_string(positions) +
                                                       " positions exceed the model's context length " +
                                                       std::to_string(c.context));
  }
  uint64_t state = o.seed;
  auto random_token = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<int32_t>((state >> 33) % static_cast<uint64_t>(c.vocab));
  };
  std::vector<int32_t> prompt(static_cast<size_t>(o.prompt_tokens));
  std::vector<float> logits(static_cast<size_t>(c.vocab));
  using clock = std::chrono::steady_clock;
  auto run_pp = [&]() -> Result<double> {
    for (int32_t& t : prompt) t = random_token();
    model.reset();
    const auto t0 = clock::now();
    SLMC_RETURN_IF_ERROR(model.forward(prompt.data(), o.prompt_tokens, logits.data(), /*last_only=*/true));
    return std::chrono::duration<double>(clock::now() - t0).count();
  };
  auto run_tg = [&](int64_t n) -> Result<double> {
    model.reset();
    int32_t token = random_token();
    const auto t0 = clock::now();
    for (int64_t i = 0; i < n; ++i) {
      SLMC_RETURN_IF_ERROR(model.forward(&token, 1, logits.data()));
      token = random_token();
    }
    return std::chrono::duration<double>(clock::now() - t0).count();
  };
  if (o.prompt_tokens > 0) SLMC_RETURN_IF_ERROR(run_pp().status());
  if (o.gen_tokens > 0) SLMC_RETURN_IF_ERROR(run_tg(std::min<int64_t>(o.gen_tokens, 4)).status());
  std::vector<double> pp, tg;
  for (int r = 0; r < o.repetitions; ++r) {
    if (o.prompt_tokens > 0) {
      SLMC_ASSIGN_OR_RETURN(double s, run_pp());
      pp.push_back(static_cast<double>(o.prompt_tokens) / std::max(s, 1e-12));
    }
    if (o.gen_tokens > 0) {
      SLMC_ASSIGN_OR_RETURN(double s, run_tg(o.gen_tokens));
      tg.push_back(static_cast<double>(o.gen_tokens) / std::max(s, 1e-12));
    }
  }
  model.reset();
  E2EResult res;
  res.prompt_tokens = o.prompt_tokens;
  res.gen_tokens = o.gen_tokens;
  res.repetitions = o.repetitions;
  res.prefill = token_rate_of(std::move(pp));
  res.decode = token_rate_of(std::move(tg));
  return res;
}

}  // namespace slmc
