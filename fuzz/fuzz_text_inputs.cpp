// libFuzzer target: the text inputs other than model files. The first byte picks the parser, the
// rest is its input: 0 calibration JSON, 1 recipe JSON, 2 chat template, 3 tokenizer.json (through
// a memory file, as read_hf_tokenizer reads a path), 4 a scheme string. None may crash or hang;
// errors are fine.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "slmc/codec.hpp"
#include "slmc/convert/converter.hpp"
#include "slmc/convert/recipe.hpp"
#include "slmc/text/chat.hpp"
#include "slmc/text/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 5) {
    case 0: (void)slmc::parse_calibration_json(text, "fuzz"); break;
    case 1: (void)slmc::parse_recipe_json(text, "fuzz"); break;
    case 2: {
      auto t = slmc::parse_chat_template(text, "fuzz");
      if (t.ok()) (void)slmc::render_chat(*t, {{"user", "hi"}});
      break;
    }
    case 3: {
      const int fd = ::memfd_create("tokenizer.json", MFD_CLOEXEC);
      if (fd < 0) return 0;
      if (::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size())) {
        auto t = slmc::read_hf_tokenizer("/proc/self/fd/" + std::to_string(fd));
        if (t.ok()) {
          auto tok = slmc::Tokenizer::create(*t);
          if (tok.ok()) (void)(*tok)->encode("fuzz text 123 <|x|>", false, false);
        }
      }
      ::close(fd);
      break;
    }
    case 4: {
      // The one grammar, both forms; whatever parses must print and parse back to itself.
      (void)slmc::parse_scheme(text);
      const auto e = slmc::parse_encoding(text);
      if (e.ok()) {
        const auto again = slmc::parse_encoding(slmc::encoding_to_string(*e));
        if (!again.ok() || !(*again == *e)) __builtin_trap();
      }
      break;
    }
  }
  return 0;
}
