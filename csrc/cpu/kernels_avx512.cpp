// CPU kernels for the avx512 SIMD level (see kernels_impl.h).
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernel_table.h"
// Everything below is compiled for this level only; headers above keep their default target.
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")

namespace fusedopt {
namespace cpu {
namespace avx512 {
#include "kernels_impl.h"
}  // namespace avx512

const KernelTable kAvx512Kernels = avx512::kernel_table("avx512");

}  // namespace cpu
}  // namespace fusedopt
