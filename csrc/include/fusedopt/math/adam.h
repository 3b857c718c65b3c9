// Adam (Kingma & Ba, 2015) and AdamW (Loshchilov & Hutter, 2019): the one definition of the
// per-element update, used by the CPU backend and the CUDA kernels. Formulas: docs/adam.md.
#pragma once

#include "fusedopt/optimizers.h"
#include "fusedopt/math/common.h"

namespace fusedopt {

// AdamHyper (fusedopt/optimizers.h): FUSEDOPT_HYPER_adam.

namespace math {

// Per-tensor, per-step constants (the step count can differ between tensors: a param whose
// grad was None on some steps has taken fewer steps).
template <class T>
struct AdamCoeffs {
  T beta1, beta2, one_minus_beta1, one_minus_beta2, eps;
  T l2_decay;      // wd for L2 mode, 0 otherwise
  T decay_factor;  // 1 - lr*wd for decoupled mode, 1 otherwise
  T step_size;     // lr / (1 - beta1^t)
  T bc2_sqrt;      // sqrt(1 - beta2^t)
};

template <class T>
FUSEDOPT_HD inline AdamCoeffs<T> adam_coeffs(const AdamHyper& h, double lr, float step) {
  AdamCoeffs<T> c;
  c.beta1 = T(h.beta1);
  c.beta2 = T(h.beta2);
  c.one_minus_beta1 = T(1.0 - h.beta1);  // in double: 1 - 0.9999f loses 4 digits
  c.one_minus_beta2 = T(1.0 - h.beta2);
  c.eps = T(h.eps);
  c.l2_decay = h.decoupled_weight_decay ? T(0) : T(h.weight_decay);
  c.decay_factor = h.decoupled_weight_decay ? T(1.0 - lr * h.weight_decay) : T(1);
  const double bc1 = h.bias_correction ? one_minus_pow(h.beta1, step) : 1.0;
  const double bc2 = h.bias_correction ? one_minus_pow(h.beta2, step) : 1.0;
  c.step_size = T(lr / bc1);
  c.bc2_sqrt = T(sqrt(bc2));
  return c;
}

// One element. vmax is the AMSGrad running max (ignored unless amsgrad).
template <class T>
FUSEDOPT_HD FUSEDOPT_INLINE void adam_element(T& p, T g, T& m, T& v, T& vmax, bool amsgrad,
                                              bool maximize, const AdamCoeffs<T>& c) {
  if (maximize) g = -g;
  g = g + c.l2_decay * p;
  p = p * c.decay_factor;
  m = c.beta1 * m + c.one_minus_beta1 * g;
  v = c.beta2 * v + c.one_minus_beta2 * (g * g);
  T v_used = v;
  if (amsgrad) {
    vmax = max_(vmax, v);
    v_used = vmax;
  }
  const T denom = sqrt_(v_used) / c.bc2_sqrt + c.eps;
  p = p - c.step_size * (m / denom);
}

template <>
struct ElementwiseStep<AdamHyper> {  // states: exp_avg, exp_avg_sq, [max_exp_avg_sq]
  template <class T>
  struct Coeffs {
    AdamCoeffs<T> c;
    T inv_scale;
  };
  template <class T>
  FUSEDOPT_HD static Coeffs<T> coeffs(const AdamHyper& h, double lr, float step, double inv) {
    return {adam_coeffs<T>(h, lr, step), T(inv)};
  }
  template <class T, int kStates>
  FUSEDOPT_HD FUSEDOPT_INLINE static void element(T& p, T g, T& m, T& v, T& vmax,
                                                  const AdamHyper& h, const Coeffs<T>& k) {
    adam_element<T>(p, g * k.inv_scale, m, v, vmax, kStates == 3, h.maximize, k.c);
  }
};

}  // namespace math
}  // namespace fusedopt
