// backend_for() of the product op library: the CPU backend for CPU tensors, the CUDA backend
// (cuda_glue.cpp, CUDA builds only) for CUDA tensors.
#include "backends.h"

#include <torch/csrc/stable/ops.h>

#include <stdexcept>
#include <string>

#include "check.h"
#include "cpu_backend.h"

namespace fusedopt {
namespace torch_glue {
namespace {

#define FUSEDOPT_BACKEND_NS cpu
const Backend kCpuBackend = FUSEDOPT_BACKEND_OF("cpu");
#undef FUSEDOPT_BACKEND_NS

const Backend* g_cuda = nullptr;

void torch_parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  torch::stable::parallel_for(0, n, 1, fn);  // torch's thread pool (set_num_threads applies)
}

const bool kParallelInstalled = [] {
  cpu::set_parallel_for(torch_parallel_for);
  return true;
}();

}  // namespace

void register_cuda_backend(const Backend* backend) { g_cuda = backend; }

const Backend& backend_for(const torch::stable::Device& device) {
  using torch::headeronly::DeviceType;
  if (device.type() == DeviceType::CPU) return kCpuBackend;
  if (device.type() == DeviceType::CUDA) {
    FUSEDOPT_CHECK(g_cuda != nullptr, "fusedopt was built without its CUDA backend; rebuild with "
                "a CUDA build of torch and nvcc (FUSEDOPT_CUDA=1, see README)");
    return *g_cuda;
  }
  throw std::runtime_error("fusedopt: tensors on device type " +
                           std::to_string(static_cast<int>(device.type())) +
                           " are not supported (CPU and CUDA only)");
}

}  // namespace torch_glue
}  // namespace fusedopt
