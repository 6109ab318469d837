#include "slmc/io/output.hpp"
#include "slmc/convert/safetensors_writer.hpp"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include "slmc/tensor.hpp"

namespace slmc {
namespace {

const char* safetensors_dtype(DType d) {
  switch (d) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kF64: return "F64";
    case DType::kI8: return "I8";
    case DType::kU8: return "U8";
    case DType::kI16: return "I16";
    case DType::kI32: return "I32";
    case DType::kI64: return "I64";
    case DType::kBool: return "BOOL";
    default: return nullptr;
  }
}

Status write_all(int fd, const void* data, size_t n, const std::string& path) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return make_error(ErrorCode::kIoError, path + ": write failed: " + std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::ok_status();
}

}  // namespace

Status write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& entries,
                         const std::map<std::string, std::string>& metadata,
                         const std::function<Status(size_t, std::vector<uint8_t>&)>& produce) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<uint64_t> sizes;
  uint64_t offset = 0;
  for (const SafetensorsEntry& e : entries) {
    const char* dt = safetensors_dtype(e.dtype);
    if (!dt) {
      return make_error(ErrorCode::kUnsupported, path + ": tensor '" + e.name + "': dtype " +
                                                     std::string(dtype_name(e.dtype)) + " has no safetensors type");
    }
    Shape shape(e.shape);
    SLMC_RETURN_IF_ERROR(shape.validate().with_context(path + ": tensor '" + e.name + "'"));
    SLMC_ASSIGN_OR_RETURN(uint64_t bytes, dtype_byte_size(e.dtype, shape.numel()));
    header[e.name] = {{"dtype", dt}, {"shape", e.shape}, {"data_offsets", {offset, offset + bytes}}};
    sizes.push_back(bytes);
    offset += bytes;
  }
  std::string text = header.dump();
  while (text.size() % 8 != 0) text.push_back(' ');  // data starts 8-byte aligned

  SLMC_ASSIGN_OR_RETURN(TempFile temp, TempFile::create(path));  // anonymous or unpredictable, O_EXCL
  const int fd = temp.fd();
  const std::string tmp = temp.describe();
  auto fail = [&](Status s) { return s; };  // ~TempFile removes the temporary
  uint8_t len[8];
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  Status s = write_all(fd, len, 8, tmp);
  if (s.ok()) s = write_all(fd, text.data(), text.size(), tmp);
  std::vector<uint8_t> bytes;
  for (size_t i = 0; s.ok() && i < entries.size(); ++i) {
    bytes.clear();
    s = produce(i, bytes);
    if (s.ok() && bytes.size() != sizes[i]) {
      s = make_error(ErrorCode::kInternal, path + ": tensor '" + entries[i].name + "': produced " +
                                               std::to_string(bytes.size()) + " bytes, expected " +
                                               std::to_string(sizes[i]));
    }
    if (s.ok()) s = write_all(fd, bytes.data(), bytes.size(), tmp);
  }
  if (!s.ok()) return fail(s);
  return temp.commit();
}

}  // namespace slmc
