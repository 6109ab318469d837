# ctest script: the objects of an ISA kernel library (compiled with -mavx2 or +dotprod) must not
# define weak functions.
#
# A weak (COMDAT) function is an inline function or a template instantiation with external linkage:
# slmc::fp16_to_fp32, std::min<long>, a helper from a shared header. Every object that uses one
# carries a copy and the linker keeps any one of them for the whole program, so a copy compiled
# with AVX2 flags can end up serving the scalar path and crash with SIGILL on a CPU without AVX2,
# in a way no test on this machine would see. ISA files keep their helpers in an unnamed namespace
# (internal linkage) instead; this check names any function that slips through.
#
#   cmake -DNM=<nm> -DISA=<isa> -DOBJECTS=<obj1|obj2|...> -P check_isa_objects.cmake
string(REPLACE "|" ";" _objects "${OBJECTS}")
set(_bad "")
foreach(_o IN LISTS _objects)
  execute_process(COMMAND "${NM}" --defined-only --demangle "${_o}" OUTPUT_VARIABLE _out RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "${NM} failed on ${_o}")
  endif()
  string(REPLACE "\n" ";" _lines "${_out}")
  foreach(_l IN LISTS _lines)
    # "<address> W <name>": W is a weak function (V, u: weak or unique data, which runs no code).
    if(_l MATCHES "^[0-9a-fA-F]+ W (.*)$")
      get_filename_component(_n "${_o}" NAME)
      string(APPEND _bad "  ${_n}: ${CMAKE_MATCH_1}\n")
    endif()
  endforeach()
endforeach()
list(LENGTH _objects _count)
if(_count EQUAL 0)
  message(FATAL_ERROR "no objects given for ISA ${ISA}")
endif()
if(_bad)
  message(FATAL_ERROR "weak functions compiled with the ${ISA} flags (give them internal linkage):\n${_bad}")
endif()
message(STATUS "${_count} ${ISA} objects define no weak functions")
