// Build information and the process-wide CPU controls of the product op library: `_`-prefixed
// ops without tensors (fusedopt/_ops.py wraps them; the library has no Python module).
#include <torch/csrc/stable/library.h>

#include <string>

#include "cpu_backend.h"

#ifndef FUSEDOPT_VERSION
#define FUSEDOPT_VERSION "0.0.0"
#endif
#ifndef FUSEDOPT_TORCH_BUILT_AGAINST
#define FUSEDOPT_TORCH_BUILT_AGAINST "unknown"
#endif

namespace fusedopt {
namespace torch_glue {
namespace {

// "key=value" lines: what this build contains (parsed by fusedopt/_ops.py).
std::string build_info() {
  std::string s = "version=" FUSEDOPT_VERSION "\ntorch_built_against=" FUSEDOPT_TORCH_BUILT_AGAINST;
#if defined(FUSEDOPT_WITH_CUDA)
  s += "\ncuda_compiled=1";
#else
  s += "\ncuda_compiled=0";
#endif
  return s;
}
std::string simd_level() { return cpu::simd_level(); }
bool set_simd_level(std::string name) { return cpu::set_simd_level(name.c_str()); }
std::string available_simd_levels() { return cpu::available_simd_levels(); }
std::string simd_level_env_problem() { return cpu::simd_level_env_problem(); }

}  // namespace
}  // namespace torch_glue
}  // namespace fusedopt

STABLE_TORCH_LIBRARY_FRAGMENT(fusedopt, m) {
  m.def("_build_info() -> str");
  m.def("_simd_level() -> str");
  m.def("_set_simd_level(str name) -> bool");
  m.def("_available_simd_levels() -> str");
  m.def("_simd_level_env_problem() -> str");
}

STABLE_TORCH_LIBRARY_IMPL(fusedopt, CompositeExplicitAutograd, m) {
  using namespace fusedopt::torch_glue;
  m.impl("_build_info", TORCH_BOX(&build_info));
  m.impl("_simd_level", TORCH_BOX(&simd_level));
  m.impl("_set_simd_level", TORCH_BOX(&set_simd_level));
  m.impl("_available_simd_levels", TORCH_BOX(&available_simd_levels));
  m.impl("_simd_level_env_problem", TORCH_BOX(&simd_level_env_problem));
}
