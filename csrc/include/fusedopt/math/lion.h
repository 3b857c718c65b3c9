// Lion (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms"). Formulas:
// docs/lion.md. sign(0) = 0: a coordinate whose interpolated direction is exactly zero is not
// moved (besides weight decay).
#pragma once

#include "fusedopt/optimizers.h"
#include "fusedopt/math/common.h"

namespace fusedopt {

// LionHyper (fusedopt/optimizers.h): FUSEDOPT_HYPER_lion.

namespace math {

template <class T>
struct LionCoeffs {
  T lr, beta1, one_minus_beta1, beta2, one_minus_beta2, decay_factor;
};

template <class T>
FUSEDOPT_HD inline LionCoeffs<T> lion_coeffs(const LionHyper& h, double lr) {
  LionCoeffs<T> c;
  c.lr = T(lr);
  c.beta1 = T(h.beta1);
  c.one_minus_beta1 = T(1.0 - h.beta1);  // in double: 1 - 0.9999f loses 4 digits
  c.beta2 = T(h.beta2);
  c.one_minus_beta2 = T(1.0 - h.beta2);
  c.decay_factor = T(1.0 - lr * h.weight_decay);
  return c;
}

template <class T>
FUSEDOPT_HD FUSEDOPT_INLINE void lion_element(T& p, T g, T& m, bool maximize,
                                              const LionCoeffs<T>& c) {
  if (maximize) g = -g;
  const T direction = c.beta1 * m + c.one_minus_beta1 * g;
  p = p * c.decay_factor - c.lr * sign_(direction);
  m = c.beta2 * m + c.one_minus_beta2 * g;
}

template <>
struct ElementwiseStep<LionHyper> {  // states: exp_avg
  template <class T>
  struct Coeffs {
    LionCoeffs<T> c;
    T inv_scale;
  };
  template <class T>
  FUSEDOPT_HD static Coeffs<T> coeffs(const LionHyper& h, double lr, float, double inv) {
    return {lion_coeffs<T>(h, lr), T(inv)};
  }
  template <class T, int kStates>
  FUSEDOPT_HD FUSEDOPT_INLINE static void element(T& p, T g, T& m, T&, T&, const LionHyper& h,
                                                  const Coeffs<T>& k) {
    lion_element<T>(p, g * k.inv_scale, m, h.maximize, k.c);
  }
};

}  // namespace math
}  // namespace fusedopt
