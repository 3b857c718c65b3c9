// FUSEDOPT_LAUNCH: one launch syntax for real CUDA (nvcc) and the SIMT
// emulator (g++ with -DFUSEDOPT_SIMT). Part of the product (csrc/cuda launches
// through it); the emulator itself (csrc/testing/simt, fusedopt_simt.h, found on
// the include path of emulated builds only) is test tooling.
//
//   FUSEDOPT_LAUNCH(grid, block, smem_bytes, stream, kernel_expr)(args...);
//
// kernel_expr may contain commas (my_kernel<float, 4>). Under nvcc this is a
// plain <<<>>> launch and pulls in no emulator code. Under the emulator the
// launch runs synchronously on the CPU and throws fusedopt::simt::Error (with
// kernel name, launch file:line, block, thread) if something went wrong.
//
// FUSEDOPT_DYNAMIC_SHARED(T, name) declares `T* name` pointing at the
// dynamic shared memory of the launch in both worlds (preferred over a raw
// `extern __shared__ T name[]`, which needs an extra link step when emulated).
#pragma once

#if defined(__CUDACC__)

#define FUSEDOPT_LAUNCH(grid, block, smem_bytes, stream, ...) \
  __VA_ARGS__<<<(grid), (block), (smem_bytes), (stream)>>>

#define FUSEDOPT_DYNAMIC_SHARED(T, name)                                    \
  extern __shared__ __align__(16) unsigned char fusedopt_dynamic_smem_raw_[]; \
  T* name = reinterpret_cast<T*>(fusedopt_dynamic_smem_raw_)

#elif defined(FUSEDOPT_SIMT)

#include "fusedopt_simt.h"  // the emulator (test tooling); no-op if included from it

// A non-capturing generic lambda forwards to the kernel expression, so
// template argument deduction and overloads behave like a <<<>>> launch.
#define FUSEDOPT_LAUNCH(grid, block, smem_bytes, stream, ...)                           \
  ::fusedopt::simt::detail::Launcher((grid), (block), (smem_bytes), (stream), #__VA_ARGS__, \
                                     __FILE__, __LINE__)                                   \
      .with([](auto&&... fusedopt_simt_args_) { __VA_ARGS__(fusedopt_simt_args_...); })

#define FUSEDOPT_DYNAMIC_SHARED(T, name) \
  T* name = reinterpret_cast<T*>(::fusedopt::simt::dynamic_shared_memory())

#else
#error "fusedopt/launch.h: compile with nvcc, or with -DFUSEDOPT_SIMT for the CPU emulator"
#endif
