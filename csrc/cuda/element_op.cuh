// What an optimizer pass must look like to the engine: the base every element op derives from
// (defaults for the flags) and the compile-time checks that name each member an op, or a
// cleanup finisher, has to provide. A missing member then fails with one of the messages below
// instead of an error deep inside the kernel template.
#pragma once

#include <type_traits>
#include <utility>

#include "common.cuh"

namespace fusedopt {
namespace FUSEDOPT_CUDA_NS {

// Base of every element op (the functor multi_tensor_kernel applies to each element). An op
// re-declares a flag only where it differs from the default: a plain update reads param and
// grad, reads and writes every state, writes the param, and reduces nothing.
template <class C_, int kStates_>
struct ElementOp {
  using C = C_;                          // compute type (float for fp16/bf16/fp32 storage)
  static constexpr int kStates = kStates_;  // state lists, in table order after the master
  static constexpr bool kHasGrad = true;    // a grad list follows the param list
  static constexpr bool kWriteParam = true;
  static constexpr bool kReduce = false;    // element() accumulates two sums of squares
  static constexpr unsigned kReadStates = (1u << kStates_) - 1u;  // bit s: state s is loaded
  static constexpr unsigned kWriteStates = kReadStates;           // bit s: state s is stored
  // element()'s state array (length 1 when there are no states: arrays cannot be empty).
  using States = C[kStates_ > 0 ? kStates_ : 1];
};

namespace op_check {
// Detectors for the members the kernels use (C++17: the emulated test build may not be C++20).
template <class Op, class = void>
struct HasCoeffs : std::false_type {};
template <class Op>
struct HasCoeffs<Op, std::void_t<typename Op::Coeffs,
                                 decltype(std::declval<const Op&>().coeffs(
                                     std::declval<const float*>(), 0))>>
    : std::is_same<decltype(std::declval<const Op&>().coeffs(std::declval<const float*>(), 0)),
                   typename Op::Coeffs> {};

template <class Op, class = void>
struct HasElement : std::false_type {};
template <class Op>
struct HasElement<Op, std::void_t<decltype(std::declval<const Op&>().element(
                          std::declval<typename Op::C&>(), std::declval<typename Op::C>(),
                          std::declval<typename ElementOp<typename Op::C, Op::kStates>::States&>(),
                          std::declval<const typename Op::Coeffs&>(), std::declval<double&>(),
                          std::declval<double&>()))>> : std::true_type {};

template <class T, class = void>
struct HasStepInputs : std::false_type {};
template <class T>
struct HasStepInputs<T, std::void_t<decltype(std::declval<const T&>().in)>>
    : std::is_same<std::decay_t<decltype(std::declval<const T&>().in)>, StepInputs> {};

template <class Fin, class = void>
struct HasTensorFinish : std::false_type {};
template <class Fin>
struct HasTensorFinish<Fin, std::void_t<decltype(std::declval<const Fin&>().tensor(
                                0, 0.0, 0.0))>> : std::true_type {};

template <class Fin, class = void>
struct HasTensorSums : std::false_type {};
template <class Fin>
struct HasTensorSums<Fin, std::void_t<decltype(std::declval<const Fin&>().tsum)>>
    : std::is_same<std::decay_t<decltype(std::declval<const Fin&>().tsum)>, double*> {};
}  // namespace op_check

// Instantiated by multi_tensor_kernel: every requirement on an element op, one message each.
template <class Op>
struct CheckElementOp {
  static_assert(std::is_base_of<ElementOp<typename Op::C, Op::kStates>, Op>::value,
                "element op: derive from ElementOp<C, kStates> (it supplies C, kStates and the "
                "default flags kHasGrad, kWriteParam, kReduce, kReadStates, kWriteStates)");
  static_assert(op_check::HasStepInputs<Op>::value,
                "element op: needs a member `StepInputs in` (lr, grad_scale, found_inf)");
  static_assert(op_check::HasCoeffs<Op>::value,
                "element op: needs a type `Coeffs` and `Coeffs coeffs(const float* step, int "
                "tensor) const` (per-tensor values, evaluated once per block)");
  static_assert(op_check::HasElement<Op>::value,
                "element op: needs `void element(C& p, C g, States& s, const Coeffs& k, "
                "double& sum_a, double& sum_b) const`");
  static_assert(std::is_trivially_copyable<Op>::value,
                "element op: is a kernel parameter, so it must be trivially copyable");
  static_assert((Op::kReadStates | Op::kWriteStates) >> Op::kStates == 0u,
                "element op: kReadStates / kWriteStates name a state past kStates");
  static constexpr bool kOk = true;
};

// Instantiated by cleanup_kernel: the per-tensor finisher of a reduction.
template <class Fin>
struct CheckFinisher {
  static_assert(op_check::HasStepInputs<Fin>::value,
                "finisher: needs a member `StepInputs in` (found_inf skips the cleanup)");
  static_assert(op_check::HasTensorFinish<Fin>::value,
                "finisher: needs `void tensor(int tensor, double sum_a, double sum_b) const` (the "
                "engine advances the step counters, see advance_step)");
  static_assert(op_check::HasTensorSums<Fin>::value,
                "finisher: needs a member `double* tsum` (per-tensor sums a global norm reads)");
  static_assert(std::is_trivially_copyable<Fin>::value,
                "finisher: is a kernel parameter, so it must be trivially copyable");
  static constexpr bool kOk = true;
};

}  // namespace FUSEDOPT_CUDA_NS
}  // namespace fusedopt
