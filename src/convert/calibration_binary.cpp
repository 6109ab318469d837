// Binary calibration statistics ("SLMCCAL1", include/slmc/convert/converter.hpp, docs/CLI.md).
// Little-endian, one pass, every length checked against the bytes present before it is used,
// the xxh64 trailer checked before any field is read.
#include <cmath>
#include <cstring>

#include "slmc/convert/converter.hpp"
#include "slmc/io/hash.hpp"
#include "slmc/text/tokenizer.hpp"

namespace slmc {
namespace {

constexpr char kMagic[8] = {'S', 'L', 'M', 'C', 'C', 'A', 'L', '1'};
constexpr uint32_t kVersion = 1;
constexpr uint32_t kHasGram = 1;

template <typename T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // the library supports little-endian hosts only (FORMAT.md)
  out.append(b, sizeof(T));
}

void put_floats(std::string& out, const float* p, size_t n) {
  out.append(reinterpret_cast<const char*>(p), n * sizeof(float));
}

// A bounds-checked little-endian reader over the body (the checksum trailer excluded).
class Reader {
 public:
  Reader(std::string_view body, const std::string& origin) : body_(body), origin_(origin) {}
  size_t left() const noexcept { return body_.size() - at_; }
  template <typename T>
  Status get(T* v, const char* what) {
    if (left() < sizeof(T)) return truncated(what);
    std::memcpy(v, body_.data() + at_, sizeof(T));
    at_ += sizeof(T);
    return Status();
  }
  Status bytes(size_t n, std::string_view* v, const char* what) {
    if (left() < n) return truncated(what);
    *v = body_.substr(at_, n);
    at_ += n;
    return Status();
  }
  Status error(const std::string& what) const {
    return make_error(ErrorCode::kInvalidFormat,
                      "calibration " + origin_ + ": " + what + " (at byte " + std::to_string(at_) + ")");
  }

 private:
  Status truncated(const char* what) const {
    return error(std::string("truncated: ") + what + " needs more than the " + std::to_string(left()) +
                 " bytes left");
  }
  std::string_view body_;
  const std::string& origin_;
  size_t at_ = 0;
};

}  // namespace

bool is_calibration_binary(std::string_view bytes) noexcept {
  return bytes.size() >= sizeof(kMagic) && std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) == 0;
}

std::string calibration_to_binary(const Calibration& calibration) {
  size_t total = 8 + 8 + 8 + 8;
  for (const auto& [name, e] : calibration.tensors) {
    const size_t k = e.mean_sq.size();
    total += 24 + (name.size() + 3) / 4 * 4 + 4 * k + (e.gram.size() == k * k ? 4 * (k * (k + 1) / 2) : 0);
  }
  std::string out;
  out.reserve(total);
  out.append(kMagic, sizeof(kMagic));
  put<uint32_t>(out, kVersion);
  put<uint32_t>(out, 0);  // flags, none defined
  put<uint64_t>(out, calibration.tensors.size());
  for (const auto& [name, e] : calibration.tensors) {
    const size_t k = e.mean_sq.size();
    const bool gram = !e.gram.empty() && e.gram.size() == k * k;
    put<uint32_t>(out, static_cast<uint32_t>(name.size()));
    put<uint32_t>(out, gram ? kHasGram : 0);
    put<uint64_t>(out, k);
    put<double>(out, e.count);
    out.append(name);
    out.append((4 - name.size() % 4) % 4, '\0');
    put_floats(out, e.mean_sq.data(), k);
    if (gram) {
      for (size_t i = 0; i < k; ++i) put_floats(out, e.gram.data() + i * k + i, k - i);
    }
  }
  put<uint64_t>(out, xxh64(out.data(), out.size()));
  return out;
}

Result<Calibration> parse_calibration_binary(std::string_view bytes, const std::string& origin) {
  auto err = [&](const std::string& what) {
    return make_error(ErrorCode::kInvalidFormat, "calibration " + origin + ": " + what);
  };
  if (!is_calibration_binary(bytes)) return err("not a binary calibration file (magic SLMCCAL1)");
  if (bytes.size() < 8 + 8 + 8 + 8) return err("truncated: " + std::to_string(bytes.size()) + " bytes");
  const std::string_view body = bytes.substr(0, bytes.size() - 8);
  uint64_t stored = 0;
  std::memcpy(&stored, bytes.data() + body.size(), 8);
  if (xxh64(body.data(), body.size()) != stored) {
    return err("checksum mismatch (the file is corrupted or truncated)");
  }
  Reader r(body.substr(sizeof(kMagic)), origin);
  uint32_t version = 0, flags = 0;
  uint64_t count = 0;
  SLMC_RETURN_IF_ERROR(r.get(&version, "the version"));
  if (version != kVersion) return err("unsupported version " + std::to_string(version) + " (this slmc reads 1)");
  SLMC_RETURN_IF_ERROR(r.get(&flags, "the flags"));
  if (flags != 0) return err("unknown flags " + std::to_string(flags));
  SLMC_RETURN_IF_ERROR(r.get(&count, "the tensor count"));
  // Every tensor takes at least 24 bytes: a count larger than that allows is a lie, not a reason
  // to reserve memory.
  if (count > r.left() / 24) return err("tensor count " + std::to_string(count) + " does not fit in the file");
  Calibration cal;
  for (uint64_t t = 0; t < count; ++t) {
    uint32_t name_bytes = 0, tflags = 0;
    uint64_t k = 0;
    double n = 0;
    SLMC_RETURN_IF_ERROR(r.get(&name_bytes, "a tensor's name length"));
    SLMC_RETURN_IF_ERROR(r.get(&tflags, "a tensor's flags"));
    SLMC_RETURN_IF_ERROR(r.get(&k, "a tensor's channel count"));
    SLMC_RETURN_IF_ERROR(r.get(&n, "a tensor's token count"));
    std::string_view name;
    SLMC_RETURN_IF_ERROR(r.bytes(name_bytes, &name, "a tensor's name"));
    std::string_view pad;
    SLMC_RETURN_IF_ERROR(r.bytes((4 - name_bytes % 4) % 4, &pad, "a name's padding"));
    const std::string label = "tensor " + std::to_string(t) + " ('" + sanitize_utf8(name) + "')";
    if (name.empty() || name.find('\0') != std::string_view::npos) return r.error(label + ": empty name or NUL byte in it");
    if (tflags & ~kHasGram) return r.error(label + ": unknown flags " + std::to_string(tflags));
    if (!(n > 0) || !std::isfinite(n)) return r.error(label + ": token count must be > 0");
    // Sizes from the bytes present: k values and, with a Gram matrix, k (k + 1) / 2 more.
    const uint64_t floats_left = r.left() / 4;
    if (k == 0 || k > floats_left) return r.error(label + ": " + std::to_string(k) + " channels do not fit in the file");
    // A Gram matrix of k channels needs k (k + 1) / 2 more values (k < 2^31 first: no overflow).
    const bool has_gram = (tflags & kHasGram) != 0;
    const uint64_t gram_values = has_gram && k < (uint64_t{1} << 31) ? k * (k + 1) / 2 : 0;
    if (has_gram && (gram_values == 0 || gram_values > floats_left - k)) {
      return r.error(label + ": its Gram matrix (" + std::to_string(gram_values) + " values) does not fit in the file");
    }
    CalibrationEntry e;
    e.count = n;
    std::string_view raw;
    SLMC_RETURN_IF_ERROR(r.bytes(4 * k, &raw, "mean_sq"));
    e.mean_sq.resize(k);
    std::memcpy(e.mean_sq.data(), raw.data(), raw.size());
    for (uint64_t j = 0; j < k; ++j) {
      if (!std::isfinite(e.mean_sq[j]) || e.mean_sq[j] < 0) {
        return r.error(label + ": mean_sq[" + std::to_string(j) + "] = " + std::to_string(e.mean_sq[j]) +
                       " (must be finite and >= 0)");
      }
    }
    if (has_gram) {
      SLMC_RETURN_IF_ERROR(r.bytes(4 * gram_values, &raw, "the Gram matrix"));
      const float* g = reinterpret_cast<const float*>(raw.data());  // 4-aligned offsets; memcpy below
      e.gram.assign(k * k, 0.0f);
      size_t at = 0;
      for (uint64_t i = 0; i < k; ++i) {
        for (uint64_t c = i; c < k; ++c, ++at) {
          float v;
          std::memcpy(&v, g + at, 4);
          if (!std::isfinite(v) || (c == i && v < 0)) {
            return r.error(label + ": gram[" + std::to_string(i) + ", " + std::to_string(c) + "] = " +
                           std::to_string(v) + (c == i ? " (must be finite and >= 0)" : " (must be finite)"));
          }
          e.gram[i * k + c] = e.gram[c * k + i] = v;
        }
      }
    }
    if (!cal.tensors.emplace(std::string(name), std::move(e)).second) {
      return r.error(label + ": the name appears twice");
    }
  }
  if (r.left() != 0) return r.error(std::to_string(r.left()) + " bytes after the last tensor");
  return cal;
}

}  // namespace slmc
