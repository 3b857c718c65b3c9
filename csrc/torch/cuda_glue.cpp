// Registers the CUDA backend (csrc/cuda, namespace fusedopt::cuda) for CUDA tensors: launches go
// to torch's current stream of the tensors' device, reduction scratch comes from torch's caching
// allocator (stream-ordered, CUDA-graph aware). Compiled only in CUDA builds (SOURCES.txt group
// torch_cuda). Uses c10/cuda headers only (not ATen/cuda/CUDAContext.h, which needs cusparse).
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include "../cuda/cuda_backend.h"
#include "backends.h"

namespace fusedopt {
namespace torch_glue {
namespace {

cuda::Stream current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

void* scratch_alloc(size_t bytes, cuda::Stream stream) {
  return c10::cuda::CUDACachingAllocator::raw_alloc_with_stream(bytes,
                                                                 static_cast<cudaStream_t>(stream));
}
void scratch_free(void* p, cuda::Stream) { c10::cuda::CUDACachingAllocator::raw_delete(p); }

// The op layer (ops.cpp) has already made the tensors' device current (c10::DeviceGuard).
const Backend kCudaBackend = {"cuda",          &cuda::adam,        &cuda::sgd,
                              &cuda::lion,     &cuda::lamb,        &cuda::lars,
                              &cuda::l2_norm,  &cuda::lamb_moments, &cuda::lamb_apply};

const bool kRegistered = [] {
  cuda::set_stream_provider(&current_stream);
  cuda::set_allocator(&scratch_alloc, &scratch_free);
  register_cuda_backend(&kCudaBackend);
  return true;
}();

}  // namespace
}  // namespace torch_glue
}  // namespace fusedopt
