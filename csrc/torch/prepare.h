// Validation and conversion of torch tensor lists into the plain C++ API (fusedopt::ParamLists).
// Every error names the op, the argument (with its list index) and the fix.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

#include "fusedopt/tensor_lists.h"

namespace fusedopt {
namespace torch_glue {

DType to_dtype(at::ScalarType t);

struct NamedList {
  const char* name;
  at::TensorList tensors;
};

// Owns everything a ParamLists points into. Tensors whose memory layout differs from their
// param's (non-contiguous, or param and grad with different strides) are processed through
// contiguous copies, written back by finish(). Callers must call finish() after the backend ran.
class PreparedLists {
 public:
  // params/grads/master/steps as in ParamLists; states must each be empty or match params.
  // required_states: how many leading entries of `states` must be non-empty.
  PreparedLists(const char* op, at::TensorList params, at::TensorList grads,
                std::vector<NamedList> states, at::TensorList master, at::TensorList steps);

  const ParamLists& lists() const { return lists_; }
  at::Device device() const { return device_; }
  void finish();

 private:
  at::Tensor dense(const at::Tensor& t, const at::Tensor& layout, bool mutated);

  ParamLists lists_;
  at::Device device_{at::kCPU};
  std::vector<int64_t> numel_;
  std::vector<void*> param_ptrs_;
  std::vector<const void*> grad_ptrs_;
  std::vector<float*> master_ptrs_;
  std::vector<void*> state_ptrs_[kMaxStates];
  std::vector<float*> step_ptrs_;
  std::vector<at::Tensor> keep_alive_;
  std::vector<std::pair<at::Tensor, at::Tensor>> write_back_;  // (original, dense work copy)
};

// Checks an optional 0-d float32 scalar tensor (lr_tensor, grad_scale, found_inf, ...).
void check_scalar_tensor(const char* op, const char* name, const c10::optional<at::Tensor>& t,
                         at::Device device, bool allow_cpu_for_any_device);

// Validates a list for the norm ops; returns its dtype (all tensors must share it).
DType check_norm_inputs(const char* op, at::TensorList tensors);

}  // namespace torch_glue
}  // namespace fusedopt
