# Warning flags and sanitizers shared by every slmc target.

function(slmc_set_warnings target)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
    if(SLMC_WERROR)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
  endif()
endfunction()

if(SLMC_SANITIZE)
  string(REPLACE ";" "," _slmc_san "${SLMC_SANITIZE}")
  add_compile_options(-fsanitize=${_slmc_san} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${_slmc_san})
  message(STATUS "slmc: sanitizers ${_slmc_san}")
endif()
