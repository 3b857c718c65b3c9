// Adam / AdamW: one pass (reads p, g, m, v; writes p, m, v: 28 B/elem in fp32), after a tiny
// launch that advances the step counters.
#include "multi_tensor.cuh"
#include "fusedopt/math/adam.h"

namespace fusedopt {
namespace FUSEDOPT_CUDA_NS {

template <class C_, int kStates_>
struct AdamOp {
  using C = C_;
  static constexpr int kStates = kStates_;  // exp_avg, exp_avg_sq, [max_exp_avg_sq]
  static constexpr bool kHasGrad = true, kWriteParam = true, kReduce = false;
  static constexpr unsigned kReadStates = (1u << kStates_) - 1u, kWriteStates = kReadStates;
  AdamHyper h;
  StepInputs in;
  struct Coeffs {
    math::AdamCoeffs<C> c;
    C inv;
  };
  __device__ __forceinline__ Coeffs coeffs(const float* step, int) const {
    return {math::adam_coeffs<C>(h, in.lr.get(), *step), C(in.inv_grad_scale())};
  }
  __device__ __forceinline__ void element(C& p, C g, C (&s)[kStates], const Coeffs& k, double&,
                                          double&) const {
    C unused = C(0);
    math::adam_element<C>(p, g * k.inv, s[0], s[1], kStates == 3 ? s[kStates - 1] : unused,
                          kStates == 3, h.maximize, k.c);
  }
};

void adam(const ParamLists& L, const AdamHyper& h, const StepInputs& in) {
  if (h.amsgrad) run_single_pass<AdamOp, 3>(L, h, in);
  else run_single_pass<AdamOp, 2>(L, h, in);
}

}  // namespace FUSEDOPT_CUDA_NS
}  // namespace fusedopt
