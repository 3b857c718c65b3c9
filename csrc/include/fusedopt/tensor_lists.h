// The plain C++ view of one optimizer call: raw pointers and sizes, no torch types.
// The registration layer (csrc/torch) fills it after validation; both backends consume it.
#pragma once

#include <cstdint>

#include "fusedopt/config.h"

namespace fusedopt {

constexpr int kMaxStates = 3;

struct ParamLists {
  int64_t count = 0;                  // number of tensors
  const int64_t* numel = nullptr;     // [count] elements per tensor (all lists agree)

  void* const* param = nullptr;       // [count] model params (storage dtype param_dtype)
  DType param_dtype = DType::Float32;
  const void* const* grad = nullptr;  // [count] grads, same dtype as param, contiguous
  // Optional fp32 master copies of low-precision params: when set, the math updates the master
  // and the param receives its rounded value.
  float* const* master = nullptr;

  // Optimizer state lists (exp_avg, exp_avg_sq, ... in the optimizer's documented order).
  // Dtype: float64 for float64 params, float32 otherwise.
  void* const* state[kMaxStates] = {nullptr, nullptr, nullptr};
  int num_states = 0;

  // Per-tensor step counters (0-d float32 tensors): advanced once per step by the engine
  // (advance_step below), then read by the updates.
  float* const* step = nullptr;

  // Compute type is double for float64 params, float for the rest.
  bool compute_in_double() const { return param_dtype == DType::Float64; }
};

// ---- the step counters (ParamLists::step): one owner ---------------------------------------
// Every op that starts a step (all but lamb_apply_, the second half of a step lamb_moments_
// started) advances each tensor's counter by one, unless the step is skipped (found_inf), and
// its updates read the advanced value. Ops never write counters: the engines do, through
// advance_step alone. The CPU driver advances them before the passes (begin_step). The CUDA
// engine advances them in the plan's step launch, or, in plans with a cleanup launch before the
// update (LAMB, LARS), in that cleanup (no extra launch); a pass that runs before it reads
// step_after_advance(*step).
FUSEDOPT_HD inline void advance_step(float* step) { *step += 1.0f; }
FUSEDOPT_HD inline float step_after_advance(float step) { return step + 1.0f; }

}  // namespace fusedopt
