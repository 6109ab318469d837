// Shapes and non-owning tensor views. Sizes are 64-bit and every product is overflow-checked
// before anything is allocated or indexed.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "slmc/dtype.hpp"
#include "slmc/status.hpp"

namespace slmc {

/// Largest element count or byte size slmc accepts for one tensor (2^52: exact in a double, far
/// beyond any model, small enough that byte sizes of any dtype cannot overflow int64).
inline constexpr int64_t kMaxTensorElements = int64_t{1} << 52;
inline constexpr size_t kMaxRank = 8;

/// Row-major dimensions, outermost first (as in NumPy / safetensors; GGUF readers reverse theirs).
class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) : dims_(dims) {}
  explicit Shape(std::vector<int64_t> dims) : dims_(std::move(dims)) {}

  size_t rank() const noexcept { return dims_.size(); }
  int64_t operator[](size_t i) const { return dims_[i]; }
  const std::vector<int64_t>& dims() const noexcept { return dims_; }
  bool operator==(const Shape& o) const noexcept { return dims_ == o.dims_; }
  bool operator!=(const Shape& o) const noexcept { return dims_ != o.dims_; }

  /// Element count; only meaningful after validate() succeeded (then it cannot overflow).
  int64_t numel() const noexcept {
    int64_t n = 1;
    for (int64_t d : dims_) n *= d;
    return n;
  }

  /// Rows and columns of the matrix view: a rank-1 tensor is one row; higher ranks fold the
  /// leading dimensions into rows ([a, b, k] -> a*b rows of k).
  int64_t rows() const noexcept {
    if (dims_.empty()) return 1;
    int64_t r = 1;
    for (size_t i = 0; i + 1 < dims_.size(); ++i) r *= dims_[i];
    return r;
  }
  int64_t cols() const noexcept { return dims_.empty() ? 1 : dims_.back(); }

  /// "[64, 172]"
  std::string to_string() const {
    std::string s = "[";
    for (size_t i = 0; i < dims_.size(); ++i) {
      if (i) s += ", ";
      s += std::to_string(dims_[i]);
    }
    return s + "]";
  }

  /// Checks rank <= kMaxRank, every dim >= 0 and the element count <= kMaxTensorElements.
  Status validate() const {
    if (dims_.size() > kMaxRank) {
      return make_error(ErrorCode::kOutOfRange,
                        "shape " + to_string() + " has rank " + std::to_string(dims_.size()) +
                            " (at most " + std::to_string(kMaxRank) + ")");
    }
    int64_t n = 1;
    for (int64_t d : dims_) {
      if (d < 0) return make_error(ErrorCode::kOutOfRange, "shape " + to_string() + " has a negative dimension");
      if (d != 0 && n > kMaxTensorElements / d) {
        return make_error(ErrorCode::kOutOfRange, "shape " + to_string() + " has more than 2^52 elements");
      }
      n *= d;
    }
    return Status::ok_status();
  }

 private:
  std::vector<int64_t> dims_;
};

/// Exact byte size of `numel` elements of `dtype`; block types need numel to be whole blocks.
inline Result<uint64_t> dtype_byte_size(DType dtype, int64_t numel) {
  const DTypeTraits* t = find_dtype_traits(dtype);
  if (!t) return make_error(ErrorCode::kUnsupported, "unknown dtype value " + std::to_string(int(dtype)));
  if (numel < 0 || numel > kMaxTensorElements) {
    return make_error(ErrorCode::kOutOfRange, "element count " + std::to_string(numel) + " out of range");
  }
  if (numel % t->block_size != 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      std::to_string(numel) + " elements are not whole " + std::string(t->name) +
                          " blocks of " + std::to_string(t->block_size));
  }
  return static_cast<uint64_t>(numel / t->block_size) * t->block_bytes;
}

/// A named tensor in memory owned by someone else (usually an mmap of a model file).
struct TensorView {
  std::string name;
  Shape shape;
  DType dtype = DType::kF32;
  const void* data = nullptr;
  uint64_t nbytes = 0;

  /// Checks the shape and that nbytes equals the exact byte size of shape x dtype.
  Status validate() const {
    Status s = shape.validate();
    if (!s.ok()) return s.with_context("tensor '" + name + "'");
    auto expected = dtype_byte_size(dtype, shape.numel());
    if (!expected.ok()) return expected.status().with_context("tensor '" + name + "'");
    if (*expected != nbytes) {
      return make_error(ErrorCode::kInvalidFormat,
                        "tensor '" + name + "': " + std::string(dtype_name(dtype)) + " " + shape.to_string() +
                            " needs " + std::to_string(*expected) + " bytes, has " + std::to_string(nbytes));
    }
    if (nbytes != 0 && data == nullptr) {
      return make_error(ErrorCode::kInvalidArgument, "tensor '" + name + "': null data");
    }
    return Status::ok_status();
  }

  template <typename T>
  const T* data_as() const noexcept { return static_cast<const T*>(data); }
};

}  // namespace slmc
