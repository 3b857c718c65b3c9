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
#include "kernels_impl.h"
}  // namespace baseline

constexpr KernelTable kBaselineKernels = baseline::kernel_table("baseline");

}  // namespace cpu
}  // namespace fusedopt
