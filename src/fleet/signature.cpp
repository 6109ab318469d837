// Ed25519 signatures of fleet files (include/slmc/fleet/signature.hpp; format in docs/FLEET.md §6).
#include "slmc/fleet/signature.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "slmc/io/output.hpp"
#include "slmc/io/safe_input.hpp"
#include "io/bytes.hpp"

namespace slmc {
namespace {

using io_detail::put_u16;
using io_detail::put_u64;
using io_detail::get_u16;
using io_detail::get_u32;
using io_detail::get_u64;
using io_detail::to_hex;

// Statement field offsets (docs/FLEET.md §6).
enum : size_t {
  kOffMagic = 0,
  kOffMajor = 8,
  kOffMinor = 10,
  kOffFlags = 12,
  kOffFileSize = 16,
  kOffSha256 = 24,
  kOffKeyId = 56,
  kOffKind = 64,
  kOffReserved = 65,  // ..96, zero
  kOffSignature = 96,
};

constexpr uint64_t kMaxKeyFileBytes = 64 * 1024;

struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

/// Never prompts: an encrypted PEM key fails to load instead of reading a terminal.
int no_passphrase(char*, int, int, void*) { return -1; }

std::array<uint8_t, 8> key_id_bytes(const PublicKey& key) {
  uint8_t digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  SLMC_CHECK(EVP_Digest(key.bytes.data(), key.bytes.size(), digest, &len, EVP_sha256(), nullptr) == 1,
             "EVP_Digest failed");
  std::array<uint8_t, 8> id{};
  std::memcpy(id.data(), digest, id.size());
  return id;
}

Result<Pkey> pkey_from_seed(const PrivateKey& key) {
  Pkey k(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, key.seed.data(), key.seed.size()));
  if (!k) return make_error(ErrorCode::kInternal, "OpenSSL cannot build an Ed25519 private key");
  return k;
}

Result<std::string> pem_of(EVP_PKEY* k, bool private_key) {
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new(BIO_s_mem()));
  if (!bio) return make_error(ErrorCode::kOutOfMemory, "cannot allocate an OpenSSL BIO");
  const int ok = private_key ? PEM_write_bio_PrivateKey(bio.get(), k, nullptr, nullptr, 0, nullptr, nullptr)
                             : PEM_write_bio_PUBKEY(bio.get(), k);
  if (ok != 1) return make_error(ErrorCode::kInternal, "OpenSSL cannot write the key as PEM");
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

SignedKind kind_of_prefix(const std::string& head) {
  if (head.compare(0, 8, "SLMCFILE") == 0) return SignedKind::kModel;
  if (head.compare(0, 8, "SLMDELTA") == 0) return SignedKind::kDelta;
  if (head.find("\"slmc-release-manifest\"") != std::string::npos) return SignedKind::kManifest;
  return SignedKind::kOther;
}

Status write_all(int fd, const void* data, size_t size, const std::string& what) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(ErrorCode::kIoError, what + ": write failed: " + std::strerror(errno));
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return Status::ok_status();
}

/// The whole of `bytes` at `path`, atomically, with `mode` set before any byte is written.
Status write_with_mode(const std::string& path, const std::string& bytes, mode_t mode) {
  SLMC_ASSIGN_OR_RETURN(TempFile temp, TempFile::create(path));
  if (::fchmod(temp.fd(), mode) != 0) {
    return make_error(ErrorCode::kIoError, temp.describe() + ": chmod failed: " + std::strerror(errno));
  }
  SLMC_RETURN_IF_ERROR(write_all(temp.fd(), bytes.data(), bytes.size(), temp.describe()));
  return temp.commit();
}

}  // namespace

const char* signed_kind_name(SignedKind kind) noexcept {
  switch (kind) {
    case SignedKind::kOther: return "other";
    case SignedKind::kModel: return "slm";
    case SignedKind::kDelta: return "slmdelta";
    case SignedKind::kManifest: return "manifest";
  }
  return "invalid";
}

std::string PublicKey::key_id() const {
  const std::array<uint8_t, 8> id = key_id_bytes(*this);
  return to_hex(id.data(), id.size());
}

Result<PrivateKey> generate_key() {
  std::unique_ptr<EVP_PKEY_CTX, void (*)(EVP_PKEY_CTX*)> ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr),
                                                            EVP_PKEY_CTX_free);
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_keygen(ctx.get(), &raw) != 1) {
    return make_error(ErrorCode::kInternal, "OpenSSL cannot generate an Ed25519 key");
  }
  Pkey k(raw);
  PrivateKey key;
  size_t n = key.seed.size();
  if (EVP_PKEY_get_raw_private_key(k.get(), key.seed.data(), &n) != 1 || n != key.seed.size()) {
    return make_error(ErrorCode::kInternal, "OpenSSL cannot export the Ed25519 private key");
  }
  n = key.public_key.bytes.size();
  if (EVP_PKEY_get_raw_public_key(k.get(), key.public_key.bytes.data(), &n) != 1 || n != 32) {
    return make_error(ErrorCode::kInternal, "OpenSSL cannot export the Ed25519 public key");
  }
  return key;
}

Result<std::string> private_key_pem(const PrivateKey& key) {
  SLMC_ASSIGN_OR_RETURN(Pkey k, pkey_from_seed(key));
  return pem_of(k.get(), true);
}

Result<std::string> public_key_pem(const PublicKey& key) {
  Pkey k(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, key.bytes.data(), key.bytes.size()));
  if (!k) return make_error(ErrorCode::kInternal, "OpenSSL cannot build an Ed25519 public key");
  return pem_of(k.get(), false);
}

namespace {

/// Loads a PEM key: private (PKCS#8) when `want_private`, else public (SubjectPublicKeyInfo) or
/// the public half of a private key.
Result<Pkey> load_pem_key(const std::string& path, bool want_private) {
  SLMC_ASSIGN_OR_RETURN(std::string text, read_input_file(path, kMaxKeyFileBytes));
  auto bad = [&path](const std::string& m) { return make_error(ErrorCode::kInvalidFormat, path + ": " + m); };
  if (text.find("ENCRYPTED") != std::string::npos) {
    return bad("the key is encrypted; slm-compress reads unencrypted PKCS#8 keys (decrypt it with "
               "`openssl pkey`, keep it on the signing machine only)");
  }
  const bool has_private = text.find("PRIVATE KEY-----") != std::string::npos;
  if (want_private && !has_private) return bad("not a private key (no PEM \"PRIVATE KEY\" block; a public key?)");
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  if (!bio) return make_error(ErrorCode::kOutOfMemory, "cannot allocate an OpenSSL BIO");
  Pkey k(has_private ? PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr)
                     : PEM_read_bio_PUBKEY(bio.get(), nullptr, no_passphrase, nullptr));
  if (!k) return bad(std::string("not a PEM ") + (has_private ? "private" : "public") + " key");
  if (EVP_PKEY_get_id(k.get()) != EVP_PKEY_ED25519) return bad("not an Ed25519 key");
  return k;
}

}  // namespace

Result<PrivateKey> load_private_key(const std::string& path) {
  SLMC_ASSIGN_OR_RETURN(Pkey k, load_pem_key(path, true));
  PrivateKey key;
  size_t n = key.seed.size();
  if (EVP_PKEY_get_raw_private_key(k.get(), key.seed.data(), &n) != 1 || n != 32) {
    return make_error(ErrorCode::kInvalidFormat, path + ": cannot read the Ed25519 private key");
  }
  n = key.public_key.bytes.size();
  if (EVP_PKEY_get_raw_public_key(k.get(), key.public_key.bytes.data(), &n) != 1 || n != 32) {
    return make_error(ErrorCode::kInvalidFormat, path + ": cannot derive the Ed25519 public key");
  }
  return key;
}

Result<PublicKey> load_public_key(const std::string& path) {
  SLMC_ASSIGN_OR_RETURN(Pkey k, load_pem_key(path, false));
  PublicKey key;
  size_t n = key.bytes.size();
  if (EVP_PKEY_get_raw_public_key(k.get(), key.bytes.data(), &n) != 1 || n != 32) {
    return make_error(ErrorCode::kInvalidFormat, path + ": cannot read the Ed25519 public key");
  }
  return key;
}

Status write_key_pair(const PrivateKey& key, const std::string& private_path, const std::string& public_path,
                      bool force) {
  if (private_path == public_path) {
    return make_error(ErrorCode::kInvalidArgument, private_path + ": the private and public key need two files");
  }
  for (const std::string& p : {private_path, public_path}) {
    struct stat st {};
    if (!force && ::lstat(p.c_str(), &st) == 0) {
      return make_error(ErrorCode::kInvalidArgument, p + ": exists; keygen does not replace keys (--force does)");
    }
    SLMC_RETURN_IF_ERROR(check_output_path(p, {}, OutputKind::kFile, force));
  }
  SLMC_ASSIGN_OR_RETURN(std::string priv, private_key_pem(key));
  SLMC_ASSIGN_OR_RETURN(std::string pub, public_key_pem(key.public_key));
  SLMC_RETURN_IF_ERROR(write_with_mode(private_path, priv, 0600));
  const mode_t mask = ::umask(0);
  ::umask(mask);
  return write_with_mode(public_path, pub, 0666 & ~mask);
}

std::string default_signature_path(const std::string& path) { return path + ".sig"; }

Sha256Stream::Sha256Stream() : ctx_(EVP_MD_CTX_new()) {
  SLMC_CHECK(ctx_ != nullptr && EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr) == 1,
             "OpenSSL cannot start SHA-256");
}
Sha256Stream::~Sha256Stream() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }
void Sha256Stream::update(const void* data, size_t size) noexcept {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data, size);
}
std::array<uint8_t, 32> Sha256Stream::digest() const {
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> copy(EVP_MD_CTX_new());
  std::array<uint8_t, 32> out{};
  unsigned int len = 0;
  SLMC_CHECK(copy && EVP_MD_CTX_copy_ex(copy.get(), static_cast<const EVP_MD_CTX*>(ctx_)) == 1 &&
                 EVP_DigestFinal_ex(copy.get(), out.data(), &len) == 1 && len == 32,
             "OpenSSL cannot finish SHA-256");
  return out;
}

Result<std::array<uint8_t, 32>> sha256_of_file(const std::string& path, uint64_t* size) {
  SLMC_ASSIGN_OR_RETURN(int fd, open_regular_file(path));
  Sha256Stream sha;
  std::vector<uint8_t> buf(size_t{1} << 20);
  uint64_t total = 0;
  for (;;) {
    const ssize_t got = ::read(fd, buf.data(), buf.size());
    if (got < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return make_error(ErrorCode::kIoError, path + ": read failed: " + std::strerror(err));
    }
    if (got == 0) break;
    sha.update(buf.data(), static_cast<size_t>(got));
    total += static_cast<uint64_t>(got);
  }
  ::close(fd);
  if (size != nullptr) *size = total;
  return sha.digest();
}

Result<SignatureInfo> sign_file(const std::string& path, const PrivateKey& key, const std::string& signature_path,
                                bool force) {
  const std::string out = signature_path.empty() ? default_signature_path(path) : signature_path;
  SLMC_RETURN_IF_ERROR(check_output_path(out, {path}, OutputKind::kFile, force));
  uint64_t size = 0;
  SLMC_ASSIGN_OR_RETURN(auto digest, sha256_of_file(path, &size));
  // The kind, from the file's first bytes (informative: the hash binds the content).
  SignedKind kind = SignedKind::kOther;
  {
    SLMC_ASSIGN_OR_RETURN(int fd, open_regular_file(path));
    std::string head(4096, '\0');
    const ssize_t n = ::pread(fd, head.data(), head.size(), 0);
    ::close(fd);
    head.resize(n > 0 ? static_cast<size_t>(n) : 0);
    kind = kind_of_prefix(head);
  }
  uint8_t sig[kSignatureFileBytes] = {};
  std::memcpy(sig + kOffMagic, kSignatureMagic, 8);
  put_u16(sig + kOffMajor, kSignatureFormatMajor);
  put_u16(sig + kOffMinor, kSignatureFormatMinor);
  put_u64(sig + kOffFileSize, size);
  std::memcpy(sig + kOffSha256, digest.data(), 32);
  const std::array<uint8_t, 8> id = key_id_bytes(key.public_key);
  std::memcpy(sig + kOffKeyId, id.data(), id.size());
  sig[kOffKind] = static_cast<uint8_t>(kind);

  SLMC_ASSIGN_OR_RETURN(Pkey k, pkey_from_seed(key));
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> md(EVP_MD_CTX_new());
  size_t sig_len = 64;
  if (!md || EVP_DigestSignInit(md.get(), nullptr, nullptr, nullptr, k.get()) != 1 ||
      EVP_DigestSign(md.get(), sig + kOffSignature, &sig_len, sig, kSignatureStatementBytes) != 1 || sig_len != 64) {
    return make_error(ErrorCode::kInternal, "OpenSSL cannot sign with Ed25519");
  }
  SLMC_RETURN_IF_ERROR(write_file_atomic(out, std::string(reinterpret_cast<const char*>(sig), sizeof sig)));
  return SignatureInfo{kind, size, to_hex(digest.data(), 32), key.public_key.key_id()};
}

Result<SignatureInfo> check_signature(const std::string& signature_path, const PublicKey& key, uint64_t file_bytes,
                                      const std::array<uint8_t, 32>& sha256) {
  const std::string& sp = signature_path;
  auto bad = [&sp](const std::string& m) { return make_error(ErrorCode::kInvalidFormat, sp + ": " + m); };
  auto read = read_input_file(signature_path, 1 << 20);
  if (!read.ok()) return read.status();
  const std::string& text = *read;
  if (text.size() >= 8 && std::memcmp(text.data(), kSignatureMagic, 8) != 0) {
    return bad("not a signature file (no SLMCSIGN magic)");
  }
  if (text.size() < kSignatureFileBytes) {
    return bad("truncated: " + std::to_string(text.size()) + " bytes, a signature has " +
               std::to_string(kSignatureFileBytes));
  }
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const uint16_t major = get_u16(s + kOffMajor), minor = get_u16(s + kOffMinor);
  if (major == 0 || major > kSignatureFormatMajor) {
    return make_error(ErrorCode::kUnsupported, sp + ": signature format version " + std::to_string(major) + "." +
                                                   std::to_string(minor) + " is not supported (this reader: " +
                                                   std::to_string(kSignatureFormatMajor) + ".x)");
  }
  if (text.size() > kSignatureFileBytes) {
    return bad("trailing bytes: " + std::to_string(text.size()) + " bytes, a signature has " +
               std::to_string(kSignatureFileBytes));
  }
  if (get_u32(s + kOffFlags) != 0) return bad("flags are not zero");
  if (s[kOffKind] > static_cast<uint8_t>(SignedKind::kManifest)) {
    return bad("unknown signed kind " + std::to_string(s[kOffKind]));
  }
  for (size_t i = kOffReserved; i < kOffSignature; ++i) {
    if (s[i] != 0) return bad("reserved bytes are not zero");
  }
  SignatureInfo info;
  info.kind = static_cast<SignedKind>(s[kOffKind]);
  info.file_bytes = get_u64(s + kOffFileSize);
  info.sha256 = to_hex(s + kOffSha256, 32);
  info.key_id = to_hex(s + kOffKeyId, 8);
  // Which key and which file first, for a message that says what is wrong; then the signature,
  // which alone decides (the statement's fields are only trusted once it verifies).
  const std::string want_key = key.key_id();
  if (info.key_id != want_key) {
    return make_error(ErrorCode::kChecksumMismatch, sp + ": signature verification failed: signed by key " +
                                                        info.key_id + ", the public key given is " + want_key);
  }
  Pkey k(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, key.bytes.data(), key.bytes.size()));
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> md(EVP_MD_CTX_new());
  if (!k || !md || EVP_DigestVerifyInit(md.get(), nullptr, nullptr, nullptr, k.get()) != 1) {
    return make_error(ErrorCode::kInternal, "OpenSSL cannot start an Ed25519 verification");
  }
  if (EVP_DigestVerify(md.get(), s + kOffSignature, 64, s, kSignatureStatementBytes) != 1) {
    return make_error(ErrorCode::kChecksumMismatch,
                      sp + ": signature verification failed: the Ed25519 signature does not match its statement "
                           "under key " + want_key + " (a forged or damaged signature)");
  }
  if (info.file_bytes != file_bytes || std::memcmp(s + kOffSha256, sha256.data(), 32) != 0) {
    return make_error(ErrorCode::kChecksumMismatch,
                      sp + ": signature verification failed: it signs a file of " + std::to_string(info.file_bytes) +
                          " bytes with SHA-256 " + info.sha256 + "; this file has " + std::to_string(file_bytes) +
                          " bytes with SHA-256 " + to_hex(sha256.data(), 32) + " (modified, or another file)");
  }
  return info;
}

Result<SignatureInfo> verify_file_signature(const std::string& path, const PublicKey& key,
                                            const std::string& signature_path) {
  const std::string sig = signature_path.empty() ? default_signature_path(path) : signature_path;
  uint64_t size = 0;
  SLMC_ASSIGN_OR_RETURN(auto digest, sha256_of_file(path, &size));
  auto info = check_signature(sig, key, size, digest);
  if (!info.ok() && info.status().code() == ErrorCode::kChecksumMismatch) return info.status().with_context(path);
  return info;
}

}  // namespace slmc
