// "Scalar or pointer" values: lr, step, grad_scale and found_inf reach the kernels either as a
// plain number (eager, non-capturable use) or as a pointer to a scalar living on the same
// device as the data (tensor lr, capturable / CUDA-graph use). One kernel serves both.
#pragma once

#include "fusedopt/config.h"

namespace fusedopt {

template <class T>
struct ScalarArg {
  T value = T(0);
  const T* ptr = nullptr;  // when set, wins over value; read once per block/chunk

  FUSEDOPT_HD T get() const { return ptr ? *ptr : value; }
  static ScalarArg of(T v) { ScalarArg s; s.value = v; return s; }
  static ScalarArg at(const T* p) { ScalarArg s; s.ptr = p; return s; }
};

// Inputs every optimizer step shares.
struct StepInputs {
  ScalarArg<float> lr;                // learning rate (float or 0-d tensor)
  const float* grad_scale = nullptr;  // GradScaler's scale: grads are divided by it in-kernel
  const float* found_inf = nullptr;   // != 0 => the whole step is a bitwise no-op

  FUSEDOPT_HD bool skip() const { return found_inf != nullptr && *found_inf != 0.0f; }
  FUSEDOPT_HD float inv_grad_scale() const { return grad_scale ? 1.0f / *grad_scale : 1.0f; }
};

}  // namespace fusedopt
