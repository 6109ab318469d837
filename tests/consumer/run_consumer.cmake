# ctest script: install slmc into a temporary prefix, then configure, build and run the standalone
# project examples/consumer against it (find_package(slmc CONFIG REQUIRED)).
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  message("${out}")
endfunction()

run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix")
# Only public headers are installed: no internal directories, no generated FlatBuffers code, and
# no public header pulls in intrinsics or OpenMP (those live in the compiled library).
file(GLOB_RECURSE _installed RELATIVE "${WORK_DIR}/prefix/include" "${WORK_DIR}/prefix/include/*")
foreach(f IN LISTS _installed)
  if(f MATCHES "detail/|_generated\\.h$")
    message(FATAL_ERROR "internal header installed: ${f}")
  endif()
  file(READ "${WORK_DIR}/prefix/include/${f}" _text)
  if(_text MATCHES "#include <(immintrin|emmintrin|arm_neon|omp)\\.h>|#pragma omp")
    message(FATAL_ERROR "public header ${f} carries SIMD or OpenMP code")
  endif()
endforeach()
run(${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}/build"
    -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
    -DCMAKE_BUILD_TYPE=${BUILD_TYPE})
run(${CMAKE_COMMAND} --build "${WORK_DIR}/build" -j 2)
run("${WORK_DIR}/build/consumer")

# The downstream build (-O3 -march=native -ffp-contract=fast) quantizes to the same bytes and
# statistics as the library's own build.
execute_process(COMMAND "${WORK_DIR}/build/consumer_fingerprint" RESULT_VARIABLE rc1 OUTPUT_VARIABLE downstream
                ERROR_VARIABLE err1)
execute_process(COMMAND "${REFERENCE_FINGERPRINT}" RESULT_VARIABLE rc2 OUTPUT_VARIABLE reference ERROR_VARIABLE err2)
if(NOT rc1 EQUAL 0 OR NOT rc2 EQUAL 0)
  message(FATAL_ERROR "fingerprint programs failed: ${rc1} ${err1} / ${rc2} ${err2}")
endif()
if(NOT downstream STREQUAL reference)
  message(FATAL_ERROR "quantization differs with the consumer's flags:\n--- library build\n${reference}\n"
                      "--- consumer build (-O3 -march=native -ffp-contract=fast)\n${downstream}")
endif()
string(REGEX MATCHALL "\n" _lines "${reference}")
list(LENGTH _lines _n)
message("consumer: quantization fingerprints identical under -O3 -march=native -ffp-contract=fast (${_n} schemes)")
