// LAMB (You et al., 2020, "Large Batch Optimization for Deep Learning"), in the variant NVIDIA
// apex's FusedLAMB implements (global grad-norm clipping, bias correction, grad averaging,
// decoupled or L2 decay). Formulas: docs/lamb.md.
//
// Two passes, nothing but m and v stored between them:
//   pass 1 (reads g, m, v, p; writes m, v): moments + sum of squares of p and of the update u
//   pass 2 (reads m, v, p; writes p):       recompute u, p -= lr * trust_ratio * u
#pragma once

#include "fusedopt/optimizers.h"
#include "fusedopt/math/common.h"

namespace fusedopt {

// LambHyper (fusedopt/optimizers.h): FUSEDOPT_HYPER_lamb.

namespace math {

template <class T>
struct LambCoeffs {
  T beta1, beta2, beta3, one_minus_beta2, eps;
  T l2_decay;       // wd in L2 mode, else 0
  T decoupled_decay;  // wd in adam_w mode, else 0
  T inv_bc1, inv_bc2;  // 1 / (1 - beta^t) (1 when bias correction is off)
  T grad_mult;      // 1 / (grad_scale * clip): unscale and global clipping in one multiply
};

// global_grad_norm: norm of the unscaled grads over every group (ignored when clipping is off).
template <class T>
FUSEDOPT_HD inline LambCoeffs<T> lamb_coeffs(const LambHyper& h, float step, double inv_grad_scale,
                                             float global_grad_norm) {
  LambCoeffs<T> c;
  c.beta1 = T(h.beta1);
  c.beta2 = T(h.beta2);
  c.beta3 = h.grad_averaging ? T(1.0 - h.beta1) : T(1);
  c.one_minus_beta2 = T(1.0 - h.beta2);
  c.eps = T(h.eps);
  c.l2_decay = h.adam_w_mode ? T(0) : T(h.weight_decay);
  c.decoupled_decay = h.adam_w_mode ? T(h.weight_decay) : T(0);
  const double bc1 = h.bias_correction ? one_minus_pow(h.beta1, step) : 1.0;
  const double bc2 = h.bias_correction ? one_minus_pow(h.beta2, step) : 1.0;
  c.inv_bc1 = T(1.0 / bc1);
  c.inv_bc2 = T(1.0 / bc2);
  const bool clip = h.max_grad_norm > 0.0 && global_grad_norm > h.max_grad_norm;
  const double clip_div = clip ? double(global_grad_norm) / double(h.max_grad_norm) : 1.0;
  c.grad_mult = T(inv_grad_scale / clip_div);
  return c;
}

template <class T>
FUSEDOPT_HD FUSEDOPT_INLINE T lamb_update_direction(T p, T m, T v, const LambCoeffs<T>& c) {
  return (m * c.inv_bc1) / (sqrt_(v * c.inv_bc2) + c.eps) + c.decoupled_decay * p;
}

// Pass 1 for one element; returns the update direction so the caller can accumulate its norm.
template <class T>
FUSEDOPT_HD FUSEDOPT_INLINE T lamb_moments(T p, T g, T& m, T& v, const LambCoeffs<T>& c) {
  g = g * c.grad_mult + c.l2_decay * p;
  m = c.beta1 * m + c.beta3 * g;
  v = c.beta2 * v + c.one_minus_beta2 * (g * g);
  return lamb_update_direction(p, m, v, c);
}

// Trust ratio from the two norms (not squared). Zero norms give 1 (documented: nothing to scale
// against), as in apex.
FUSEDOPT_HD inline double lamb_trust_ratio(const LambHyper& h, double param_norm,
                                           double update_norm) {
  double ratio = 1.0;
  if ((h.use_nvlamb || h.weight_decay != 0.0) && param_norm > 0.0 && update_norm > 0.0)
    ratio = param_norm / update_norm;
  if (h.trust_clip && ratio > 1.0) ratio = 1.0;
  if (ratio < h.min_trust_ratio) ratio = h.min_trust_ratio;
  if (h.max_trust_ratio > 0.0 && ratio > h.max_trust_ratio) ratio = h.max_trust_ratio;
  return ratio;
}

// Pass 2 for one element: scaled_lr = lr * trust_ratio of this tensor.
template <class T>
FUSEDOPT_HD FUSEDOPT_INLINE void lamb_apply(T& p, T m, T v, T scaled_lr, const LambCoeffs<T>& c) {
  p = p - scaled_lr * lamb_update_direction(p, m, v, c);
}

}  // namespace math
}  // namespace fusedopt
