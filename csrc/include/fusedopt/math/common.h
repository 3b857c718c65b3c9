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

// sign with sign(+-0) = 0 and NaN propagated (so a NaN gradient visibly poisons the param
// instead of being silently turned into a +-1 step).
template <class T>
FUSEDOPT_HD FUSEDOPT_INLINE T sign_(T x) { return x > T(0) ? T(1) : (x < T(0) ? T(-1) : x * T(0)); }

// 1 - beta^step in double: evaluated once per tensor per step by both backends through this
// one function, so CPU and emulated CUDA agree bit for bit.
FUSEDOPT_HD inline double one_minus_pow(double beta, double step) { return 1.0 - pow(beta, step); }

}  // namespace math
}  // namespace fusedopt
