// LAMB in two passes, nothing stored between them but m and v:
//   pass 1 (reads g, m, v, p; writes m, v: 24 B/elem fp32): moments + per-chunk partials of
//          ||p||^2 and ||u||^2, using step + 1 (the counters advance in the cleanup)
//   cleanup (one block): per-tensor sums in chunk order -> lr * trust ratio; step += 1
//   pass 2 (reads m, v, p; writes p: 16 B/elem fp32): recompute u, p -= lr * ratio * u
// Global grad-norm clipping reads the norm computed beforehand by l2_norm (+4 B/elem).
// Sharded tensors (lamb_moments / lamb_apply): pass 1's cleanup writes the per-tensor sums
// instead of the ratios; the caller all-reduces them; pass 2 derives each block's lr * ratio
// from the full sums.
#include "host_launch.cuh"
#include "fusedopt/math.h"

namespace fusedopt {
namespace FUSEDOPT_CUDA_NS {

// States: exp_avg, exp_avg_sq (both passes).
template <class C_>
struct LambMomentsOp : ElementOp<C_, 2> {
  using C = C_;
  static constexpr bool kWriteParam = false, kReduce = true;
  LambHyper h;
  StepInputs in;
  const float* global_grad_norm;
  using Coeffs = math::LambCoeffs<C>;
  __device__ __forceinline__ Coeffs coeffs(const float* step, int) const {
    return math::lamb_coeffs<C>(h, step_after_advance(*step), in.inv_grad_scale(),
                                global_grad_norm ? *global_grad_norm : 0.0f);
  }
  __device__ __forceinline__ void element(C& p, C g, C (&s)[2], const Coeffs& k, double& a,
                                          double& b) const {
    const C u = math::lamb_moments<C>(p, g, s[0], s[1], k);
    a += double(p) * double(p);
    b += double(u) * double(u);
  }
};

struct LambFin {
  LambHyper h;
  StepInputs in;
  float* scaled_lr;
  double* tsum;
  __device__ __forceinline__ void tensor(int t, double a, double b) const {
    const float ratio = math::lamb_trust_ratio(h, static_cast<float>(sqrt(a)),
                                               static_cast<float>(sqrt(b)));
    scaled_lr[t] = in.lr.get() * ratio;
  }
};

// Cleanup of lamb_moments: the local sums of squares (the engine then advances the steps).
struct LambSumsFin {
  StepInputs in;
  double* norm_sums;  // [2 * count]: ||p||^2, ||u||^2
  double* tsum;
  __device__ __forceinline__ void tensor(int t, double a, double b) const {
    norm_sums[2 * t] = a;
    norm_sums[2 * t + 1] = b;
  }
};

template <class C_>
struct LambApplyOp : ElementOp<C_, 2> {
  using C = C_;
  static constexpr bool kHasGrad = false;   // pass 2 recomputes u from m, v and p
  static constexpr unsigned kWriteStates = 0u;
  LambHyper h;
  StepInputs in;
  const float* global_grad_norm;
  const float* scaled_lr;    // per tensor, from the cleanup; or
  const double* norm_sums;   // per tensor ||p||^2, ||u||^2 of the full tensors (lamb_apply)
  struct Coeffs {
    math::LambCoeffs<C> c;
    C lr;
  };
  __device__ __forceinline__ Coeffs coeffs(const float* step, int t) const {
    // The ratio rounded to float, then times lr, as LambFin computes it.
    const float ratio =
        norm_sums == nullptr
            ? 0.0f
            : math::lamb_trust_ratio(h, static_cast<float>(sqrt(norm_sums[2 * t])),
                                     static_cast<float>(sqrt(norm_sums[2 * t + 1])));
    const float lr = norm_sums == nullptr ? scaled_lr[t] : in.lr.get() * ratio;
    return {math::lamb_coeffs<C>(h, *step, in.inv_grad_scale(),
                                 global_grad_norm ? *global_grad_norm : 0.0f),
            C(lr)};
  }
  __device__ __forceinline__ void element(C& p, C, C (&s)[2], const Coeffs& k, double&,
                                          double&) const {
    math::lamb_apply<C>(p, s[0], s[1], k.lr, k.c);
  }
};

namespace {
// kLamb: pass 1, cleanup (ratios, steps), pass 2. kLambMoments: pass 1, cleanup writing
// sums_out (steps). kLambApply: pass 2 with the ratios of sums_in.
void run_lamb(const ParamLists& L, const LambHyper& h, const StepInputs& in,
              const float* global_grad_norm, OpKind kind, double* sums_out,
              const double* sums_in) {
  if (L.count <= 0) return;
  const Stream stream = current_stream();
  const std::vector<int64_t> bases = chunk_bases(L.numel, L.count);
  PlanShape shape;
  shape.op = kind;
  shape.num_states = 2;
  shape.master = L.master != nullptr;
  Scratch scratch(kind == OpKind::kLambApply ? 0 : bases.back(), L.count, stream);
  with_layout([&](auto pb) {
    constexpr int kPB = decltype(pb)::value;
    const OpPlan plan = cuda_plan::plan_op(shape, L.numel, L.count, layout_of(kPB));
    dispatch_param(L, [&](auto* tag, auto master) {
      using P = std::remove_pointer_t<decltype(tag)>;
      using C = typename Storage<P>::C;
      constexpr bool kM = decltype(master)::value;
      using Pass1 = LambMomentsOp<C>;
      using Pass2 = LambApplyOp<C>;
      for (const Pass& pass : plan.passes) {
        switch (pass.kernel) {
          case Kernel::kReduce:
            run_multi_tensor<Pass1, P, kM, kPB>(pass, optimizer_lists(L, true, kM, 2),
                                                Pass1{{}, h, in, global_grad_norm},
                                                scratch.partials, bases, stream);
            break;
          case Kernel::kCleanup:
            if (kind == OpKind::kLambMoments)
              run_cleanup<LambSumsFin, kPB>(pass, LambSumsFin{in, sums_out, scratch.tsum},
                                            L.count, L.step, bases, scratch.partials, nullptr,
                                            stream);
            else
              run_cleanup<LambFin, kPB>(pass, LambFin{h, in, scratch.per_tensor, scratch.tsum},
                                        L.count, L.step, bases, scratch.partials, nullptr,
                                        stream);
            break;
          case Kernel::kUpdate:
            run_multi_tensor<Pass2, P, kM, kPB>(
                pass, optimizer_lists(L, false, kM, 2),
                Pass2{{}, h, in, global_grad_norm, scratch.per_tensor, sums_in}, nullptr, {},
                stream);
            break;
          default: plan_mismatch(pass, "not a LAMB pass");
        }
      }
    });
  });
}
}  // namespace

void lamb(const ParamLists& L, const LambHyper& h, const StepInputs& in) {
  run_lamb(L, h, in, in.global_grad_norm, OpKind::kLamb, nullptr, nullptr);
}

void lamb_moments(const ParamLists& L, const LambHyper& h, const StepInputs& in) {
  run_lamb(L, h, in, in.global_grad_norm, OpKind::kLambMoments, in.norm_sums_out, nullptr);
}

void lamb_apply(const ParamLists& L, const LambHyper& h, const StepInputs& in) {
  run_lamb(L, h, in, in.global_grad_norm, OpKind::kLambApply, nullptr, in.norm_sums);
}

}  // namespace FUSEDOPT_CUDA_NS
}  // namespace fusedopt
