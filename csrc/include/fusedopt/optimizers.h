// The one declaration of every optimizer: its hyper-parameters (type, name, default), its state
// lists, and its ops with their extra tensor inputs. Everything else is derived from it:
//   - the hyper-parameter structs (AdamHyper, ...: below; the math takes them),
//   - the backend entry points of the CPU and CUDA backends and the Backend table
//     (csrc/cpu/cpu_backend.h, csrc/cuda/cuda_backend.h, csrc/torch/backends.h),
//   - the op schemas and their bindings (csrc/torch/ops.cpp),
//   - the Python side (the _declarations op: state names and when they exist, defaults).
// docs/new_optimizer.md lists what else a new optimizer needs. Torch-free.
#pragma once

#include <type_traits>

#include "fusedopt/tensor_lists.h"  // kMaxStates

// ---- hyper-parameters: F(type, name, default) ---------------------------------------------
// type is double or bool (schema: float / bool). A hyper-parameter's default here is the op's
// default; the Python optimizers' constructor defaults are theirs (docs/<name>.md).
#define FUSEDOPT_HYPER_adam(F)                                                                  \
  F(double, beta1, 0.9) F(double, beta2, 0.999) F(double, eps, 1e-8) F(double, weight_decay, 0.0) \
  /* AdamW: p *= 1 - lr*wd; else L2: g += wd*p */                                               \
  F(bool, decoupled_weight_decay, false) F(bool, bias_correction, true) F(bool, amsgrad, false) \
  F(bool, maximize, false)

#define FUSEDOPT_HYPER_sgd(F)                                                         \
  F(double, momentum, 0.0) F(double, dampening, 0.0) F(double, weight_decay, 0.0)     \
  F(bool, nesterov, false) F(bool, maximize, false)

#define FUSEDOPT_HYPER_lion(F) \
  F(double, beta1, 0.9) F(double, beta2, 0.99) F(double, weight_decay, 0.0) F(bool, maximize, false)

#define FUSEDOPT_HYPER_lamb(F)                                                                    \
  F(double, beta1, 0.9) F(double, beta2, 0.999) F(double, eps, 1e-6) F(double, weight_decay, 0.01) \
  /* decoupled decay (u += wd*p) vs L2 (g += wd*p) */                                             \
  F(bool, adam_w_mode, true) F(bool, bias_correction, true)                                       \
  /* m uses (1 - beta1) * g; otherwise 1 * g */                                                   \
  F(bool, grad_averaging, true)                                                                   \
  /* <= 0 disables global clipping (then global_grad_norm is not read) */                        \
  F(double, max_grad_norm, 1.0)                                                                   \
  /* apply the trust ratio even when weight_decay == 0; cap it at 1 */                            \
  F(bool, use_nvlamb, false) F(bool, trust_clip, false)                                           \
  /* clamps applied after trust_clip: 0 = no lower clamp, <= 0 = no upper clamp */               \
  F(double, min_trust_ratio, 0.0) F(double, max_trust_ratio, 0.0)

#define FUSEDOPT_HYPER_lars(F)                                                            \
  F(double, momentum, 0.9) F(double, dampening, 0.0) F(double, weight_decay, 0.0)         \
  F(bool, nesterov, false) F(double, trust_coefficient, 0.001) F(double, eps, 1e-8)       \
  /* LARC clip mode: ratio = min(ratio / lr, 1) */                                        \
  F(bool, clip, false)                                                                    \
  /* apply the trust ratio (false for params excluded from adaptation) */                 \
  F(bool, adapt, true)

// ---- state lists: S(key, when) ----------------------------------------------------------------
// In the order the kernels see them (ParamLists::state). The op's list argument is named
// key + "s"; `when` names the hyper-parameter that must be nonzero for the state to exist
// (empty: always).
#define FUSEDOPT_STATES_adam(S) S(exp_avg, ) S(exp_avg_sq, ) S(max_exp_avg_sq, amsgrad)
#define FUSEDOPT_STATES_sgd(S) S(momentum_buffer, momentum)
#define FUSEDOPT_STATES_lion(S) S(exp_avg, )
#define FUSEDOPT_STATES_lamb(S) S(exp_avg, ) S(exp_avg_sq, )
#define FUSEDOPT_STATES_lars(S) S(momentum_buffer, momentum)

// ---- the optimizers: O(name, Hyper) ------------------------------------------------------------
#define FUSEDOPT_OPTIMIZERS(O) \
  O(adam, AdamHyper) O(sgd, SGDHyper) O(lion, LionHyper) O(lamb, LambHyper) O(lars, LarsHyper)

// ---- the ops: OP(entry, optimizer, Hyper, kind, extras) -----------------------------------------
// Op `fusedopt::<entry>_` runs backend entry point `<entry>(ParamLists, Hyper, StepInputs)`.
// kind: Elementwise, an update that needs nothing but its own element: both backends run it
//       from its math header alone (math::ElementwiseStep<Hyper>), through one generic engine;
//       Passes, an update with reductions between passes: its entry points are written in
//       csrc/cpu/driver.cpp and csrc/cuda/<optimizer>.cu.
// extras: the OpExtra flags of its optional tensor inputs and outputs (StepInputs fields).
#define FUSEDOPT_OPTIMIZER_OPS(OP)                                                           \
  OP(adam, adam, AdamHyper, Elementwise, 0)                                                  \
  OP(sgd, sgd, SGDHyper, Elementwise, 0)                                                     \
  OP(lion, lion, LionHyper, Elementwise, 0)                                                  \
  OP(lamb, lamb, LambHyper, Passes, kGlobalGradNormIn)                                       \
  /* LAMB in two passes for sharded tensors: pass 1 returns the local sums of squares, the    \
     caller all-reduces them, pass 2 applies the trust ratios of the full tensors' sums. */   \
  OP(lamb_moments, lamb, LambHyper, Passes, kGlobalGradNormIn | kNormSumsOut)                 \
  OP(lamb_apply, lamb, LambHyper, Passes, kGlobalGradNormIn | kNormSumsIn | kNormSumsRequired) \
  OP(lars, lars, LarsHyper, Passes, kNormSumsIn)

// FUSEDOPT_FOR_EACH_ELEMENTWISE_OP expands FUSEDOPT_ELEMENTWISE_EACH(entry, Hyper), which the
// user defines first, for every Elementwise op (what the generic engines instantiate).
#define FUSEDOPT_ELEMENTWISE_SELECT_Elementwise(entry, Hyper) FUSEDOPT_ELEMENTWISE_EACH(entry, Hyper)
#define FUSEDOPT_ELEMENTWISE_SELECT_Passes(entry, Hyper)
#define FUSEDOPT_ELEMENTWISE_SELECT(entry, optimizer, Hyper, kind, extras) \
  FUSEDOPT_ELEMENTWISE_SELECT_##kind(entry, Hyper)
#define FUSEDOPT_FOR_EACH_ELEMENTWISE_OP FUSEDOPT_OPTIMIZER_OPS(FUSEDOPT_ELEMENTWISE_SELECT)

// Declares every op's backend entry point in the enclosing namespace (each backend's API header):
//   void adam(const ParamLists&, const AdamHyper&, const StepInputs&);  ...
#define FUSEDOPT_ENTRY_POINT(entry, optimizer, Hyper, kind, extras) \
  void entry(const ParamLists& lists, const Hyper& hyper, const StepInputs& in);
#define FUSEDOPT_DECLARE_ENTRY_POINTS FUSEDOPT_OPTIMIZER_OPS(FUSEDOPT_ENTRY_POINT)

namespace fusedopt {

enum OpExtra : unsigned {
  kGlobalGradNormIn = 1u,  // Tensor? global_grad_norm: norm of all unscaled grads (0-d fp32)
  kNormSumsIn = 2u,        // Tensor? norm_sums: full tensors' sums of squares (float64 [2n])
  kNormSumsRequired = 4u,  // norm_sums must be given
  kNormSumsOut = 8u,       // returns the local sums of squares (float64 [2n])
};

// The hyper-parameter structs the math (fusedopt/math/<name>.h) and the backends take.
#define FUSEDOPT_DECLARE_HYPER_FIELD(type, name, default_value) type name = default_value;
#define FUSEDOPT_DECLARE_HYPER_STRUCT(name, Hyper) \
  struct Hyper {                                   \
    FUSEDOPT_HYPER_##name(FUSEDOPT_DECLARE_HYPER_FIELD) \
  };
FUSEDOPT_OPTIMIZERS(FUSEDOPT_DECLARE_HYPER_STRUCT)
#undef FUSEDOPT_DECLARE_HYPER_STRUCT
#undef FUSEDOPT_DECLARE_HYPER_FIELD

// ---- the declaration as constexpr data (op schemas, state counts of the engines) -------------
struct HyperField {
  const char* name;
  bool is_flag;  // bool (schema `bool`), else double (schema `float`)
  double default_value;
};
struct StateDecl {
  const char* key;   // state name; the op's list argument is key + "s"
  const char* when;  // hyper-parameter that must be nonzero for it to exist ("" = always)
};

template <class Hyper>
struct Declared;

constexpr bool same_name(const char* a, const char* b) {
  while (*a != '\0' && *a == *b) ++a, ++b;
  return *a == *b;
}

#define FUSEDOPT_FIELD_DECL(type, name, default_value) \
  HyperField{#name, std::is_same<type, bool>::value, static_cast<double>(default_value)},
#define FUSEDOPT_STATE_DECL(key, when) StateDecl{#key, #when},
#define FUSEDOPT_FIELD_FROM(type, name, default_value) h.name = static_cast<type>(values[k++]);
#define FUSEDOPT_DECLARED(optimizer, Hyper)                                                   \
  template <>                                                                                 \
  struct Declared<Hyper> {                                                                    \
    static constexpr const char* name = #optimizer;                                           \
    static constexpr HyperField fields[] = {FUSEDOPT_HYPER_##optimizer(FUSEDOPT_FIELD_DECL)};  \
    static constexpr StateDecl states[] = {FUSEDOPT_STATES_##optimizer(FUSEDOPT_STATE_DECL)};  \
    static constexpr int kFields = sizeof(fields) / sizeof(fields[0]);                        \
    static constexpr int kStates = sizeof(states) / sizeof(states[0]);                        \
    /* Index in fields of the hyper-parameter `field`, or -1. */                              \
    static constexpr int field_index(const char* field) {                                     \
      for (int i = 0; i < kFields; ++i)                                                       \
        if (same_name(fields[i].name, field)) return i;                                       \
      return -1;                                                                              \
    }                                                                                         \
    /* States that exist whatever the hyper-parameters (the fewest a call keeps). */          \
    static constexpr int min_states() {                                                       \
      int n = 0;                                                                              \
      for (const StateDecl& s : states) n += s.when[0] == '\0' ? 1 : 0;                       \
      return n;                                                                               \
    }                                                                                         \
    static constexpr bool well_formed() {                                                     \
      for (const StateDecl& s : states)                                                       \
        if (s.when[0] != '\0' && field_index(s.when) < 0) return false;                       \
      return kStates <= kMaxStates;                                                           \
    }                                                                                         \
    /* The struct from its fields' values in declaration order. */                           \
    static Hyper make(const double* values) {                                                 \
      Hyper h;                                                                                \
      int k = 0;                                                                              \
      FUSEDOPT_HYPER_##optimizer(FUSEDOPT_FIELD_FROM) return h;                               \
    }                                                                                         \
  };                                                                                          \
  static_assert(Declared<Hyper>::well_formed(),                                               \
                #optimizer ": a state's `when` names no hyper-parameter, or too many states");
FUSEDOPT_OPTIMIZERS(FUSEDOPT_DECLARED)
#undef FUSEDOPT_DECLARED
#undef FUSEDOPT_FIELD_FROM
#undef FUSEDOPT_STATE_DECL
#undef FUSEDOPT_FIELD_DECL

}  // namespace fusedopt
