// measure_e2e / token_rate_of (slmc/runtime/e2e.hpp): the measurement bench --e2e and release
// share. Speeds are never asserted; counts, summaries, argument checks and the model's state are.
#include <catch2/catch.hpp>

#include <cmath>

#include "io/io_test_util.hpp"
#include "runtime/tiny_llama.hpp"
#include "slmc/runtime/e2e.hpp"

using slmc::test::TempDir;

TEST_CASE("token_rate_of summarises samples in run order", "[e2e]") {
  const slmc::TokenRate r = slmc::token_rate_of({10.0, 1.0, 3.0, 2.0});
  CHECK(r.samples == std::vector<double>{10.0, 1.0, 3.0, 2.0});
  CHECK(r.median == Approx(2.5));  // even count: mean of the two middle values
  CHECK(r.mean == Approx(4.0));
  CHECK(r.stddev == Approx(std::sqrt(50.0 / 3.0)));  // sample standard deviation
  CHECK(r.min == 1.0);
  CHECK(r.max == 10.0);
  const slmc::TokenRate odd = slmc::token_rate_of({5.0, 7.0, 6.0});
  CHECK(odd.median == 6.0);
  const slmc::TokenRate none = slmc::token_rate_of({});
  CHECK(none.samples.empty());
  CHECK(none.median == 0.0);
}

TEST_CASE("measure_e2e times pp and tg on a small model and checks its arguments", "[e2e]") {
  TempDir dir;
  slmc::test::write_tiny_llama(dir.file("src"));
  slmc::test::convert_tiny_llama(dir.file("src"), dir.file("m.slm"), "int8");
  auto model = slmc::LlamaModel::load(dir.file("m.slm"), {});
  REQUIRE(model.ok());

  slmc::E2EOptions o;
  o.prompt_tokens = 16;
  o.gen_tokens = 8;
  o.repetitions = 3;
  auto r = slmc::measure_e2e(**model, o);
  REQUIRE(r.ok());
  CHECK(r->prompt_tokens == 16);
  CHECK(r->gen_tokens == 8);
  CHECK(r->repetitions == 3);
  REQUIRE(r->prefill.samples.size() == 3);
  REQUIRE(r->decode.samples.size() == 3);
  for (const slmc::TokenRate* t : {&r->prefill, &r->decode}) {
    CHECK(t->min > 0);
    CHECK(t->min <= t->median);
    CHECK(t->median <= t->max);
  }
  CHECK((*model)->position() == 0);  // left reset

  o.prompt_tokens = 0;  // one test only: the other stays empty
  r = slmc::measure_e2e(**model, o);
  REQUIRE(r.ok());
  CHECK(r->prefill.samples.empty());
  CHECK(r->decode.samples.size() == 3);

  auto bad = [&](int64_t pp, int64_t tg, int reps) {
    slmc::E2EOptions b;
    b.prompt_tokens = pp;
    b.gen_tokens = tg;
    b.repetitions = reps;
    auto res = slmc::measure_e2e(**model, b);
    return !res.ok() && res.status().code() == slmc::ErrorCode::kInvalidArgument;
  };
  CHECK(bad(0, 0, 1));
  CHECK(bad(-1, 4, 1));
  CHECK(bad(4, 4, 0));
  CHECK(bad(4, 4, 1001));
  CHECK(bad(65, 4, 1));  // more positions than the context (64)
  CHECK_FALSE(bad(64, 4, 1));
}
