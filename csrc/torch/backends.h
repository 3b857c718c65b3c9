// The backends an op can run on, as tables of plain C++ entry points with one signature set:
// one entry per op of fusedopt/optimizers.h, plus the norms. The op implementations (ops.cpp)
// are device-generic: they validate and prepare tensors, then call backend_for(device).
//
// Two op libraries are built from ops.cpp (setup.py):
//   - the product, fusedopt/_C.abi3.so (ops torch.ops.fusedopt.*): CPU tensors run on the CPU
//     backend, CUDA tensors on the CUDA backend when it is compiled in (backends.cpp);
//   - the test-only fusedopt/_emulated.abi3.so (ops torch.ops.fusedopt_emulated.*, built with
//     FUSEDOPT_EMULATED=1, loaded only when asked for): CPU tensors run on the CUDA kernels on
//     the SIMT emulator (emulated_glue.cpp).
// Each library has its own backend_for; which one runs is visible to the dispatcher as the
// op's namespace, never a switch inside the product.
#pragma once

#include <torch/csrc/stable/device.h>

#include "fusedopt/optimizers.h"
#include "fusedopt/scalar.h"
#include "fusedopt/tensor_lists.h"

namespace fusedopt {
namespace torch_glue {

struct Backend {
  const char* name;
#define FUSEDOPT_BACKEND_ENTRY(entry, optimizer, Hyper, kind, extras) \
  void (*entry)(const ParamLists&, const Hyper&, const StepInputs&);
  FUSEDOPT_OPTIMIZER_OPS(FUSEDOPT_BACKEND_ENTRY)
#undef FUSEDOPT_BACKEND_ENTRY
  // Norms (or sums of squares) of x / grad_scale; outputs live on the backend's device.
  void (*l2_norm)(const void* const* ptrs, DType dtype, const int64_t* numel, int64_t count,
                  const float* grad_scale, float* per_tensor, float* global, double* squares);
};

// The Backend of the entry points in namespace fusedopt::NS (every op's entry, then l2_norm).
#define FUSEDOPT_BACKEND_ENTRY_POINTER(entry, optimizer, Hyper, kind, extras) &FUSEDOPT_BACKEND_NS::entry,
#define FUSEDOPT_BACKEND_OF(label) \
  Backend { label, FUSEDOPT_OPTIMIZER_OPS(FUSEDOPT_BACKEND_ENTRY_POINTER) &FUSEDOPT_BACKEND_NS::l2_norm }

// The kernels for tensors on `device` (defined once per op library).
const Backend& backend_for(const torch::stable::Device& device);

// Product library: the CUDA glue registers its backend from a static initializer.
void register_cuda_backend(const Backend* backend);

}  // namespace torch_glue
}  // namespace fusedopt
