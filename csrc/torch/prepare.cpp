#include "prepare.h"

#include <torch/csrc/inductor/aoti_torch/c/shim.h>
#include <torch/csrc/stable/ops.h>

#include <algorithm>
#include <sstream>

namespace fusedopt {
namespace torch_glue {
namespace {

using torch::headeronly::DeviceType;
using torch::headeronly::Layout;

std::string shape_str(const Tensor& t) {
  std::ostringstream s;
  s << "[";
  const auto sizes = t.sizes();
  for (size_t i = 0; i < sizes.size(); ++i) s << (i ? ", " : "") << sizes[i];
  s << "]";
  return s.str();
}

bool same_sizes(const Tensor& a, const Tensor& b) {
  const auto x = a.sizes(), y = b.sizes();
  return std::equal(x.begin(), x.end(), y.begin(), y.end());
}

bool same_strides(const Tensor& a, const Tensor& b) {
  const auto x = a.strides(), y = b.strides();
  return std::equal(x.begin(), x.end(), y.begin(), y.end());
}

bool supported_float(ScalarType t) {
  return t == ScalarType::Float || t == ScalarType::Half || t == ScalarType::BFloat16 ||
         t == ScalarType::Double;
}

bool is_complex(ScalarType t) {
  return t == ScalarType::ComplexHalf || t == ScalarType::ComplexFloat ||
         t == ScalarType::ComplexDouble;
}

// Tensor::layout() is newer than torch 2.10's stable API: the C shim answers instead.
int32_t layout_code(const Tensor& t) {
  int32_t code = -1;
  FUSEDOPT_CHECK(aoti_torch_get_layout(t.get(), &code) == AOTI_TORCH_SUCCESS,
                 "fusedopt: cannot query a tensor's layout");
  return code;
}

bool is_strided(const Tensor& t) { return layout_code(t) == aoti_torch_layout_strided(); }

std::string layout_name(const Tensor& t) {
  const int32_t code = layout_code(t);
  if (code == aoti_torch_layout_sparse_coo()) return "torch.sparse_coo";
  if (code == aoti_torch_layout_sparse_csr()) return "torch.sparse_csr";
  if (code == aoti_torch_layout_sparse_csc()) return "torch.sparse_csc";
  if (code == aoti_torch_layout_sparse_bsr()) return "torch.sparse_bsr";
  if (code == aoti_torch_layout_sparse_bsc()) return "torch.sparse_bsc";
  if (code == aoti_torch_layout__mkldnn()) return "torch._mkldnn";
  if (code == aoti_torch_layout_jagged()) return "torch.jagged";
  return "a non-strided layout";
}

void check_kind(const char* op, const char* name, size_t i, const Tensor& t) {
  FUSEDOPT_CHECK_AT(i, t.defined(), op, ": ", name, "[", i, "] is undefined (None); pass only tensors "
                  "whose gradient exists (fusedopt optimizers skip params with grad None)");
  FUSEDOPT_CHECK_AT(i, is_strided(t), op, ": ", name, "[", i, "] has layout ", layout_name(t),
                    "; sparse gradients/params are not supported (use "
                  "dense gradients, e.g. nn.Embedding(sparse=False), or torch.optim.SparseAdam)");
  FUSEDOPT_CHECK_AT(i, !is_complex(t.scalar_type()), op, ": ", name, "[", i, "] is complex (",
                  dtype_name(t.scalar_type()), "); fusedopt supports real floating point only: "
                  "optimize torch.view_as_real(p) instead");
  FUSEDOPT_CHECK_AT(i, supported_float(t.scalar_type()), op, ": ", name, "[", i, "] has dtype ",
                  dtype_name(t.scalar_type()), "; supported dtypes are float32, float16, "
                  "bfloat16 and float64 (integer tensors cannot be optimized: exclude them from "
                  "the param list)");
}

// An uninitialized tensor with `layout`'s sizes and strides and `like`'s dtype and device.
Tensor empty_strided_like(const Tensor& layout, const Tensor& like) {
  int32_t dtype = 0, device_type = 0, device_index = 0;
  FUSEDOPT_CHECK(aoti_torch_get_dtype(like.get(), &dtype) == AOTI_TORCH_SUCCESS, "dtype");
  FUSEDOPT_CHECK(aoti_torch_get_device_type(like.get(), &device_type) == AOTI_TORCH_SUCCESS,
                  "device type");
  FUSEDOPT_CHECK(aoti_torch_get_device_index(like.get(), &device_index) == AOTI_TORCH_SUCCESS,
                  "device index");
  const auto sizes = layout.sizes(), strides = layout.strides();
  AtenTensorHandle out = nullptr;
  FUSEDOPT_CHECK(aoti_torch_empty_strided(static_cast<int64_t>(sizes.size()), sizes.data(),
                                           strides.data(), dtype, device_type, device_index,
                                           &out) == AOTI_TORCH_SUCCESS,
                  "fusedopt: could not allocate a work copy of ", shape_str(layout));
  return Tensor(out);
}

}  // namespace

std::string dtype_name(ScalarType t) {
  switch (t) {
    case ScalarType::Float: return "torch.float32";
    case ScalarType::Double: return "torch.float64";
    case ScalarType::Half: return "torch.float16";
    case ScalarType::BFloat16: return "torch.bfloat16";
    case ScalarType::ComplexHalf: return "torch.complex32";
    case ScalarType::ComplexFloat: return "torch.complex64";
    case ScalarType::ComplexDouble: return "torch.complex128";
    case ScalarType::Bool: return "torch.bool";
    case ScalarType::Byte: return "torch.uint8";
    case ScalarType::Char: return "torch.int8";
    case ScalarType::Short: return "torch.int16";
    case ScalarType::Int: return "torch.int32";
    case ScalarType::Long: return "torch.int64";
    default: return "dtype code " + std::to_string(static_cast<int>(t));
  }
}

std::string device_name(const Device& d) {
  std::string s = d.type() == DeviceType::CPU    ? "cpu"
                  : d.type() == DeviceType::CUDA ? "cuda"
                  : d.type() == DeviceType::Meta ? "meta"
                                                 : "device type " +
                                                       std::to_string(static_cast<int>(d.type()));
  if (d.has_index() && d.type() != DeviceType::CPU) s += ":" + std::to_string(d.index());
  return s;
}

DType to_dtype(ScalarType t) {
  switch (t) {
    case ScalarType::Float: return DType::Float32;
    case ScalarType::Half: return DType::Float16;
    case ScalarType::BFloat16: return DType::BFloat16;
    case ScalarType::Double: return DType::Float64;
    default: FUSEDOPT_CHECK(false, "fusedopt: unsupported dtype ", dtype_name(t));
  }
  return DType::Float32;
}

bool is_non_overlapping_and_dense(const Tensor& t) {
  if (t.numel() == 0) return true;
  const auto sizes = t.sizes(), strides = t.strides();
  std::vector<std::pair<int64_t, int64_t>> dims;  // (stride, size) of dimensions longer than 1
  for (size_t k = 0; k < sizes.size(); ++k)
    if (sizes[k] > 1) dims.emplace_back(strides[k], sizes[k]);
  std::sort(dims.begin(), dims.end());  // innermost first
  int64_t expected = 1;
  for (const auto& [stride, size] : dims) {
    if (stride != expected) return false;
    expected *= size;
  }
  return true;
}

Tensor dense_input(const Tensor& t) {
  return is_non_overlapping_and_dense(t) ? t : torch::stable::contiguous(t);
}

Tensor zeros(int64_t n, ScalarType dtype, const Device& device) {
  std::vector<int64_t> shape;
  if (n >= 0) shape.push_back(n);
  Tensor out = torch::stable::empty(shape, dtype, Layout::Strided, device);
  torch::stable::zero_(out);
  return out;
}

Tensor PreparedLists::dense(const Tensor& t, const Tensor& layout, bool mutated) {
  // Usable in place when its memory order is the param's and that order is dense. Otherwise
  // work on a copy laid out exactly like the (dense) param, so that elements pair up by
  // logical index: pairing by memory order is the bug torch 2.13's CPU fused AdamW has.
  if (t.is_contiguous() && layout.is_contiguous()) return t;
  const bool layout_dense = is_non_overlapping_and_dense(layout);
  if (layout_dense && same_strides(t, layout)) return t;
  Tensor work = layout_dense ? empty_strided_like(layout, t) : torch::stable::contiguous(t);
  if (layout_dense) torch::stable::copy_(work, t);
  if (mutated) write_back_.emplace_back(t, work);
  keep_alive_.push_back(work);
  return work;
}

PreparedLists::PreparedLists(const char* op, const TensorList& params, const TensorList& grads,
                             std::vector<NamedList> states, const TensorList& master,
                             const TensorList& steps) {
  const size_t n = params.size();
  FUSEDOPT_CHECK(grads.size() == n, op, ": got ", n, " params but ", grads.size(),
                  " grads; pass one gradient per param");
  FUSEDOPT_CHECK(steps.size() == n, op, ": got ", n, " params but ", steps.size(),
                  " steps; pass one 0-d float32 step tensor per param");
  FUSEDOPT_CHECK(master.empty() || master.size() == n, op, ": got ", n, " params but ",
                  master.size(), " master_params; pass none or one per param");
  FUSEDOPT_CHECK(states.size() <= static_cast<size_t>(kMaxStates), op, ": too many state lists");
  for (const auto& s : states)
    FUSEDOPT_CHECK(s.tensors->size() == n, op, ": got ", n, " params but ", s.tensors->size(),
                    " ", s.name, "; pass one state tensor per param");

  lists_.count = static_cast<int64_t>(n);
  lists_.num_states = static_cast<int>(states.size());
  if (n == 0) return;

  const Tensor& p0 = params[0];
  check_kind(op, "params", 0, p0);
  device_ = p0.device();
  const ScalarType pdtype = p0.scalar_type();
  const ScalarType sdtype = pdtype == ScalarType::Double ? ScalarType::Double : ScalarType::Float;
  lists_.param_dtype = to_dtype(pdtype);
  FUSEDOPT_CHECK(master.empty() || (pdtype == ScalarType::Half || pdtype == ScalarType::BFloat16),
                  op, ": master_params were given for ", dtype_name(pdtype), " params; fp32 "
                  "master weights are only for float16/bfloat16 params (pass an empty list)");

  numel_.resize(n);
  param_ptrs_.resize(n);
  grad_ptrs_.resize(n);
  step_ptrs_.resize(n);
  if (!master.empty()) master_ptrs_.resize(n);
  for (size_t k = 0; k < states.size(); ++k) state_ptrs_[k].resize(n);
  const std::string dev = device_name(device_);

  for (size_t i = 0; i < n; ++i) {
    const Tensor& p = params[i];
    const Tensor& g = grads[i];
    check_kind(op, "params", i, p);
    check_kind(op, "grads", i, g);
    FUSEDOPT_CHECK_AT(i, p.device() == device_, op, ": params[", i, "] is on ",
                    device_name(p.device()), " but params[0] is on ", dev, "; put all params of "
                    "one call on one device (fusedopt optimizers group params by device "
                    "automatically)");
    FUSEDOPT_CHECK_AT(i, p.scalar_type() == pdtype, op, ": params[", i, "] has dtype ",
                    dtype_name(p.scalar_type()), " but params[0] has ", dtype_name(pdtype),
                    "; call once per dtype (fusedopt optimizers group params by dtype "
                    "automatically)");
    FUSEDOPT_CHECK_AT(i, g.device() == device_, op, ": grads[", i, "] is on ", device_name(g.device()),
                    " but its param is on ", dev, "; move the gradient to the param's device");
    FUSEDOPT_CHECK_AT(i, g.scalar_type() == pdtype, op, ": grads[", i, "] has dtype ",
                    dtype_name(g.scalar_type()), " but params[", i, "] has ", dtype_name(pdtype),
                    "; gradients must have their param's dtype");
    FUSEDOPT_CHECK_AT(i, same_sizes(g, p), op, ": grads[", i, "] has shape ", shape_str(g),
                    " but params[", i, "] has shape ", shape_str(p),
                    "; each gradient must have its param's shape");
    numel_[i] = p.numel();

    Tensor pw = dense(p, p, /*mutated=*/true);
    param_ptrs_[i] = pw.data_ptr();
    grad_ptrs_[i] = dense(g, pw, /*mutated=*/false).data_ptr();

    for (size_t k = 0; k < states.size(); ++k) {
      const Tensor& s = (*states[k].tensors)[i];
      FUSEDOPT_CHECK_AT(i, s.defined() && is_strided(s), op, ": ", states[k].name,
                      "[", i, "] is undefined or not strided; pass a dense state tensor");
      FUSEDOPT_CHECK_AT(i, s.device() == device_, op, ": ", states[k].name, "[", i, "] is on ",
                      device_name(s.device()), " but its param is on ", dev,
                      "; move the optimizer state to the param's device");
      FUSEDOPT_CHECK_AT(i, s.scalar_type() == sdtype, op, ": ", states[k].name, "[", i,
                      "] has dtype ", dtype_name(s.scalar_type()), " but ", dtype_name(pdtype),
                      " params need ", dtype_name(sdtype), " state (states of float16/bfloat16 "
                      "params are kept in float32)");
      FUSEDOPT_CHECK_AT(i, same_sizes(s, p), op, ": ", states[k].name, "[", i, "] has shape ",
                      shape_str(s), " but params[", i, "] has shape ", shape_str(p),
                      "; state tensors must have their param's shape");
      state_ptrs_[k][i] = dense(s, pw, /*mutated=*/true).data_ptr();
    }
    if (!master.empty()) {
      const Tensor& m = master[i];
      FUSEDOPT_CHECK_AT(i, m.defined() && is_strided(m) && m.device() == device_ &&
                          m.scalar_type() == ScalarType::Float && same_sizes(m, p),
                      op, ": master_params[", i, "] must be a float32 tensor with the shape and "
                      "device of params[", i, "] (got ",
                      m.defined() ? dtype_name(m.scalar_type()) : "None", " ",
                      m.defined() ? shape_str(m) : "", " on ",
                      m.defined() ? device_name(m.device()) : "-", ")");
      master_ptrs_[i] = static_cast<float*>(dense(m, pw, /*mutated=*/true).data_ptr());
    }
    const Tensor& st = steps[i];
    FUSEDOPT_CHECK_AT(i, st.defined() && st.numel() == 1 && st.scalar_type() == ScalarType::Float, op,
                    ": steps[", i, "] must be a 1-element float32 tensor (got ",
                    st.defined() ? dtype_name(st.scalar_type()) : "None", " with ",
                    st.defined() ? st.numel() : 0, " elements); fusedopt keeps state['step'] as "
                    "a 0-d float32 tensor");
    FUSEDOPT_CHECK_AT(i, st.device() == device_, op, ": steps[", i, "] is on ",
                    device_name(st.device()), " but its param is on ", dev,
                    "; keep step tensors on the param's device");
    step_ptrs_[i] = static_cast<float*>(st.data_ptr());
  }

  lists_.numel = numel_.data();
  lists_.param = param_ptrs_.data();
  lists_.grad = grad_ptrs_.data();
  lists_.master = master.empty() ? nullptr : master_ptrs_.data();
  for (size_t k = 0; k < states.size(); ++k) lists_.state[k] = state_ptrs_[k].data();
  lists_.step = step_ptrs_.data();
}

void PreparedLists::finish() {
  for (auto& [original, work] : write_back_) torch::stable::copy_(original, work);
  write_back_.clear();
}

void check_scalar_tensor(const char* op, const char* name, const OptionalTensor& t,
                         const Device& device) {
  if (!t.has_value() || !t->defined()) return;
  FUSEDOPT_CHECK(t->numel() == 1 && t->scalar_type() == ScalarType::Float, op, ": ", name,
                  " must be a 1-element float32 tensor (got ", dtype_name(t->scalar_type()),
                  " with ", t->numel(), " elements); convert it with .float()");
  FUSEDOPT_CHECK(t->device() == device, op, ": ", name, " is on ", device_name(t->device()),
                  " but the params are on ", device_name(device),
                  "; move it to the params' device");
}

DType check_norm_inputs(const char* op, const TensorList& tensors) {
  if (tensors.empty()) return DType::Float32;
  for (size_t i = 0; i < tensors.size(); ++i) {
    check_kind(op, "tensors", i, tensors[i]);
    FUSEDOPT_CHECK_AT(i, tensors[i].scalar_type() == tensors[0].scalar_type(), op, ": tensors[", i,
                    "] has dtype ", dtype_name(tensors[i].scalar_type()), " but tensors[0] has ",
                    dtype_name(tensors[0].scalar_type()), "; call once per dtype");
    FUSEDOPT_CHECK_AT(i, tensors[i].device() == tensors[0].device(), op, ": tensors[", i, "] is on ",
                    device_name(tensors[i].device()), " but tensors[0] is on ",
                    device_name(tensors[0].device()), "; call once per device");
  }
  return to_dtype(tensors[0].scalar_type());
}

}  // namespace torch_glue
}  // namespace fusedopt
