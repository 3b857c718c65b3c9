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

// The learning rate: a double (so float64 params get float64 accuracy) or a pointer to a float32
// 0-d tensor (tensor lr, as torch.optim keeps it).
struct LrArg {
  double value = 0.0;
  const float* ptr = nullptr;

  LrArg() = default;
  FUSEDOPT_HD LrArg(ScalarArg<float> s) : value(s.value), ptr(s.ptr) {}
  static LrArg of(double v) {
    LrArg a;
    a.value = v;
    return a;
  }
  FUSEDOPT_HD double get() const { return ptr ? double(*ptr) : value; }
};

// Inputs every optimizer step shares.
struct StepInputs {
  LrArg lr;                           // learning rate (number or 0-d tensor)
  const float* grad_scale = nullptr;  // GradScaler's scale: grads are divided by it in-kernel
  const float* found_inf = nullptr;   // != 0 => the whole step is a bitwise no-op
  // The optional inputs and outputs some ops declare (OpExtra in fusedopt/optimizers.h):
  // LAMB's global grad norm (nullptr: no clipping); norm_sums[2t], norm_sums[2t + 1]: the full
  // tensor t's ||p||^2 and ||u||^2 (LAMB) or ||g / grad_scale||^2 (LARS), given they replace the
  // norm pass; norm_sums_out: where LAMB's moments pass writes the local sums (zeros if skipped).
  const float* global_grad_norm = nullptr;
  const double* norm_sums = nullptr;
  double* norm_sums_out = nullptr;

  FUSEDOPT_HD bool skip() const { return found_inf != nullptr && *found_inf != 0.0f; }
  FUSEDOPT_HD double inv_grad_scale() const { return grad_scale ? 1.0 / double(*grad_scale) : 1.0; }
};

}  // namespace fusedopt
