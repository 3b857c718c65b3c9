// Registers the cuda-emulated backend (csrc/cuda kernels on the SIMT emulator, see
// csrc/cuda/emulated_unity.cpp) as the route for CPU tensors selected by
// FUSEDOPT_BACKEND=cuda-emulated / fusedopt.set_backend("cuda-emulated").
#ifndef FUSEDOPT_SIMT
#define FUSEDOPT_SIMT 1  // selects namespace fusedopt::cuda_emulated in cuda_backend.h
#endif
#include "../cuda/cuda_backend.h"

#include "backends.h"

namespace fusedopt {
namespace torch_glue {
namespace {

const Backend kEmulatedBackend = {
    "cuda-emulated",       &cuda_emulated::adam, &cuda_emulated::sgd,    &cuda_emulated::lion,
    &cuda_emulated::lamb,  &cuda_emulated::lars, &cuda_emulated::l2_norm,
    &cuda_emulated::lamb_moments, &cuda_emulated::lamb_apply};

const bool kRegistered = [] {
  register_emulated_backend(&kEmulatedBackend);
  return true;
}();

}  // namespace
}  // namespace torch_glue
}  // namespace fusedopt
