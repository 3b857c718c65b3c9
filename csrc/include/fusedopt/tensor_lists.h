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

  // Per-tensor step counters (0-d float32 tensors). The backend increments each by one unless
  // the step is skipped (found_inf), then uses the new value.
  float* const* step = nullptr;

  // Compute type is double for float64 params, float for the rest.
  bool compute_in_double() const { return param_dtype == DType::Float64; }
};

}  // namespace fusedopt
