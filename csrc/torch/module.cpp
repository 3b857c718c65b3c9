// The Python extension module: importing fusedopt._C registers the ops (ops.cpp) and exposes
// build information.
#include <pybind11/pybind11.h>
#include <torch/version.h>

#include "backends.h"
#include "cpu_backend.h"

#ifndef FUSEDOPT_VERSION
#define FUSEDOPT_VERSION "0.0.0"
#endif

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "fusedopt native extension: op registrations and build information";
  m.attr("__version__") = FUSEDOPT_VERSION;
  m.attr("torch_version") = TORCH_VERSION;
#if defined(FUSEDOPT_WITH_CUDA)
  m.attr("cuda_compiled") = true;
#else
  m.attr("cuda_compiled") = false;
#endif
#if defined(FUSEDOPT_WITH_EMULATED_CUDA)
  m.attr("cuda_emulated_compiled") = true;
#else
  m.attr("cuda_emulated_compiled") = false;
#endif
  m.def("simd_level", &fusedopt::cpu::simd_level,
        "SIMD level the CPU kernels run at (baseline, avx2, avx512)");
  m.def("set_simd_level", [](const std::string& name) {
    return fusedopt::cpu::set_simd_level(name.c_str());
  }, "Select a SIMD level supported by this CPU (for testing); returns False if unavailable");
  m.def("available_simd_levels", &fusedopt::cpu::available_simd_levels,
        "SIMD levels this CPU can run, lowest first, comma-separated");
  m.def("simd_level_env_problem", &fusedopt::cpu::simd_level_env_problem,
        "Why FUSEDOPT_CPU_ISA cannot be honoured here, or '' when it is unset or valid");
  m.def("set_cpu_route", &fusedopt::torch_glue::set_cpu_route,
        "Run CPU tensors on 'cpu' or on the 'cuda-emulated' kernels");
  m.def("get_cpu_route", &fusedopt::torch_glue::cpu_route);
}
