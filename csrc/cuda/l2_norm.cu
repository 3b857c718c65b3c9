// Per-tensor and global L2 norms of x / grad_scale: one read pass (4 B/elem fp32) writing
// per-chunk partials, then one cleanup block (per-tensor sums in chunk order, global sum in a
// fixed tree). No atomics: bitwise reproducible.
#include "host_launch.cuh"

namespace fusedopt {
namespace FUSEDOPT_CUDA_NS {

// The norm's input is the op's only list (the "param" slot): read-only.
template <class C_>
struct SquaresOp : ElementOp<C_, 0> {
  using C = C_;
  static constexpr bool kHasGrad = false, kWriteParam = false, kReduce = true;
  StepInputs in;  // grad_scale only
  struct Coeffs {
    C mult;
  };
  __device__ __forceinline__ Coeffs coeffs(const float*, int) const {
    // 1 / scale in double, rounded to the compute type, as the CPU backend's l2_norm does.
    return {C(in.inv_grad_scale())};
  }
  __device__ __forceinline__ void element(C& x, C, C (&)[1], const Coeffs& k, double& a,
                                          double&) const {
    const C v = x * k.mult;
    a += double(v) * double(v);
  }
};

struct NormFin {
  StepInputs in;
  float* per_tensor;
  double* squares;
  double* tsum;
  __device__ __forceinline__ void tensor(int t, double a, double) const {
    tsum[t] = a;
    if (per_tensor != nullptr) per_tensor[t] = static_cast<float>(sqrt(a));
    if (squares != nullptr) squares[t] = a;
  }
};

void l2_norm(const void* const* ptrs, DType dtype, const int64_t* numel, int64_t count,
             const float* grad_scale, float* per_tensor, float* global, double* squares) {
  if (count <= 0) return;
  const Stream stream = current_stream();
  const std::vector<int64_t> bases = chunk_bases(numel, count);
  Scratch scratch(bases.back(), count, stream);
  StepInputs in;
  in.grad_scale = grad_scale;
  HostLists L;
  L.count = count;
  L.numel = numel;
  L.list[L.num_lists++] = ptrs;
  PlanShape shape;
  shape.op = OpKind::kL2Norm;
  shape.num_states = 0;
  shape.global = global != nullptr;
  with_layout([&](auto pb) {
    constexpr int kPB = decltype(pb)::value;
    const OpPlan plan = cuda_plan::plan_op(shape, numel, count, layout_of(kPB));
    dispatch_dtype(dtype, [&](auto* tag) {
      using S = std::remove_pointer_t<decltype(tag)>;
      using Op = SquaresOp<typename Storage<S>::C>;
      for (const Pass& pass : plan.passes) {
        switch (pass.kernel) {
          case Kernel::kReduce:
            run_multi_tensor<Op, S, false, kPB>(pass, L, Op{{}, in}, scratch.partials, bases,
                                                stream);
            break;
          case Kernel::kCleanup:
            run_cleanup<NormFin, kPB>(pass, NormFin{in, per_tensor, squares, scratch.tsum}, count,
                                      nullptr, bases, scratch.partials, global, stream);
            break;
          case Kernel::kFinish: run_finish<kPB>(pass, scratch.tsum, global, stream); break;
          default: plan_mismatch(pass, "not an l2_norm pass");
        }
      }
    });
  });
}

}  // namespace FUSEDOPT_CUDA_NS
}  // namespace fusedopt
