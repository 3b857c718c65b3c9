// Portability macros shared by the CPU backend (g++), the CUDA backend (nvcc) and the
// SIMT emulator build (g++ with FUSEDOPT_SIMT). Torch-free.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define FUSEDOPT_HD __host__ __device__
#define FUSEDOPT_INLINE __forceinline__
#elif defined(FUSEDOPT_SIMT)
// The emulator defines __host__/__device__ as empty; plain inline functions work for both.
#define FUSEDOPT_HD
#define FUSEDOPT_INLINE inline __attribute__((always_inline))
#else
#define FUSEDOPT_HD
#define FUSEDOPT_INLINE inline __attribute__((always_inline))
#endif

namespace fusedopt {

// Storage dtypes the engines understand. Values are stable: they cross the plain C++ API.
enum class DType : int8_t { Float32 = 0, Float16 = 1, BFloat16 = 2, Float64 = 3 };

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::Float32: return "float32";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
    case DType::Float64: return "float64";
  }
  return "unknown";
}

inline int dtype_size(DType d) {
  return d == DType::Float64 ? 8 : (d == DType::Float32 ? 4 : 2);
}

}  // namespace fusedopt
