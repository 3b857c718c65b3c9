// Lion: one pass (reads p, g, m; writes p, m: 20 B/elem in fp32) after the step launch.
#include "host_launch.cuh"
#include "fusedopt/math.h"

namespace fusedopt {
namespace FUSEDOPT_CUDA_NS {

// State: exp_avg.
template <class C_, int kStates_ = 1>
struct LionOp : ElementOp<C_, kStates_> {
  using C = C_;
  static_assert(kStates_ == 1, "Lion keeps one state");
  LionHyper h;
  StepInputs in;
  struct Coeffs {
    math::LionCoeffs<C> c;
    C inv;
  };
  __device__ __forceinline__ Coeffs coeffs(const float*, int) const {
    return {math::lion_coeffs<C>(h, in.lr.get()), C(in.inv_grad_scale())};
  }
  __device__ __forceinline__ void element(C& p, C g, C (&s)[1], const Coeffs& k, double&,
                                          double&) const {
    math::lion_element<C>(p, g * k.inv, s[0], h.maximize, k.c);
  }
};

void lion(const ParamLists& L, const LionHyper& h, const StepInputs& in) {
  run_single_pass<LionOp, 1>(L, h, in);
}

}  // namespace FUSEDOPT_CUDA_NS
}  // namespace fusedopt
