// Tokenizer::load: the tokenizer stored in or beside a file, detected from its content.
#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "slmc/format/model_file.hpp"
#include "slmc/io/mapped_file.hpp"
#include "slmc/io/model_source.hpp"
#include "slmc/text/tokenizer.hpp"

namespace slmc {

Result<std::unique_ptr<Tokenizer>> Tokenizer::load(const std::string& path_in, int64_t vocab_size) {
  std::string path = path_in;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) path += "/tokenizer.json";
  SLMC_ASSIGN_OR_RETURN(auto file, MappedFile::open(path));
  const uint8_t* d = file->data();
  const uint64_t n = file->size();
  TokenizerData data;
  if (n >= 8 && std::memcmp(d, kFileMagic, 8) == 0) {
    SLMC_ASSIGN_OR_RETURN(auto mf, ModelFile::open_mapped(file));
    if (mf->header().tokenizer.empty()) {
      return make_error(ErrorCode::kNotFound, path + ": the .slm file holds no tokenizer");
    }
    data = mf->header().tokenizer;
  } else if (n >= 4 && std::memcmp(d, "GGUF", 4) == 0) {
    SLMC_ASSIGN_OR_RETURN(data, read_gguf_tokenizer(file));
    if (data.empty()) return make_error(ErrorCode::kNotFound, path + ": the GGUF file holds no tokenizer");
  } else {
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
