// The per-chunk kernels one SIMD level provides. kernels_impl.h is compiled once per level
// (kernels_baseline.cpp, kernels_avx2.cpp, kernels_avx512.cpp); the driver picks a table at
// run time, so the default build needs no -march flag.
//
// A level's translation unit must not run any code of its own before the driver has chosen
// that level: its table is a constexpr constant (function pointers only, placed in .rodata, no
// static initializer), and nothing else in those files has static storage with a dynamic
// initializer. The CI check tests/csrc/core/check_level_objects.sh enforces this on the objects.
#pragma once

#include "cpu_backend.h"
#include "fusedopt/math.h"
#include "fusedopt/planner.h"

namespace fusedopt {
namespace cpu {

struct SquaresPartial {
  double param = 0.0;   // sum of squares of the param (LAMB, LARS)
  double second = 0.0;  // of the LAMB update direction, or of the unscaled grad (LARS)
};

struct SquaresRange {
  const void* ptr;
  int64_t begin, end;  // elements [begin, end) of ptr
};

struct KernelTable {
  const char* name;
  // One chunk kernel per Elementwise op of fusedopt/optimizers.h, e.g.
  //   void (*adam)(const ParamLists&, const AdamHyper&, double lr, double inv_scale, const ChunkRef&);
#define FUSEDOPT_ELEMENTWISE_EACH(entry, Hyper) \
  void (*entry)(const ParamLists&, const Hyper&, double lr, double inv_scale, const ChunkRef&);
  FUSEDOPT_FOR_EACH_ELEMENTWISE_OP
#undef FUSEDOPT_ELEMENTWISE_EACH
  // The passes of LAMB and LARS.
  // u_out: optional buffer for the chunk's update directions (compute type), see lamb_apply_direction.
  SquaresPartial (*lamb_moments)(const ParamLists&, const LambHyper&, double inv_scale,
                                 float global_grad_norm, void* u_out, const ChunkRef&);
  void (*lamb_apply_direction)(const ParamLists&, float scaled_lr, const void* u, const ChunkRef&);
  void (*lamb_apply)(const ParamLists&, const LambHyper&, double inv_scale,
                     float global_grad_norm, float scaled_lr, const ChunkRef&);
  SquaresPartial (*lars_norms)(const ParamLists&, double inv_scale, const ChunkRef&);
  void (*lars_apply)(const ParamLists&, const LarsHyper&, double lr, double inv_scale,
                     float weight_decay, float trust_ratio, const ChunkRef&);
  // out[r] = sum of (x * mult)^2 over ranges[r], r < count <= 2, read interleaved.
  void (*sum_squares)(const SquaresRange* ranges, int count, DType dtype, double mult,
                      double* out);
};

// The x86-64 SIMD levels exist only where the compiler targets x86-64; elsewhere (aarch64) the
// portable baseline level is the only one, vectorized for the target's default ISA.
#if defined(__x86_64__) || defined(_M_X64)
#define FUSEDOPT_CPU_X86_LEVELS 1
#endif

extern const KernelTable kBaselineKernels;
#if defined(FUSEDOPT_CPU_X86_LEVELS)
extern const KernelTable kAvx2Kernels;
extern const KernelTable kAvx512Kernels;
#endif

}  // namespace cpu
}  // namespace fusedopt
