// Plain C++ API of the CPU backend (torch-free). The registration layer validates tensors and
// calls these with raw pointers; see csrc/include/fusedopt/tensor_lists.h for the conventions.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "fusedopt/math/adam.h"
#include "fusedopt/math/lamb.h"
#include "fusedopt/math/lars.h"
#include "fusedopt/math/lion.h"
#include "fusedopt/math/sgd.h"
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

// Optimizer state order in ParamLists::state:
//   adam: exp_avg, exp_avg_sq, [max_exp_avg_sq]      lamb: exp_avg, exp_avg_sq
//   sgd / lars: [momentum_buffer] (iff momentum != 0)  lion: exp_avg
void adam(const ParamLists& lists, const AdamHyper& hyper, const StepInputs& in);
void sgd(const ParamLists& lists, const SGDHyper& hyper, const StepInputs& in);
void lion(const ParamLists& lists, const LionHyper& hyper, const StepInputs& in);
// global_grad_norm: norm of all unscaled grads (see l2_norm), nullptr when clipping is off.
void lamb(const ParamLists& lists, const LambHyper& hyper, const StepInputs& in,
          const float* global_grad_norm);
// adapt: apply the trust ratio to these tensors (false for excluded bias / 1-D params).
// norm_sums (may be null): per tensor t, norm_sums[2t] = ||p_t||^2 and norm_sums[2t + 1] =
// ||g_t / grad_scale||^2 of the FULL tensors (a sharded tensor's local sums, all-reduced); given,
// they replace the norm pass.
void lars(const ParamLists& lists, const LarsHyper& hyper, const StepInputs& in, bool adapt,
          const double* norm_sums = nullptr);

// LAMB in two calls, for tensors sharded across processes (the caller all-reduces the sums in
// between). lamb_moments: pass 1 (advances the step counters, updates m and v) and the local
// sums of squares, norm_sums[2t] = ||p_t||^2, norm_sums[2t + 1] = ||u_t||^2. lamb_apply: pass 2
// with the trust ratios of the given (full-tensor) sums. lamb() is both with local sums.
void lamb_moments(const ParamLists& lists, const LambHyper& hyper, const StepInputs& in,
                  const float* global_grad_norm, double* norm_sums);
void lamb_apply(const ParamLists& lists, const LambHyper& hyper, const StepInputs& in,
                const float* global_grad_norm, const double* norm_sums);

// L2 norms of (x / grad_scale): per_tensor[count] (may be null) and/or the global norm over all
// tensors (may be null), and/or the per-tensor sums of squares (squares[count], may be null).
// Accumulated in double, in a fixed order.
void l2_norm(const void* const* ptrs, DType dtype, const int64_t* numel, int64_t count,
             const float* grad_scale, float* per_tensor, float* global,
             double* squares = nullptr);

}  // namespace cpu
}  // namespace fusedopt
