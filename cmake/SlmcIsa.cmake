# Which kernel ISAs are compiled, and how each one's object library is built.
#
# Every kernel family lives in kernels/<family>/ with one file per ISA: <family>_scalar.cpp (always),
# <family>_avx2.cpp (x86-64), <family>_neon.cpp and <family>_neon_dotprod.cpp (aarch64). All files
# of one ISA form the object library slmc_kernels_<isa>, compiled with that ISA's flags only; the
# run-time dispatcher in src/ picks among the compiled ones (SLMC_HAVE_<ISA> tells it which exist).

if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  set(SLMC_ISAS scalar avx2)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
  set(SLMC_ISAS scalar neon neon_dotprod)
else()
  set(SLMC_ISAS scalar)
endif()

set(SLMC_ISA_FLAGS_scalar "")
set(SLMC_ISA_FLAGS_avx2 -mavx2 -mfma -mf16c)
set(SLMC_ISA_FLAGS_neon -march=armv8-a)
set(SLMC_ISA_FLAGS_neon_dotprod -march=armv8.2-a+dotprod+fp16)

function(slmc_add_kernel_isa isa)
  file(GLOB _srcs CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/kernels/*/*_${isa}.cpp")
  if(NOT _srcs)
    return()
  endif()
  set(_lib slmc_kernels_${isa})
  add_library(${_lib} OBJECT ${_srcs})
  target_include_directories(${_lib} PRIVATE
    "${PROJECT_SOURCE_DIR}/include" "${PROJECT_BINARY_DIR}/include" "${PROJECT_SOURCE_DIR}/kernels"
    "${PROJECT_SOURCE_DIR}/src" "${SLMC_XSIMD_INCLUDE_DIR}")
  target_compile_options(${_lib} PRIVATE ${SLMC_ISA_FLAGS_${isa}})
  if(NOT isa STREQUAL "scalar")
    # Never -O0 or -Os (Debug, MinSizeRel, no build type): there, inline helpers from shared headers
    # stay out of line as weak functions compiled with this ISA's flags, which the linker may hand
    # to the scalar path (cmake/check_isa_objects.cmake tests that none is left). Release keeps -O3.
    target_compile_options(${_lib} PRIVATE $<$<NOT:$<CONFIG:Release>>:-O2>)
  endif()
  target_compile_features(${_lib} PRIVATE cxx_std_17)
  if(SLMC_OPENMP)
    target_link_libraries(${_lib} PRIVATE OpenMP::OpenMP_CXX)
    target_compile_definitions(${_lib} PRIVATE SLMC_HAVE_OPENMP=1)
  endif()
  slmc_set_warnings(${_lib})
  target_sources(slmc PRIVATE $<TARGET_OBJECTS:${_lib}>)
  string(TOUPPER ${isa} _up)
  target_compile_definitions(slmc PRIVATE SLMC_HAVE_${_up}=1)
  # Dispatch tables in src/ and tests name the compiled ISAs through this list too.
  set_property(GLOBAL APPEND PROPERTY SLMC_COMPILED_ISAS ${isa})
endfunction()
