#include "io/reader_util.hpp"

#include <vector>

namespace slmc::io_detail {

std::string quote(std::string_view s) {
  std::string out = "'";
  const size_t limit = 200;
  for (size_t i = 0; i < s.size() && i < limit; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f || c == '\'' || c == '\\') {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > limit) out += "...";
  return out + "'";
}

bool is_valid_utf8(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i < len) return false;
    for (size_t j = 1; j < len; ++j) {
      if ((p[i + j] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i + j] & 0x3f);
    }
    static const uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

Status add_tensor(ModelSource& src, const std::string& file, std::string name, Shape shape, DType dtype,
                  uint64_t offset, uint64_t nbytes, uint32_t file_index, DType source_dtype) {
  SourceTensor t;
  t.name = std::move(name);
  t.shape = std::move(shape);
  t.dtype = dtype;
  t.nbytes = nbytes;
  Status s = t.shape.validate();
  if (!s.ok()) return s.with_context(file + ": tensor " + quote(t.name));
  auto expected = dtype_byte_size(dtype, t.shape.numel());
  if (!expected.ok()) return expected.status().with_context(file + ": tensor " + quote(t.name));
  if (*expected != nbytes) {
    return make_error(ErrorCode::kInvalidFormat, file + ": tensor " + quote(t.name) + ": " +
                                                     std::string(dtype_name(dtype)) + " " + t.shape.to_string() +
                                                     " needs " + std::to_string(*expected) + " bytes, has " +
                                                     std::to_string(nbytes));
  }
  TensorOrigin origin;
  origin.file_index = file_index;
  origin.offset = offset;
  origin.source_dtype = source_dtype;
  src.tensors_.push_back(std::move(t));
  src.origins_.push_back(origin);
  return Status::ok_status();
}

Status transpose_2d(ModelSource& src, size_t index) {
  SourceTensor& v = src.tensors_[index];
  if (v.shape.rank() != 2) {
    return make_error(ErrorCode::kInvalidFormat,
                      "tensor " + quote(v.name) + ": expected a rank-2 Conv1D weight, got " + v.shape.to_string());
  }
  v.shape = Shape{v.shape[1], v.shape[0]};
  src.origins_[index].transposed = true;  // ModelSource::load transposes the data
  return Status::ok_status();
}

}  // namespace slmc::io_detail
