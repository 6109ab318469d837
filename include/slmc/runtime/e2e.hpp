// End-to-end speed of a language model, measured the way llama-bench measures it: prefill (pp)
// and decode (tg) tokens per second over several repetitions. `slm-compress bench --e2e` and
// `slm-compress release` (the manifest's speed figures and the min decode tok/s gate) both call
// measure_e2e(), so the two cannot measure differently.
#pragma once

#include <cstdint>
#include <vector>

#include "slmc/runtime/llama.hpp"
#include "slmc/status.hpp"

namespace slmc {

struct E2EOptions {
  int64_t prompt_tokens = 512;  ///< pp test: one forward of this many tokens (0: skip the test)
  int64_t gen_tokens = 128;     ///< tg test: this many one-token forwards (0: skip the test)
  int repetitions = 5;          ///< timed runs of each test, after one warm-up run of each
  uint64_t seed = 0x5eed;       ///< pseudo-random token ids (the kernels do not care what they mean)
};

/// Tokens per second of each repetition (run order) and their summary.
struct TokenRate {
  std::vector<double> samples;
  double median = 0, mean = 0, stddev = 0, min = 0, max = 0;
};

/// Median (mean of the two middle values for an even count), mean, sample standard deviation,
/// min and max of `samples`; all zero for none.
TokenRate token_rate_of(std::vector<double> samples);

struct E2EResult {
  int64_t prompt_tokens = 0, gen_tokens = 0;
  int repetitions = 0;
  TokenRate prefill;  ///< empty when prompt_tokens == 0
  TokenRate decode;   ///< empty when gen_tokens == 0
};

/// pp: one forward of `prompt_tokens` tokens from an empty context, logits of the last row only
/// (llama-bench's test_prompt with one batch). tg: `gen_tokens` forwards of one token each from an
/// empty context, each computing its logits (test_gen). One warm-up run of each test (page faults
/// of the mapping, scratch and KV-cache growth; the tg warm-up is min(gen_tokens, 4) tokens), then
/// `repetitions` timed runs of each, alternating; the model is reset before each run and left
/// reset. kInvalidArgument for negative counts, both counts 0, repetitions outside 1..1000 or
/// more positions than the model's context. The thread count is the model's (LlamaOptions).
Result<E2EResult> measure_e2e(LlamaModel& model, const E2EOptions& options);

}  // namespace slmc
