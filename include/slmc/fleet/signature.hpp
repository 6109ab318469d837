// Ed25519 signatures of fleet files: a `.slm`, a `.slmdelta` or a release manifest, signed by the
// build server and checked by a device before the file is used. docs/FLEET.md §6 specifies the
// signature file; the implementation (OpenSSL libcrypto, linked privately) is
// src/fleet/signature.cpp.
//
// A signature is a detached 160-byte file (`FILE.sig` by default): the signed files keep their
// formats, bytes and mmap-ability untouched. What is signed is a 96-byte statement holding the
// file's size and SHA-256 (and the signing key's id), so signing and verifying stream the file
// with constant memory, whatever its size.
//
// Keys are PEM files as OpenSSL writes them (`openssl genpkey -algorithm ed25519` interoperates):
// PKCS#8 private keys (unencrypted) and SubjectPublicKeyInfo public keys. A device may embed the
// 32 raw public-key bytes instead (PublicKey::from_raw).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "slmc/status.hpp"

namespace slmc {

inline constexpr char kSignatureMagic[8] = {'S', 'L', 'M', 'C', 'S', 'I', 'G', 'N'};
inline constexpr uint16_t kSignatureFormatMajor = 1;
inline constexpr uint16_t kSignatureFormatMinor = 0;
inline constexpr uint64_t kSignatureStatementBytes = 96;  ///< the signed bytes [0, 96)
inline constexpr uint64_t kSignatureFileBytes = 160;      ///< statement + 64-byte Ed25519 signature

/// What a signed file is (stored in signatures: values never reused). Taken from the file's magic.
enum class SignedKind : uint8_t {
  kOther = 0,
  kModel = 1,     ///< `.slm` ("SLMCFILE")
  kDelta = 2,     ///< `.slmdelta` ("SLMDELTA")
  kManifest = 3,  ///< a release manifest (JSON, "format": "slmc-release-manifest")
};
const char* signed_kind_name(SignedKind kind) noexcept;

struct PublicKey {
  std::array<uint8_t, 32> bytes{};
  /// 16 hex digits: the first 8 bytes of SHA-256 of the 32 raw key bytes. Printed by keygen,
  /// sign and verify, and stored in signatures so that a wrong key is named as such.
  std::string key_id() const;
  static PublicKey from_raw(const std::array<uint8_t, 32>& raw) { return PublicKey{raw}; }
};

struct PrivateKey {
  std::array<uint8_t, 32> seed{};  ///< the Ed25519 private key (RFC 8032 seed)
  PublicKey public_key;
};

/// A fresh key pair from OpenSSL's random generator.
Result<PrivateKey> generate_key();
/// PEM text of the keys (PKCS#8 "PRIVATE KEY", SubjectPublicKeyInfo "PUBLIC KEY").
Result<std::string> private_key_pem(const PrivateKey& key);
Result<std::string> public_key_pem(const PublicKey& key);
/// Reads a PEM key file (a safe input: regular file, at most 64 KiB). An encrypted, non-Ed25519
/// or malformed key is kInvalidFormat naming the file; a public key given as private (and the
/// reverse) too. load_public_key also accepts a private key file (its public half).
Result<PrivateKey> load_private_key(const std::string& path);
Result<PublicKey> load_public_key(const std::string& path);

/// Writes the key pair: `private_path` with mode 0600, `public_path` with the umask's mode,
/// each atomically. Existing files are refused unless `force` (then replaced, never written
/// through).
Status write_key_pair(const PrivateKey& key, const std::string& private_path, const std::string& public_path,
                      bool force = false);

/// `path` + ".sig".
std::string default_signature_path(const std::string& path);

struct SignatureInfo {
  SignedKind kind = SignedKind::kOther;
  uint64_t file_bytes = 0;
  std::string sha256;  ///< 64 lower-case hex digits of the signed file
  std::string key_id;  ///< of the key that signed it
};

/// Streams `path` (SHA-256), signs the statement and writes the signature atomically to
/// `signature_path` (empty: default_signature_path). An output naming the file is refused.
Result<SignatureInfo> sign_file(const std::string& path, const PrivateKey& key,
                                const std::string& signature_path = {}, bool force = false);

/// Parses a signature file and checks it against `key` for a file of `file_bytes` bytes with
/// SHA-256 `sha256` (32 raw bytes). kInvalidFormat: not a signature, truncated, unknown kind,
/// reserved bytes set; kUnsupported: newer major; kChecksumMismatch (exit 5): made by another
/// key (both key ids named), for another file (sizes or hashes named), or the Ed25519 signature
/// does not verify. Every message names `signature_path`.
Result<SignatureInfo> check_signature(const std::string& signature_path, const PublicKey& key,
                                      uint64_t file_bytes, const std::array<uint8_t, 32>& sha256);

/// Streams `path` and check_signature()s it: the file is what `key`'s holder signed.
Result<SignatureInfo> verify_file_signature(const std::string& path, const PublicKey& key,
                                            const std::string& signature_path = {});

/// Streaming SHA-256 (OpenSSL), for data that arrives in pieces.
class Sha256Stream {
 public:
  Sha256Stream();
  ~Sha256Stream();
  Sha256Stream(const Sha256Stream&) = delete;
  Sha256Stream& operator=(const Sha256Stream&) = delete;
  void update(const void* data, size_t size) noexcept;
  /// The digest of everything given so far (the stream stays usable).
  std::array<uint8_t, 32> digest() const;

 private:
  void* ctx_;
};

/// SHA-256 of a file, streamed with read(2) through an already open descriptor (a safe input).
Result<std::array<uint8_t, 32>> sha256_of_file(const std::string& path, uint64_t* size = nullptr);

}  // namespace slmc
