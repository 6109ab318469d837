// Scheme strings, recipe JSON, presets, command-line rules and globs.
#include <catch2/catch.hpp>

#include <string>

#include "slmc/convert/recipe.hpp"

using namespace slmc;

TEST_CASE("scheme defaults follow the documented grammar", "[recipe]") {
  Scheme i8 = *parse_scheme("int8");
  CHECK(i8.encoding.value_type == ValueType::kInt8);
  CHECK(i8.encoding.granularity == Granularity::kChannel);
  CHECK(i8.encoding.symmetric);
  CHECK(i8.encoding.search == ScaleSearch::kAbsmax);
  CHECK(i8.encoding.scale_dtype == DType::kF32);
  Scheme i4 = *parse_scheme("int4");
  CHECK(i4.encoding.value_type == ValueType::kInt4);
  CHECK(i4.encoding.granularity == Granularity::kGroup);
  CHECK(i4.encoding.group_size == 32);
  CHECK(i4.encoding.search == ScaleSearch::kMse);
  CHECK(i4.encoding.scale_dtype == DType::kF16);
  CHECK(parse_scheme("fp16")->encoding.value_type == ValueType::kF16);
  CHECK(parse_scheme("bf16")->encoding.granularity == Granularity::kNone);
}

TEST_CASE("the issue's example schemes parse", "[recipe]") {
  Scheme a = *parse_scheme("int8:group=64,sym=false");
  CHECK(a.encoding.group_size == 64);
  CHECK_FALSE(a.encoding.symmetric);
  Scheme b = *parse_scheme("int8:sparsity=0.7,format=csr");
  CHECK(b.sparsity == Approx(0.7));
  CHECK(b.encoding.format == SparseFormat::kCsr);
  Scheme c = *parse_scheme("int4:pattern=2:4");
  CHECK(c.encoding.format == SparseFormat::kNM);
  CHECK(c.encoding.nm_n == 2);
  CHECK(c.encoding.nm_m == 4);
  Scheme d = *parse_scheme("fp32:sparsity=0.9,format=bsr4x1");
  CHECK(d.encoding.format == SparseFormat::kBsr);
  CHECK(d.encoding.block_rows == 4);
  CHECK(d.encoding.block_cols == 1);
  Scheme e = *parse_scheme("int8:sparsity=0.5,format=bitmask");
  CHECK(e.encoding.format == SparseFormat::kBitmask);
  Scheme f = *parse_scheme("int4:group=128,search=weighted,layout=i8");
  CHECK(f.encoding.layout == RowLayout::kInterleave8);
  CHECK(f.encoding.search == ScaleSearch::kWeighted);
}

TEST_CASE("canonical scheme strings round trip", "[recipe]") {
  for (const char* text : {"fp32", "fp16", "bf16", "int8", "int4", "int8:group=tensor", "int8:group=64,sym=false",
                           "int4:group=128,scale_dtype=fp32,layout=i4", "int8:sparsity=0.7,format=csr",
                           "int4:pattern=2:4", "fp32:sparsity=0.9,format=bsr4x1", "int8:pattern=1:4,format=dense",
                           "int8:sparsity=0.5,format=bitmask,prune=wanda", "fp32:sparsity=0.5"}) {
    Scheme s = *parse_scheme(text);
    std::string canon = s.to_string();
    INFO(text << " -> " << canon);
    Result<Scheme> again = parse_scheme(canon);
    REQUIRE(again.ok());
    REQUIRE(*again == s);
    REQUIRE(again->to_string() == canon);
  }
}

TEST_CASE("bad schemes give errors that list the valid options", "[recipe]") {
  struct Case {
    const char* text;
    const char* must_contain;
  };
  for (Case c : {Case{"int3", "valid: fp32, fp16, bf16, int8, int4"}, Case{"int8:colour=red", "valid keys: group"},
                 Case{"int4:group=48", "16, 32, 64, 128, 256"}, Case{"int8:group=20", "multiple of 16"},
                 Case{"int8:sym=maybe", "true, false"}, Case{"int8:search=best", "absmax, mse, weighted"},
                 Case{"fp32:group=32", "int8, int4 and nl4 only"}, Case{"int8:sparsity=1.5", "[0, 1)"},
                 Case{"int8:pattern=4:2", "1 <= N < M <= 16"}, Case{"int8:format=coo", "csr"},
                 Case{"int8:format=csr", "needs sparsity"}, Case{"int4:sparsity=0.5,format=csr", "fp32 or int8 values, not int4"},
                 Case{"fp16:sparsity=0.5,format=csr", "fp32 or int8"}, Case{"int8:group=32,group=64", "twice"},
                 Case{"int8:", "empty"}, Case{"int8:group", "key=value"}, Case{"fp32:layout=i4", "dense int8 and int4"},
                 Case{"int8:format=nm", "pattern"}, Case{"int8:pattern=2:4,sparsity=0.5", "not both"},
                 Case{"int8:sparsity=0.5,format=csr,sym=false", "symmetric"}, Case{"int4:group=tensor", "channel"},
                 Case{"int8:format=bsr0x4,sparsity=0.5", "bsrRxC"}}) {
    Result<Scheme> r = parse_scheme(c.text);
    INFO(c.text);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == ErrorCode::kInvalidArgument);
    CHECK(r.status().message().find(c.must_contain) != std::string::npos);
    CHECK(r.status().message().find(c.text) != std::string::npos);
  }
}

TEST_CASE("glob matching", "[recipe]") {
  CHECK(glob_match("*", "model.layers.0.mlp.up_proj.weight"));
  CHECK(glob_match("*.mlp.*", "model.layers.0.mlp.up_proj.weight"));
  CHECK_FALSE(glob_match("*.mlp.*", "model.layers.0.self_attn.q_proj.weight"));
  CHECK(glob_match("model.layers.[0-2].*", "model.layers.1.x"));
  CHECK_FALSE(glob_match("model.layers.[0-2].*", "model.layers.3.x"));
  CHECK(glob_match("model.layers.[!0].*", "model.layers.3.x"));
  CHECK(glob_match("w?", "w1"));
  CHECK_FALSE(glob_match("w?", "w12"));
  CHECK(glob_match("a*b*c", "aXXbYYc"));
  CHECK_FALSE(glob_match("a*b*c", "aXXbYY"));
  CHECK(glob_match("[", "["));
  CHECK(glob_match("", ""));
  CHECK_FALSE(glob_match("", "x"));
}

TEST_CASE("recipes match rules in order with 1-D tensors kept fp32", "[recipe]") {
  Recipe r = *load_recipe("w4");
  CHECK(r.candidates_for("model.layers.0.mlp.up_proj.weight", 2)[0].encoding.value_type == ValueType::kInt4);
  CHECK(r.candidates_for("model.embed_tokens.weight", 2)[0].encoding.value_type == ValueType::kInt8);
  CHECK(r.candidates_for("model.norm.weight", 1)[0].encoding.value_type == ValueType::kF32);
  REQUIRE(add_rule(r, "*.mlp.*=int8|int4:group=128", 0).ok());
  REQUIRE(add_rule(r, "*.mlp.down_proj.*=fp16", 0).ok());  // now first
  CHECK(r.candidates_for("model.layers.0.mlp.down_proj.weight", 2)[0].encoding.value_type == ValueType::kF16);
  auto c = r.candidates_for("model.layers.0.mlp.up_proj.weight", 2);
  REQUIRE(c.size() == 2);
  CHECK(c[1].encoding.group_size == 128);
  CHECK(add_rule(r, "no-equals-sign", 0).code() == ErrorCode::kInvalidArgument);
  CHECK(add_rule(r, "*=int9", 0).message().find("int9") != std::string::npos);
  for (const std::string& name : preset_names()) {
    Result<Recipe> p = load_recipe(name);
    REQUIRE(p.ok());
    // The recipe as applied (JSON) parses back to the same schemes.
    Result<Recipe> back = parse_recipe_json(p->to_json(), "roundtrip");
    REQUIRE(back.ok());
    CHECK(back->default_scheme == p->default_scheme);
    CHECK(back->rules.size() == p->rules.size());
  }
}

TEST_CASE("recipe JSON errors name the recipe and the problem", "[recipe]") {
  CHECK(parse_recipe_json("{", "r.json").status().message().find("r.json: not valid JSON") != std::string::npos);
  CHECK(parse_recipe_json("{}", "r.json").status().message().find("default") != std::string::npos);
  CHECK(parse_recipe_json(R"({"default": "int8", "extra": 1})", "r.json").status().message().find("unknown key 'extra'") !=
        std::string::npos);
  CHECK(parse_recipe_json(R"({"default": "int8", "rules": [{"match": "*"}]})", "r.json").status().message().find("rule 0") !=
        std::string::npos);
  Result<Recipe> bad = parse_recipe_json(R"({"default": "int8", "rules": [{"match": "*", "scheme": "int8:group=7"}]})", "r.json");
  CHECK(bad.status().message().find("rule 0") != std::string::npos);
  CHECK(bad.status().message().find("group") != std::string::npos);
  Result<Recipe> missing = load_recipe("/nonexistent/recipe.json");
  CHECK(missing.status().message().find("w4") != std::string::npos);  // lists the presets
  Result<Recipe> ok = parse_recipe_json(
      R"({"format": "slmc-recipe", "version": 1, "name": "mine", "default": "int4", "keep_1d_fp32": false,
          "rules": [{"match": "*.q_proj.*", "scheme": ["int8", "int4:group=64"]}]})", "r.json");
  REQUIRE(ok.ok());
  CHECK(ok->name == "mine");
  CHECK(ok->rules[0].candidates.size() == 2);
  CHECK(ok->candidates_for("x.bias", 1)[0].encoding.value_type == ValueType::kInt4);  // keep_1d_fp32 false
}
