// Validation and conversion of torch tensor lists into the plain C++ API (fusedopt::ParamLists),
// on the LibTorch stable ABI (torch/csrc/stable; no at::, no c10::). Every error names the op,
// the argument (with its list index) and the fix.
#pragma once

#include <torch/csrc/stable/tensor.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "check.h"
#include "fusedopt/tensor_lists.h"

namespace fusedopt {
namespace torch_glue {


using Tensor = torch::stable::Tensor;
using TensorList = std::vector<Tensor>;
using OptionalTensor = std::optional<Tensor>;
using ScalarType = torch::headeronly::ScalarType;
using Device = torch::stable::Device;

DType to_dtype(ScalarType t);
std::string dtype_name(ScalarType t);
std::string device_name(const Device& d);

struct Facts;  // what the checks read of one tensor (prepare.cpp)

struct NamedList {
  const char* name;
  const TensorList* tensors;
};

// Owns everything a ParamLists points into. Tensors whose memory layout differs from their
// param's (non-contiguous, or param and grad with different strides) are processed through
// contiguous copies, written back by finish(). Callers must call finish() after the backend ran.
class PreparedLists {
 public:
  // params/grads/master/steps as in ParamLists; states must each match params.
  PreparedLists(const char* op, const TensorList& params, const TensorList& grads,
                std::vector<NamedList> states, const TensorList& master,
                const TensorList& steps);

  const ParamLists& lists() const { return lists_; }
  const Device& device() const { return device_; }
  void finish();

 private:
  // t's data as the kernels may use it: in place, or a work copy laid out like `layout`.
  void* dense(const Tensor& t, const Facts& tf, const Tensor& layout,
              const Facts& lf, bool mutated);

  ParamLists lists_;
  Device device_{torch::headeronly::DeviceType::CPU};
  std::vector<int64_t> numel_;
  std::vector<void*> param_ptrs_;
  std::vector<const void*> grad_ptrs_;
  std::vector<float*> master_ptrs_;
  std::vector<void*> state_ptrs_[kMaxStates];
  std::vector<float*> step_ptrs_;
  std::vector<Tensor> keep_alive_;
  std::vector<std::pair<Tensor, Tensor>> write_back_;  // (original, dense work copy)
};

// Checks an optional 1-element float32 scalar tensor (lr_tensor, grad_scale, found_inf, ...).
void check_scalar_tensor(const char* op, const char* name, const OptionalTensor& t,
                         const Device& device);

// Validates a list for the norm ops; returns its dtype (all tensors must share it).
DType check_norm_inputs(const char* op, const TensorList& tensors);

// A dense copy of t (contiguous), or t itself when it already is one block.
Tensor dense_input(const Tensor& t);

// New tensors of `dtype` on `device`: zeros of shape [n] (n < 0: a 0-d tensor).
Tensor zeros(int64_t n, ScalarType dtype, const Device& device);

}  // namespace torch_glue
}  // namespace fusedopt
