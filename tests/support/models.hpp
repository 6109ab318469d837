// Where the real test models live: $SLMC_MODELS_DIR, else the directory CMake was configured with
// (../shared/models beside the source tree).
#pragma once

#include <cstdlib>
#include <string>
#include <sys/stat.h>

namespace slmc::test {

inline std::string models_dir() {
  const char* env = std::getenv("SLMC_MODELS_DIR");
  return (env && *env) ? std::string(env) : std::string(SLMC_DEFAULT_MODELS_DIR);
}

inline bool path_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

/// The models directory exists and holds the files the tests read.
inline bool models_available() {
  const std::string dir = models_dir();
  return path_exists(dir + "/stories260K/stories260K.bin") &&
         path_exists(dir + "/capp-gpt2-236K/model.safetensors");
}

inline std::string model_path(const std::string& relative) { return models_dir() + "/" + relative; }

}  // namespace slmc::test
