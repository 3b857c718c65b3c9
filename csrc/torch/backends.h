// The backends an op can run on, as tables of plain C++ entry points with one signature set.
// The op implementations in ops.cpp are device-generic: they validate and prepare tensors, then
// call backend_for(device). CPU tensors run on the CPU backend, or on the emulated CUDA kernels
// when that route is selected (FUSEDOPT_BACKEND=cuda-emulated); CUDA tensors run on the CUDA
// backend when it is compiled in.
#pragma once

#include <torch/csrc/stable/device.h>

#include <string>

#include "fusedopt/math/adam.h"
#include "fusedopt/math/lamb.h"
#include "fusedopt/math/lars.h"
#include "fusedopt/math/lion.h"
#include "fusedopt/math/sgd.h"
#include "fusedopt/scalar.h"
#include "fusedopt/tensor_lists.h"

namespace fusedopt {
namespace torch_glue {

struct Backend {
  const char* name;
  void (*adam)(const ParamLists&, const AdamHyper&, const StepInputs&);
  void (*sgd)(const ParamLists&, const SGDHyper&, const StepInputs&);
  void (*lion)(const ParamLists&, const LionHyper&, const StepInputs&);
  void (*lamb)(const ParamLists&, const LambHyper&, const StepInputs&, const float* global_norm);
  void (*lars)(const ParamLists&, const LarsHyper&, const StepInputs&, bool adapt,
               const double* norm_sums);
  // Norms (or sums of squares) of x / grad_scale; outputs live on the backend's device.
  void (*l2_norm)(const void* const* ptrs, DType dtype, const int64_t* numel, int64_t count,
                  const float* grad_scale, float* per_tensor, float* global, double* squares);
  // LAMB's two passes as separate calls, for sharded tensors (cpu_backend.h).
  void (*lamb_moments)(const ParamLists&, const LambHyper&, const StepInputs&,
                       const float* global_norm, double* norm_sums);
  void (*lamb_apply)(const ParamLists&, const LambHyper&, const StepInputs&,
                     const float* global_norm, const double* norm_sums);
};

// Registration (called from static initializers of the backend glue files).
void register_cuda_backend(const Backend* backend);
void register_emulated_backend(const Backend* backend);

const Backend& backend_for(const torch::stable::Device& device);

// Route for CPU tensors: "cpu" or "cuda-emulated".
void set_cpu_route(const std::string& name);
std::string cpu_route();

}  // namespace torch_glue
}  // namespace fusedopt
