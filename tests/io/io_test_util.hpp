// Helpers for reader tests: temporary directories, writing bytes, building safetensors files.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace slmc::test {

/// A fresh directory under $TMPDIR (or /tmp), removed with its files at destruction.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/slmc_test_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    char* p = ::mkdtemp(buf.data());
    if (p) path_ = p;
  }
  ~TempDir() {
    if (!path_.empty()) {
      const std::string cmd = "rm -rf '" + path_ + "'";
      if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "cannot remove %s\n", path_.c_str());
    }
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline bool write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return false;
  const bool ok = bytes.empty() || std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  return std::fclose(f) == 0 && ok;
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::vector<uint8_t> bytes;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return bytes;
  uint8_t buf[65536];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof(buf), f)) > 0) bytes.insert(bytes.end(), buf, buf + got);
  std::fclose(f);
  return bytes;
}

/// A safetensors file from a raw JSON header text and a byte buffer.
inline std::vector<uint8_t> safetensors_bytes(const std::string& header, const std::vector<uint8_t>& buffer) {
  const uint64_t n = header.size();
  std::vector<uint8_t> out(8 + header.size() + buffer.size());
  std::memcpy(out.data(), &n, 8);
  if (!header.empty()) std::memcpy(out.data() + 8, header.data(), header.size());
  if (!buffer.empty()) std::memcpy(out.data() + 8 + header.size(), buffer.data(), buffer.size());
  return out;
}

/// Builds safetensors files tensor by tensor (data packed in order, header padded to 8 bytes).
class SafetensorsBuilder {
 public:
  void add(const std::string& name, const std::string& dtype, std::vector<int64_t> shape, const void* data,
           size_t nbytes) {
    header_[name] = {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {buffer_.size(), buffer_.size() + nbytes}}};
    const auto* p = static_cast<const uint8_t*>(data);
    buffer_.insert(buffer_.end(), p, p + nbytes);
  }
  void metadata(const std::string& key, const std::string& value) { header_["__metadata__"][key] = value; }
  std::vector<uint8_t> bytes() const {
    std::string h = header_.dump();
    while ((h.size() + 8) % 8 != 0) h += ' ';
    return safetensors_bytes(h, buffer_);
  }

 private:
  nlohmann::json header_ = nlohmann::json::object();
  std::vector<uint8_t> buffer_;
};

}  // namespace slmc::test
