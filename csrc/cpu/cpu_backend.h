// Plain C++ API of the CPU backend (torch-free). The registration layer validates tensors and
// calls these with raw pointers; see csrc/include/fusedopt/tensor_lists.h for the conventions.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "fusedopt/optimizers.h"
#include "fusedopt/scalar.h"
#include "fusedopt/tensor_lists.h"

namespace fusedopt {
namespace cpu {

// Elements per chunk: the unit of threading and of reduction partials. Fixed, so results do
// not depend on the thread count.
constexpr int64_t kChunkSize = 32768;

// The thread pool the backend runs chunks on: fn(begin, end) over [0, n). The registration
// layer installs torch's (at::parallel_for, so torch.set_num_threads is honoured); the default
// runs serially.
using ParallelFor = void (*)(int64_t n, const std::function<void(int64_t, int64_t)>& fn);
void set_parallel_for(ParallelFor fn);

// SIMD level the kernels run at ("avx512", "avx2" or "baseline"; only "baseline" off x86-64),
// chosen on first use: the best this CPU supports, or a lower one forced by FUSEDOPT_CPU_ISA.
// A FUSEDOPT_CPU_ISA this CPU cannot run (or no level at all) leaves the best level in use and
// prints a warning; simd_level_env_problem() returns that message ("" when there is none) so
// the Python package can raise it instead.
const char* simd_level();
bool set_simd_level(const char* name);  // returns false if unknown or unsupported here
std::string available_simd_levels();     // levels this CPU can run, lowest first, ", "-joined
std::string simd_level_env_problem();

// The LAMB / LARS two-pass schedule (driver.cpp): a tensor whose pass 1 reads at most
// solo_bytes runs on one thread, a larger one on all threads; pass 2 of LAMB reads a stored
// update direction for tensors of up to scratch_elems elements and recomputes it for larger
// ones. They change speed and scratch memory only, never results (tests set extremes).
struct TwoPassLimits {
  int64_t solo_bytes = int64_t(2) << 20;
  int64_t scratch_elems = int64_t(8) << 20;
};
TwoPassLimits two_pass_limits();
void set_two_pass_limits(const TwoPassLimits& limits);

// The optimizer entry points, one per op of fusedopt/optimizers.h (state order and the
// optional inputs there): void adam(const ParamLists&, const AdamHyper&, const StepInputs&);
// and so on. Every entry point advances the step counters, except lamb_apply (the second pass of
// a step whose first pass, lamb_moments, advanced them); a skipped step (found_inf) changes
// nothing. lamb() is lamb_moments and lamb_apply with local sums.
FUSEDOPT_DECLARE_ENTRY_POINTS

// L2 norms of (x / grad_scale): per_tensor[count] (may be null) and/or the global norm over all
// tensors (may be null), and/or the per-tensor sums of squares (squares[count], may be null).
// Accumulated in double, in a fixed order.
void l2_norm(const void* const* ptrs, DType dtype, const int64_t* numel, int64_t count,
             const float* grad_scale, float* per_tensor, float* global,
             double* squares = nullptr);

}  // namespace cpu
}  // namespace fusedopt
