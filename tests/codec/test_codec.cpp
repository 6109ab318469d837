// The codec traits table and the one grammar (include/slmc/codec.hpp): every legal encoding
// round-trips through the grammar, illegal ones are refused naming the bad value, and each table
// entry's claims (segments, storage unit, encoder, decoder) hold on a real encode + decode.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "slmc/codec.hpp"
#include "slmc/convert/converter.hpp"
#include "slmc/decode.hpp"
#include "slmc/layout.hpp"
#include "support/random.hpp"

using namespace slmc;

namespace {

const ValueType kAllValueTypes[] = {ValueType::kF32, ValueType::kF16, ValueType::kBF16, ValueType::kInt8,
                                    ValueType::kInt4, ValueType::kNl4};
const SparseFormat kAllFormats[] = {SparseFormat::kDense, SparseFormat::kCsr, SparseFormat::kBsr, SparseFormat::kNM,
                                    SparseFormat::kBitmask};

bool has(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

}  // namespace

TEST_CASE("the table covers each format x value type pair at most once", "[codec]") {
  std::set<std::string> names;
  for (const CodecTraits& c : codecs()) {
    INFO(c.name);
    CHECK(names.insert(c.name).second);
    CHECK(c.value_types != 0);
    CHECK(c.kernels != 0);
    CHECK((c.roles && c.unit && c.check && c.encode && c.decode));
    // Dense families are read by the dense kernels, sparse ones by the sparse kernels.
    CHECK(((c.kernels & kKernelDenseLinear) != 0) == (c.format == SparseFormat::kDense));
    CHECK(((c.kernels & kKernelSparseLinear) != 0) == (c.format != SparseFormat::kDense));
  }
  CHECK(codecs().size() == 8);
  for (SparseFormat f : kAllFormats) {
    for (ValueType vt : kAllValueTypes) {
      int owners = 0;
      for (const CodecTraits& c : codecs()) {
        if (c.format == f && (c.value_types & (1u << static_cast<unsigned>(vt)))) ++owners;
      }
      CHECK(owners <= 1);
    }
  }
  // The pairs of docs/LAYOUT.md: f16/bf16 are dense only, int4 is dense or N:M only.
  Encoding e;
  e.value_type = ValueType::kF16;
  e.format = SparseFormat::kCsr;
  CHECK(find_codec(e) == nullptr);
  e.value_type = ValueType::kInt4;
  CHECK(find_codec(e) == nullptr);
  e.format = SparseFormat::kNM;
  REQUIRE(find_codec(e) != nullptr);
  CHECK(std::string(find_codec(e)->name) == "nm");
}

TEST_CASE("every legal encoding round-trips through the grammar", "[codec]") {
  const std::vector<Encoding> all = enumerate_encodings();
  std::map<std::string, int> per_family;
  std::set<std::string> strings;
  for (const Encoding& e : all) {
    const std::string s = encoding_to_string(e);
    INFO(s);
    const CodecTraits* c = find_codec(e);
    REQUIRE(c != nullptr);
    ++per_family[c->name];
    CHECK(check_encoding(e, "t").ok());
    CHECK(strings.insert(s).second);  // one spelling per encoding, one encoding per spelling
    const Result<Encoding> back = parse_encoding(s);
    REQUIRE(back.ok());
    CHECK(*back == e);
    CHECK(encoding_to_string(*back) == s);
    // The recipe form reads the same keys: a dense encoding is a scheme without pruning.
    if (e.format == SparseFormat::kDense) {
      const Result<Scheme> scheme = parse_scheme(s);
      REQUIRE(scheme.ok());
      CHECK(scheme->encoding == e);
      CHECK_FALSE(scheme->is_pruned());
    }
  }
  for (const CodecTraits& c : codecs()) CHECK(per_family[c.name] > 0);
  // Spot checks of the enumeration against the legality rule of docs/QUANT.md.
  CHECK(per_family["float"] == 3);
  CHECK(per_family["int4"] == 6 * 2 * 2 * 3 * 3);   // channel + 5 group sizes, sym, scale, search, layout
  CHECK(per_family["int8"] == 5 * 2 * 2 * 3 * 3);   // tensor, channel, 16, 32, 128
}

TEST_CASE("the short stored name is unique up to the scale search", "[codec]") {
  std::map<std::string, Encoding> by_name;
  for (Encoding e : enumerate_encodings()) {
    e.search = ScaleSearch::kAbsmax;  // provenance: not part of the stored name
    const std::string n = encoding_name(e);
    INFO(n);
    auto [it, inserted] = by_name.emplace(n, e);
    if (!inserted) CHECK(it->second == e);
  }
  Encoding e;
  CHECK(encoding_name(e) == "f32");
  e = *parse_encoding("int4:group=32,layout=i8");
  CHECK(encoding_name(e) == "int4_g32_sym_f16_r8");
  e = *parse_encoding("int8:pattern=2:4");
  CHECK(encoding_name(e) == "nm2:4_int8_channel_sym_f32");
  CHECK(encoding_to_string(e) == "int8:group=channel,sym=true,search=absmax,scale_dtype=fp32,pattern=2:4,format=nm");
}

TEST_CASE("illegal encoding strings are refused naming the value", "[codec]") {
  struct Case {
    const char* text;
    const char* names;  // the message must contain this
  };
  const Case cases[] = {
      {"int5", "'int5'"},
      {"int4:group=48", "'48'"},
      {"int4:group=tensor", "'tensor'"},
      {"int8:group=40", "'40'"},
      {"int8:group=0", "'0'"},
      {"fp16:group=32", "'group'"},
      {"int8:sym=maybe", "'maybe'"},
      {"int8:search=foo", "'foo'"},
      {"int8:scale_dtype=bf16", "'bf16'"},
      {"int8:layout=i16", "'i16'"},
      {"int8:sparsity=0.5", "'sparsity'"},            // pruning is the scheme's, not the encoding's
      {"int8:prune=wanda", "'prune'"},
      {"int8:pattern=4:4", "'4:4'"},
      {"int8:pattern=2:4,format=dense", "pattern=N:M"},
      {"int8:format=nm", "pattern=N:M"},
      {"int8:format=coo", "'coo'"},
      {"int8:format=bsr1x1", "'bsr1x1'"},
      {"fp16:format=csr", "fp16"},
      {"int4:format=bitmask", "int4"},
      {"bf16:pattern=2:4", "bf16"},
      {"int8:format=csr,sym=false", "sym=false"},
      {"int8:format=csr,group=tensor", "group=tensor"},
      {"int8:format=csr,layout=i4", "layout="},
      {"fp32:layout=i8", "layout="},
      {"int8:format=bsr4x3,group=32", "32"},            // legal keys, but groups must cover whole blocks
      {"int4:pattern=2:3,group=32", "32"},
      {"int8:group=32,group=64", "'group' given twice"},
      {"int8:", "empty key list"},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    const Result<Encoding> r = parse_encoding(c.text);
    REQUIRE_FALSE(r.ok());
    INFO(r.status().message());
    CHECK(has(r.status().message(), c.names));
    CHECK(has(r.status().message(), std::string("encoding '") + c.text + "'"));
  }
}

TEST_CASE("check_encoding refuses malformed Encodings naming the value", "[codec]") {
  struct Case {
    const char* what;
    Encoding e;
    const char* names;
  };
  std::vector<Case> cases;
  auto add = [&](const char* what, const char* base, auto mutate, const char* names) {
    Encoding e = *parse_encoding(base);
    mutate(e);
    cases.push_back({what, e, names});
  };
  add("value type 9", "fp32", [](Encoding& e) { e.value_type = static_cast<ValueType>(9); }, "9");
  add("format 7", "fp32", [](Encoding& e) { e.format = static_cast<SparseFormat>(7); }, "7");
  add("f16 in CSR", "fp16", [](Encoding& e) { e.format = SparseFormat::kCsr; }, "f16");
  add("float with a group", "fp32", [](Encoding& e) { e.group_size = 32; }, "32");
  add("float with scales", "bf16", [](Encoding& e) { e.granularity = Granularity::kChannel; }, "granularity");
  add("float searched", "fp16", [](Encoding& e) { e.search = ScaleSearch::kMse; }, "mse");
  add("float interleaved", "fp32", [](Encoding& e) { e.layout = RowLayout::kInterleave4; }, "4");
  add("layout 3", "int8", [](Encoding& e) { e.layout = static_cast<RowLayout>(3); }, "3");
  add("int4 group 48", "int4", [](Encoding& e) { e.group_size = 48; }, "48");
  add("int4 per tensor", "int4", [](Encoding& e) { e.granularity = Granularity::kTensor; }, "per-tensor");
  add("dense with N:M", "int8", [](Encoding& e) { e.nm_n = 2, e.nm_m = 4; }, "2:4");
  add("dense with a block", "int8", [](Encoding& e) { e.block_rows = 4, e.block_cols = 1; }, "4x1");
  add("channel with a group size", "int8", [](Encoding& e) { e.group_size = 64; }, "64");
  add("N:M 4:4", "int8:pattern=2:4", [](Encoding& e) { e.nm_n = 4; }, "4:4");
  add("BSR 0x4", "fp32:format=bsr4x1", [](Encoding& e) { e.block_rows = 0; }, "0x1");
  add("asymmetric CSR", "int8:format=csr", [](Encoding& e) { e.symmetric = false; }, "symmetric");
  add("bitmask group 24", "int8:format=bitmask", [](Encoding& e) {
    e.granularity = Granularity::kGroup;
    e.group_size = 24;
  }, "24");
  add("scale dtype bf16", "int8", [](Encoding& e) { e.scale_dtype = DType::kBF16; }, "scale dtype");
  for (const Case& c : cases) {
    INFO(c.what);
    const Status s = check_encoding(c.e, "tensor 'x'");
    REQUIRE_FALSE(s.ok());
    INFO(s.message());
    CHECK(has(s.message(), "tensor 'x'"));
    CHECK(has(s.message(), c.names));
    CHECK(!encode("x", std::vector<float>(64, 1.0f).data(), 2, 32, c.e).ok());
  }
}

TEST_CASE("each entry's claims hold on an encoded and decoded random matrix", "[codec]") {
  // 27 rows (not a multiple of 4 or 8: interleave remainders), 102 columns (not a multiple of
  // 32, 4 or 8: partial chunks, N:M tail groups, partial scale groups).
  const int64_t m = 27, k = 102;
  const std::vector<float> w = test::gaussian(static_cast<size_t>(m * k), 7);
  const std::vector<float> importance(static_cast<size_t>(k), 1.0f);
  float amax = 0;
  for (float v : w) amax = std::max(amax, std::fabs(v));
  size_t checked = 0;
  for (const Encoding& e : enumerate_encodings()) {
    const CodecTraits& c = *find_codec(e);
    const std::string label = encoding_to_string(e);
    INFO(label);
    // Keep mask: N:M keeps the first N of every group of M; the other formats a fixed random half.
    std::vector<uint8_t> keep(static_cast<size_t>(m * k), 1);
    if (e.format == SparseFormat::kNM) {
      for (int64_t i = 0; i < m * k; ++i) keep[static_cast<size_t>(i)] = (i % k) % e.nm_m < e.nm_n;
    } else if (e.format != SparseFormat::kDense) {
      const std::vector<float> u = test::uniform(static_cast<size_t>(m * k), 11, 0.0f, 1.0f);
      for (size_t i = 0; i < keep.size(); ++i) keep[i] = u[i] < 0.5f;
    }
    CodecOptions options;
    options.importance = importance.data();
    options.keep = e.format == SparseFormat::kDense ? nullptr : keep.data();
    const Result<EncodedMatrix> em = encode("t", w.data(), m, k, e, options);
    REQUIRE(em.ok());
    CHECK(em->encoding == e);

    // Segment roles: exactly the claimed ones are present.
    const RoleSet roles = c.roles(e);
    for (int r = 0; r < kSegmentRoles; ++r) {
      const auto role = static_cast<SegmentRole>(r);
      INFO(segment_role_name(role));
      CHECK(!em->segment(role).empty() == ((roles & role_bit(role)) != 0));
    }

    // Storage unit: the values segment is a whole number of units, as many as the layout needs.
    const StorageUnit unit = c.unit(e);
    REQUIRE(unit.elements > 0);
    REQUIRE(unit.bytes > 0);
    int64_t stored = 0;  // kept elements (CSR, bitmask) or stored blocks (BSR)
    if (e.format == SparseFormat::kBsr) {
      for (int64_t br = 0; br < m; br += e.block_rows) {
        for (int64_t bc = 0; bc < k; bc += e.block_cols) {
          bool any = false;
          for (int64_t i = br; i < std::min(m, br + e.block_rows); ++i) {
            for (int64_t j = bc; j < std::min(k, bc + e.block_cols); ++j) any = any || keep[static_cast<size_t>(i * k + j)];
          }
          stored += any;
        }
      }
    } else {
      for (uint8_t x : keep) stored += x;
    }
    const int64_t slots = ceil_div(k, e.nm_m ? e.nm_m : 1) * e.nm_n;  // N:M stored slots per row
    int64_t units = 0;
    switch (e.format) {
      case SparseFormat::kDense: units = e.is_quantized() ? m * ceil_div(k, unit.elements) : m * k; break;
      case SparseFormat::kCsr:
      case SparseFormat::kBitmask:
      case SparseFormat::kBsr: units = stored; break;
      case SparseFormat::kNM: units = e.is_quantized() ? m * ceil_div(slots, unit.elements) : m * slots; break;
    }
    const uint64_t tail = e.format == SparseFormat::kBitmask ? 32 : 0;
    CHECK(em->segment(SegmentRole::kValues).size() == static_cast<uint64_t>(units * unit.bytes) + tail);

    // Reference decode: the entry's decoder, the same as slmc::decode, close to W where kept and
    // zero elsewhere.
    std::vector<float> out(static_cast<size_t>(m * k), -1.0f), again(static_cast<size_t>(m * k), -2.0f);
    REQUIRE(c.decode(em->view(), out.data()).ok());
    REQUIRE(decode(em->view(), again.data()).ok());
    CHECK(out == again);
    const double tol = e.value_type == ValueType::kF32    ? 0.0
                       : e.value_type == ValueType::kF16  ? 1e-3 * amax
                       : e.value_type == ValueType::kBF16 ? 1e-2 * amax
                       : e.value_type == ValueType::kInt8 ? 0.15 * amax  // mse searches may clip
                                                          : 0.5 * amax;
    double worst_kept = 0, worst_dropped = 0;
    for (size_t i = 0; i < out.size(); ++i) {
      if (keep[i]) {
        worst_kept = std::max(worst_kept, std::fabs(double(out[i]) - w[i]));
      } else {
        worst_dropped = std::max(worst_dropped, std::fabs(double(out[i])));
      }
    }
    CHECK(worst_kept <= tol);
    CHECK(worst_dropped == 0.0);
    ++checked;
  }
  CHECK(checked == enumerate_encodings().size());
}

TEST_CASE("the recipe path stores exactly the encoding its scheme names", "[codec]") {
  // Every legal encoding as a recipe scheme (sparse formats pruned to half), through the
  // converter's encoder: the stored Encoding is the one the table enumerates, and it passes
  // check_encoding. Schemes cannot ask for interleaved N:M values (the Encoding form can).
  const int64_t m = 16, k = 128;
  const std::vector<float> w = test::gaussian(static_cast<size_t>(m * k), 5);
  CalibrationEntry cal;
  cal.mean_sq.assign(static_cast<size_t>(k), 1.0f);
  cal.count = 1;
  size_t stored = 0, refused = 0;
  for (const Encoding& e : enumerate_encodings()) {
    Scheme scheme;
    scheme.encoding = e;
    const bool needs_sparsity =
        e.format == SparseFormat::kCsr || e.format == SparseFormat::kBsr || e.format == SparseFormat::kBitmask;
    if (needs_sparsity) scheme.sparsity = 0.5;
    const std::string text = scheme.to_string();
    INFO(text);
    const Result<Scheme> parsed = parse_scheme(text);
    REQUIRE(parsed.ok());
    if (e.format == SparseFormat::kNM && e.is_quantized() && e.layout != RowLayout::kRows) {
      // The scheme form has no layout for N:M: the string names the plain-rows encoding.
      CHECK(parsed->encoding.layout == RowLayout::kRows);
      CHECK(parse_scheme(text + ",layout=i4").status().message().find("layout=") != std::string::npos);
      ++refused;
      continue;
    }
    CHECK(*parsed == scheme);
    const Result<EncodedMatrix> em = encode_with_scheme("t", w.data(), m, k, *parsed, &cal);
    REQUIRE(em.ok());
    CHECK(em->encoding == e);
    CHECK(check_encoding(em->encoding, "t").ok());
    ++stored;
  }
  CHECK(stored > 0);
  CHECK(refused > 0);
}
