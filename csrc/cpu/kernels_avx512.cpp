// CPU kernels for the avx512 SIMD level (see kernels_impl.h).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernel_table.h"
#if defined(FUSEDOPT_CPU_X86_LEVELS)  // x86-64 only (kernel_table.h)
#include <immintrin.h>
// Everything below is compiled for this level only; headers above keep their default target.
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")

namespace fusedopt {
namespace cpu {
namespace avx512 {
#define FUSEDOPT_CPU_VECTOR_BYTES 64  // register width of this level (kernels_impl.h)
#define FUSEDOPT_CPU_VECTOR_REGISTERS 32
#define FUSEDOPT_CPU_AVX512 1  // kernels_impl.h may use AVX-512 intrinsics
#include "kernels_impl.h"
#undef FUSEDOPT_CPU_VECTOR_BYTES
#undef FUSEDOPT_CPU_VECTOR_REGISTERS
#undef FUSEDOPT_CPU_AVX512
}  // namespace avx512

constexpr KernelTable kAvx512Kernels = avx512::kernel_table("avx512");

}  // namespace cpu
}  // namespace fusedopt
#endif  // FUSEDOPT_CPU_X86_LEVELS
