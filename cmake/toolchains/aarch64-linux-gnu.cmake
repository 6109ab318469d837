# Cross build for 64-bit ARM Linux with Debian's g++-aarch64-linux-gnu; tests run under
# qemu-aarch64 (CMAKE_CROSSCOMPILING_EMULATOR; QEMU_CPU picks the emulated CPU model).
#
# Header-only dependencies (xsimd, nlohmann-json, FlatBuffers, xxhash, Catch2, CLI11, Eigen) are
# reached through a staging directory of symlinks to their own include directories, never by
# adding the host's /usr/include wholesale (that would mix host glibc headers into the build).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

set(_slmc_stage "${CMAKE_BINARY_DIR}/host-headers")
# zstd's headers are architecture-independent (libzstd-dev:arm64 installs the same files as the
# host's); its arm64 library is found in /usr/lib/aarch64-linux-gnu.
set(_slmc_header_only xsimd nlohmann flatbuffers xxhash.h catch2 CLI eigen3 zstd.h zstd_errors.h zdict.h)
foreach(_h IN LISTS _slmc_header_only)
  if(EXISTS "/usr/include/${_h}" AND NOT EXISTS "${_slmc_stage}/usr/include/${_h}")
    file(MAKE_DIRECTORY "${_slmc_stage}/usr/include")
    file(CREATE_LINK "/usr/include/${_h}" "${_slmc_stage}/usr/include/${_h}" SYMBOLIC)
  endif()
endforeach()
# CMake package configs of header-only packages (their imported prefix resolves into the stage).
foreach(_pkg Catch2)
  if(EXISTS "/usr/lib/cmake/${_pkg}" AND NOT EXISTS "${_slmc_stage}/usr/lib/cmake/${_pkg}")
    file(MAKE_DIRECTORY "${_slmc_stage}/usr/lib/cmake")
    file(CREATE_LINK "/usr/lib/cmake/${_pkg}" "${_slmc_stage}/usr/lib/cmake/${_pkg}" SYMBOLIC)
  endif()
endforeach()

# OpenSSL (libcrypto, for SHA-256) comes from Debian's multiarch libssl-dev:arm64: its headers are
# split between /usr/include/openssl and /usr/include/aarch64-linux-gnu/openssl, merged here.
if(EXISTS "/usr/lib/aarch64-linux-gnu/libcrypto.so")
  set(_ssl "${_slmc_stage}/openssl-include/openssl")
  if(NOT EXISTS "${_ssl}")
    file(MAKE_DIRECTORY "${_ssl}")
    file(GLOB _ssl_headers /usr/include/openssl/*.h /usr/include/aarch64-linux-gnu/openssl/*.h)
    foreach(_f IN LISTS _ssl_headers)
      get_filename_component(_n "${_f}" NAME)
      if(NOT EXISTS "${_ssl}/${_n}")
        file(CREATE_LINK "${_f}" "${_ssl}/${_n}" SYMBOLIC)
      endif()
    endforeach()
  endif()
  set(OPENSSL_INCLUDE_DIR "${_slmc_stage}/openssl-include" CACHE PATH "arm64 OpenSSL headers")
  set(OPENSSL_CRYPTO_LIBRARY /usr/lib/aarch64-linux-gnu/libcrypto.so CACHE FILEPATH "arm64 libcrypto")
  set(OPENSSL_SSL_LIBRARY /usr/lib/aarch64-linux-gnu/libssl.so CACHE FILEPATH "arm64 libssl")
endif()

set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /usr/lib/aarch64-linux-gnu "${_slmc_stage}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)   # flatc runs on the build machine
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# The emulated CPU model comes from qemu's own QEMU_CPU environment variable at run time
# (scripts/test-arm64.sh runs the suite with QEMU_CPU=max, which has dotprod, and cortex-a53,
# which lacks it).
# -E LD_LIBRARY_PATH: without it qemu resolves libc from the host's multiarch libc6:arm64 while the
# loader comes from the cross toolchain's (two glibc builds mixed): thread creation then spins
# forever, so every test that starts an OpenMP or std::thread worker hangs.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu -E LD_LIBRARY_PATH=/usr/aarch64-linux-gnu/lib)
