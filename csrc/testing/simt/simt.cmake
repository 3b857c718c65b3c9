# CMake helpers of the fusedopt SIMT emulator (test-only CPU execution of
# CUDA kernels). include() this file, then:
#
#   fusedopt_simt_add_library(<target> [RACECHECK] SOURCES a.cu b.cu ...)
#
# builds a static library from .cu (and .cpp) files compiled by the C++
# compiler as C++17 with the emulator flags, linked to the runtime. With
# RACECHECK the kernels are instrumented (-fsanitize=thread hooks, served by
# the emulator itself: no TSan runtime) for the race checker and the traffic
# counter. See docs/emulator.md.
include_guard(GLOBAL)

set(FUSEDOPT_SIMT_DIR "${CMAKE_CURRENT_LIST_DIR}")
set(FUSEDOPT_SIMT_CUDA_INCLUDE_DIR "/usr/local/cuda/include" CACHE PATH
    "CUDA headers used by the SIMT emulator for types only (no libcudart needed)")

# The flag lists, also mirrored in simt_flags.py for setup.py builds.
set(FUSEDOPT_SIMT_COMPILE_DEFINITIONS FUSEDOPT_SIMT)
# -fno-extern-tls-init: __shared__ is thread_local; without it g++ routes every
# `extern __shared__` access through a TLS init wrapper (slow, and unresolvable
# for kernels in anonymous namespaces).
set(FUSEDOPT_SIMT_COMPILE_OPTIONS -ffp-contract=off -fno-fast-math -fno-extern-tls-init)
set(FUSEDOPT_SIMT_RACECHECK_OPTIONS -fsanitize=thread -g)
set(FUSEDOPT_SIMT_INCLUDE_DIRS "${FUSEDOPT_SIMT_DIR}" "${FUSEDOPT_SIMT_CUDA_INCLUDE_DIR}")

if(NOT TARGET fusedopt_simt_runtime)
  # Never instrumented: it implements the __tsan_* hooks.
  add_library(fusedopt_simt_runtime STATIC "${FUSEDOPT_SIMT_DIR}/simt_runtime.cpp")
  target_include_directories(fusedopt_simt_runtime PUBLIC ${FUSEDOPT_SIMT_INCLUDE_DIRS})
  target_compile_definitions(fusedopt_simt_runtime PUBLIC ${FUSEDOPT_SIMT_COMPILE_DEFINITIONS})
  target_compile_features(fusedopt_simt_runtime PUBLIC cxx_std_17)
  # Always optimised: the scheduler is the hot path of every emulated launch.
  target_compile_options(fusedopt_simt_runtime PRIVATE ${FUSEDOPT_SIMT_COMPILE_OPTIONS} -O2)
  set_target_properties(fusedopt_simt_runtime PROPERTIES POSITION_INDEPENDENT_CODE ON)
  target_link_libraries(fusedopt_simt_runtime PUBLIC ${CMAKE_DL_LIBS})
endif()

function(fusedopt_simt_add_library target)
  cmake_parse_arguments(ARG "RACECHECK" "" "SOURCES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "fusedopt_simt_add_library(${target}): no SOURCES")
  endif()
  add_library(${target} STATIC ${ARG_SOURCES})
  foreach(src IN LISTS ARG_SOURCES)
    if(src MATCHES "\\.cu$")
      # g++ does not know .cu: compile it as C++.
      set_source_files_properties(${src} PROPERTIES LANGUAGE CXX COMPILE_OPTIONS "-xc++")
    endif()
  endforeach()
  target_compile_options(${target} PRIVATE ${FUSEDOPT_SIMT_COMPILE_OPTIONS})
  if(ARG_RACECHECK)
    # Compile-time instrumentation only; the hooks live in the runtime.
    target_compile_options(${target} PRIVATE ${FUSEDOPT_SIMT_RACECHECK_OPTIONS})
  endif()
  set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  target_link_libraries(${target} PUBLIC fusedopt_simt_runtime)
  # Raw `extern __shared__` arrays: alias them to the dynamic shared memory
  # at link time of whatever links this library.
  set(rsp "${CMAKE_CURRENT_BINARY_DIR}/${target}.simt_dynsmem.rsp")
  add_custom_command(TARGET ${target} POST_BUILD
    COMMAND sh "${FUSEDOPT_SIMT_DIR}/simt_dynsmem_syms.sh" "${rsp}" "$<TARGET_FILE:${target}>"
    VERBATIM)
  target_link_options(${target} INTERFACE "LINKER:@${rsp}")
endfunction()
