// Ed25519 signatures of fleet files (slmc/fleet/signature.hpp) and signed applies
// (ApplyOptions::public_key): tampered bytes, wrong keys, truncated and forged signatures.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "format/format_test_util.hpp"
#include "io/io_test_util.hpp"
#include "slmc/fleet/delta.hpp"
#include "slmc/fleet/signature.hpp"
#include "slmc/format/model_file.hpp"

using namespace slmc;
using slmc::test::info_of;
using slmc::test::TempDir;

namespace {

void write_one_tensor_model(const std::string& path, uint64_t seed, const std::string& recipe) {
  const EncodedMatrix m = test::make_float_matrix(96, 64, ValueType::kF32, seed);
  ModelHeader h;
  h.recipe = recipe;
  auto w = ModelFileWriter::create(path, h);
  REQUIRE(w.ok());
  REQUIRE((*w)->add(info_of("w", Shape{m.rows, m.cols}), m.view()).ok());
  REQUIRE((*w)->finish().ok());
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

PrivateKey make_key() {
  auto k = generate_key();
  REQUIRE(k.ok());
  return *k;
}

}  // namespace

TEST_CASE("keys round trip through PEM files; the private key is mode 0600", "[fleet][signature]") {
  TempDir dir;
  const PrivateKey key = make_key();
  REQUIRE(write_key_pair(key, dir.file("k"), dir.file("k.pub")).ok());
  struct stat st {};
  REQUIRE(::stat(dir.file("k").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  auto priv = load_private_key(dir.file("k"));
  REQUIRE(priv.ok());
  CHECK(priv->seed == key.seed);
  CHECK(priv->public_key.bytes == key.public_key.bytes);
  auto pub = load_public_key(dir.file("k.pub"));
  REQUIRE(pub.ok());
  CHECK(pub->bytes == key.public_key.bytes);
  CHECK(pub->key_id().size() == 16);
  // The private key file also gives its public half; a public key is not a private one.
  auto pub2 = load_public_key(dir.file("k"));
  REQUIRE(pub2.ok());
  CHECK(pub2->bytes == key.public_key.bytes);
  CHECK(load_private_key(dir.file("k.pub")).status().code() == ErrorCode::kInvalidFormat);
  // Existing keys are not replaced without force.
  CHECK(write_key_pair(make_key(), dir.file("k"), dir.file("k2.pub")).code() == ErrorCode::kInvalidArgument);
  CHECK(load_private_key(dir.file("k"))->seed == key.seed);
  // Garbage, an encrypted key, a missing file: errors naming the file.
  REQUIRE(test::write_bytes(dir.file("junk.pem"), std::vector<uint8_t>{'h', 'i'}));
  Status s = load_public_key(dir.file("junk.pem")).status();
  CHECK(s.code() == ErrorCode::kInvalidFormat);
  CHECK(s.message().find("junk.pem") != std::string::npos);
  const std::string enc = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIGb\n-----END ENCRYPTED PRIVATE KEY-----\n";
  REQUIRE(test::write_bytes(dir.file("enc.pem"), std::vector<uint8_t>(enc.begin(), enc.end())));
  s = load_private_key(dir.file("enc.pem")).status();
  CHECK(s.code() == ErrorCode::kInvalidFormat);
  CHECK(s.message().find("encrypted") != std::string::npos);
  CHECK(load_public_key(dir.file("missing.pem")).status().code() == ErrorCode::kIoError);
}

TEST_CASE("a signature verifies for its file and key only", "[fleet][signature]") {
  TempDir dir;
  write_one_tensor_model(dir.file("m.slm"), 1, "{}");
  const PrivateKey key = make_key(), other = make_key();
  auto info = sign_file(dir.file("m.slm"), key);
  REQUIRE(info.ok());
  CHECK(info->kind == SignedKind::kModel);
  CHECK(info->key_id == key.public_key.key_id());
  const auto sig = test::read_bytes(dir.file("m.slm.sig"));
  REQUIRE(sig.size() == kSignatureFileBytes);
  CHECK(std::memcmp(sig.data(), kSignatureMagic, 8) == 0);
  REQUIRE(verify_file_signature(dir.file("m.slm"), key.public_key).ok());

  // Deterministic (Ed25519 is): signing again gives the same bytes.
  REQUIRE(sign_file(dir.file("m.slm"), key, dir.file("again.sig")).ok());
  CHECK(test::read_bytes(dir.file("again.sig")) == sig);

  // Another key: named as such.
  Status s = verify_file_signature(dir.file("m.slm"), other.public_key).status();
  CHECK(s.code() == ErrorCode::kChecksumMismatch);
  CHECK(s.message().find(other.public_key.key_id()) != std::string::npos);
  CHECK(s.message().find(key.public_key.key_id()) != std::string::npos);

  // A tampered file: one byte anywhere, or one byte more.
  const auto model = test::read_bytes(dir.file("m.slm"));
  for (size_t pos : {size_t{0}, model.size() / 2, model.size() - 1}) {
    auto bad = model;
    bad[pos] ^= 0x01;
    REQUIRE(test::write_bytes(dir.file("bad.slm"), bad));
    s = verify_file_signature(dir.file("bad.slm"), key.public_key, dir.file("m.slm.sig")).status();
    CHECK(s.code() == ErrorCode::kChecksumMismatch);
    CHECK(s.message().find("bad.slm") != std::string::npos);
  }
  auto longer = model;
  longer.push_back(0);
  REQUIRE(test::write_bytes(dir.file("bad.slm"), longer));
  CHECK(verify_file_signature(dir.file("bad.slm"), key.public_key, dir.file("m.slm.sig")).status().code() ==
        ErrorCode::kChecksumMismatch);

  // A damaged signature: every byte of the statement and of the signature matters.
  for (size_t pos = 0; pos < kSignatureFileBytes; ++pos) {
    auto bad = sig;
    bad[pos] ^= 0x01;
    REQUIRE(test::write_bytes(dir.file("bad.sig"), bad));
    s = verify_file_signature(dir.file("m.slm"), key.public_key, dir.file("bad.sig")).status();
    INFO("byte " << pos << ": " << s.message());
    CHECK_FALSE(s.ok());
    CHECK(s.message().find("bad.sig") != std::string::npos);
  }
  // Truncated signatures, trailing bytes, no signature at all.
  for (size_t n : {size_t{0}, size_t{7}, size_t{96}, size_t{159}}) {
    REQUIRE(test::write_bytes(dir.file("short.sig"), std::vector<uint8_t>(sig.begin(), sig.begin() + n)));
    s = verify_file_signature(dir.file("m.slm"), key.public_key, dir.file("short.sig")).status();
    CHECK(s.code() == ErrorCode::kInvalidFormat);
    CHECK(s.message().find("truncated") != std::string::npos);
  }
  auto trailing = sig;
  trailing.push_back(0);
  REQUIRE(test::write_bytes(dir.file("long.sig"), trailing));
  CHECK(verify_file_signature(dir.file("m.slm"), key.public_key, dir.file("long.sig")).status().code() ==
        ErrorCode::kInvalidFormat);
  CHECK(verify_file_signature(dir.file("m.slm"), key.public_key, dir.file("none.sig")).status().code() ==
        ErrorCode::kIoError);
  // A signature may not overwrite the file it signs.
  CHECK(sign_file(dir.file("m.slm"), key, dir.file("m.slm")).status().code() == ErrorCode::kInvalidArgument);
}

TEST_CASE("apply with a public key refuses unsigned, forged and wrongly signed deltas", "[fleet][signature]") {
  TempDir dir;
  write_one_tensor_model(dir.file("old.slm"), 1, "{\"v\":1}");
  write_one_tensor_model(dir.file("new.slm"), 2, "{\"v\":2}");
  REQUIRE(write_delta(dir.file("old.slm"), dir.file("new.slm"), dir.file("u.slmdelta")).ok());
  const PrivateKey key = make_key(), other = make_key();
  ApplyOptions signed_opts;
  signed_opts.public_key = key.public_key;

  // No signature yet: refused (the .sig is missing), nothing written.
  Status s = apply_delta(dir.file("old.slm"), dir.file("u.slmdelta"), dir.file("out.slm"), signed_opts);
  CHECK(s.code() == ErrorCode::kIoError);
  CHECK(s.message().find("u.slmdelta.sig") != std::string::npos);
  CHECK_FALSE(file_exists(dir.file("out.slm")));

  REQUIRE(sign_file(dir.file("u.slmdelta"), key).ok());
  ApplyStats st;
  REQUIRE(apply_delta(dir.file("old.slm"), dir.file("u.slmdelta"), dir.file("out.slm"), signed_opts, &st).ok());
  CHECK(st.signature_verified);
  CHECK(st.signer_key_id == key.public_key.key_id());
  CHECK(test::read_bytes(dir.file("out.slm")) == test::read_bytes(dir.file("new.slm")));
  REQUIRE(::unlink(dir.file("out.slm").c_str()) == 0);

  // Another key's signature.
  REQUIRE(sign_file(dir.file("u.slmdelta"), other, dir.file("other.sig")).ok());
  ApplyOptions with_other_sig = signed_opts;
  with_other_sig.signature_path = dir.file("other.sig");
  s = apply_delta(dir.file("old.slm"), dir.file("u.slmdelta"), dir.file("out.slm"), with_other_sig);
  CHECK(s.code() == ErrorCode::kChecksumMismatch);
  CHECK(s.message().find("signed by key") != std::string::npos);
  CHECK_FALSE(file_exists(dir.file("out.slm")));

  // A re-checksummed forgery (valid xxh64s, as anyone can compute them) fails the signature:
  // rebuild the delta from other inputs and present the old signature with it.
  write_one_tensor_model(dir.file("evil.slm"), 3, "{\"v\":2}");
  REQUIRE(write_delta(dir.file("old.slm"), dir.file("evil.slm"), dir.file("evil.slmdelta")).ok());
  ApplyOptions forged = signed_opts;
  forged.signature_path = dir.file("u.slmdelta.sig");
  s = apply_delta(dir.file("old.slm"), dir.file("evil.slmdelta"), dir.file("out.slm"), forged);
  CHECK(s.code() == ErrorCode::kChecksumMismatch);
  CHECK(s.message().find("signature verification failed") != std::string::npos);
  CHECK_FALSE(file_exists(dir.file("out.slm")));
  // Without a key the same forgery applies: checksums detect corruption, not tampering.
  REQUIRE(apply_delta(dir.file("old.slm"), dir.file("evil.slmdelta"), dir.file("out.slm")).ok());
}

TEST_CASE("PEM keys as OpenSSL writes them: RFC 8032 test vector 1", "[fleet][signature]") {
  // `openssl genpkey -algorithm ed25519` / `openssl pkey -pubout` format, with the secret key of
  // RFC 8032 §7.1 TEST 1: the public key derived must be the RFC's.
  TempDir dir;
  const std::string priv =
      "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
      "-----END PRIVATE KEY-----\n";
  const std::string pub =
      "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"
      "-----END PUBLIC KEY-----\n";
  REQUIRE(test::write_bytes(dir.file("rfc.pem"), std::vector<uint8_t>(priv.begin(), priv.end())));
  REQUIRE(test::write_bytes(dir.file("rfc.pub"), std::vector<uint8_t>(pub.begin(), pub.end())));
  auto key = load_private_key(dir.file("rfc.pem"));
  REQUIRE(key.ok());
  const std::array<uint8_t, 32> rfc_public = {0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe,
                                              0xd3, 0xc9, 0x64, 0x07, 0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6,
                                              0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a};
  CHECK(key->public_key.bytes == rfc_public);
  auto public_key = load_public_key(dir.file("rfc.pub"));
  REQUIRE(public_key.ok());
  CHECK(public_key->bytes == rfc_public);
  CHECK(PublicKey::from_raw(rfc_public).key_id() == public_key->key_id());
  // Our PEM writer gives the same text back.
  CHECK(*private_key_pem(*key) == priv);
  CHECK(*public_key_pem(*public_key) == pub);
  // A file signed with it verifies with the public key file.
  REQUIRE(test::write_bytes(dir.file("f.bin"), std::vector<uint8_t>(1000, 7)));
  auto info = sign_file(dir.file("f.bin"), *key);
  REQUIRE(info.ok());
  CHECK(info->kind == SignedKind::kOther);
  CHECK(verify_file_signature(dir.file("f.bin"), *public_key).ok());
}
