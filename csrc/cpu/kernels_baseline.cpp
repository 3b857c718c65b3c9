// CPU kernels for the baseline SIMD level (see kernels_impl.h).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernel_table.h"
// Everything below is compiled for this level only; headers above keep their default target.


namespace fusedopt {
namespace cpu {
namespace baseline {
#define FUSEDOPT_CPU_VECTOR_BYTES 16  // register width of this level (kernels_impl.h)
#include "kernels_impl.h"
#undef FUSEDOPT_CPU_VECTOR_BYTES
#undef FUSEDOPT_CPU_VECTOR_REGISTERS
}  // namespace baseline

constexpr KernelTable kBaselineKernels = baseline::kernel_table("baseline");

}  // namespace cpu
}  // namespace fusedopt
