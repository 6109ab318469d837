// Tokenizer::load: the tokenizer stored in or beside a file, detected from its content.
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>

#include "slmc/format/model_file.hpp"
#include "slmc/io/input_file.hpp"
#include "slmc/io/model_source.hpp"
#include "slmc/text/tokenizer.hpp"

namespace slmc {

Result<std::unique_ptr<Tokenizer>> Tokenizer::load(const std::string& path_in, int64_t vocab_size) {
  std::string path = path_in;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) path += "/tokenizer.json";
  // Read, not mapped: a tokenizer file may be replaced or truncated while it is read (only the
  // .slm loader maps, zero-copy).
  SLMC_ASSIGN_OR_RETURN(auto file, InputFile::open(path));
  uint8_t magic[8] = {};
  const uint64_t n = file->size();
  SLMC_RETURN_IF_ERROR(file->read(0, magic, std::min<uint64_t>(n, sizeof(magic))));
  TokenizerData data;
  if (n >= 8 && std::memcmp(magic, kFileMagic, 8) == 0) {
    SLMC_ASSIGN_OR_RETURN(auto mf, ModelFile::open(path));
    if (mf->header().tokenizer.empty()) {
      return make_error(ErrorCode::kNotFound, path + ": the .slm file holds no tokenizer");
    }
    data = mf->header().tokenizer;
  } else if (n >= 4 && std::memcmp(magic, "GGUF", 4) == 0) {
    SLMC_ASSIGN_OR_RETURN(data, read_gguf_tokenizer(file));
    if (data.empty()) return make_error(ErrorCode::kNotFound, path + ": the GGUF file holds no tokenizer");
  } else {
    if (n > (uint64_t{1} << 30)) {
      return make_error(ErrorCode::kOutOfRange, path + ": " + std::to_string(n) +
                                                    " bytes, more than a tokenizer file may have (1 GiB)");
    }
    SLMC_ASSIGN_OR_RETURN(const std::string bytes, file->read_string(0, n));
    const auto* d = reinterpret_cast<const uint8_t*>(bytes.data());
    size_t i = 0;
    while (i < n && (d[i] == ' ' || d[i] == '\n' || d[i] == '\r' || d[i] == '\t')) ++i;
    if (i < n && d[i] == '{') {
      SLMC_ASSIGN_OR_RETURN(data, read_hf_tokenizer(path));
    } else {
      return parse(d, static_cast<size_t>(n), path, vocab_size);  // llama2.c tokenizer.bin
    }
  }
  if (vocab_size > 0 && data.size() > vocab_size) {
    return make_error(ErrorCode::kInvalidArgument, path + ": the tokenizer has " + std::to_string(data.size()) +
                                                       " tokens, more than the model's " + std::to_string(vocab_size) +
                                                       " embedding rows");
  }
  return create(std::move(data), path);
}

}  // namespace slmc
