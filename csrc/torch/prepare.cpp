#include "prepare.h"

#include <c10/util/Exception.h>

#include <sstream>

namespace fusedopt {
namespace torch_glue {
namespace {

std::string shape_str(const at::Tensor& t) {
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

bool supported_float(at::ScalarType t) {
  return t == at::kFloat || t == at::kHalf || t == at::kBFloat16 || t == at::kDouble;
}

void check_kind(const char* op, const char* name, size_t i, const at::Tensor& t) {
  TORCH_CHECK(t.defined(), op, ": ", name, "[", i, "] is undefined (None); pass only tensors "
              "whose gradient exists (fusedopt optimizers skip params with grad None)");
  TORCH_CHECK(t.layout() == at::kStrided, op, ": ", name, "[", i, "] has layout ", t.layout(),
              "; sparse gradients/params are not supported (use dense gradients, e.g. "
              "nn.Embedding(sparse=False), or torch.optim.SparseAdam)");
  TORCH_CHECK(!t.is_complex(), op, ": ", name, "[", i, "] is complex (", t.scalar_type(),
              "); fusedopt supports real floating point only: optimize torch.view_as_real(p) "
              "instead");
  TORCH_CHECK(supported_float(t.scalar_type()), op, ": ", name, "[", i, "] has dtype ",
              t.scalar_type(), "; supported dtypes are float32, float16, bfloat16 and float64 "
              "(integer tensors cannot be optimized: exclude them from the param list)");
}

}  // namespace

DType to_dtype(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return DType::Float32;
    case at::kHalf: return DType::Float16;
    case at::kBFloat16: return DType::BFloat16;
    case at::kDouble: return DType::Float64;
    default: TORCH_CHECK(false, "fusedopt: unsupported dtype ", t);
  }
}

at::Tensor PreparedLists::dense(const at::Tensor& t, const at::Tensor& layout, bool mutated) {
  // Usable in place when its memory order is the param's and that order is dense. Otherwise
  // work on a copy laid out exactly like the (dense) param, so that elements pair up by
  // logical index: pairing by memory order is the bug torch 2.13's CPU fused AdamW has.
  if (t.is_contiguous() && layout.is_contiguous()) return t;
  const bool layout_dense = layout.is_non_overlapping_and_dense();
  if (layout_dense && t.strides() == layout.strides()) return t;
  at::Tensor work = layout_dense
                        ? at::empty_strided(layout.sizes(), layout.strides(), t.options()).copy_(t)
                        : t.contiguous();
  if (mutated) write_back_.emplace_back(t, work);
  keep_alive_.push_back(work);
  return work;
}

PreparedLists::PreparedLists(const char* op, at::TensorList params, at::TensorList grads,
                             std::vector<NamedList> states, at::TensorList master,
                             at::TensorList steps) {
  const size_t n = params.size();
  TORCH_CHECK(grads.size() == n, op, ": got ", n, " params but ", grads.size(),
              " grads; pass one gradient per param");
  TORCH_CHECK(steps.size() == n, op, ": got ", n, " params but ", steps.size(),
              " steps; pass one 0-d float32 step tensor per param");
  TORCH_CHECK(master.empty() || master.size() == n, op, ": got ", n, " params but ",
              master.size(), " master_params; pass none or one per param");
  TORCH_CHECK(states.size() <= static_cast<size_t>(kMaxStates), op, ": too many state lists");
  for (const auto& s : states)
    TORCH_CHECK(s.tensors.size() == n, op, ": got ", n, " params but ", s.tensors.size(), " ",
                s.name, "; pass one state tensor per param");

  lists_.count = static_cast<int64_t>(n);
  lists_.num_states = static_cast<int>(states.size());
  if (n == 0) return;

  const at::Tensor& p0 = params[0];
  check_kind(op, "params", 0, p0);
  device_ = p0.device();
  const at::ScalarType pdtype = p0.scalar_type();
  const at::ScalarType sdtype = pdtype == at::kDouble ? at::kDouble : at::kFloat;
  lists_.param_dtype = to_dtype(pdtype);
  TORCH_CHECK(master.empty() || (pdtype == at::kHalf || pdtype == at::kBFloat16), op,
              ": master_params were given for ", pdtype, " params; fp32 master weights are only "
              "for float16/bfloat16 params (pass an empty list)");

  numel_.resize(n);
  param_ptrs_.resize(n);
  grad_ptrs_.resize(n);
  step_ptrs_.resize(n);
  if (!master.empty()) master_ptrs_.resize(n);
  for (size_t k = 0; k < states.size(); ++k) state_ptrs_[k].resize(n);

  for (size_t i = 0; i < n; ++i) {
    const at::Tensor& p = params[i];
    const at::Tensor& g = grads[i];
    check_kind(op, "params", i, p);
    check_kind(op, "grads", i, g);
    TORCH_CHECK(p.device() == device_, op, ": params[", i, "] is on ", p.device(),
                " but params[0] is on ", device_, "; put all params of one call on one device "
                "(fusedopt optimizers group params by device automatically)");
    TORCH_CHECK(p.scalar_type() == pdtype, op, ": params[", i, "] has dtype ", p.scalar_type(),
                " but params[0] has ", pdtype, "; call once per dtype (fusedopt optimizers "
                "group params by dtype automatically)");
    TORCH_CHECK(g.device() == device_, op, ": grads[", i, "] is on ", g.device(),
                " but its param is on ", device_, "; move the gradient to the param's device");
    TORCH_CHECK(g.scalar_type() == pdtype, op, ": grads[", i, "] has dtype ", g.scalar_type(),
                " but params[", i, "] has ", pdtype, "; gradients must have their param's dtype");
    TORCH_CHECK(g.sizes() == p.sizes(), op, ": grads[", i, "] has shape ", shape_str(g),
                " but params[", i, "] has shape ", shape_str(p),
                "; each gradient must have its param's shape");
    numel_[i] = p.numel();

    at::Tensor pw = dense(p, p, /*mutated=*/true);
    param_ptrs_[i] = pw.data_ptr();
    grad_ptrs_[i] = dense(g, pw, /*mutated=*/false).data_ptr();

    for (size_t k = 0; k < states.size(); ++k) {
      const at::Tensor& s = states[k].tensors[i];
      TORCH_CHECK(s.defined() && s.layout() == at::kStrided, op, ": ", states[k].name, "[", i,
                  "] is undefined or not strided; pass a dense state tensor");
      TORCH_CHECK(s.device() == device_, op, ": ", states[k].name, "[", i, "] is on ",
                  s.device(), " but its param is on ", device_,
                  "; move the optimizer state to the param's device");
      TORCH_CHECK(s.scalar_type() == sdtype, op, ": ", states[k].name, "[", i, "] has dtype ",
                  s.scalar_type(), " but ", pdtype, " params need ", sdtype,
                  " state (states of float16/bfloat16 params are kept in float32)");
      TORCH_CHECK(s.sizes() == p.sizes(), op, ": ", states[k].name, "[", i, "] has shape ",
                  shape_str(s), " but params[", i, "] has shape ", shape_str(p),
                  "; state tensors must have their param's shape");
      state_ptrs_[k][i] = dense(s, pw, /*mutated=*/true).data_ptr();
    }
    if (!master.empty()) {
      const at::Tensor& m = master[i];
      TORCH_CHECK(m.defined() && m.layout() == at::kStrided && m.device() == device_ &&
                      m.scalar_type() == at::kFloat && m.sizes() == p.sizes(),
                  op, ": master_params[", i, "] must be a float32 tensor with the shape and "
                  "device of params[", i, "] (got ", m.scalar_type(), " ", shape_str(m), " on ",
                  m.device(), ")");
      master_ptrs_[i] = dense(m, pw, /*mutated=*/true).data_ptr<float>();
    }
    const at::Tensor& st = steps[i];
    TORCH_CHECK(st.defined() && st.numel() == 1 && st.scalar_type() == at::kFloat, op,
                ": steps[", i, "] must be a 1-element float32 tensor (got ",
                st.defined() ? c10::toString(st.scalar_type()) : "None", " with ",
                st.defined() ? st.numel() : 0, " elements); fusedopt keeps state['step'] as a "
                "0-d float32 tensor");
    TORCH_CHECK(st.device() == device_, op, ": steps[", i, "] is on ", st.device(),
                " but its param is on ", device_, "; keep step tensors on the param's device");
    step_ptrs_[i] = st.data_ptr<float>();
  }

  lists_.numel = numel_.data();
  lists_.param = param_ptrs_.data();
  lists_.grad = grad_ptrs_.data();
  lists_.master = master.empty() ? nullptr : master_ptrs_.data();
  for (size_t k = 0; k < states.size(); ++k) lists_.state[k] = state_ptrs_[k].data();
  lists_.step = step_ptrs_.data();
}

void PreparedLists::finish() {
  for (auto& [original, work] : write_back_) original.copy_(work);
  write_back_.clear();
}

void check_scalar_tensor(const char* op, const char* name, const c10::optional<at::Tensor>& t,
                         at::Device device, bool allow_cpu_for_any_device) {
  if (!t.has_value() || !t->defined()) return;
  TORCH_CHECK(t->numel() == 1 && t->scalar_type() == at::kFloat, op, ": ", name,
              " must be a 1-element float32 tensor (got ", t->scalar_type(), " with ",
              t->numel(), " elements); convert it with .float()");
  TORCH_CHECK(t->device() == device || (allow_cpu_for_any_device && t->device().is_cpu()), op,
              ": ", name, " is on ", t->device(), " but the params are on ", device,
              "; move it to the params' device");
}

DType check_norm_inputs(const char* op, at::TensorList tensors) {
  if (tensors.empty()) return DType::Float32;
  for (size_t i = 0; i < tensors.size(); ++i) {
    check_kind(op, "tensors", i, tensors[i]);
    TORCH_CHECK(tensors[i].scalar_type() == tensors[0].scalar_type(), op, ": tensors[", i,
                "] has dtype ", tensors[i].scalar_type(), " but tensors[0] has ",
                tensors[0].scalar_type(), "; call once per dtype");
    TORCH_CHECK(tensors[i].device() == tensors[0].device(), op, ": tensors[", i, "] is on ",
                tensors[i].device(), " but tensors[0] is on ", tensors[0].device(),
                "; call once per device");
  }
  return to_dtype(tensors[0].scalar_type());
}

}  // namespace torch_glue
}  // namespace fusedopt
