#include "slmc/io/hash.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>
#include <vector>

#include <openssl/evp.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "io/bytes.hpp"

namespace slmc {
namespace {

using io_detail::to_hex;

struct MdCtx {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~MdCtx() { EVP_MD_CTX_free(ctx); }
};

}  // namespace

std::string hex_string(const void* data, size_t size) { return to_hex(static_cast<const uint8_t*>(data), size); }

std::string sha256_hex(const void* data, size_t size) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  SLMC_CHECK(EVP_Digest(data, size, digest, &len, EVP_sha256(), nullptr) == 1, "EVP_Digest failed");
  return to_hex(digest, len);
}

Result<std::string> sha256_file_hex(const std::string& path, uint64_t* size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(ErrorCode::kIoError, path + ": cannot open: " + std::strerror(errno));
  MdCtx md;
  SLMC_CHECK(md.ctx && EVP_DigestInit_ex(md.ctx, EVP_sha256(), nullptr) == 1, "EVP_DigestInit failed");
  std::vector<unsigned char> buf(1 << 20);
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
    total += static_cast<uint64_t>(got);
    EVP_DigestUpdate(md.ctx, buf.data(), static_cast<size_t>(got));
  }
  ::close(fd);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(md.ctx, digest, &len);
  if (size) *size = total;
  return to_hex(digest, len);
}

uint64_t xxh64(const void* data, size_t size) noexcept { return XXH64(data, size, 0); }

Xxh64Stream::Xxh64Stream() : state_(XXH64_createState()) {
  SLMC_CHECK(state_ != nullptr, "XXH64_createState failed");
  XXH64_reset(static_cast<XXH64_state_t*>(state_), 0);
}
Xxh64Stream::~Xxh64Stream() { XXH64_freeState(static_cast<XXH64_state_t*>(state_)); }
void Xxh64Stream::update(const void* data, size_t size) noexcept {
  XXH64_update(static_cast<XXH64_state_t*>(state_), data, size);
}
uint64_t Xxh64Stream::digest() const noexcept { return XXH64_digest(static_cast<XXH64_state_t*>(state_)); }

}  // namespace slmc
