# Warning flags and sanitizers shared by every slmc target.

function(slmc_set_warnings target)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
    if(SLMC_WERROR)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
  endif()
endfunction()

# Plain C++ arithmetic is never contracted into FMAs: GCC does it by default on aarch64 (where
# every CPU has FMA) and results would then differ from x86 in the last bit — quantization is
# specified bit-identical across ISAs, and overflow checks near FLT_MAX depend on it.
if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang" AND CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
  add_compile_options(-ffp-contract=off)
endif()

if(SLMC_SANITIZE)
  string(REPLACE ";" "," _slmc_san "${SLMC_SANITIZE}")
  add_compile_options(-fsanitize=${_slmc_san} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${_slmc_san})
  message(STATUS "slmc: sanitizers ${_slmc_san}")
endif()
