// LARS (You, Gitman & Ginsburg, 2017, "Large Batch Training of Convolutional Networks") with
// apex LARC's clip mode. Formulas: docs/lars.md.
//   pass 1 (reads p, g): per-tensor ||p||^2, ||g||^2
//   pass 2 (reads p, g, buf; writes p, buf): d = ratio * (g + wd p), heavy-ball momentum.
#pragma once

#include "fusedopt/optimizers.h"
#include "fusedopt/math/sgd.h"

namespace fusedopt {

// LarsHyper (fusedopt/optimizers.h): FUSEDOPT_HYPER_lars.

namespace math {

// Local learning-rate multiplier of one tensor. adapt == false (excluded tensors) gives 1.
// A zero param or grad norm gives 1 (the weight decay term is still added).
FUSEDOPT_HD inline double lars_trust_ratio(const LarsHyper& h, bool adapt, double weight_decay,
                                           double lr, double param_norm, double grad_norm) {
  if (!adapt || !(param_norm > 0.0) || !(grad_norm > 0.0)) return 1.0;
  double ratio = h.trust_coefficient * param_norm /
                 (grad_norm + weight_decay * param_norm + h.eps);
  if (h.clip) {
    ratio = ratio / lr;
    if (ratio > 1.0) ratio = 1.0;
  }
  return ratio;
}

template <class T>
FUSEDOPT_HD FUSEDOPT_INLINE void lars_element(T& p, T g, T& buf, T weight_decay, T ratio,
                                              bool use_momentum, bool nesterov,
                                              const MomentumCoeffs<T>& c) {
  const T d = (g + weight_decay * p) * ratio;
  momentum_step(p, d, buf, use_momentum, nesterov, c);
}

}  // namespace math
}  // namespace fusedopt
