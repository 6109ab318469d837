// The codec traits table and the one scheme grammar.
//
// Every stored encoding belongs to one codec: a (sparse format x value type) family with one entry
// in a table (src/codec.cpp) that says what the family is called, which segments it writes, how
// many bytes one storage unit (chunk, value, block) takes, which rule makes an Encoding of it
// legal, which function quantizes into it and which decodes it, and which kernel families read it.
// Tests, the CLI and the benchmarks loop over that table instead of listing encodings themselves.
//
// The scheme grammar (docs/CLI.md, "Schemes", is its one description) is parsed and printed here,
// and nowhere else: `parse_encoding` / `encoding_to_string` for a stored Encoding, and
// `parse_scheme` / `Scheme::to_string` for a recipe scheme (an Encoding plus how much to prune).
// `encoding_name` is the short identity stored in .slm files (encodings_used) and shown by
// inspect and bench; it is print-only.
//
// Adding an encoding: docs/LAYOUT.md, "How to add an encoding".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "slmc/encoding.hpp"
#include "slmc/status.hpp"

namespace slmc {

// ------------------------------------------------------------------------------------------------
// Schemes and the grammar
// ------------------------------------------------------------------------------------------------

/// How pruning scores weights (the scheme key prune=).
enum class PruneScore : uint8_t {
  kMagnitude = 0,  ///< |w|
  kWanda = 1,      ///< |w| * ||x_j|| (needs calibration statistics)
};

/// One fully specified way to compress a tensor: the stored Encoding plus how much to prune first.
struct Scheme {
  Encoding encoding;            ///< value type, quantization, sparse format, row layout
  double sparsity = 0.0;        ///< fraction of weights to prune (unstructured or block)
  PruneScore prune = PruneScore::kMagnitude;

  bool is_pruned() const noexcept { return sparsity > 0.0 || encoding.nm_m != 0; }
  /// Canonical string with every key spelled out, e.g. "int4:group=32,sym=true,search=mse,
  /// scale_dtype=fp16,layout=rows". parse_scheme(to_string()) gives the same scheme.
  std::string to_string() const;
  bool operator==(const Scheme& o) const noexcept {
    return encoding == o.encoding && sparsity == o.sparsity && prune == o.prune;
  }
};

/// Parses a scheme string `ENCODING[:key=value,...]` (docs/CLI.md, "Schemes"). Errors (kInvalidArgument)
/// name the bad key or value and list the valid ones.
Result<Scheme> parse_scheme(std::string_view text);

/// Parses the Encoding part of the grammar: the keys of parse_scheme except the pruning ones
/// (sparsity=, prune=); pattern=N:M means format=nm. The result passes check_encoding, whose
/// message is returned otherwise. encoding_to_string(*parse_encoding(s)) is canonical and parses
/// back to the same Encoding.
Result<Encoding> parse_encoding(std::string_view text);

/// Canonical grammar string of an Encoding, every key spelled out, e.g. "int4:group=32,sym=true,
/// search=mse,scale_dtype=fp16,layout=rows", "int8:group=channel,sym=true,search=absmax,
/// scale_dtype=fp32,format=csr", "fp32:pattern=2:4,format=nm". For any e passing check_encoding,
/// parse_encoding(encoding_to_string(e)) == e.
std::string encoding_to_string(const Encoding& e);

/// Stable short name of an encoding as .slm files store it (encodings_used) and inspect / bench
/// print it, e.g. "f32", "int4_g32_sym_f16", "int8_channel_asym_f32_r8", "csr_f32",
/// "nm2:4_int8_channel_sym_f32". Print-only: it omits the scale search (provenance).
std::string encoding_name(const Encoding& e);

/// Stable short name of a scale search ("absmax", "mse", "weighted"; "invalid" otherwise).
const char* scale_search_name(ScaleSearch s) noexcept;

// ------------------------------------------------------------------------------------------------
// The traits table
// ------------------------------------------------------------------------------------------------

/// Bit set of segment roles (bit i = SegmentRole i).
using RoleSet = uint8_t;
constexpr RoleSet role_bit(SegmentRole r) noexcept { return static_cast<RoleSet>(1u << static_cast<unsigned>(r)); }

/// Kernel families, as bit flags: which entry points read an encoding.
enum KernelFamily : uint8_t {
  kKernelDenseLinear = 1,   ///< linear() through the dense micro-kernels (kernels/linear/)
  kKernelSparseLinear = 2,  ///< linear() through the sparse kernels (kernels/linear_sparse/)
  kKernelGather = 4,        ///< gather_rows() (embedding lookup)
};

/// The storage unit of a values segment: `elements` stored values take `bytes` bytes. Dense
/// int8/int4 (and N:M int8/int4 slots): a 32-code chunk record; float and CSR/bitmask: one value;
/// BSR: one r x c block.
struct StorageUnit {
  int64_t elements = 0;
  int64_t bytes = 0;
};

/// Options of encode() beyond the Encoding (none are owned; all may be null).
struct CodecOptions {
  const float* importance = nullptr;  ///< cols entries; needed by ScaleSearch::kWeighted
  const float* gram = nullptr;        ///< dense int8/int4: K x K Gram matrix (GPTQ, slmc/quant/config.hpp)
  const uint8_t* keep = nullptr;      ///< sparse: rows*cols keep mask (nullptr: the nonzeros)
  int num_threads = 0;                ///< dense int8/int4: <= 0 means default_num_threads()
};

/// Everything the toolkit knows about one codec (one entry of the table).
struct CodecTraits {
  const char* name;            ///< "float", "int8", "int4", "csr", "bsr", "nm", "bitmask"
  SparseFormat format;         ///< the family's format
  /// Value types the family stores (bit 1 << ValueType); the dense families split by value type.
  uint8_t value_types;
  uint8_t kernels;             ///< KernelFamily bits
  /// Segment roles present (non-empty) in a non-empty matrix of encoding e.
  RoleSet (*roles)(const Encoding& e);
  /// Storage unit of e's values segment.
  StorageUnit (*unit)(const Encoding& e);
  /// Legality of e beyond its family (value type and format already match); `what` names it.
  Status (*check)(const Encoding& e, const std::string& what);
  /// Quantizer / encoder entry: w[rows x cols] (row-major fp32) into e (e already checked).
  Result<EncodedMatrix> (*encode)(std::string_view tensor_name, const float* w, int64_t rows, int64_t cols,
                                  const Encoding& e, const CodecOptions& options);
  /// Reference decoder to fp32 (validates the view first): dequantize() or decode_sparse().
  Status (*decode)(const EncodedMatrixView& view, float* out);
};

/// The whole table, one entry per family, in a fixed order.
const std::vector<CodecTraits>& codecs();

/// The entry of e's family, or nullptr when e's format / value type pair has none.
const CodecTraits* find_codec(const Encoding& e) noexcept;

/// The one legality rule of a whole Encoding (what the grammar accepts, the quantizers produce and
/// the kernels read): its family exists, the family's rule holds (dense int8/int4:
/// check_quant_scheme) and every field the family does not use holds its default, so one matrix
/// has one spelling. kUnsupported / kInvalidArgument with a message naming `what` and the value.
Status check_encoding(const Encoding& e, const std::string& what);

/// The quantizer entry of the table: encodes w[rows x cols] (row-major fp32) into e through its
/// family's encoder (encode_float, quantize, encode_sparse), after check_encoding.
Result<EncodedMatrix> encode(std::string_view tensor_name, const float* w, int64_t rows, int64_t cols,
                             const Encoding& e, const CodecOptions& options = {});

/// Every legal Encoding the grammar can spell, with representative group sizes (int8: 16, 32, 128;
/// int4: all five; sparse: N:M 2:4 and 1:4, BSR 4x1 and 2x2): what tests and benchmarks walk.
std::vector<Encoding> enumerate_encodings();

}  // namespace slmc
