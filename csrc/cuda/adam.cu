// Adam / AdamW: one pass (reads p, g, m, v; writes p, m, v: 28 B/elem in fp32), after a tiny
// launch that advances the step counters.
#include "host_launch.cuh"
#include "fusedopt/math.h"

namespace fusedopt {
namespace FUSEDOPT_CUDA_NS {

// States: exp_avg, exp_avg_sq, [max_exp_avg_sq].
template <class C_, int kStates_>
struct AdamOp : ElementOp<C_, kStates_> {
  using C = C_;
  AdamHyper h;
  StepInputs in;
  struct Coeffs {
    math::AdamCoeffs<C> c;
    C inv;
  };
  __device__ __forceinline__ Coeffs coeffs(const float* step, int) const {
    return {math::adam_coeffs<C>(h, in.lr.get(), *step), C(in.inv_grad_scale())};
  }
  __device__ __forceinline__ void element(C& p, C g, C (&s)[kStates_], const Coeffs& k, double&,
                                          double&) const {
    C unused = C(0);
    math::adam_element<C>(p, g * k.inv, s[0], s[1], kStates_ == 3 ? s[kStates_ - 1] : unused,
                          kStates_ == 3, h.maximize, k.c);
  }
};

void adam(const ParamLists& L, const AdamHyper& h, const StepInputs& in) {
  if (h.amsgrad) run_single_pass<AdamOp, 3>(L, h, in);
  else run_single_pass<AdamOp, 2>(L, h, in);
}

}  // namespace FUSEDOPT_CUDA_NS
}  // namespace fusedopt
