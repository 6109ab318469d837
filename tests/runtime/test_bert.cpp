// The encoder's pure pieces: embedding comparison (mean/min cosine, nearest-neighbour agreement)
// and the encoder input ([CLS] ... [SEP], truncation). The forward pass itself is tested against a
// numpy oracle in tests/real/minilm_tests.py.
#include <catch2/catch.hpp>

#include "slmc/runtime/bert.hpp"

using namespace slmc;

TEST_CASE("compare_embeddings: cosine per sentence and nearest-neighbour agreement", "[runtime]") {
  // Four 2-d embeddings; b rotates sentence 3 by 90 degrees (cosine 0) and scales sentence 0
  // (cosine 1: scale does not matter).
  const std::vector<float> a = {1, 0, 0.9f, 0.1f, 0, 1, 0.1f, 0.9f};
  std::vector<float> b = {2, 0, 0.9f, 0.1f, 0, 1, -0.9f, 0.1f};
  const EncoderEvalResult r = compare_embeddings(a, b, 4, 2);
  CHECK(r.sentences == 4);
  CHECK(r.min_cosine == Approx(0.0).margin(1e-12));
  CHECK(r.worst_sentence == 3);
  CHECK(r.mean_cosine == Approx(0.75).margin(1e-12));
  // Nearest neighbours under a: 0->1, 1->0, 2->3, 3->2. Under b: 0->1, 1->0, 3->2 (the only
  // positive cosine), and 2 is equally close to 1 and 3 (dot 0.1, equal norms): the tie goes to
  // the lower index, 1. Three of four agree.
  CHECK(r.neighbour_agreement == Approx(0.75));
  const EncoderEvalResult same = compare_embeddings(a, a, 4, 2);
  CHECK(same.mean_cosine == Approx(1.0));
  CHECK(same.neighbour_agreement == 1.0);
}

TEST_CASE("encoder_input adds [CLS]/[SEP] and truncates the text's ids", "[runtime]") {
  TokenizerData d;
  d.kind = TokenizerKind::kWordPiece;
  d.pre = "bert";
  d.normalizer = "bert:lowercase";
  d.tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b"};
  d.token_types = {3, 3, 3, 3, 1, 1};
  d.unk_id = 1;
  d.bos_id = 2;
  d.eos_id = 3;
  d.add_bos = d.add_eos = true;
  auto t = Tokenizer::create(d);
  REQUIRE(t.ok());
  CHECK(encoder_input(**t, "a b A", 8) == std::vector<int32_t>{2, 4, 5, 4, 3});
  CHECK(encoder_input(**t, "a b a b", 4) == std::vector<int32_t>{2, 4, 5, 3});
  CHECK(encoder_input(**t, "", 4) == std::vector<int32_t>{2, 3});
  CHECK(encoder_input(**t, "a [SEP] b", 8) == std::vector<int32_t>{2, 4, 3, 5, 3});  // special text parsed
}
