// torch.ops.fusedopt._cuda_launch_plan: the launches a CUDA op would issue for given tensor sizes,
// with the engine's constants, answered by the planner the CUDA ops themselves run
// (csrc/cuda/launch_plan.cpp). Host arithmetic only, so every build has it, the CPU-only one
// included: the static GPU report (fusedopt/bench/static_gpu.py) asks it instead of re-deriving
// the plans. Stable ABI only (a fragment of the fusedopt library, tensor-free, hence registered
// for CompositeExplicitAutograd like the other "_" ops).
#include <torch/csrc/stable/library.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "../cuda/launch_plan.h"

namespace fusedopt {
namespace torch_glue {
namespace {

// Text lines, the format of cuda_plan::describe_plan (key=value; launch=kernel,blocks,threads).
std::string cuda_launch_plan(std::string op, std::vector<int64_t> numel, std::string layout,
                             int64_t states, bool master, bool adapt, bool norm_sums,
                             bool global_norm) {
  for (int64_t n : numel)
    if (n < 0) throw std::runtime_error("fusedopt._cuda_launch_plan: negative numel");
  try {
    return cuda_plan::describe_plan(op, numel.data(), static_cast<int64_t>(numel.size()), layout,
                                    states, master, adapt, norm_sums, global_norm);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(e.what());  // RuntimeError in Python, like the other ops' errors
  }
}

}  // namespace
}  // namespace torch_glue
}  // namespace fusedopt

STABLE_TORCH_LIBRARY_FRAGMENT(fusedopt, m) {
  m.def(
      "_cuda_launch_plan(str op, int[] numel, str layout, int states=-1, bool master=False, "
      "bool adapt=True, bool norm_sums=False, bool global_norm=False) -> str");
}

STABLE_TORCH_LIBRARY_IMPL(fusedopt, CompositeExplicitAutograd, m) {
  m.impl("_cuda_launch_plan", TORCH_BOX(&fusedopt::torch_glue::cuda_launch_plan));
}
