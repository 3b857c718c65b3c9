#include "backends.h"
#include "check.h"


#include <atomic>
#include <stdexcept>
#include <string>

#include "cpu_backend.h"

namespace fusedopt {
namespace torch_glue {
namespace {

const Backend kCpuBackend = {"cpu",         &cpu::adam,         &cpu::sgd,
                             &cpu::lion,    &cpu::lamb,         &cpu::lars,
                             &cpu::l2_norm, &cpu::lamb_moments, &cpu::lamb_apply};

const Backend* g_cuda = nullptr;
const Backend* g_emulated = nullptr;
std::atomic<const Backend*> g_cpu_route{&kCpuBackend};

}  // namespace

void register_cuda_backend(const Backend* backend) { g_cuda = backend; }
void register_emulated_backend(const Backend* backend) { g_emulated = backend; }

const Backend& backend_for(const torch::stable::Device& device) {
  using torch::headeronly::DeviceType;
  if (device.type() == DeviceType::CPU) return *g_cpu_route.load(std::memory_order_acquire);
  if (device.type() == DeviceType::CUDA) {
    FUSEDOPT_CHECK(g_cuda != nullptr, "fusedopt was built without its CUDA backend; rebuild with "
                "a CUDA build of torch and nvcc (FUSEDOPT_CUDA=1, see README)");
    return *g_cuda;
  }
  throw std::runtime_error("fusedopt: tensors on device type " +
                           std::to_string(static_cast<int>(device.type())) +
                           " are not supported (CPU and CUDA only)");
}

void set_cpu_route(const std::string& name) {
  if (name == "cpu") {
    g_cpu_route.store(&kCpuBackend);
  } else if (name == "cuda-emulated") {
    FUSEDOPT_CHECK(g_emulated != nullptr, "fusedopt: the cuda-emulated backend is not built; "
                "rebuild with FUSEDOPT_EMULATED=1 (see README)");
    g_cpu_route.store(g_emulated);
  } else {
    FUSEDOPT_CHECK(false, "fusedopt: unknown backend '", name, "' (use 'cpu' or 'cuda-emulated')");
  }
}

std::string cpu_route() { return g_cpu_route.load()->name; }

}  // namespace torch_glue
}  // namespace fusedopt
