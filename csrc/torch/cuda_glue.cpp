// Registers the CUDA backend (csrc/cuda, namespace fusedopt::cuda) for CUDA tensors: launches go
// to torch's current stream of the current device (the op layer has set the tensors' device),
// reduction scratch comes from torch's caching allocator (stream-ordered, CUDA-graph aware).
// Compiled only in CUDA builds (SOURCES.txt group torch_cuda). Stable ABI only: torch's C shim
// (aoti_torch_*), whose CUDA entry points exist since torch 2.10.
#ifndef USE_CUDA
#define USE_CUDA 1  // declares the shim's CUDA entry points
#endif
#include <torch/csrc/inductor/aoti_torch/c/shim.h>

#include "../cuda/cuda_backend.h"
#include "backends.h"
#include "check.h"

namespace fusedopt {
namespace torch_glue {
namespace {

cuda::Stream current_stream() {
  int32_t device = 0;
  void* stream = nullptr;
  FUSEDOPT_CHECK(aoti_torch_get_current_device_index(&device) == AOTI_TORCH_SUCCESS &&
                      aoti_torch_get_current_cuda_stream(device, &stream) == AOTI_TORCH_SUCCESS,
                  "fusedopt: cannot query torch's current CUDA stream");
  return static_cast<cuda::Stream>(stream);
}

// The caching allocator serves the current stream, the one current_stream() returns and the
// kernels are launched on.
void* scratch_alloc(size_t bytes, cuda::Stream) {
  void* p = nullptr;
  FUSEDOPT_CHECK(aoti_torch_cuda_caching_allocator_raw_alloc(bytes, &p) == AOTI_TORCH_SUCCESS,
                  "fusedopt: could not allocate ", bytes, " bytes of CUDA scratch memory");
  return p;
}

void scratch_free(void* p, cuda::Stream) { aoti_torch_cuda_caching_allocator_raw_delete(p); }

#define FUSEDOPT_BACKEND_NS cuda
const Backend kCudaBackend = FUSEDOPT_BACKEND_OF("cuda");
#undef FUSEDOPT_BACKEND_NS

const bool kRegistered = [] {
  cuda::set_stream_provider(&current_stream);
  cuda::set_allocator(&scratch_alloc, &scratch_free);
  register_cuda_backend(&kCudaBackend);
  return true;
}();

}  // namespace
}  // namespace torch_glue
}  // namespace fusedopt
