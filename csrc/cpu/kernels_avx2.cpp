// CPU kernels for the avx2 SIMD level (see kernels_impl.h).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernel_table.h"
#if defined(FUSEDOPT_CPU_X86_LEVELS)  // x86-64 only (kernel_table.h)
// Everything below is compiled for this level only; headers above keep their default target.
#pragma GCC target("avx2,fma,f16c")

namespace fusedopt {
namespace cpu {
namespace avx2 {
#include "kernels_impl.h"
}  // namespace avx2

constexpr KernelTable kAvx2Kernels = avx2::kernel_table("avx2");

}  // namespace cpu
}  // namespace fusedopt
#endif  // FUSEDOPT_CPU_X86_LEVELS
