#include "prepare.h"

#include <torch/csrc/inductor/aoti_torch/c/shim.h>
#include <torch/csrc/stable/ops.h>

#include <algorithm>
#include <sstream>

namespace fusedopt {
namespace torch_glue {
// The shim's codes of what the checks compare against, fetched once: mapping a code to a
// ScalarType / Device through the stable headers costs a chain of shim calls per query, which
// on a list of thousands of small tensors was most of an op call's overhead.
struct ShimCodes {
  int32_t f32, f16, bf16, f64, c32, c64, c128, strided;
};
const ShimCodes& codes() {
  static const ShimCodes c = {aoti_torch_dtype_float32(),   aoti_torch_dtype_float16(),
                              aoti_torch_dtype_bfloat16(),  aoti_torch_dtype_float64(),
                              aoti_torch_dtype_complex32(), aoti_torch_dtype_complex64(),
                              aoti_torch_dtype_complex128(), aoti_torch_layout_strided()};
  return c;
}

// What the checks need of one tensor: one shim call per property (messages, on the failure
// path only, ask the Tensor itself).
struct Facts {
  int32_t dtype = -1, device_type = -1, device_index = -1, layout = -1;
  int64_t dim = 0, numel = 0;
  int64_t* sizes = nullptr;
  int64_t* strides = nullptr;

  explicit Facts(const Tensor& t) {
    AtenTensorHandle h = t.get();
    const bool ok = aoti_torch_get_dtype(h, &dtype) == AOTI_TORCH_SUCCESS &&
                    aoti_torch_get_device_type(h, &device_type) == AOTI_TORCH_SUCCESS &&
                    aoti_torch_get_device_index(h, &device_index) == AOTI_TORCH_SUCCESS &&
                    aoti_torch_get_layout(h, &layout) == AOTI_TORCH_SUCCESS &&
                    aoti_torch_get_dim(h, &dim) == AOTI_TORCH_SUCCESS &&
                    aoti_torch_get_numel(h, &numel) == AOTI_TORCH_SUCCESS &&
                    aoti_torch_get_sizes(h, &sizes) == AOTI_TORCH_SUCCESS &&
                    aoti_torch_get_strides(h, &strides) == AOTI_TORCH_SUCCESS;
    FUSEDOPT_CHECK(ok, "fusedopt: cannot query a tensor's properties");
  }
  bool strided() const { return layout == codes().strided; }
  bool complex() const { return dtype == codes().c32 || dtype == codes().c64 || dtype == codes().c128; }
  bool supported_float() const {
    return dtype == codes().f32 || dtype == codes().f16 || dtype == codes().bf16 ||
           dtype == codes().f64;
  }
  bool same_device(const Facts& o) const {
    return device_type == o.device_type && device_index == o.device_index;
  }
  bool same_sizes(const Facts& o) const {
    return dim == o.dim && std::equal(sizes, sizes + dim, o.sizes);
  }
  bool same_strides(const Facts& o) const {
    return dim == o.dim && std::equal(strides, strides + dim, o.strides);
  }
  bool contiguous() const {  // torch's rule: size-1 dimensions may have any stride
    if (numel == 0) return true;
    int64_t expected = 1;
    for (int64_t k = dim - 1; k >= 0; --k) {
      if (sizes[k] == 1) continue;
      if (strides[k] != expected) return false;
      expected *= sizes[k];
    }
    return true;
  }
  bool dense() const {  // one block in some dimension order: no gaps, no overlaps
    if (contiguous()) return true;  // the common case, without sorting
    std::vector<std::pair<int64_t, int64_t>> dims;  // (stride, size), dimensions longer than 1
    for (int64_t k = 0; k < dim; ++k)
      if (sizes[k] > 1) dims.emplace_back(strides[k], sizes[k]);
    std::sort(dims.begin(), dims.end());  // innermost first
    int64_t expected = 1;
    for (const auto& [stride, size] : dims) {
      if (stride != expected) return false;
      expected *= size;
    }
    return true;
  }
};

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

// Tensor::layout() is newer than torch 2.10's stable API: the C shim answers instead.
int32_t layout_code(const Tensor& t) {
  int32_t code = -1;
  FUSEDOPT_CHECK(aoti_torch_get_layout(t.get(), &code) == AOTI_TORCH_SUCCESS,
                 "fusedopt: cannot query a tensor's layout");
  return code;
}

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

void check_kind(const char* op, const char* name, size_t i, const Tensor& t, const Facts& f) {
  FUSEDOPT_CHECK_AT(i, t.defined(), op, ": ", name, "[", i, "] is undefined (None); pass only tensors "
                  "whose gradient exists (fusedopt optimizers skip params with grad None)");
  FUSEDOPT_CHECK_AT(i, f.strided(), op, ": ", name, "[", i, "] has layout ", layout_name(t),
                    "; sparse gradients/params are not supported (use "
                  "dense gradients, e.g. nn.Embedding(sparse=False), or torch.optim.SparseAdam)");
  FUSEDOPT_CHECK_AT(i, !f.complex(), op, ": ", name, "[", i, "] is complex (",
                  dtype_name(t.scalar_type()), "); fusedopt supports real floating point only: "
                  "optimize torch.view_as_real(p) instead");
  FUSEDOPT_CHECK_AT(i, f.supported_float(), op, ": ", name, "[", i, "] has dtype ",
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

Tensor dense_input(const Tensor& t) {
  return Facts(t).dense() ? t : torch::stable::contiguous(t);
}

Tensor zeros(int64_t n, ScalarType dtype, const Device& device) {
  std::vector<int64_t> shape;
  if (n >= 0) shape.push_back(n);
  Tensor out = torch::stable::empty(shape, dtype, Layout::Strided, device);
  torch::stable::zero_(out);
  return out;
}

void* PreparedLists::dense(const Tensor& t, const Facts& tf, const Tensor& layout,
                           const Facts& lf, bool mutated) {
  // Usable in place when its memory order is the param's and that order is dense. Otherwise
  // work on a copy laid out exactly like the (dense) param, so that elements pair up by
  // logical index: pairing by memory order is the bug torch 2.13's CPU fused AdamW has.
  const bool layout_dense = lf.dense();
  if ((tf.contiguous() && lf.contiguous()) || (layout_dense && tf.same_strides(lf)))
    return t.data_ptr();
  Tensor work = layout_dense ? empty_strided_like(layout, t) : torch::stable::contiguous(t);
  if (layout_dense) torch::stable::copy_(work, t);
  if (mutated) write_back_.emplace_back(t, work);
  keep_alive_.push_back(work);
  return work.data_ptr();
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
  const Facts f0(p0);
  check_kind(op, "params", 0, p0, f0);
  device_ = p0.device();
  const ScalarType pdtype = p0.scalar_type();
  const int32_t pcode = f0.dtype;
  const int32_t scode = pcode == codes().f64 ? codes().f64 : codes().f32;  // state dtype
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

  for (size_t i = 0; i < n; ++i) {
    const Tensor& p = params[i];
    const Tensor& g = grads[i];
    const Facts pf(p), gf(g);
    check_kind(op, "params", i, p, pf);
    check_kind(op, "grads", i, g, gf);
    FUSEDOPT_CHECK_AT(i, pf.same_device(f0), op, ": params[", i, "] is on ",
                      device_name(p.device()), " but params[0] is on ", device_name(device_),
                      "; put all params of one call on one device (fusedopt optimizers group "
                      "params by device automatically)");
    FUSEDOPT_CHECK_AT(i, pf.dtype == pcode, op, ": params[", i, "] has dtype ",
                      dtype_name(p.scalar_type()), " but params[0] has ", dtype_name(pdtype),
                      "; call once per dtype (fusedopt optimizers group params by dtype "
                      "automatically)");
    FUSEDOPT_CHECK_AT(i, gf.same_device(f0), op, ": grads[", i, "] is on ",
                      device_name(g.device()), " but its param is on ", device_name(device_),
                      "; move the gradient to the param's device");
    FUSEDOPT_CHECK_AT(i, gf.dtype == pcode, op, ": grads[", i, "] has dtype ",
                      dtype_name(g.scalar_type()), " but params[", i, "] has ",
                      dtype_name(pdtype), "; gradients must have their param's dtype");
    FUSEDOPT_CHECK_AT(i, gf.same_sizes(pf), op, ": grads[", i, "] has shape ", shape_str(g),
                      " but params[", i, "] has shape ", shape_str(p),
                      "; each gradient must have its param's shape");
    numel_[i] = pf.numel;

    // The param's working layout: itself, or its contiguous work copy.
    param_ptrs_[i] = dense(p, pf, p, pf, /*mutated=*/true);
    const bool in_place = param_ptrs_[i] == p.data_ptr();
    const Tensor& pw = in_place ? p : keep_alive_.back();
    const Facts wf = in_place ? pf : Facts(pw);
    grad_ptrs_[i] = dense(g, gf, pw, wf, /*mutated=*/false);

    for (size_t k = 0; k < states.size(); ++k) {
      const Tensor& s = (*states[k].tensors)[i];
      FUSEDOPT_CHECK_AT(i, s.defined(), op, ": ", states[k].name, "[", i,
                        "] is undefined or not strided; pass a dense state tensor");
      const Facts sf(s);
      FUSEDOPT_CHECK_AT(i, sf.strided(), op, ": ", states[k].name, "[", i,
                        "] is undefined or not strided; pass a dense state tensor");
      FUSEDOPT_CHECK_AT(i, sf.same_device(f0), op, ": ", states[k].name, "[", i, "] is on ",
                        device_name(s.device()), " but its param is on ", device_name(device_),
                        "; move the optimizer state to the param's device");
      FUSEDOPT_CHECK_AT(i, sf.dtype == scode, op, ": ", states[k].name, "[", i, "] has dtype ",
                        dtype_name(s.scalar_type()), " but ", dtype_name(pdtype),
                        " params need ", dtype_name(sdtype), " state (states of "
                        "float16/bfloat16 params are kept in float32)");
      FUSEDOPT_CHECK_AT(i, sf.same_sizes(pf), op, ": ", states[k].name, "[", i,
                        "] has shape ", shape_str(s), " but params[", i, "] has shape ",
                        shape_str(p), "; state tensors must have their param's shape");
      state_ptrs_[k][i] = dense(s, sf, pw, wf, /*mutated=*/true);
    }
    if (!master.empty()) {
      const Tensor& m = master[i];
      const bool defined = m.defined();
      const Facts mf = defined ? Facts(m) : Facts(p);
      FUSEDOPT_CHECK_AT(i, defined && mf.strided() && mf.same_device(f0) &&
                               mf.dtype == codes().f32 && mf.same_sizes(pf),
                        op, ": master_params[", i, "] must be a float32 tensor with the shape "
                        "and device of params[", i, "] (got ",
                        defined ? dtype_name(m.scalar_type()) : "None", " ",
                        defined ? shape_str(m) : "", " on ",
                        defined ? device_name(m.device()) : "-", ")");
      master_ptrs_[i] = static_cast<float*>(dense(m, mf, pw, wf, /*mutated=*/true));
    }
    const Tensor& st = steps[i];
    const bool st_defined = st.defined();
    const Facts sf = st_defined ? Facts(st) : Facts(p);
    FUSEDOPT_CHECK_AT(i, st_defined && sf.numel == 1 && sf.dtype == codes().f32, op,
                      ": steps[", i, "] must be a 1-element float32 tensor (got ",
                      st_defined ? dtype_name(st.scalar_type()) : "None", " with ",
                      st_defined ? st.numel() : 0, " elements); fusedopt keeps state['step'] "
                      "as a 0-d float32 tensor");
    FUSEDOPT_CHECK_AT(i, sf.same_device(f0), op, ": steps[", i, "] is on ",
                      device_name(st.device()), " but its param is on ", device_name(device_),
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
  const Facts f0(tensors[0]);
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Facts f = i == 0 ? f0 : Facts(tensors[i]);
    check_kind(op, "tensors", i, tensors[i], f);
    FUSEDOPT_CHECK_AT(i, f.dtype == f0.dtype, op, ": tensors[", i, "] has dtype ",
                      dtype_name(tensors[i].scalar_type()), " but tensors[0] has ",
                      dtype_name(tensors[0].scalar_type()), "; call once per dtype");
    FUSEDOPT_CHECK_AT(i, f.same_device(f0), op, ": tensors[", i, "] is on ",
                      device_name(tensors[i].device()), " but tensors[0] is on ",
                      device_name(tensors[0].device()), "; call once per device");
  }
  return to_dtype(tensors[0].scalar_type());
}

}  // namespace torch_glue
}  // namespace fusedopt
