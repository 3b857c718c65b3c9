// Helpers shared by the per-element update rules. Everything is FUSEDOPT_HD and templated on
// the compute type T (float for fp32/fp16/bf16 storage, double for fp64 storage).
#pragma once

#include <cmath>

#include "fusedopt/config.h"

namespace fusedopt {
namespace math {

template <class T>
FUSEDOPT_HD FUSEDOPT_INLINE T sqrt_(T x) { return std::sqrt(x); }
#if defined(__CUDACC__)
template <>
__device__ __host__ FUSEDOPT_INLINE float sqrt_(float x) { return sqrtf(x); }
#endif

template <class T>
FUSEDOPT_HD FUSEDOPT_INLINE T max_(T a, T b) { return a > b ? a : (a == a ? b : a); }

// sign with sign(+-0) = +0 and NaN propagated (so a NaN gradient visibly poisons the param
// instead of being silently turned into a +-1 step); sign(+-inf) = +-1.
// Written as arithmetic on the compares, with every operand used unconditionally: as nested ?:
// GCC sinks the compares (which may raise FP exceptions, so it will not speculate them) into
// branches and the Lion loop does not vectorize at any level ("control flow in loop" in
// -fopt-info-vec-missed; docs/cpu.md).
template <class T>
FUSEDOPT_HD FUSEDOPT_INLINE T sign_(T x) {
  const T unit = T(int(x > T(0)) - int(x < T(0)));  // 1, -1, or 0 (also for NaN)
  const T nan_or_zero = x != x ? x : T(0);
  return unit + nan_or_zero;
}

// 1 - beta^step in double: evaluated once per tensor per step by both backends through this
// one function, so CPU and emulated CUDA agree bit for bit.
FUSEDOPT_HD inline double one_minus_pow(double beta, double step) { return 1.0 - pow(beta, step); }

// The update of an Elementwise optimizer (fusedopt/optimizers.h), specialized in its math
// header, in the form both engines run: the CPU tile loop (csrc/cpu/kernels_impl.h) and the CUDA
// multi-tensor kernel call
//   Coeffs<T> coeffs<T>(const Hyper&, double lr, float step, double inv_grad_scale)
// once per tensor and chunk (step: the tensor's step count, already advanced), then
//   element<T, kStates>(T& p, T raw_grad, T& s0, T& s1, T& s2, const Hyper&, const Coeffs<T>&)
// per element (flags are read from the Hyper: on the GPU it stays in kernel-parameter space), with the states in declaration order (kStates of them are real: those this call
// keeps; the rest are scratch the element must ignore).
template <class Hyper>
struct ElementwiseStep;

}  // namespace math
}  // namespace fusedopt
