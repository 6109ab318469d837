// .slmdelta writer and applier (include/slmc/fleet/delta.hpp; format in docs/FLEET.md).
#include "slmc/fleet/delta.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <utility>

#include "slmc/format/model_file.hpp"
#include "slmc/format/slm_generated.h"
#include "slmc/io/hash.hpp"
#include "slmc/io/mapped_file.hpp"
#include "slmc/io/output.hpp"
#include "slmc/io/safe_input.hpp"
#include "slmc/parallel.hpp"
#include "io/bytes.hpp"

namespace slmc {
namespace {

using io_detail::put_u16;
using io_detail::put_u32;
using io_detail::put_u64;
using io_detail::get_u16;
using io_detail::get_u32;
using io_detail::get_u64;

constexpr size_t kChunk = size_t{1} << 20;  // streaming unit of apply (and of its hashing passes)

// --- little-endian fields -------------------------------------------------------------------

std::string hex64(uint64_t v) {
  char buf[19];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// Preamble field offsets (docs/FLEET.md §2.1).
enum : size_t {
  kOffMagic = 0,
  kOffMajor = 8,
  kOffMinor = 10,
  kOffFlags = 12,
  kOffDeltaSize = 16,
  kOffOldSize = 24,
  kOffOldXxh = 32,
  kOffOldHeaderXxh = 40,
  kOffNewSize = 48,
  kOffNewXxh = 56,
  kOffOpCount = 64,
  kOffOpTable = 72,
  kOffNewHeaderXxh = 80,
  kOffBodyXxh = 112,
  kOffPreambleXxh = 120,
};

/// One op as stored (docs/FLEET.md §2.2).
struct Op {
  DeltaOpKind kind = DeltaOpKind::kZero;
  DeltaCodec codec = DeltaCodec::kNone;
  uint64_t new_len = 0;
  uint64_t old_offset = 0;
  uint64_t old_len = 0;
  uint64_t payload_offset = 0;
  uint64_t payload_size = 0;
  uint64_t out_xxh64 = 0;
};

void encode_op(const Op& op, uint8_t* p) {
  std::memset(p, 0, kDeltaOpBytes);
  p[0] = static_cast<uint8_t>(op.kind);
  p[1] = static_cast<uint8_t>(op.codec);
  put_u64(p + 8, op.new_len);
  put_u64(p + 16, op.old_offset);
  put_u64(p + 24, op.old_len);
  put_u64(p + 32, op.payload_offset);
  put_u64(p + 40, op.payload_size);
  put_u64(p + 48, op.out_xxh64);
}

Op decode_op(const uint8_t* p) {
  Op op;
  op.kind = static_cast<DeltaOpKind>(p[0]);
  op.codec = static_cast<DeltaCodec>(p[1]);
  op.new_len = get_u64(p + 8);
  op.old_offset = get_u64(p + 16);
  op.old_len = get_u64(p + 24);
  op.payload_offset = get_u64(p + 32);
  op.payload_size = get_u64(p + 40);
  op.out_xxh64 = get_u64(p + 48);
  return op;
}

// --- file helpers -----------------------------------------------------------------------------

Status write_all(int fd, const void* data, size_t size, const std::string& what) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, std::min(size, size_t{1} << 30));
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(ErrorCode::kIoError, what + ": write failed: " + std::strerror(errno));
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return Status::ok_status();
}

Status pwrite_all(int fd, const void* data, size_t size, uint64_t offset, const std::string& what) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    const ssize_t n = ::pwrite(fd, p, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(ErrorCode::kIoError, what + ": write failed: " + std::strerror(errno));
    }
    p += n;
    offset += static_cast<uint64_t>(n);
    size -= static_cast<size_t>(n);
  }
  return Status::ok_status();
}

Status pread_all(int fd, void* data, size_t size, uint64_t offset, const std::string& what) {
  auto* p = static_cast<uint8_t*>(data);
  while (size > 0) {
    const ssize_t n = ::pread(fd, p, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(ErrorCode::kIoError, what + ": read failed: " + std::strerror(errno));
    }
    if (n == 0) return make_error(ErrorCode::kIoError, what + ": unexpected end of file at byte " + std::to_string(offset));
    p += n;
    offset += static_cast<uint64_t>(n);
    size -= static_cast<size_t>(n);
  }
  return Status::ok_status();
}

/// An input descriptor closed on scope exit.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

Result<uint64_t> file_size_of(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return make_error(ErrorCode::kIoError, path + ": fstat failed: " + std::strerror(errno));
  return static_cast<uint64_t>(st.st_size);
}

/// xxh64 of [offset, offset + size) of a descriptor, read in chunks (the resident set does not grow).
Result<uint64_t> xxh64_of_range(int fd, uint64_t offset, uint64_t size, std::vector<uint8_t>& buf,
                                const std::string& what) {
  Xxh64Stream h;
  buf.resize(kChunk);
  while (size > 0) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(size, kChunk));
    SLMC_RETURN_IF_ERROR(pread_all(fd, buf.data(), n, offset, what));
    h.update(buf.data(), n);
    offset += n;
    size -= n;
  }
  return h.digest();
}

// --- zstd ------------------------------------------------------------------------------------

struct CctxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DctxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

/// One zstd frame of `src` (with `prefix` as a raw-content dictionary when non-empty).
Result<std::vector<uint8_t>> zstd_compress(ZSTD_CCtx* cctx, int level, const uint8_t* src, size_t size,
                                           const uint8_t* prefix, size_t prefix_size) {
  ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0);  // each op carries its own xxh64
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
  if (prefix_size > 0) ZSTD_CCtx_refPrefix(cctx, prefix, prefix_size);
  std::vector<uint8_t> out(ZSTD_compressBound(size));
  const size_t n = ZSTD_compress2(cctx, out.data(), out.size(), src, size);
  if (ZSTD_isError(n)) {
    return make_error(ErrorCode::kInternal, std::string("zstd compression failed: ") + ZSTD_getErrorName(n));
  }
  out.resize(n);
  return out;
}

// --- writer ----------------------------------------------------------------------------------

/// Where the writer's payloads go: the delta file (after the preamble) or nowhere (measure).
struct PayloadSink {
  std::function<Status(const uint8_t*, size_t)> write;  // empty: count only
  uint64_t position = kDeltaPreambleBytes;              // next byte's offset in the delta
  Xxh64Stream body_hash;

  Status emit(const uint8_t* data, size_t size) {
    body_hash.update(data, size);
    if (write) SLMC_RETURN_IF_ERROR(write(data, size));
    position += size;
    return Status::ok_status();
  }
};

struct NewSegment {
  uint64_t start = 0;  // absolute offset in NEW
  uint64_t size = 0;
  uint64_t xxh64 = 0;
  const uint8_t* data = nullptr;
  std::string tensor;
  SegmentRole role = SegmentRole::kValues;
};

struct OldSegment {
  uint64_t start = 0;  // absolute offset in OLD
  const uint8_t* data = nullptr;
  uint64_t size = 0;
};

class DeltaBuilder {
 public:
  DeltaBuilder(const DeltaOptions& options, PayloadSink& sink) : options_(options), sink_(sink) {}

  /// Plans and emits every op and the op table; fills `preamble` and `stats`.
  Status build(const std::string& old_path, const std::string& new_path, uint8_t* preamble, DeltaStats& stats) {
    if (options_.zstd_level < 1 || options_.zstd_level > 19) {
      return make_error(ErrorCode::kInvalidArgument,
                        "zstd level " + std::to_string(options_.zstd_level) + " is outside 1..19");
    }
    SLMC_ASSIGN_OR_RETURN(std::shared_ptr<const MappedFile> old_map, MappedFile::open(old_path));
    SLMC_ASSIGN_OR_RETURN(std::shared_ptr<const MappedFile> new_map, MappedFile::open(new_path));
    LoadOptions load;
    load.verify_checksums = true;  // references by checksum need true checksums
    auto old_model = ModelFile::open_mapped(old_map, load);
    if (!old_model.ok()) return old_model.status();
    auto new_model = ModelFile::open_mapped(new_map, load);
    if (!new_model.ok()) return new_model.status();
    const uint8_t* old_base = old_map->data();
    const uint8_t* new_base = new_map->data();
    const uint64_t old_size = old_map->size(), new_size = new_map->size();

    // OLD's segments by (xxh64, size), and by (tensor, role) as xor bases.
    std::multimap<std::pair<uint64_t, uint64_t>, OldSegment> old_by_hash;
    std::map<std::pair<std::string, SegmentRole>, OldSegment> old_by_name;
    const uint64_t old_d = (*old_model)->data_offset();
    for (const StoredTensor& t : (*old_model)->tensors()) {
      for (const SegmentRecord& s : t.segments) {
        OldSegment o{old_d + s.offset, old_base + old_d + s.offset, s.size};
        old_by_hash.emplace(std::make_pair(s.xxh64, s.size), o);
        old_by_name.emplace(std::make_pair(t.name, s.role), o);
      }
    }
    // NEW's distinct segments in file order.
    std::vector<NewSegment> segs;
    const uint64_t new_d = (*new_model)->data_offset();
    for (const StoredTensor& t : (*new_model)->tensors()) {
      for (const SegmentRecord& s : t.segments) {
        segs.push_back(NewSegment{new_d + s.offset, s.size, s.xxh64, new_base + new_d + s.offset, t.name, s.role});
      }
    }
    std::stable_sort(segs.begin(), segs.end(), [](const NewSegment& a, const NewSegment& b) { return a.start < b.start; });
    segs.erase(std::unique(segs.begin(), segs.end(),
                           [](const NewSegment& a, const NewSegment& b) { return a.start == b.start; }),
               segs.end());

    stats = DeltaStats{};
    stats.old_file_bytes = old_size;
    stats.new_file_bytes = new_size;

    // NEW's header (preamble, FlatBuffers, padding) against OLD's as a prefix dictionary.
    SLMC_RETURN_IF_ERROR(add_header(new_base, new_d, old_base, old_d, stats));
    uint64_t pos = new_d;
    for (const NewSegment& s : segs) {
      if (s.start > pos) SLMC_RETURN_IF_ERROR(add_gap(new_base + pos, s.start - pos, old_base, old_size, stats));
      SLMC_RETURN_IF_ERROR(add_segment(s, old_by_hash, old_by_name, old_base, stats));
      pos = s.start + s.size;
    }
    if (pos < new_size) SLMC_RETURN_IF_ERROR(add_gap(new_base + pos, new_size - pos, old_base, old_size, stats));
    // Each op's check value: the xxh64 of the NEW bytes it produces.
    uint64_t at = 0;
    for (Op& op : ops_) {
      op.out_xxh64 = xxh64(new_base + at, op.new_len);
      at += op.new_len;
    }
    stats.op_count = ops_.size();

    // The op table ends the file.
    const uint64_t op_table = sink_.position;
    std::vector<uint8_t> table(ops_.size() * kDeltaOpBytes);
    for (size_t i = 0; i < ops_.size(); ++i) encode_op(ops_[i], table.data() + i * kDeltaOpBytes);
    SLMC_RETURN_IF_ERROR(sink_.emit(table.data(), table.size()));

    std::memset(preamble, 0, kDeltaPreambleBytes);
    std::memcpy(preamble + kOffMagic, kDeltaMagic, 8);
    put_u16(preamble + kOffMajor, kDeltaFormatMajor);
    put_u16(preamble + kOffMinor, kDeltaFormatMinor);
    put_u32(preamble + kOffFlags, 0);
    put_u64(preamble + kOffDeltaSize, sink_.position);
    put_u64(preamble + kOffOldSize, old_size);
    put_u64(preamble + kOffOldXxh, xxh64(old_base, old_size));
    put_u64(preamble + kOffOldHeaderXxh, get_u64(old_base + 48));
    put_u64(preamble + kOffNewSize, new_size);
    put_u64(preamble + kOffNewXxh, xxh64(new_base, new_size));
    put_u64(preamble + kOffOpCount, ops_.size());
    put_u64(preamble + kOffOpTable, op_table);
    put_u64(preamble + kOffNewHeaderXxh, get_u64(new_base + 48));
    put_u64(preamble + kOffBodyXxh, sink_.body_hash.digest());
    put_u64(preamble + kOffPreambleXxh, xxh64(preamble, kOffPreambleXxh));
    stats.delta_bytes = sink_.position;
    return Status::ok_status();
  }

 private:
  /// Appends an op (a copy that continues the previous copy in OLD extends it instead: runs of
  /// unchanged segments and their padding become one op). Ops' xxh64s are filled in by build().
  Status push(Op op, const uint8_t* payload, DeltaStats& stats, std::string tensor, std::string what) {
    if (payload != nullptr) {
      op.payload_offset = sink_.position;
      SLMC_RETURN_IF_ERROR(sink_.emit(payload, op.payload_size));
    }
    if (op.kind == DeltaOpKind::kCopy && !ops_.empty() && ops_.back().kind == DeltaOpKind::kCopy &&
        ops_.back().old_offset + ops_.back().new_len == op.old_offset) {
      ops_.back().new_len += op.new_len;
      ops_.back().old_len += op.old_len;
    } else {
      ops_.push_back(op);
    }
    stats.payload_bytes += op.payload_size;
    switch (op.kind) {
      case DeltaOpKind::kZero: stats.zero_bytes += op.new_len; break;
      case DeltaOpKind::kCopy: stats.copied_bytes += op.new_len; break;
      case DeltaOpKind::kLiteral: stats.literal_bytes += op.new_len; break;
      case DeltaOpKind::kXor: stats.xor_bytes += op.new_len; break;
      case DeltaOpKind::kAdd: stats.add_bytes += op.new_len; break;
    }
    stats.items.push_back(DeltaItem{std::move(tensor), std::move(what), op.kind, op.codec, op.new_len, op.payload_size});
    return Status::ok_status();
  }

  /// The smallest of raw, zstd and (when given) zstd of the xor against `old_bytes` or zstd with
  /// `prefix` as a dictionary. Ties go to the simpler form.
  Status add_changed(const uint8_t* bytes, uint64_t size, const uint8_t* xor_base, uint64_t xor_base_offset,
                     const uint8_t* prefix, uint64_t prefix_offset, uint64_t prefix_size, DeltaStats& stats,
                     std::string tensor, std::string what) {
    Op best;
    best.kind = DeltaOpKind::kLiteral;
    best.codec = DeltaCodec::kRaw;
    best.new_len = size;
    best.payload_size = size;
    const uint8_t* best_payload = bytes;
    // The candidates: zstd of the bytes, with OLD's header as prefix, of the xor and of the
    // bytewise difference against the old segment (a code that moved by ±1 is 0x01 / 0xFF
    // whatever its value, which compresses better than its xor). They are compressed in
    // parallel, each with its own context, and compared in this fixed order (ties go to the
    // earlier, simpler form), so the delta's bytes do not depend on the thread count.
    std::vector<uint8_t> xr, ad;
    if (xor_base != nullptr) {
      xr.resize(size);
      ad.resize(size);
      for (uint64_t i = 0; i < size; ++i) {
        xr[i] = bytes[i] ^ xor_base[i];
        ad[i] = static_cast<uint8_t>(bytes[i] - xor_base[i]);
      }
    }
    // Each candidate: its input, its dictionary, and the op it becomes if it is the smallest.
    struct Candidate {
      const uint8_t* src;
      const uint8_t* prefix;
      uint64_t prefix_size;
      DeltaOpKind kind;
      DeltaCodec codec;
      uint64_t old_offset, old_len;
      Result<std::vector<uint8_t>> out = std::vector<uint8_t>{};
    };
    std::vector<Candidate> c;
    c.push_back({bytes, nullptr, 0, DeltaOpKind::kLiteral, DeltaCodec::kZstd, 0, 0});
    if (prefix != nullptr) {
      c.push_back({bytes, prefix, prefix_size, DeltaOpKind::kLiteral, DeltaCodec::kZstdPrefix, prefix_offset, prefix_size});
    }
    if (xor_base != nullptr) {
      c.push_back({xr.data(), nullptr, 0, DeltaOpKind::kXor, DeltaCodec::kZstd, xor_base_offset, size});
      c.push_back({ad.data(), nullptr, 0, DeltaOpKind::kAdd, DeltaCodec::kZstd, xor_base_offset, size});
    }
    const int level = options_.zstd_level;
    parallel_for(static_cast<int64_t>(c.size()), 1, 0, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        Candidate& k = c[static_cast<size_t>(i)];
        std::unique_ptr<ZSTD_CCtx, CctxDeleter> cctx(ZSTD_createCCtx());
        k.out = cctx ? zstd_compress(cctx.get(), level, k.src, size, k.prefix, k.prefix_size)
                     : Result<std::vector<uint8_t>>(make_error(ErrorCode::kOutOfMemory,
                                                                "cannot create a zstd compression context"));
      }
    });
    for (const Candidate& k : c) {
      if (!k.out.ok()) return k.out.status();
      if (k.out->size() < best.payload_size) {
        best.kind = k.kind;
        best.codec = k.codec;
        best.old_offset = k.old_offset;
        best.old_len = k.old_len;
        best.payload_size = k.out->size();
        best_payload = k.out->data();
      }
    }
    return push(best, best_payload, stats, std::move(tensor), std::move(what));
  }

  Status add_header(const uint8_t* new_base, uint64_t new_d, const uint8_t* old_base, uint64_t old_d,
                    DeltaStats& stats) {
    const bool use_prefix = old_d <= kDeltaMaxPrefixBytes;
    return add_changed(new_base, new_d, nullptr, 0, use_prefix ? old_base : nullptr, 0, use_prefix ? old_d : 0, stats,
                       "", "header");
  }

  Status add_gap(const uint8_t* bytes, uint64_t size, const uint8_t* old_base, uint64_t old_size, DeltaStats& stats) {
    // Padding that OLD has right after the previous copy continues that copy.
    if (!ops_.empty() && ops_.back().kind == DeltaOpKind::kCopy) {
      const uint64_t next = ops_.back().old_offset + ops_.back().new_len;
      if (next <= old_size && size <= old_size - next && std::memcmp(old_base + next, bytes, size) == 0) {
        Op op;
        op.kind = DeltaOpKind::kCopy;
        op.new_len = op.old_len = size;
        op.old_offset = next;
        return push(op, nullptr, stats, "", "padding");
      }
    }
    const bool zero = std::all_of(bytes, bytes + size, [](uint8_t b) { return b == 0; });
    if (!zero) return add_changed(bytes, size, nullptr, 0, nullptr, 0, 0, stats, "", "padding");
    Op op;
    op.kind = DeltaOpKind::kZero;
    op.new_len = size;
    return push(op, nullptr, stats, "", "padding");
  }

  Status add_segment(const NewSegment& s, const std::multimap<std::pair<uint64_t, uint64_t>, OldSegment>& by_hash,
                     const std::map<std::pair<std::string, SegmentRole>, OldSegment>& by_name, const uint8_t* old_base,
                     DeltaStats& stats) {
    const std::string role(segment_role_name(s.role));
    auto range = by_hash.equal_range({s.xxh64, s.size});
    for (auto it = range.first; it != range.second; ++it) {
      if (std::memcmp(it->second.data, s.data, s.size) == 0) {  // confirm: a checksum match is not proof
        Op op;
        op.kind = DeltaOpKind::kCopy;
        op.new_len = s.size;
        op.old_offset = it->second.start;
        op.old_len = s.size;
        return push(op, nullptr, stats, s.tensor, role);
      }
    }
    stats.changed_segment_bytes += s.size;
    const uint8_t* xor_base = nullptr;
    uint64_t xor_offset = 0;
    auto named = by_name.find({s.tensor, s.role});
    if (named != by_name.end() && named->second.size == s.size) {
      xor_base = old_base + named->second.start;
      xor_offset = named->second.start;
    }
    return add_changed(s.data, s.size, xor_base, xor_offset, nullptr, 0, 0, stats, s.tensor, role);
  }

  const DeltaOptions& options_;
  PayloadSink& sink_;
  std::vector<Op> ops_;
};

// --- applier ---------------------------------------------------------------------------------

/// Receives NEW's bytes in order: writes them (buffered) to the temporary, hashes the whole file,
/// and once NEW's header has gone by, checks its preamble and header checksums and every
/// segment's xxh64 as the segment's bytes pass.
class VerifyingWriter {
 public:
  VerifyingWriter(int fd, std::string what, uint64_t new_size) : fd_(fd), what_(std::move(what)), size_(new_size) {
    buffer_.reserve(kChunk);
  }

  Status put(const uint8_t* data, size_t size) {
    whole_.update(data, size);
    SLMC_RETURN_IF_ERROR(track(data, size));
    while (size > 0) {
      const size_t n = std::min(size, kChunk - buffer_.size());
      buffer_.insert(buffer_.end(), data, data + n);
      data += n;
      size -= n;
      if (buffer_.size() == kChunk) SLMC_RETURN_IF_ERROR(flush());
    }
    return Status::ok_status();
  }

  Status flush() {
    SLMC_RETURN_IF_ERROR(write_all(fd_, buffer_.data(), buffer_.size(), what_));
    buffer_.clear();
    return Status::ok_status();
  }

  /// After the last byte: every segment seen and matching, the whole file's xxh64.
  Status finish(uint64_t expected_xxh64, uint64_t* verified) {
    SLMC_RETURN_IF_ERROR(flush());
    if (!header_done_) return bad("the reconstructed file ends before its header does");
    if (next_seg_ != segs_.size()) return bad("the reconstructed file ends before its last segment");
    const uint64_t got = whole_.digest();
    if (got != expected_xxh64) {
      return make_error(ErrorCode::kChecksumMismatch, what_ + ": the reconstructed file's xxh64 " + hex64(got) +
                                                          " differs from NEW's " + hex64(expected_xxh64));
    }
    *verified = segs_.size();
    return Status::ok_status();
  }

 private:
  struct Seg {
    uint64_t start, size, xxh64;
    std::string tensor;
  };

  Status bad(const std::string& m) const {
    return make_error(ErrorCode::kInvalidFormat, what_ + ": reconstructed NEW: " + m);
  }

  Status track(const uint8_t* data, size_t size) {
    uint64_t at = pos_;
    pos_ += size;
    while (!header_done_ && size > 0) {  // the preamble first, then up to the data section
      const uint64_t want = header_end_ == 0 ? kPreambleBytes : header_end_;
      const size_t take = static_cast<size_t>(std::min<uint64_t>(size, want - header_.size()));
      header_.insert(header_.end(), data, data + take);
      data += take;
      size -= take;
      at += take;
      if (header_.size() == kPreambleBytes && header_end_ == 0) SLMC_RETURN_IF_ERROR(read_preamble());
      if (header_end_ != 0 && header_.size() == header_end_) SLMC_RETURN_IF_ERROR(read_header());
    }
    // Segments are sorted and disjoint: feed the overlap of [at, at + size) with the current one.
    while (size > 0 && next_seg_ < segs_.size()) {
      const Seg& s = segs_[next_seg_];
      if (at + size <= s.start) return Status::ok_status();
      if (at < s.start) {
        const uint64_t skip = s.start - at;
        data += skip;
        size -= skip;
        at += skip;
      }
      const uint64_t end = s.start + s.size;
      const size_t n = static_cast<size_t>(std::min<uint64_t>(size, end - at));
      seg_hash_->update(data, n);
      data += n;
      size -= n;
      at += n;
      if (at == end) {
        const uint64_t got = seg_hash_->digest();
        if (got != s.xxh64) {
          return make_error(ErrorCode::kChecksumMismatch,
                            what_ + ": reconstructed NEW: tensor '" + s.tensor + "' segment at byte " +
                                std::to_string(s.start) + " has xxh64 " + hex64(got) + ", its header says " +
                                hex64(s.xxh64));
        }
        ++next_seg_;
        seg_hash_ = std::make_unique<Xxh64Stream>();
      }
    }
    return Status::ok_status();
  }

  Status read_preamble() {
    const uint8_t* p = header_.data();
    if (std::memcmp(p, kFileMagic, 8) != 0) return bad("no SLMCFILE magic");
    if (xxh64(p, 56) != get_u64(p + 56)) {
      return make_error(ErrorCode::kChecksumMismatch, what_ + ": reconstructed NEW: preamble checksum mismatch");
    }
    fb_off_ = get_u64(p + 16);
    fb_size_ = get_u64(p + 24);
    data_off_ = get_u64(p + 32);
    data_size_ = get_u64(p + 40);
    header_xxh_ = get_u64(p + 48);
    if (fb_off_ < kPreambleBytes || fb_size_ > kMaxFlatbufferBytes || fb_off_ > kMaxFlatbufferBytes ||
        data_off_ < fb_off_ + fb_size_ || data_off_ > size_ || data_size_ != size_ - data_off_ ||
        data_off_ > 2 * kMaxFlatbufferBytes) {
      return bad("preamble locations (flatbuffer " + std::to_string(fb_off_) + "+" + std::to_string(fb_size_) +
                 ", data " + std::to_string(data_off_) + "+" + std::to_string(data_size_) + ") do not fit " +
                 std::to_string(size_) + " bytes");
    }
    header_end_ = data_off_;
    header_.reserve(static_cast<size_t>(header_end_));
    return Status::ok_status();
  }

  Status read_header() {
    const uint8_t* fbuf = header_.data() + fb_off_;
    if (xxh64(fbuf, fb_size_) != header_xxh_) {
      return make_error(ErrorCode::kChecksumMismatch, what_ + ": reconstructed NEW: header checksum mismatch");
    }
    flatbuffers::Verifier verifier(fbuf, static_cast<size_t>(fb_size_), /*max_depth=*/64, /*max_tables=*/10000000);
    if (!fb::VerifyModelBuffer(verifier)) return bad("the header fails the FlatBuffers verifier");
    const fb::Model* model = fb::GetModel(fbuf);
    if (model->tensors() != nullptr) {
      for (const fb::Tensor* t : *model->tensors()) {
        if (t->segments() == nullptr) continue;
        for (const fb::Segment* s : *t->segments()) {
          if (s->offset() > data_size_ || s->size() > data_size_ - s->offset()) {
            return bad("a segment lies outside the data section");
          }
          segs_.push_back(Seg{data_off_ + s->offset(), s->size(), s->xxh64(),
                              t->name() != nullptr ? t->name()->str() : std::string()});
        }
      }
    }
    std::stable_sort(segs_.begin(), segs_.end(), [](const Seg& a, const Seg& b) { return a.start < b.start; });
    std::vector<Seg> distinct;
    for (Seg& s : segs_) {
      if (!distinct.empty() && distinct.back().start == s.start && distinct.back().size == s.size) {
        if (distinct.back().xxh64 != s.xxh64) return bad("two tensors share a segment with different checksums");
        continue;
      }
      if (!distinct.empty() && s.start < distinct.back().start + distinct.back().size) {
        return bad("segments overlap in part");
      }
      distinct.push_back(std::move(s));
    }
    segs_ = std::move(distinct);
    std::vector<uint8_t>().swap(header_);
    header_done_ = true;
    seg_hash_ = std::make_unique<Xxh64Stream>();
    return Status::ok_status();
  }

  int fd_;
  std::string what_;
  uint64_t size_;
  std::vector<uint8_t> buffer_;
  Xxh64Stream whole_;
  uint64_t pos_ = 0;
  std::vector<uint8_t> header_;
  uint64_t header_end_ = 0;
  bool header_done_ = false;
  uint64_t fb_off_ = 0, fb_size_ = 0, data_off_ = 0, data_size_ = 0, header_xxh_ = 0;
  std::vector<Seg> segs_;
  size_t next_seg_ = 0;
  std::unique_ptr<Xxh64Stream> seg_hash_;
};

}  // namespace

std::string_view delta_op_kind_name(DeltaOpKind kind) noexcept {
  switch (kind) {
    case DeltaOpKind::kZero: return "zero";
    case DeltaOpKind::kCopy: return "copy";
    case DeltaOpKind::kLiteral: return "literal";
    case DeltaOpKind::kXor: return "xor";
    case DeltaOpKind::kAdd: return "add";
  }
  return "invalid";
}

std::string_view delta_codec_name(DeltaCodec codec) noexcept {
  switch (codec) {
    case DeltaCodec::kNone: return "none";
    case DeltaCodec::kRaw: return "raw";
    case DeltaCodec::kZstd: return "zstd";
    case DeltaCodec::kZstdPrefix: return "zstd_prefix";
  }
  return "invalid";
}

Result<DeltaStats> measure_delta(const std::string& old_path, const std::string& new_path,
                                 const DeltaOptions& options) {
  PayloadSink sink;
  DeltaBuilder builder(options, sink);
  DeltaStats stats;
  uint8_t preamble[kDeltaPreambleBytes];
  SLMC_RETURN_IF_ERROR(builder.build(old_path, new_path, preamble, stats));
  return stats;
}

Status write_delta(const std::string& old_path, const std::string& new_path, const std::string& out_path,
                   const DeltaOptions& options, DeltaStats* stats_out) {
  SLMC_RETURN_IF_ERROR(check_output_path(out_path, {old_path, new_path}, OutputKind::kFile, options.force));
  SLMC_ASSIGN_OR_RETURN(TempFile temp, TempFile::create(out_path));
  const int fd = temp.fd();
  const std::string what = temp.describe();
  uint8_t preamble[kDeltaPreambleBytes] = {};
  SLMC_RETURN_IF_ERROR(write_all(fd, preamble, sizeof preamble, what));  // placeholder, rewritten at the end
  PayloadSink sink;
  sink.write = [fd, &what](const uint8_t* data, size_t size) { return write_all(fd, data, size, what); };
  DeltaBuilder builder(options, sink);
  DeltaStats stats;
  SLMC_RETURN_IF_ERROR(builder.build(old_path, new_path, preamble, stats));
  SLMC_RETURN_IF_ERROR(pwrite_all(fd, preamble, sizeof preamble, 0, what));
  SLMC_RETURN_IF_ERROR(temp.commit());
  if (stats_out != nullptr) *stats_out = std::move(stats);
  return Status::ok_status();
}

Status apply_delta(const std::string& old_path, const std::string& delta_path, const std::string& out_path,
                   const ApplyOptions& options, ApplyStats* stats_out) {
  SLMC_RETURN_IF_ERROR(check_output_path(out_path, {old_path, delta_path}, OutputKind::kFile, options.force));
  const std::string& dp = delta_path;
  auto bad = [&dp](const std::string& m) { return make_error(ErrorCode::kInvalidFormat, dp + ": " + m); };

  // 1. The delta's preamble, size and body checksum, before anything else is trusted.
  SLMC_ASSIGN_OR_RETURN(int dfd_raw, open_regular_file(delta_path));
  Fd dfd(dfd_raw);
  SLMC_ASSIGN_OR_RETURN(uint64_t dsize, file_size_of(dfd.get(), delta_path));
  if (dsize < kDeltaPreambleBytes) {
    return bad("truncated: " + std::to_string(dsize) + " bytes, shorter than the " +
               std::to_string(kDeltaPreambleBytes) + "-byte preamble");
  }
  uint8_t pre[kDeltaPreambleBytes];
  SLMC_RETURN_IF_ERROR(pread_all(dfd.get(), pre, sizeof pre, 0, delta_path));
  if (std::memcmp(pre + kOffMagic, kDeltaMagic, 8) != 0) return bad("not a .slmdelta file (no SLMDELTA magic)");
  const uint16_t major = get_u16(pre + kOffMajor), minor = get_u16(pre + kOffMinor);
  if (major == 0 || major > kDeltaFormatMajor) {
    return make_error(ErrorCode::kUnsupported, dp + ": delta format version " + std::to_string(major) + "." +
                                                   std::to_string(minor) + " is not supported (this reader: " +
                                                   std::to_string(kDeltaFormatMajor) + ".x)");
  }
  if (xxh64(pre, kOffPreambleXxh) != get_u64(pre + kOffPreambleXxh)) {
    return make_error(ErrorCode::kChecksumMismatch, dp + ": preamble checksum mismatch (the delta is corrupted)");
  }
  const uint64_t want_size = get_u64(pre + kOffDeltaSize);
  if (dsize != want_size) {
    return bad(std::string(dsize < want_size ? "truncated" : "trailing bytes") + ": the file has " +
               std::to_string(dsize) + " bytes, its preamble says " + std::to_string(want_size));
  }
  // 2. The op table's place (from the preamble), then one pass over the body: its xxh64, with a
  //    key its SHA-256 (the signed hash) and the payload area's, and the op table kept from the
  //    same bytes (what is validated and used is what was hashed).
  const uint64_t old_size = get_u64(pre + kOffOldSize), new_size = get_u64(pre + kOffNewSize);
  const uint64_t op_count = get_u64(pre + kOffOpCount), op_table = get_u64(pre + kOffOpTable);
  if (op_table < kDeltaPreambleBytes || op_table > dsize || op_count > (dsize - op_table) / kDeltaOpBytes ||
      op_count * kDeltaOpBytes != dsize - op_table) {
    return bad("op table at byte " + std::to_string(op_table) + " with " + std::to_string(op_count) +
               " ops does not end the file");
  }
  const bool signed_apply = options.public_key.has_value();
  std::vector<uint8_t> buf(kChunk);
  std::vector<uint8_t> table(static_cast<size_t>(op_count * kDeltaOpBytes));
  Xxh64Stream body_hash;
  Sha256Stream file_sha, payload_sha;
  if (signed_apply) file_sha.update(pre, sizeof pre);
  for (uint64_t at = kDeltaPreambleBytes; at < dsize;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, dsize - at));
    SLMC_RETURN_IF_ERROR(pread_all(dfd.get(), buf.data(), n, at, delta_path));
    body_hash.update(buf.data(), n);
    if (signed_apply) {
      file_sha.update(buf.data(), n);
      if (at < op_table) payload_sha.update(buf.data(), static_cast<size_t>(std::min<uint64_t>(n, op_table - at)));
    }
    if (at + n > op_table) {  // the part of this chunk at or after the op table
      const uint64_t from = std::max(at, op_table);
      std::memcpy(table.data() + (from - op_table), buf.data() + (from - at), static_cast<size_t>(at + n - from));
    }
    at += n;
  }
  const uint64_t body_xxh = body_hash.digest();
  if (body_xxh != get_u64(pre + kOffBodyXxh)) {
    return make_error(ErrorCode::kChecksumMismatch, dp + ": checksum mismatch: the body's xxh64 is " + hex64(body_xxh) +
                                                        ", the preamble says " + hex64(get_u64(pre + kOffBodyXxh)) +
                                                        " (the delta is corrupted)");
  }
  // 3. With a key, the signature: before the op table, the base or the output is used.
  ApplyStats stats;
  if (signed_apply) {
    const std::string sig_path = options.signature_path.empty() ? default_signature_path(delta_path)
                                                                : options.signature_path;
    auto info = check_signature(sig_path, *options.public_key, dsize, file_sha.digest());
    if (!info.ok()) {
      if (info.status().code() == ErrorCode::kChecksumMismatch) return info.status().with_context(dp);
      return info.status();
    }
    stats.signature_verified = true;
    stats.signer_key_id = info->key_id;
  }

  // 4. The op table: ops cover NEW contiguously, reference OLD and the payload area in bounds.
  std::vector<Op> ops(static_cast<size_t>(op_count));
  uint64_t covered = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    const uint8_t* raw = table.data() + i * kDeltaOpBytes;
    Op& op = ops[i] = decode_op(raw);
    const std::string where = "op " + std::to_string(i) + " (NEW bytes from " + std::to_string(covered) + ")";
    if (get_u16(raw + 2) != 0 || get_u32(raw + 4) != 0) return bad(where + ": reserved bytes are not zero");
    if (op.new_len == 0 || op.new_len > new_size - covered) return bad(where + ": length " + std::to_string(op.new_len) + " overruns NEW");
    covered += op.new_len;
    const bool differs = op.kind == DeltaOpKind::kXor || op.kind == DeltaOpKind::kAdd;
    const bool has_payload = op.kind == DeltaOpKind::kLiteral || differs;
    switch (op.kind) {
      case DeltaOpKind::kZero:
      case DeltaOpKind::kCopy:
        if (op.codec != DeltaCodec::kNone) return bad(where + ": a " + std::string(delta_op_kind_name(op.kind)) + " op has a codec");
        break;
      case DeltaOpKind::kLiteral:
        if (op.codec != DeltaCodec::kRaw && op.codec != DeltaCodec::kZstd && op.codec != DeltaCodec::kZstdPrefix) {
          return bad(where + ": unknown codec " + std::to_string(static_cast<int>(op.codec)));
        }
        break;
      case DeltaOpKind::kXor:
      case DeltaOpKind::kAdd:
        if (op.codec != DeltaCodec::kRaw && op.codec != DeltaCodec::kZstd) {
          return bad(where + ": codec " + std::to_string(static_cast<int>(op.codec)) + " is not valid for " +
                     std::string(delta_op_kind_name(op.kind)));
        }
        break;
      default: return bad(where + ": unknown op kind " + std::to_string(static_cast<int>(op.kind)));
    }
    if (op.kind == DeltaOpKind::kCopy || differs) {
      if (op.old_len != op.new_len) return bad(where + ": old length differs from new length");
    } else if (op.codec == DeltaCodec::kZstdPrefix) {
      if (op.old_len == 0 || op.old_len > kDeltaMaxPrefixBytes) return bad(where + ": prefix of " + std::to_string(op.old_len) + " bytes");
    } else if (op.old_offset != 0 || op.old_len != 0) {
      return bad(where + ": references OLD without using it");
    }
    if (op.old_len > 0 && (op.old_offset > old_size || op.old_len > old_size - op.old_offset)) {
      return bad(where + ": OLD range " + std::to_string(op.old_offset) + "+" + std::to_string(op.old_len) +
                 " lies outside the base (" + std::to_string(old_size) + " bytes)");
    }
    if (has_payload) {
      if (op.payload_offset < kDeltaPreambleBytes || op.payload_offset > op_table ||
          op.payload_size > op_table - op.payload_offset) {
        return bad(where + ": payload " + std::to_string(op.payload_offset) + "+" + std::to_string(op.payload_size) +
                   " lies outside the payload area");
      }
      if (op.codec == DeltaCodec::kRaw && op.payload_size != op.new_len) return bad(where + ": raw payload size differs from its length");
    } else if (op.payload_offset != 0 || op.payload_size != 0) {
      return bad(where + ": has a payload it does not use");
    }
  }
  if (covered != new_size) {
    return bad("the ops produce " + std::to_string(covered) + " bytes, NEW has " + std::to_string(new_size));
  }

  // 5. OLD must be the base the delta was made for: size and whole-file xxh64.
  SLMC_ASSIGN_OR_RETURN(int ofd_raw, open_regular_file(old_path));
  Fd ofd(ofd_raw);
  SLMC_ASSIGN_OR_RETURN(uint64_t osize, file_size_of(ofd.get(), old_path));
  const std::string expected_base = "the delta was made for a base of " + std::to_string(old_size) +
                                    " bytes with xxh64 " + hex64(get_u64(pre + kOffOldXxh)) + " (header xxh64 " +
                                    hex64(get_u64(pre + kOffOldHeaderXxh)) + ")";
  if (osize != old_size) {
    return make_error(ErrorCode::kChecksumMismatch, old_path + ": wrong base: " + std::to_string(osize) + " bytes; " +
                                                        expected_base);
  }
  SLMC_ASSIGN_OR_RETURN(uint64_t old_xxh, xxh64_of_range(ofd.get(), 0, osize, buf, old_path));
  if (old_xxh != get_u64(pre + kOffOldXxh)) {
    return make_error(ErrorCode::kChecksumMismatch,
                      old_path + ": wrong base: xxh64 " + hex64(old_xxh) + "; " + expected_base);
  }

  // 6. Reconstruct NEW into a temporary beside the destination, verifying as it streams.
  SLMC_ASSIGN_OR_RETURN(TempFile temp, TempFile::create(out_path));
  VerifyingWriter out(temp.fd(), temp.describe(), new_size);
  std::unique_ptr<ZSTD_DCtx, DctxDeleter> dctx(ZSTD_createDCtx());
  if (!dctx) return make_error(ErrorCode::kOutOfMemory, "cannot create a zstd decompression context");
  std::vector<uint8_t> in_buf(kChunk), out_buf(ZSTD_DStreamOutSize()), old_buf, prefix;
  // Payload bytes as used. In a signed apply they must be read in order, contiguously (as
  // `delta` writes them), and hash to the payload area that was verified: a delta rewritten
  // between the verification pass and this one is refused before the rename.
  uint64_t next_payload = kDeltaPreambleBytes;
  Sha256Stream used_sha;
  auto read_payload = [&](uint8_t* dst, size_t n, uint64_t offset, const std::string& where) -> Status {
    if (signed_apply) {
      if (offset != next_payload) {
        return bad(where + ": payload at byte " + std::to_string(offset) + "; a signed delta's payloads follow each "
                   "other in op order (expected byte " + std::to_string(next_payload) + ")");
      }
      next_payload += n;
    }
    SLMC_RETURN_IF_ERROR(pread_all(dfd.get(), dst, n, offset, delta_path));
    if (signed_apply) used_sha.update(dst, n);
    return Status::ok_status();
  };
  uint64_t new_pos = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    const std::string where = "op " + std::to_string(i) + " (NEW bytes " + std::to_string(new_pos) + "+" +
                              std::to_string(op.new_len) + ")";
    Xxh64Stream op_hash;
    uint64_t produced = 0;
    // Emits decoded bytes: xor with OLD where needed, hash, write.
    auto emit = [&](uint8_t* data, size_t size) -> Status {
      if (op.kind == DeltaOpKind::kXor || op.kind == DeltaOpKind::kAdd) {
        old_buf.resize(size);
        SLMC_RETURN_IF_ERROR(pread_all(ofd.get(), old_buf.data(), size, op.old_offset + produced, old_path));
        if (op.kind == DeltaOpKind::kXor) {
          for (size_t k = 0; k < size; ++k) data[k] ^= old_buf[k];
        } else {
          for (size_t k = 0; k < size; ++k) data[k] = static_cast<uint8_t>(data[k] + old_buf[k]);
        }
      }
      produced += size;
      op_hash.update(data, size);
      return out.put(data, size);
    };
    if (op.kind == DeltaOpKind::kZero) {
      std::fill(in_buf.begin(), in_buf.end(), 0);
      while (produced < op.new_len) {
        SLMC_RETURN_IF_ERROR(emit(in_buf.data(), static_cast<size_t>(std::min<uint64_t>(kChunk, op.new_len - produced))));
      }
    } else if (op.kind == DeltaOpKind::kCopy) {
      while (produced < op.new_len) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, op.new_len - produced));
        SLMC_RETURN_IF_ERROR(pread_all(ofd.get(), in_buf.data(), n, op.old_offset + produced, old_path));
        SLMC_RETURN_IF_ERROR(emit(in_buf.data(), n));
      }
    } else if (op.codec == DeltaCodec::kRaw) {
      while (produced < op.new_len) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, op.new_len - produced));
        SLMC_RETURN_IF_ERROR(read_payload(in_buf.data(), n, op.payload_offset + produced, where));
        SLMC_RETURN_IF_ERROR(emit(in_buf.data(), n));
      }
    } else {  // one zstd frame, decoded in chunks
      ZSTD_DCtx_reset(dctx.get(), ZSTD_reset_session_and_parameters);
      ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, kDeltaMaxWindowLog);
      if (op.codec == DeltaCodec::kZstdPrefix) {
        prefix.resize(static_cast<size_t>(op.old_len));
        SLMC_RETURN_IF_ERROR(pread_all(ofd.get(), prefix.data(), prefix.size(), op.old_offset, old_path));
        ZSTD_DCtx_refPrefix(dctx.get(), prefix.data(), prefix.size());
      }
      uint64_t consumed = 0;
      size_t ret = 1;  // nonzero until the frame is complete
      while (ret != 0) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, op.payload_size - consumed));
        if (n > 0) SLMC_RETURN_IF_ERROR(read_payload(in_buf.data(), n, op.payload_offset + consumed, where));
        consumed += n;
        const bool last = consumed == op.payload_size;
        ZSTD_inBuffer in{in_buf.data(), n, 0};
        while (in.pos < in.size || (last && ret != 0)) {
          ZSTD_outBuffer o{out_buf.data(), out_buf.size(), 0};
          ret = ZSTD_decompressStream(dctx.get(), &o, &in);
          if (ZSTD_isError(ret)) return bad(where + ": zstd payload does not decode: " + ZSTD_getErrorName(ret));
          if (o.pos > op.new_len - produced) {
            return bad(where + ": payload decodes to more than " + std::to_string(op.new_len) + " bytes");
          }
          if (o.pos > 0) SLMC_RETURN_IF_ERROR(emit(out_buf.data(), o.pos));
          if (ret == 0) {
            if (in.pos < in.size || !last) return bad(where + ": bytes follow the payload's zstd frame");
            break;
          }
          // All input taken and the output not filled: the decoder wants bytes the payload lacks.
          if (last && in.pos == in.size && o.pos < o.size) return bad(where + ": the payload's zstd frame is incomplete");
        }
      }
    }
    if (produced != op.new_len) {
      return bad(where + ": produced " + std::to_string(produced) + " bytes, expected " + std::to_string(op.new_len));
    }
    if (op_hash.digest() != op.out_xxh64) {
      return make_error(ErrorCode::kChecksumMismatch,
                        dp + ": " + where + ": the reconstructed bytes have xxh64 " + hex64(op_hash.digest()) +
                            ", the delta expects " + hex64(op.out_xxh64));
    }
    new_pos += op.new_len;
    if (options.progress) options.progress(new_pos, new_size);
  }
  if (signed_apply && (next_payload != op_table || used_sha.digest() != payload_sha.digest())) {
    return make_error(ErrorCode::kChecksumMismatch,
                      dp + ": the payloads read while applying are not the signed bytes (the delta changed during "
                           "apply, or its payloads do not fill the area before the op table)");
  }
  SLMC_RETURN_IF_ERROR(out.finish(get_u64(pre + kOffNewXxh), &stats.segments_verified));
  SLMC_RETURN_IF_ERROR(temp.commit());
  stats.new_file_bytes = new_size;
  stats.new_xxh64 = get_u64(pre + kOffNewXxh);
  stats.op_count = op_count;
  if (stats_out != nullptr) *stats_out = stats;
  return Status::ok_status();
}

}  // namespace slmc
