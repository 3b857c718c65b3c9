// SGD with momentum / dampening / Nesterov, torch.optim.SGD semantics. Formulas: docs/sgd.md.
#pragma once

#include "fusedopt/optimizers.h"
#include "fusedopt/math/common.h"

namespace fusedopt {

// SGDHyper (fusedopt/optimizers.h): FUSEDOPT_HYPER_sgd.

namespace math {

template <class T>
struct MomentumCoeffs {
  T lr, momentum, one_minus_dampening;
  bool first_step;  // the momentum buffer starts as a copy of the first (decayed) gradient
};

template <class T>
FUSEDOPT_HD inline MomentumCoeffs<T> momentum_coeffs(double lr, double momentum, double dampening,
                                                     float step) {
  MomentumCoeffs<T> c;
  c.lr = T(lr);
  c.momentum = T(momentum);
  c.one_minus_dampening = T(1.0 - dampening);
  c.first_step = step <= 1.0f;
  return c;
}

// The heavy-ball step shared by SGD and LARS, given the direction d (grad after weight decay
// and, for LARS, after the trust ratio). buf is ignored when momentum == 0.
template <class T>
FUSEDOPT_HD FUSEDOPT_INLINE void momentum_step(T& p, T d, T& buf, bool use_momentum, bool nesterov,
                                               const MomentumCoeffs<T>& c) {
  if (use_momentum) {
    buf = c.first_step ? d : c.momentum * buf + c.one_minus_dampening * d;
    d = nesterov ? d + c.momentum * buf : buf;
  }
  p = p - c.lr * d;
}

template <class T>
FUSEDOPT_HD FUSEDOPT_INLINE void sgd_element(T& p, T g, T& buf, T weight_decay, bool use_momentum,
                                             bool nesterov, bool maximize,
                                             const MomentumCoeffs<T>& c) {
  if (maximize) g = -g;
  g = g + weight_decay * p;
  momentum_step(p, g, buf, use_momentum, nesterov, c);
}

template <>
struct ElementwiseStep<SGDHyper> {  // states: [momentum_buffer]
  template <class T>
  struct Coeffs {
    MomentumCoeffs<T> c;
    T inv_scale, weight_decay;
  };
  template <class T>
  FUSEDOPT_HD static Coeffs<T> coeffs(const SGDHyper& h, double lr, float step, double inv) {
    return {momentum_coeffs<T>(lr, h.momentum, h.dampening, step), T(inv), T(h.weight_decay)};
  }
  template <class T, int kStates>
  FUSEDOPT_HD FUSEDOPT_INLINE static void element(T& p, T g, T& buf, T&, T&, const SGDHyper& h,
                                                  const Coeffs<T>& k) {
    sgd_element<T>(p, g * k.inv_scale, buf, k.weight_decay, kStates == 1, h.nesterov,
                   h.maximize, k.c);
  }
};

}  // namespace math
}  // namespace fusedopt
