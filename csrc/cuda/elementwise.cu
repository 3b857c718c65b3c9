// Every Elementwise optimizer of fusedopt/optimizers.h (Adam, SGD, Lion): the launch that
// advances the step counters, then one pass over p, g and the states (fp32: Adam 28 B/elem, SGD
// with momentum 20, without 12, Lion 20). The math comes from math::ElementwiseStep<Hyper> of
// the optimizer's header alone; its entry points are generated from the declaration.
#include "host_launch.cuh"
#include "fusedopt/math.h"

namespace fusedopt {
namespace FUSEDOPT_CUDA_NS {

template <class Hyper>
struct Elementwise {
  // The element op of a call that keeps kStates_ states (declaration order).
  template <class C_, int kStates_>
  struct Op : ElementOp<C_, kStates_> {
    using C = C_;
    using Step = math::ElementwiseStep<Hyper>;
    using Coeffs = typename Step::template Coeffs<C>;
    Hyper h;
    StepInputs in;
    __device__ __forceinline__ Coeffs coeffs(const float* step, int) const {
      return Step::template coeffs<C>(h, in.lr.get(), *step, in.inv_grad_scale());
    }
    __device__ __forceinline__ void element(C& p, C g, typename Op::States& s, const Coeffs& k,
                                            double&, double&) const {
      C unused1 = C(0), unused2 = C(0);  // states this call does not keep
      Step::template element<C, kStates_>(p, g, s[0], state<1>(s, unused1), state<2>(s, unused2),
                                          h, k);
    }
    template <int kIndex>
    __device__ __forceinline__ static C& state(typename Op::States& s, C& unused) {
      if constexpr (kIndex < kStates_) return s[kIndex];
      else return unused;
    }
  };
};

// Runs the op for the lists' state count, among those the declaration allows.
template <class Hyper, int kStates = Declared<Hyper>::min_states()>
void run_elementwise(const ParamLists& L, const Hyper& h, const StepInputs& in) {
  if constexpr (kStates < Declared<Hyper>::kStates) {
    if (L.num_states != kStates) return run_elementwise<Hyper, kStates + 1>(L, h, in);
  }
  run_single_pass<Elementwise<Hyper>::template Op, kStates>(L, h, in);
}

#define FUSEDOPT_ELEMENTWISE_EACH(entry, Hyper)                           \
  void entry(const ParamLists& L, const Hyper& h, const StepInputs& in) { \
    run_elementwise(L, h, in);                                            \
  }
FUSEDOPT_FOR_EACH_ELEMENTWISE_OP
#undef FUSEDOPT_ELEMENTWISE_EACH

}  // namespace FUSEDOPT_CUDA_NS
}  // namespace fusedopt
