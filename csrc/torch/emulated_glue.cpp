// backend_for() of the test-only op library fusedopt/_emulated.abi3.so (torch.ops
// .fusedopt_emulated.*): CPU tensors run on the CUDA kernel sources compiled for the SIMT
// emulator (csrc/cuda/emulated_unity.cpp). Built only with FUSEDOPT_EMULATED=1, never part of a
// wheel, loaded by fusedopt.set_backend("cuda-emulated") / FUSEDOPT_BACKEND=cuda-emulated.
#ifndef FUSEDOPT_SIMT
#define FUSEDOPT_SIMT 1  // selects namespace fusedopt::cuda_emulated in cuda_backend.h
#endif
#include "../cuda/cuda_backend.h"

#include <stdexcept>

#include "backends.h"
#include "check.h"

namespace fusedopt {
namespace torch_glue {
namespace {

#define FUSEDOPT_BACKEND_NS cuda_emulated
const Backend kEmulatedBackend = FUSEDOPT_BACKEND_OF("cuda-emulated");
#undef FUSEDOPT_BACKEND_NS

}  // namespace

const Backend& backend_for(const torch::stable::Device& device) {
  FUSEDOPT_CHECK(device.type() == torch::headeronly::DeviceType::CPU,
                 "fusedopt_emulated: the cuda-emulated backend runs CPU tensors only (CUDA "
                 "tensors go to torch.ops.fusedopt)");
  return kEmulatedBackend;
}

}  // namespace torch_glue
}  // namespace fusedopt
