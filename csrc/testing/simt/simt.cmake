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

# Variables first: they are directory-scoped, so every includer needs them
# (include_guard below skips the rest on later includes).
set(FUSEDOPT_SIMT_DIR "${CMAKE_CURRENT_LIST_DIR}")
set(FUSEDOPT_SIMT_CUDA_INCLUDE_DIR "/usr/local/cuda/include" CACHE PATH
    "CUDA headers used by the SIMT emulator for types only (no libcudart needed)")

# The flag lists, also mirrored in simt_flags.py for setup.py builds.
set(FUSEDOPT_SIMT_COMPILE_DEFINITIONS FUSEDOPT_SIMT)
# -fno-extern-tls-init: __shared__ is thread_local; without it g++ routes every
# `extern __shared__` access through a TLS init wrapper (slow, and unresolvable
# for kernels in anonymous namespaces). -Wno-unknown-pragmas: `#pragma unroll`.
# (fusedopt_simt_add_library keeps its own copy of these lists.)
set(FUSEDOPT_SIMT_COMPILE_OPTIONS -ffp-contract=off -fno-fast-math -fno-extern-tls-init -Wno-unknown-pragmas)
set(FUSEDOPT_SIMT_RACECHECK_OPTIONS -fsanitize=thread -g)
# csrc/include: fusedopt/launch.h (the launch macro lives with the product)
set(FUSEDOPT_SIMT_INCLUDE_DIRS "${FUSEDOPT_SIMT_DIR}" "${FUSEDOPT_SIMT_DIR}/../../include"
    "${FUSEDOPT_SIMT_CUDA_INCLUDE_DIR}")

include_guard(GLOBAL)

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
  # Resolved here, not from the caller's scope (which may never have set them).
  set(_simt_dir "${CMAKE_CURRENT_FUNCTION_LIST_DIR}")
  set(_simt_opts -ffp-contract=off -fno-fast-math -fno-extern-tls-init -Wno-unknown-pragmas)
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
  target_compile_options(${target} PRIVATE ${_simt_opts})
  if(ARG_RACECHECK)
    # Compile-time instrumentation only; the hooks live in the runtime.
    target_compile_options(${target} PRIVATE -fsanitize=thread -g)
  endif()
  set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  target_link_libraries(${target} PUBLIC fusedopt_simt_runtime)
  # Raw `extern __shared__` arrays: alias them to the dynamic shared memory
  # at link time of whatever links this library.
  set(rsp "${CMAKE_CURRENT_BINARY_DIR}/${target}.simt_dynsmem.rsp")
  add_custom_command(TARGET ${target} POST_BUILD
    COMMAND sh "${_simt_dir}/simt_dynsmem_syms.sh" "${rsp}" "$<TARGET_FILE:${target}>"
    VERBATIM)
  target_link_options(${target} INTERFACE "LINKER:@${rsp}")
endfunction()
