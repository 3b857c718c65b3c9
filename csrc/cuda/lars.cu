// LARS, on SGD's heavy-ball step (SGD itself is Elementwise: elementwise.cu).
//   LARS: norm pass (reads p, g: 8 B/elem) -> per-tensor trust ratio (cleanup, also advances
//         the steps) -> the momentum update (20 B/elem). Without adaptation: step launch + update.
//         Sharded tensors: the caller passes the full tensors' sums of squares instead of the
//         norm pass (step launch + update; each block derives its ratio from the sums).
#include "host_launch.cuh"
#include "fusedopt/math.h"

namespace fusedopt {
namespace FUSEDOPT_CUDA_NS {

// LARS pass 1: ||p||^2 and ||g / scale||^2 partials (read-only).
template <class C_>
struct LarsNormOp : ElementOp<C_, 0> {
  using C = C_;
  static constexpr bool kWriteParam = false, kReduce = true;
  StepInputs in;
  struct Coeffs {
    C inv;
  };
  __device__ __forceinline__ Coeffs coeffs(const float*, int) const {
    return {C(in.inv_grad_scale())};
  }
  __device__ __forceinline__ void element(C& p, C g, C (&)[1], const Coeffs& k, double& a,
                                          double& b) const {
    const C gu = g * k.inv;
    a += double(p) * double(p);
    b += double(gu) * double(gu);
  }
};

// Cleanup: trust ratio per tensor (the engine then advances the steps).
struct LarsFin {
  LarsHyper h;
  StepInputs in;
  float* ratio;
  double* tsum;
  __device__ __forceinline__ void tensor(int t, double a, double b) const {
    ratio[t] = math::lars_trust_ratio(h, true, h.weight_decay, in.lr.get(),
                                      static_cast<float>(sqrt(a)), static_cast<float>(sqrt(b)));
  }
};

// State: [momentum_buffer].
template <class C_, int kStates_>
struct LarsApplyOp : ElementOp<C_, kStates_> {
  using C = C_;
  LarsHyper h;
  StepInputs in;
  const float* ratio;        // per tensor, from the cleanup; or
  const double* norm_sums;   // per tensor ||p||^2, ||g||^2 of the full tensors; both null: 1
  struct Coeffs {
    math::MomentumCoeffs<C> c;
    C inv, wd, ratio;
  };
  __device__ __forceinline__ Coeffs coeffs(const float* step, int t) const {
    const float r = norm_sums != nullptr
                        ? static_cast<float>(math::lars_trust_ratio(
                              h, true, h.weight_decay, in.lr.get(),
                              static_cast<float>(sqrt(norm_sums[2 * t])),
                              static_cast<float>(sqrt(norm_sums[2 * t + 1]))))
                        : (ratio ? ratio[t] : 1.0f);
    return {math::momentum_coeffs<C>(in.lr.get(), h.momentum, h.dampening, *step),
            C(in.inv_grad_scale()), C(static_cast<float>(h.weight_decay)),  // as the CPU backend
            C(r)};
  }
  __device__ __forceinline__ void element(C& p, C g, typename LarsApplyOp::States& s,
                                          const Coeffs& k, double&, double&) const {
    math::lars_element<C>(p, g * k.inv, s[0], k.wd, k.ratio, kStates_ == 1, h.nesterov, k.c);
  }
};

void lars(const ParamLists& L, const LarsHyper& h, const StepInputs& in) {
  if (L.count <= 0) return;
  const bool adapt = h.adapt;
  const double* const norm_sums = in.norm_sums;
  const Stream stream = current_stream();
  const std::vector<int64_t> bases = chunk_bases(L.numel, L.count);
  PlanShape shape;
  shape.op = OpKind::kLars;
  shape.num_states = h.momentum != 0.0f ? 1 : 0;
  shape.master = L.master != nullptr;
  shape.adapt = adapt;
  shape.norm_sums = norm_sums != nullptr;
  const bool norm_pass = adapt && norm_sums == nullptr;
  Scratch scratch(norm_pass ? bases.back() : 0, L.count, stream);
  with_layout([&](auto pb) {
    constexpr int kPB = decltype(pb)::value;
    const OpPlan plan = cuda_plan::plan_op(shape, L.numel, L.count, layout_of(kPB));
    dispatch_param(L, [&](auto* tag, auto master) {
      using P = std::remove_pointer_t<decltype(tag)>;
      using C = typename Storage<P>::C;
      constexpr bool kM = decltype(master)::value;
      dispatch_bool(shape.num_states == 1, [&](auto mom) {
        constexpr int kS = decltype(mom)::value ? 1 : 0;
        using NormOp = LarsNormOp<C>;
        using Op = LarsApplyOp<C, kS>;
        for (const Pass& pass : plan.passes) {
          switch (pass.kernel) {
            case Kernel::kReduce:
              run_multi_tensor<NormOp, P, kM, kPB>(pass, optimizer_lists(L, true, kM, 0),
                                                   NormOp{{}, in}, scratch.partials, bases,
                                                   stream);
              break;
            case Kernel::kCleanup:
              run_cleanup<LarsFin, kPB>(pass, LarsFin{h, in, scratch.per_tensor, scratch.tsum},
                                        L.count, L.step, bases, scratch.partials, nullptr,
                                        stream);
              break;
            case Kernel::kStep: run_steps<kPB>(pass, L.step, in.found_inf, stream); break;
            case Kernel::kUpdate:
              run_multi_tensor<Op, P, kM, kPB>(
                  pass, optimizer_lists(L, true, kM, kS),
                  Op{{}, h, in, norm_pass ? scratch.per_tensor : nullptr,
                     adapt ? norm_sums : nullptr},
                  nullptr, {}, stream);
              break;
            default: plan_mismatch(pass, "not a LARS pass");
          }
        }
      });
    });
  });
}

}  // namespace FUSEDOPT_CUDA_NS
}  // namespace fusedopt
