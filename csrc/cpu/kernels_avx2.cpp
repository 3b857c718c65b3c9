// CPU kernels for the avx2 SIMD level (see kernels_impl.h).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernel_table.h"
#if defined(FUSEDOPT_CPU_X86_LEVELS)  // x86-64 only (kernel_table.h)
#include <immintrin.h>
// Everything below is compiled for this level only; headers above keep their default target.
#pragma GCC target("avx2,fma,f16c")

namespace fusedopt {
namespace cpu {
namespace avx2 {
#define FUSEDOPT_CPU_VECTOR_BYTES 32  // register width of this level (kernels_impl.h)
#define FUSEDOPT_CPU_AVX2 1  // kernels_impl.h may use AVX2 intrinsics
#include "kernels_impl.h"
#undef FUSEDOPT_CPU_AVX2
#undef FUSEDOPT_CPU_VECTOR_BYTES
#undef FUSEDOPT_CPU_VECTOR_REGISTERS
}  // namespace avx2

constexpr KernelTable kAvx2Kernels = avx2::kernel_table("avx2");

}  // namespace cpu
}  // namespace fusedopt
#endif  // FUSEDOPT_CPU_X86_LEVELS
