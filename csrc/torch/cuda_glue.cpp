// Registers the CUDA backend (csrc/cuda, namespace fusedopt::cuda) for CUDA tensors: launches go
// to torch's current stream of the tensors' device, reduction scratch comes from torch's caching
// allocator (stream-ordered, CUDA-graph aware). Compiled only in CUDA builds (SOURCES.txt group
// torch_cuda). Uses c10/cuda headers only (not ATen/cuda/CUDAContext.h, which needs cusparse).
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
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

// The op layer passes raw pointers; run on the device that owns them (the current device may
// differ when several GPUs are in use). cudaPointerGetAttributes neither syncs nor breaks
// stream capture. Empty tensors may have null data pointers: the first non-null one decides.
const void* first_non_null(const void* const* a, int64_t n, const void* const* b = nullptr) {
  for (int64_t i = 0; i < n; ++i)
    if (a[i] != nullptr) return a[i];
  if (b != nullptr)
    for (int64_t i = 0; i < n; ++i)
      if (b[i] != nullptr) return b[i];
  return nullptr;
}

template <class Fn>
void on_device_of(const void* ptr, Fn&& fn) {
  if (ptr == nullptr) {  // nothing to locate: the current device
    fn();
    return;
  }
  cudaPointerAttributes attr{};
  C10_CUDA_CHECK(cudaPointerGetAttributes(&attr, ptr));
  c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(attr.device));
  fn();
}

const void* locate(const ParamLists& L) {
  return first_non_null(reinterpret_cast<const void* const*>(L.param), L.count,
                        reinterpret_cast<const void* const*>(L.step));
}

void adam(const ParamLists& L, const AdamHyper& h, const StepInputs& in) {
  on_device_of(locate(L), [&] { cuda::adam(L, h, in); });
}
void sgd(const ParamLists& L, const SGDHyper& h, const StepInputs& in) {
  on_device_of(locate(L), [&] { cuda::sgd(L, h, in); });
}
void lion(const ParamLists& L, const LionHyper& h, const StepInputs& in) {
  on_device_of(locate(L), [&] { cuda::lion(L, h, in); });
}
void lamb(const ParamLists& L, const LambHyper& h, const StepInputs& in, const float* gnorm) {
  on_device_of(locate(L), [&] { cuda::lamb(L, h, in, gnorm); });
}
void lars(const ParamLists& L, const LarsHyper& h, const StepInputs& in, bool adapt) {
  on_device_of(locate(L), [&] { cuda::lars(L, h, in, adapt); });
}
void l2_norm(const void* const* ptrs, DType dtype, const int64_t* numel, int64_t count,
             const float* grad_scale, float* per_tensor, float* global) {
  on_device_of(first_non_null(ptrs, count), [&] {
    cuda::l2_norm(ptrs, dtype, numel, count, grad_scale, per_tensor, global);
  });
}

const Backend kCudaBackend = {"cuda", &adam, &sgd, &lion, &lamb, &lars, &l2_norm};

const bool kRegistered = [] {
  cuda::set_stream_provider(&current_stream);
  cuda::set_allocator(&scratch_alloc, &scratch_free);
  register_cuda_backend(&kCudaBackend);
  return true;
}();

}  // namespace
}  // namespace torch_glue
}  // namespace fusedopt
