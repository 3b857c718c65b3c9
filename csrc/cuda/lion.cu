// Lion: one pass (reads p, g, m; writes p, m: 20 B/elem in fp32) after the step launch.
#include "multi_tensor.cuh"

namespace fusedopt {
namespace FUSEDOPT_CUDA_NS {

template <class C_>
struct LionOp {
  using C = C_;
  static constexpr int kStates = 1;  // exp_avg
  static constexpr bool kHasGrad = true, kWriteParam = true, kReduce = false;
  static constexpr unsigned kReadStates = 1u, kWriteStates = 1u;
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
  if (L.count <= 0) return;
  const Stream stream = current_stream();
  with_layout([&](auto pb) {
    constexpr int kPB = decltype(pb)::value;
    run_step_increment<kPB>(L.step, L.count, in.found_inf, stream);
    dispatch_param(L, [&](auto* tag, auto master) {
      using P = std::remove_pointer_t<decltype(tag)>;
      using C = typename Storage<P>::C;
      constexpr bool kM = decltype(master)::value;
      using Op = LionOp<C>;
      run_multi_tensor<Op, P, kM, kPB>(optimizer_lists(L, true, kM, 1), Op{h, in}, nullptr, {},
                                       stream);
    });
  });
}

}  // namespace FUSEDOPT_CUDA_NS
}  // namespace fusedopt
