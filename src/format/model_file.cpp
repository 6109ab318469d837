// .slm writer and loader (docs/FORMAT.md).
#include "slmc/format/model_file.hpp"

#include "slmc/io/output.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

#include "io/reader_util.hpp"
#include "slmc/format/slm_generated.h"
#include "slmc/io/hash.hpp"
#include "slmc/quant/validate.hpp"   // validate_dense_matrix: the one authority for dense encodings
#include "slmc/sparse/validate.hpp"  // validate_sparse_matrix: the same for sparse ones
#include "slmc/version.hpp"

namespace slmc {
namespace {

constexpr uint64_t kZeroBlock = 64 * 1024;  // runs of zeros this long (aligned) become file holes

// Names in messages and the UTF-8 check are the readers' (src/io/reader_util.hpp): one definition.
using io_detail::quote;
using io_detail::is_valid_utf8;

template <typename T>
void store_le(uint8_t* p, T v) noexcept {
  std::memcpy(p, &v, sizeof(T));
}
template <typename T>
T load_le(const uint8_t* p) noexcept {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

uint64_t align_up(uint64_t x, uint64_t a) noexcept { return (x + a - 1) / a * a; }

/// The one validation both writer and loader apply to an encoded matrix.
Status validate_matrix(const EncodedMatrixView& v, std::string_view name) {
  const Encoding& e = v.encoding;
  if (v.rows < 0 || v.cols < 0) {
    return make_error(ErrorCode::kOutOfRange, "tensor " + quote(name) + ": negative matrix shape");
  }
  if (v.rows == 0 || v.cols == 0) {
    // Empty tensors: only as a dense float encoding without any data.
    const unsigned vt = static_cast<unsigned>(e.value_type);
    Encoding plain;
    plain.value_type = e.value_type;
    if (e.format != SparseFormat::kDense || vt > 2 || v.total_bytes() != 0 || e != plain) {
      return make_error(ErrorCode::kInvalidFormat,
                        "tensor " + quote(name) + ": an empty tensor must be dense float without data");
    }
    return Status::ok_status();
  }
  // Memory bombs: a reader decodes a tensor into rows x cols floats, so a few KB of a valid file
  // must not make it allocate gigabytes (a sparse tensor with an inflated K did). The decoded size
  // is bounded by the data actually present: at most kMaxExpansion times the stored bytes, or
  // kMinDecodedLimit, whichever is larger (int4 is 8x, a 2:4 or bitmask encoding below 64x, a CSR
  // tensor 1024x only above 99.9% sparsity).
  {
    constexpr uint64_t kMinDecodedLimit = uint64_t{256} << 20;
    constexpr uint64_t kMaxExpansion = 1024;
    const uint64_t rows = static_cast<uint64_t>(v.rows), cols = static_cast<uint64_t>(v.cols);
    const uint64_t stored = v.total_bytes();
    const uint64_t limit = std::max(kMinDecodedLimit, stored > UINT64_MAX / kMaxExpansion ? UINT64_MAX : stored * kMaxExpansion);
    if (rows > limit / 4 / cols) {
      const long double decoded = static_cast<long double>(rows) * static_cast<long double>(cols) * 4;
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%.0Lf", decoded);
      return make_error(ErrorCode::kOutOfRange,
                        "tensor " + quote(name) + ": [" + std::to_string(v.rows) + ", " + std::to_string(v.cols) +
                            "] decodes to " + buf + " bytes of fp32 from " + std::to_string(stored) +
                            " stored bytes, more than " + std::to_string(kMaxExpansion) +
                            " times the stored size and more than 256 MiB (refused: a reader would allocate it)");
    }
  }
  switch (e.format) {
    case SparseFormat::kDense: return validate_dense_matrix(v, name);
    case SparseFormat::kCsr:
    case SparseFormat::kBsr:
    case SparseFormat::kNM:
    case SparseFormat::kBitmask: return validate_sparse_matrix(v, name);
  }
  return make_error(ErrorCode::kInvalidFormat,
                    "tensor " + quote(name) + ": unknown sparse format " + std::to_string(int(e.format)));
}

flatbuffers::Offset<fb::Encoding> build_encoding(flatbuffers::FlatBufferBuilder& b, const Encoding& e) {
  return fb::CreateEncoding(b, static_cast<uint8_t>(e.value_type), static_cast<uint8_t>(e.granularity), e.group_size,
                            e.symmetric, static_cast<uint8_t>(e.scale_dtype), static_cast<uint8_t>(e.search),
                            static_cast<uint8_t>(e.format), e.nm_n, e.nm_m, e.block_rows, e.block_cols,
                            static_cast<uint8_t>(e.layout));
}

Encoding read_encoding(const fb::Encoding& f) {
  Encoding e;
  // Raw values are kept as they are (the enums have a fixed underlying type); the validators
  // reject values they do not know.
  e.value_type = static_cast<ValueType>(f.value_type());
  e.granularity = static_cast<Granularity>(f.granularity());
  e.group_size = f.group_size();
  e.symmetric = f.symmetric();
  e.scale_dtype = static_cast<DType>(f.scale_dtype());
  e.search = static_cast<ScaleSearch>(f.search());
  e.format = static_cast<SparseFormat>(f.format());
  e.nm_n = f.nm_n();
  e.nm_m = f.nm_m();
  e.block_rows = f.block_rows();
  e.block_cols = f.block_cols();
  e.layout = static_cast<RowLayout>(f.layout());
  return e;
}

Status io_error(const std::string& what, const std::string& path) {
  return make_error(ErrorCode::kIoError, path + ": " + what + ": " + std::strerror(errno));
}

Status write_all(int fd, const void* data, uint64_t size, uint64_t offset, const std::string& path) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(size, uint64_t{1} << 30));
    const ssize_t n = ::pwrite(fd, p, chunk, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("write failed", path);
    }
    p += n;
    size -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return Status::ok_status();
}

Status read_all(int fd, void* data, uint64_t size, uint64_t offset, const std::string& path) {
  auto* p = static_cast<uint8_t*>(data);
  while (size > 0) {
    const ssize_t n = ::pread(fd, p, static_cast<size_t>(std::min<uint64_t>(size, uint64_t{1} << 30)),
                              static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("read failed", path);
    }
    if (n == 0) return make_error(ErrorCode::kIoError, path + ": unexpected end of temporary file");
    p += n;
    size -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return Status::ok_status();
}

bool all_zero(const uint8_t* p, uint64_t n) noexcept {
  uint64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    if (w) return false;
  }
  for (; i < n; ++i) {
    if (p[i]) return false;
  }
  return true;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Writer
// ------------------------------------------------------------------------------------------------

struct ModelFileWriter::Impl {
  std::string path;       // destination
  ModelHeader header;
  int data_fd = -1;       // unlinked temporary holding the data section
  bool size_only = false; // create_sizer(): lay out, write nothing (data_fd stays -1)
  uint64_t data_size = 0;
  uint64_t file_size = 0;
  uint64_t dedup_bytes = 0;
  bool finished = false;
  bool failed = false;

  struct Seg {
    uint8_t role;
    uint64_t offset, size, hash;
  };
  struct Tensor {
    TensorInfo info;
    Encoding encoding;
    std::vector<Seg> segs;
  };
  std::vector<Tensor> tensors;
  std::set<std::string> names;
  std::multimap<std::pair<uint64_t, uint64_t>, uint64_t> by_hash;  // (hash, size) -> offset

  ~Impl() { cleanup(); }
  void cleanup() noexcept {
    if (data_fd >= 0) ::close(data_fd);
    data_fd = -1;
  }

  /// Returns true if [p, p + n) equals the data already written at `offset`.
  Result<bool> same_bytes(const uint8_t* p, uint64_t n, uint64_t offset) {
    std::vector<uint8_t> buf(static_cast<size_t>(std::min<uint64_t>(n, 1 << 20)));
    for (uint64_t done = 0; done < n;) {
      const uint64_t chunk = std::min<uint64_t>(buf.size(), n - done);
      SLMC_RETURN_IF_ERROR(read_all(data_fd, buf.data(), chunk, offset + done, path + " (temporary data)"));
      if (std::memcmp(buf.data(), p + done, chunk) != 0) return false;
      done += chunk;
    }
    return true;
  }

  /// Appends one segment (or finds an identical one); returns its offset.
  Result<uint64_t> put(const uint8_t* p, uint64_t n, uint64_t hash) {
    auto range = by_hash.equal_range({hash, n});
    for (auto it = range.first; it != range.second; ++it) {
      bool same = size_only;
      if (!size_only) {
        SLMC_ASSIGN_OR_RETURN(same, same_bytes(p, n, it->second));
      }
      if (same) {
        dedup_bytes += n;
        return it->second;
      }
    }
    const uint64_t offset = align_up(data_size, kSegmentAlignment);
    if (size_only) {
      data_size = offset + n;
      by_hash.emplace(std::make_pair(hash, n), offset);
      return offset;
    }
    // Aligned all-zero blocks are skipped: they become holes (sparse files stay sparse).
    uint64_t pos = 0;
    while (pos < n) {
      const uint64_t file_pos = offset + pos;
      const uint64_t block_end = std::min<uint64_t>(n, align_up(file_pos + 1, kZeroBlock) - offset);
      const uint64_t len = block_end - pos;
      if (!(len == kZeroBlock && all_zero(p + pos, len))) {
        SLMC_RETURN_IF_ERROR(write_all(data_fd, p + pos, len, file_pos, path + " (temporary data)"));
      }
      pos = block_end;
    }
    data_size = offset + n;
    // Keep the file as long as the data (a trailing hole is not written) so reads for
    // deduplication never hit end-of-file.
    if (::ftruncate(data_fd, static_cast<off_t>(data_size)) != 0) return io_error("ftruncate failed", path);
    by_hash.emplace(std::make_pair(hash, n), offset);
    return offset;
  }
};

ModelFileWriter::ModelFileWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ModelFileWriter::~ModelFileWriter() = default;
void ModelFileWriter::abort() noexcept { impl_->cleanup(); }
uint64_t ModelFileWriter::tensor_count() const noexcept { return impl_->tensors.size(); }
uint64_t ModelFileWriter::data_bytes() const noexcept { return impl_->data_size; }
uint64_t ModelFileWriter::deduplicated_bytes() const noexcept { return impl_->dedup_bytes; }
uint64_t ModelFileWriter::file_size() const noexcept { return impl_->file_size; }

Result<std::unique_ptr<ModelFileWriter>> ModelFileWriter::create_sizer(const std::string& path, ModelHeader header) {
  auto impl = std::make_unique<Impl>();
  impl->path = path.empty() ? "<dry run>" : path;
  impl->size_only = true;
  impl->header = std::move(header);
  impl->header.format_major = kFormatMajor;
  impl->header.format_minor = kFormatMinor;
  if (impl->header.producer_version.empty()) impl->header.producer_version = kVersionString;
  return std::unique_ptr<ModelFileWriter>(new ModelFileWriter(std::move(impl)));
}

Result<std::unique_ptr<ModelFileWriter>> ModelFileWriter::create(const std::string& path, ModelHeader header) {
  if (path.empty()) return make_error(ErrorCode::kInvalidArgument, "empty output path");
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->header = std::move(header);
  impl->header.format_major = kFormatMajor;
  impl->header.format_minor = kFormatMinor;
  if (impl->header.producer_version.empty()) impl->header.producer_version = kVersionString;
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  std::string tmpl = dir + "/.slmc-data-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  impl->data_fd = ::mkostemp(buf.data(), O_CLOEXEC);
  if (impl->data_fd < 0) return io_error("cannot create a temporary file in " + dir, path);
  ::unlink(buf.data());  // anonymous from now on: nothing is left behind, even after a crash
  return std::unique_ptr<ModelFileWriter>(new ModelFileWriter(std::move(impl)));
}

Status ModelFileWriter::add(const TensorInfo& info, const EncodedMatrixView& m) {
  Impl& w = *impl_;
  if (w.finished || (w.data_fd < 0 && !w.size_only)) {
    return make_error(ErrorCode::kInvalidArgument, w.path + ": writer is closed");
  }
  const std::string where = w.path + ": tensor " + quote(info.name);
  if (info.name.empty() || !is_valid_utf8(info.name)) {
    return make_error(ErrorCode::kInvalidArgument, where + ": name is empty or not valid UTF-8");
  }
  if (w.names.count(info.name)) return make_error(ErrorCode::kInvalidArgument, where + ": duplicate tensor name");
  SLMC_RETURN_IF_ERROR(info.shape.validate().with_context(where));
  if (info.shape.rows() != m.rows || info.shape.cols() != m.cols) {
    return make_error(ErrorCode::kInvalidArgument, where + ": shape " + info.shape.to_string() + " is not the matrix [" +
                                                       std::to_string(m.rows) + ", " + std::to_string(m.cols) + "]");
  }
  if (!is_valid_dtype(static_cast<uint32_t>(info.source_dtype))) {
    return make_error(ErrorCode::kInvalidArgument, where + ": invalid source dtype");
  }
  Status s = validate_matrix(m, info.name);
  if (!s.ok()) return Status(s.code(), w.path + ": " + s.message());

  Impl::Tensor t;
  t.info = info;
  t.encoding = m.encoding;
  for (int r = 0; r < kSegmentRoles; ++r) {
    const SegmentView& sv = m.segments[static_cast<size_t>(r)];
    if (sv.nbytes == 0) continue;
    const auto* p = static_cast<const uint8_t*>(sv.data);
    const uint64_t hash = xxh64(p, sv.nbytes);
    Result<uint64_t> off = w.put(p, sv.nbytes, hash);
    if (!off.ok()) {
      w.failed = true;
      return off.status();
    }
    t.segs.push_back(Impl::Seg{static_cast<uint8_t>(r), *off, sv.nbytes, hash});
  }
  w.names.insert(info.name);
  w.tensors.push_back(std::move(t));
  return Status::ok_status();
}

namespace {

flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::KeyValue>>> build_kvs(
    flatbuffers::FlatBufferBuilder& b, const Metadata& m) {
  std::vector<flatbuffers::Offset<fb::KeyValue>> v;
  for (const auto& [k, val] : m) {  // std::map: sorted by key
    // Children first, one statement each: the order of evaluation of function arguments is unspecified
    // (GCC evaluates them in a different order on x86-64 and aarch64), and it decides the bytes.
    const auto key = b.CreateString(k);
    const auto text = b.CreateString(val.text);
    v.push_back(fb::CreateKeyValue(b, key, static_cast<fb::MetaKind>(val.kind), text));
  }
  return b.CreateVector(v);
}

/// Copies the data temp file into dst at dst_offset, skipping holes where the kernel reports them.
Status copy_data(int src, uint64_t size, int dst, uint64_t dst_offset, const std::string& path) {
  uint64_t pos = 0;
  std::vector<uint8_t> buf;
  while (pos < size) {
    off_t data = ::lseek(src, static_cast<off_t>(pos), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole remains
      data = static_cast<off_t>(pos);  // SEEK_DATA unsupported: copy everything
    }
    if (static_cast<uint64_t>(data) >= size) break;
    off_t hole = ::lseek(src, data, SEEK_HOLE);
    if (hole < 0 || static_cast<uint64_t>(hole) > size) hole = static_cast<off_t>(size);
    uint64_t from = static_cast<uint64_t>(data);
    const uint64_t end = static_cast<uint64_t>(hole);
    while (from < end) {
      loff_t in_off = static_cast<loff_t>(from), out_off = static_cast<loff_t>(dst_offset + from);
      const ssize_t n = ::copy_file_range(src, &in_off, dst, &out_off, static_cast<size_t>(end - from), 0);
      if (n > 0) {
        from += static_cast<uint64_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      // copy_file_range unavailable (or 0 bytes): fall back to read/write.
      if (buf.empty()) buf.resize(1 << 20);
      const uint64_t chunk = std::min<uint64_t>(buf.size(), end - from);
      SLMC_RETURN_IF_ERROR(read_all(src, buf.data(), chunk, from, path + " (temporary data)"));
      SLMC_RETURN_IF_ERROR(write_all(dst, buf.data(), chunk, dst_offset + from, path));
      from += chunk;
    }
    pos = end;
  }
  return Status::ok_status();
}

}  // namespace

Status ModelFileWriter::finish() {
  Impl& w = *impl_;
  if (w.finished) return make_error(ErrorCode::kInvalidArgument, w.path + ": finish() called twice");
  if (w.failed || (w.data_fd < 0 && !w.size_only)) {
    w.cleanup();
    return make_error(ErrorCode::kInvalidArgument, w.path + ": an earlier write failed; nothing was written");
  }
  auto fail = [&](Status s) {
    w.cleanup();
    return s;
  };

  flatbuffers::FlatBufferBuilder b(1 << 16);
  b.ForceDefaults(true);  // every field explicit: readers see the same bytes whatever the defaults
  std::vector<flatbuffers::Offset<fb::Tensor>> tensors;
  std::map<std::string, std::pair<Encoding, uint64_t>> uses;
  std::set<uint8_t> layouts;
  for (const auto& t : w.tensors) {
    std::vector<fb::Segment> segs;
    for (const auto& s : t.segs) segs.emplace_back(s.role, s.offset, s.size, s.hash);
    const ErrorStats& st = t.info.stats;
    const fb::ErrorStats stats(st.rmse, st.rel_error, st.sqnr_db, st.max_abs_error, st.sparsity, st.bits_per_weight);
    auto name = b.CreateString(t.info.name);
    auto shape = b.CreateVector(t.info.shape.dims());
    auto enc = build_encoding(b, t.encoding);
    auto segv = b.CreateVectorOfStructs(segs);
    tensors.push_back(fb::CreateTensor(b, name, shape, enc, &stats, segv, static_cast<uint8_t>(t.info.source_dtype),
                                       t.info.transposed));
    auto& u = uses[encoding_name(t.encoding)];
    u.first = t.encoding;
    ++u.second;
    layouts.insert(static_cast<uint8_t>(t.encoding.layout));
  }
  std::vector<flatbuffers::Offset<fb::SourceFile>> sources;
  for (const auto& s : w.header.sources) {
    const auto name = b.CreateString(s.name);  // one statement each: see build_kvs
    const auto sha = b.CreateString(s.sha256);
    const auto format = b.CreateString(std::string(source_format_name(s.format)));
    sources.push_back(fb::CreateSourceFile(b, name, sha, s.size, format));
  }
  std::vector<flatbuffers::Offset<fb::EncodingUse>> use_vec;
  for (const auto& [name, u] : uses) {
    const auto name_off = b.CreateString(name);  // one statement each: see build_kvs
    const auto enc = build_encoding(b, u.first);
    use_vec.push_back(fb::CreateEncodingUse(b, name_off, enc, u.second));
  }
  std::vector<uint8_t> layout_vec(layouts.begin(), layouts.end());
  auto producer = b.CreateString(w.header.producer);
  auto producer_version = b.CreateString(w.header.producer_version);
  auto sources_off = b.CreateVector(sources);
  auto recipe = b.CreateString(w.header.recipe);
  auto arch = build_kvs(b, w.header.architecture);
  auto meta = build_kvs(b, w.header.metadata);
  auto uses_off = b.CreateVector(use_vec);
  auto layouts_off = b.CreateVector(layout_vec);
  auto tensors_off = b.CreateVector(tensors);
  flatbuffers::Offset<fb::TokenizerData> tok_off = 0;
  if (const TokenizerData& t = w.header.tokenizer; !t.empty()) {
    auto opt_vec = [&](const auto& v) { return v.empty() ? 0 : b.CreateVector(v); };
    auto merges = t.merges.empty() ? 0 : b.CreateVectorOfStrings(t.merges);
    tok_off = fb::CreateTokenizerData(b, static_cast<uint8_t>(t.kind), b.CreateString(t.pre),
                                      b.CreateVectorOfStrings(t.tokens), opt_vec(t.scores), opt_vec(t.token_types),
                                      merges, t.bos_id, t.eos_id, t.unk_id, t.pad_id, opt_vec(t.eog_ids), t.add_bos,
                                      t.add_eos, t.add_space_prefix, b.CreateString(t.normalizer),
                                      b.CreateString(t.chat_template));
  }
  // The lowest minor version that describes the file: 1.2 only when a tensor is nl4, so files
  // without one stay readable by readers older than nl4 (FORMAT.md §4).
  uint16_t minor = 1;
  for (const auto& [name, u] : uses) {
    if (u.first.value_type == ValueType::kNl4) minor = 2;
  }
  w.header.format_minor = minor;
  auto root = fb::CreateModel(b, kFormatMajor, minor, producer, producer_version, sources_off, recipe, arch, meta,
                              uses_off, layouts_off, w.tensors.size(), tensors_off, w.data_size, tok_off);
  fb::FinishModelBuffer(b, root);
  const uint64_t fb_size = b.GetSize();
  if (fb_size > kMaxFlatbufferBytes) {
    return fail(make_error(ErrorCode::kOutOfRange, w.path + ": header of " + std::to_string(fb_size) + " bytes is too large"));
  }
  const uint64_t data_offset = align_up(kPreambleBytes + fb_size, kSegmentAlignment);
  if (w.size_only) {
    w.file_size = data_offset + w.data_size;
    w.finished = true;
    return Status::ok_status();
  }

  std::vector<uint8_t> head(static_cast<size_t>(data_offset), 0);
  std::memcpy(head.data(), kFileMagic, 8);
  store_le<uint16_t>(head.data() + 8, kFormatMajor);
  store_le<uint16_t>(head.data() + 10, minor);
  store_le<uint32_t>(head.data() + 12, 0);
  store_le<uint64_t>(head.data() + 16, kPreambleBytes);
  store_le<uint64_t>(head.data() + 24, fb_size);
  store_le<uint64_t>(head.data() + 32, data_offset);
  store_le<uint64_t>(head.data() + 40, w.data_size);
  store_le<uint64_t>(head.data() + 48, xxh64(b.GetBufferPointer(), fb_size));
  store_le<uint64_t>(head.data() + 56, xxh64(head.data(), 56));
  std::memcpy(head.data() + kPreambleBytes, b.GetBufferPointer(), fb_size);

  // The file appears at w.path only when complete: an anonymous (O_TMPFILE) or registered
  // temporary beside it, renamed into place (slmc/io/output.hpp).
  auto temp = TempFile::create(w.path);
  if (!temp.ok()) return fail(temp.status());
  const int fd = temp->fd();
  const std::string where = temp->describe();
  if (::ftruncate(fd, static_cast<off_t>(data_offset + w.data_size)) != 0) return fail(io_error("ftruncate failed", where));
  {
    Status s = write_all(fd, head.data(), head.size(), 0, where);
    if (s.ok()) s = copy_data(w.data_fd, w.data_size, fd, data_offset, where);
    if (s.ok()) s = temp->commit();
    if (!s.ok()) return fail(s);
  }
  w.cleanup();
  w.finished = true;
  w.file_size = data_offset + w.data_size;
  return Status::ok_status();
}

// ------------------------------------------------------------------------------------------------
// Loader
// ------------------------------------------------------------------------------------------------

const StoredTensor* ModelFile::find(std::string_view name) const noexcept {
  for (const auto& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

Result<std::unique_ptr<ModelFile>> ModelFile::open(const std::string& path, const LoadOptions& options) {
  SLMC_ASSIGN_OR_RETURN(auto file, MappedFile::open(path));
  return open_mapped(std::move(file), options);
}

namespace {

Status read_kvs(const flatbuffers::Vector<flatbuffers::Offset<fb::KeyValue>>* v, Metadata& out, const std::string& file,
                const char* what) {
  if (!v) return Status::ok_status();
  for (const fb::KeyValue* kv : *v) {
    const auto kind = static_cast<uint8_t>(kv->kind());
    if (kind > 1) {
      return make_error(ErrorCode::kInvalidFormat, file + ": " + what + " key " + quote(kv->key()->str()) +
                                                       " has unknown kind " + std::to_string(kind));
    }
    if (!out.emplace(kv->key()->str(), MetaValue{static_cast<MetaValue::Kind>(kind), kv->value()->str()}).second) {
      return make_error(ErrorCode::kInvalidFormat, file + ": duplicate " + what + " key " + quote(kv->key()->str()));
    }
  }
  return Status::ok_status();
}

}  // namespace

Result<std::unique_ptr<ModelFile>> ModelFile::open_mapped(std::shared_ptr<const MappedFile> file,
                                                          const LoadOptions& options) {
  const std::string& fname = file->path();
  auto bad = [&](const std::string& what, ErrorCode code = ErrorCode::kInvalidFormat) {
    return make_error(code, fname + ": " + what);
  };
  const uint8_t* base = file->data();
  const uint64_t size = file->size();
  if (size < kPreambleBytes) return bad("truncated: " + std::to_string(size) + " bytes, no .slm preamble");
  if (std::memcmp(base, kFileMagic, 8) != 0) return bad("not an .slm file (bad magic)");
  const uint16_t major = load_le<uint16_t>(base + 8), minor = load_le<uint16_t>(base + 10);
  if (major > kFormatMajor) {
    return bad("format version " + std::to_string(major) + "." + std::to_string(minor) +
                   " is newer than this reader supports (" + std::to_string(kFormatMajor) +
                   ".x); upgrade slm-compress to read it",
               ErrorCode::kUnsupported);
  }
  if (major == 0) return bad("format version 0." + std::to_string(minor) + " is invalid");
  if (xxh64(base, 56) != load_le<uint64_t>(base + 56)) {
    return bad("preamble checksum mismatch (the first 64 bytes are corrupt)", ErrorCode::kChecksumMismatch);
  }
  const uint64_t fb_off = load_le<uint64_t>(base + 16), fb_size = load_le<uint64_t>(base + 24);
  const uint64_t data_off = load_le<uint64_t>(base + 32), data_size = load_le<uint64_t>(base + 40);
  if (fb_off < kPreambleBytes || fb_off % 8 != 0 || fb_size > kMaxFlatbufferBytes || !file->contains(fb_off, fb_size)) {
    return bad("flatbuffer [" + std::to_string(fb_off) + ", +" + std::to_string(fb_size) + ") is outside the file of " +
                   std::to_string(size) + " bytes or misaligned",
               ErrorCode::kOutOfRange);
  }
  if (data_off % kSegmentAlignment != 0 || data_off < fb_off + fb_size || !file->contains(data_off, data_size) ||
      data_off + data_size != size) {
    return bad("data section [" + std::to_string(data_off) + ", +" + std::to_string(data_size) +
                   ") is misaligned, overlaps the header or does not end at the end of the file (" +
                   std::to_string(size) + " bytes)",
               ErrorCode::kOutOfRange);
  }
  const uint8_t* fbuf = base + fb_off;
  flatbuffers::Verifier verifier(fbuf, static_cast<size_t>(fb_size), /*max_depth=*/64, /*max_tables=*/10000000);
  if (!fb::VerifyModelBuffer(verifier)) {
    return bad("the header flatbuffer fails the FlatBuffers verifier (corrupt or tampered)");
  }
  const fb::Model* model = fb::GetModel(fbuf);
  if (model->format_major() != major || model->format_minor() != minor) {
    return bad("format version in the header (" + std::to_string(model->format_major()) + "." +
               std::to_string(model->format_minor()) + ") differs from the preamble's");
  }
  if (model->data_size() != data_size) return bad("data size in the header differs from the preamble's");

  std::unique_ptr<ModelFile> mf(new ModelFile());
  mf->file_ = file;
  mf->data_offset_ = data_off;
  ModelHeader& h = mf->header_;
  h.format_major = major;
  h.format_minor = minor;
  h.producer = model->producer() ? model->producer()->str() : "";
  h.producer_version = model->producer_version() ? model->producer_version()->str() : "";
  h.recipe = model->recipe() ? model->recipe()->str() : "";
  if (model->sources()) {
    for (const fb::SourceFile* s : *model->sources()) {
      SourceFileInfo info;
      info.name = s->name()->str();
      info.sha256 = s->sha256()->str();
      info.size = s->size();
      const std::string fmt = s->format() ? s->format()->str() : "";
      for (SourceFormat f : {SourceFormat::kSafetensors, SourceFormat::kSafetensorsIndex, SourceFormat::kGguf,
                             SourceFormat::kLlama2c}) {
        if (fmt == source_format_name(f)) info.format = f;
      }
      h.sources.push_back(std::move(info));
    }
  }
  SLMC_RETURN_IF_ERROR(read_kvs(model->architecture(), h.architecture, fname, "architecture"));
  SLMC_RETURN_IF_ERROR(read_kvs(model->metadata(), h.metadata, fname, "metadata"));
  if (const fb::TokenizerData* t = model->tokenizer()) {
    TokenizerData& d = h.tokenizer;
    d.kind = static_cast<TokenizerKind>(t->kind());
    d.pre = t->pre() ? t->pre()->str() : "";
    d.tokens.reserve(t->tokens()->size());
    for (const flatbuffers::String* s : *t->tokens()) d.tokens.push_back(s->str());
    if (t->scores()) d.scores.assign(t->scores()->begin(), t->scores()->end());
    if (t->token_types()) d.token_types.assign(t->token_types()->begin(), t->token_types()->end());
    if (t->merges()) {
      d.merges.reserve(t->merges()->size());
      for (const flatbuffers::String* s : *t->merges()) d.merges.push_back(s->str());
    }
    d.bos_id = t->bos_id();
    d.eos_id = t->eos_id();
    d.unk_id = t->unk_id();
    d.pad_id = t->pad_id();
    if (t->eog_ids()) d.eog_ids.assign(t->eog_ids()->begin(), t->eog_ids()->end());
    d.add_bos = t->add_bos();
    d.add_eos = t->add_eos();
    d.add_space_prefix = t->add_space_prefix();
    d.normalizer = t->normalizer() ? t->normalizer()->str() : "";
    d.chat_template = t->chat_template() ? t->chat_template()->str() : "";
    // Structural checks only; Tokenizer::create checks the merges when the tokenizer is used.
    SLMC_RETURN_IF_ERROR(d.validate(fname));
  }

  const auto* tensors = model->tensors();
  if (model->tensor_count() != tensors->size()) {
    return bad("tensor count " + std::to_string(model->tensor_count()) + " differs from the " +
               std::to_string(tensors->size()) + " tensors stored");
  }
  struct Extent {
    uint64_t offset, size;
    uint32_t tensor;
  };
  std::vector<Extent> extents;
  std::set<std::string_view> names;
  mf->tensors_.reserve(tensors->size());
  for (uint32_t ti = 0; ti < tensors->size(); ++ti) {
    const fb::Tensor* t = tensors->Get(ti);
    StoredTensor st;
    st.name = t->name()->str();
    const std::string where = "tensor " + quote(st.name);
    if (st.name.empty() || !is_valid_utf8(st.name)) return bad(where + ": name is empty or not valid UTF-8");
    // The Verifier (FlatBuffers 2.0) checks vectors for 4-byte alignment only: the 8-byte
    // elements of shape ([long]) and segments ([Segment]) are read in place, so a crafted header
    // could make those reads misaligned (undefined behaviour). Our writer aligns them (empty
    // vectors, which are never read, it leaves where they fall).
    auto misaligned = [](const void* p, size_t a) { return reinterpret_cast<uintptr_t>(p) % a != 0; };
    if ((t->shape()->size() > 0 && misaligned(t->shape()->Data(), alignof(int64_t))) ||
        (t->segments()->size() > 0 && misaligned(t->segments()->Data(), alignof(fb::Segment))) ||
        (t->stats() != nullptr && misaligned(t->stats(), alignof(fb::ErrorStats)))) {
      return bad(where + ": shape, segments or stats misaligned in the header");
    }
    std::vector<int64_t> dims(t->shape()->begin(), t->shape()->end());
    st.shape = Shape(std::move(dims));
    Status s = st.shape.validate();
    if (!s.ok()) return s.with_context(fname + ": " + where);
    if (!is_valid_dtype(t->source_dtype())) return bad(where + ": unknown source dtype " + std::to_string(t->source_dtype()));
    st.source_dtype = static_cast<DType>(t->source_dtype());
    st.transposed = t->transposed();
    if (const fb::ErrorStats* e = t->stats()) {
      st.stats = ErrorStats{e->rmse(), e->rel_error(), e->sqnr_db(), e->max_abs_error(), e->sparsity(), e->bits_per_weight()};
    }
    st.view.rows = st.shape.rows();
    st.view.cols = st.shape.cols();
    st.view.encoding = read_encoding(*t->encoding());
    int last_role = -1;
    for (const fb::Segment* seg : *t->segments()) {
      const int role = seg->role();
      if (role >= kSegmentRoles || role <= last_role) {
        return bad(where + ": segment role " + std::to_string(role) + " is unknown, repeated or out of order");
      }
      last_role = role;
      if (seg->size() == 0) return bad(where + ": empty segment stored");
      if (seg->offset() % kSegmentAlignment != 0) {
        return bad(where + ": " + std::string(segment_role_name(static_cast<SegmentRole>(role))) + " segment offset " +
                   std::to_string(seg->offset()) + " is not a multiple of 64");
      }
      if (seg->offset() > data_size || seg->size() > data_size - seg->offset()) {
        return bad(where + ": " + std::string(segment_role_name(static_cast<SegmentRole>(role))) + " segment [" +
                       std::to_string(seg->offset()) + ", +" + std::to_string(seg->size()) +
                       ") is outside the data section of " + std::to_string(data_size) + " bytes",
                   ErrorCode::kOutOfRange);
      }
      st.view.segments[static_cast<size_t>(role)] = SegmentView{base + data_off + seg->offset(), seg->size()};
      st.segments.push_back(SegmentRecord{static_cast<SegmentRole>(role), seg->offset(), seg->size(), seg->xxh64()});
      extents.push_back(Extent{seg->offset(), seg->size(), ti});
    }
    mf->tensors_.push_back(std::move(st));
    if (!names.insert(mf->tensors_.back().name).second) return bad("duplicate tensor name " + quote(mf->tensors_.back().name));
  }
  // Segments are identical (deduplicated) or disjoint.
  std::sort(extents.begin(), extents.end(), [](const Extent& a, const Extent& b) {
    return a.offset != b.offset ? a.offset < b.offset : a.size < b.size;
  });
  for (size_t i = 1; i < extents.size(); ++i) {
    const Extent& p = extents[i - 1];
    const Extent& c = extents[i];
    if (c.offset == p.offset && c.size == p.size) continue;
    if (c.offset < p.offset + p.size) {
      return bad("segments of tensors " + quote(mf->tensors_[p.tensor].name) + " and " +
                 quote(mf->tensors_[c.tensor].name) + " partially overlap");
    }
  }
  // Encodings against their segment sizes (and sparse structure, finite scales).
  for (const StoredTensor& st : mf->tensors_) {
    Status s = validate_matrix(st.view, st.name);
    if (!s.ok()) return Status(s.code(), fname + ": " + s.message());
  }
  if (const auto* uses = model->encodings_used()) {
    for (const fb::EncodingUse* u : *uses) {
      mf->encodings_used_.push_back(EncodingUse{u->name()->str(), read_encoding(*u->encoding()), u->tensor_count()});
    }
  }
  if (const auto* layouts = model->row_layouts_used()) {
    for (uint8_t l : *layouts) {
      if (l != 1 && l != 4 && l != 8) return bad("unknown row layout " + std::to_string(l) + " in row_layouts_used");
      mf->row_layouts_used_.push_back(static_cast<RowLayout>(l));
    }
  }
  if (options.verify_checksums) SLMC_RETURN_IF_ERROR(mf->verify());
  return mf;
}

Status ModelFile::verify() const {
  const uint8_t* base = file_->data();
  const std::string& fname = file_->path();
  const uint64_t fb_off = load_le<uint64_t>(base + 16), fb_size = load_le<uint64_t>(base + 24);
  if (xxh64(base, 56) != load_le<uint64_t>(base + 56)) {
    return make_error(ErrorCode::kChecksumMismatch, fname + ": preamble checksum mismatch");
  }
  if (xxh64(base + fb_off, fb_size) != load_le<uint64_t>(base + 48)) {
    return make_error(ErrorCode::kChecksumMismatch, fname + ": header (flatbuffer) checksum mismatch");
  }
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> done;  // deduplicated segments are hashed once
  for (const StoredTensor& t : tensors_) {
    for (const SegmentRecord& s : t.segments) {
      auto it = done.find({s.offset, s.size});
      uint64_t h;
      if (it != done.end()) {
        h = it->second;
      } else {
        h = xxh64(base + data_offset_ + s.offset, s.size);
        done.emplace(std::make_pair(s.offset, s.size), h);
      }
      if (h != s.xxh64) {
        char buf[96];
        std::snprintf(buf, sizeof(buf), "stored xxh64 %016llx, computed %016llx", static_cast<unsigned long long>(s.xxh64),
                      static_cast<unsigned long long>(h));
        return make_error(ErrorCode::kChecksumMismatch, fname + ": tensor " + quote(t.name) + ": " +
                                                            std::string(segment_role_name(s.role)) + " segment at " +
                                                            std::to_string(data_offset_ + s.offset) + ": " + buf);
      }
    }
  }
  return Status::ok_status();
}

// ------------------------------------------------------------------------------------------------

Status write_dense_model(const ModelSource& source, const std::string& path, ValueType value_type,
                         const std::string& recipe) {
  ModelHeader header;
  header.sources = source.files();
  header.recipe = recipe;
  header.architecture = source.architecture();
  header.metadata = source.metadata();
  header.tokenizer = source.tokenizer();
  SLMC_ASSIGN_OR_RETURN(auto writer, ModelFileWriter::create(path, std::move(header)));
  for (size_t i = 0; i < source.tensors().size(); ++i) {
    AlignedBuffer bytes;  // one tensor at a time
    SLMC_ASSIGN_OR_RETURN(const TensorView t, source.load(i, bytes));
    TensorInfo info;
    info.name = t.name;
    info.shape = t.shape;
    info.source_dtype = source.origins()[i].source_dtype;
    info.transposed = source.origins()[i].transposed;
    info.stats.bits_per_weight = value_type == ValueType::kF32 ? 32 : 16;
    info.stats.sqnr_db = 999;
    if (t.dtype == DType::kF32 && value_type == ValueType::kF32) {
      SLMC_ASSIGN_OR_RETURN(EncodedMatrixView v, dense_float_view(t));
      SLMC_RETURN_IF_ERROR(writer->add(info, v));
    } else {
      SLMC_ASSIGN_OR_RETURN(EncodedMatrix m, encode_dense_float(t, value_type));
      SLMC_RETURN_IF_ERROR(writer->add(info, m.view()));
    }
  }
  return writer->finish();
}

}  // namespace slmc
