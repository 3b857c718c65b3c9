// The op library: schemas (the dispatcher contract) and implementations, on the LibTorch stable
// ABI (torch/csrc/stable, target torch 2.10: see setup.py). It uses no at::/c10:: API, so one
// build loads under every torch >= 2.10. Each mutated list has its own alias set; ops return ()
// or a new tensor and never sync with the host.
//
// The optimizer ops are derived from their declaration (fusedopt/optimizers.h): the schema, the
// unboxing of the arguments into the hyper-parameter struct and StepInputs, and the backend entry
// point they call. One generic implementation serves them all. The implementations are
// device-generic (validate, prepare, call backend_for(device)) and are registered per dispatch
// key: CPU, CUDA (when compiled in), and CompositeExplicitAutograd for calls whose lists are all
// empty (no tensor, no device).
//
// This file builds two op libraries (backends.h): the product's namespace `fusedopt`, and with
// FUSEDOPT_OP_NAMESPACE=fusedopt_emulated the test-only emulated one.
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>

#include <array>
#include <cstring>
#include <memory>
#include <sstream>
#include <type_traits>

#include "backends.h"
#include "prepare.h"

#ifndef FUSEDOPT_OP_NAMESPACE
#define FUSEDOPT_OP_NAMESPACE fusedopt
#endif
#define FUSEDOPT_STRINGIZE_(x) #x
#define FUSEDOPT_STRINGIZE(x) FUSEDOPT_STRINGIZE_(x)
// The stable library macros paste their namespace argument: expand ours first.
#define FUSEDOPT_LIBRARY(ns, m) STABLE_TORCH_LIBRARY(ns, m)
#define FUSEDOPT_LIBRARY_IMPL(ns, key, m) STABLE_TORCH_LIBRARY_IMPL(ns, key, m)

namespace fusedopt {
namespace torch_glue {
namespace {

using torch::stable::detail::from;
using torch::stable::detail::to;

// The ops, in declaration order.
enum class OpId : int {
#define FUSEDOPT_OP_ID(entry, optimizer, Hyper, kind, extras) entry,
  FUSEDOPT_OPTIMIZER_OPS(FUSEDOPT_OP_ID)
#undef FUSEDOPT_OP_ID
};
// "fusedopt.adam_": the name errors give (the same in both libraries: it is what users call).
constexpr const char* kOpLabels[] = {
#define FUSEDOPT_OP_LABEL(entry, optimizer, Hyper, kind, extras) "fusedopt." #entry "_",
    FUSEDOPT_OPTIMIZER_OPS(FUSEDOPT_OP_LABEL)
#undef FUSEDOPT_OP_LABEL
};

// Shortest decimal that reads back as v, always with a '.' or an exponent (a schema float).
std::string float_literal(double v) {
  std::string s;
  for (int precision = 1; precision <= 17; ++precision) {
    std::ostringstream o;
    o.precision(precision);
    o << v;
    s = o.str();
    if (std::stod(s) == v) break;
  }
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

// The schema of optimizer op `name` (e.g. "adam_"):
//   name(params, grads, <state lists>, master_params, steps, lr, lr_tensor, <hyper-parameters
//   with their defaults>, [global_grad_norm], [norm_sums], grad_scale, found_inf) -> () | Tensor
template <class Hyper>
std::string optimizer_schema(const std::string& name, unsigned extras) {
  using D = Declared<Hyper>;
  char alias = 'a';
  auto mutated = [&](const std::string& arg) {
    return "Tensor(" + std::string(1, alias++) + "!)[] " + arg + ", ";
  };
  std::string s = name + "(" + mutated("params") + "Tensor[] grads, ";
  for (const StateDecl& st : D::states) s += mutated(std::string(st.key) + "s");
  s += mutated("master_params");
  s += mutated("steps");
  s += "float lr, Tensor? lr_tensor=None";
  for (const HyperField& f : D::fields)
    s += std::string(", ") + (f.is_flag ? "bool " : "float ") + f.name + "=" +
         (f.is_flag ? (f.default_value != 0.0 ? "True" : "False") : float_literal(f.default_value));
  if (extras & kGlobalGradNormIn) s += ", Tensor? global_grad_norm=None";
  if (extras & kNormSumsIn) s += ", Tensor? norm_sums=None";
  s += ", Tensor? grad_scale=None, Tensor? found_inf=None) -> ";
  s += (extras & kNormSumsOut) ? "Tensor" : "()";
  return s;
}

// The declaration for Python (fusedopt/_declarations.py): one line per op,
//   op=<name> optimizer=<name> extras=<flags> states=<key>[:<when>],... hyper=<name>:<float|bool>,...
template <class Hyper>
std::string declaration_line(const char* entry, unsigned extras) {
  using D = Declared<Hyper>;
  std::string s = std::string("op=") + entry + "_ optimizer=" + D::name +
                  " extras=" + std::to_string(extras) + " states=";
  for (size_t i = 0; i < std::size(D::states); ++i)
    s += (i ? "," : "") + std::string(D::states[i].key) +
         (D::states[i].when[0] ? ":" + std::string(D::states[i].when) : "");
  s += " hyper=";
  for (size_t i = 0; i < std::size(D::fields); ++i)
    s += (i ? "," : "") + std::string(D::fields[i].name) + (D::fields[i].is_flag ? ":bool" : ":float");
  return s + "\n";
}

std::string declarations() {
  std::string s;
#define FUSEDOPT_DECLARATION_LINE(entry, optimizer, Hyper, kind, extras) \
  s += declaration_line<Hyper>(#entry, extras);
  FUSEDOPT_OPTIMIZER_OPS(FUSEDOPT_DECLARATION_LINE)
#undef FUSEDOPT_DECLARATION_LINE
  return s;
}

// ---- the generic optimizer op ----------------------------------------------------------------
const float* scalar_ptr(const OptionalTensor& t) {
  return t.has_value() && t->defined() ? static_cast<const float*>(t->data_ptr()) : nullptr;
}

// Launches go to the tensors' GPU: the current device is set for CUDA tensors (the CPU needs
// no guard).
std::unique_ptr<torch::stable::accelerator::DeviceGuard> device_guard(const Device& device) {
  if (device.type() != torch::headeronly::DeviceType::CUDA) return nullptr;
  return std::make_unique<torch::stable::accelerator::DeviceGuard>(device.index());
}

// Common scalar inputs of an optimizer op, validated against the params' device.
StepInputs step_inputs(const char* op, const PreparedLists& prep, double lr,
                       const OptionalTensor& lr_tensor, const OptionalTensor& grad_scale,
                       const OptionalTensor& found_inf) {
  check_scalar_tensor(op, "lr_tensor", lr_tensor, prep.device());
  check_scalar_tensor(op, "grad_scale", grad_scale, prep.device());
  check_scalar_tensor(op, "found_inf", found_inf, prep.device());
  StepInputs in;
  in.lr = lr_tensor.has_value() && lr_tensor->defined()
              ? LrArg(ScalarArg<float>::at(static_cast<const float*>(lr_tensor->data_ptr())))
              : LrArg::of(prep.lists().param_dtype == DType::Float64
                              ? lr
                              // Rounded like a float32 lr tensor, so a float lr and a tensor lr
                              // holding the same value give bitwise identical steps.
                              : static_cast<double>(static_cast<float>(lr)));
  in.grad_scale = scalar_ptr(grad_scale);
  in.found_inf = scalar_ptr(found_inf);
  return in;
}

// Per-tensor sums of squares of the full tensors: float64 [2 * count], contiguous, on `device`.
const double* norm_sums_ptr(const char* op, const OptionalTensor& sums, int64_t count,
                            const Device& device) {
  if (!sums.has_value() || !sums->defined()) return nullptr;
  FUSEDOPT_CHECK(sums->scalar_type() == ScalarType::Double && sums->is_contiguous() &&
                      sums->numel() == 2 * count && sums->device() == device,
                  op, ": norm_sums must be a contiguous float64 tensor of 2 * len(params) = ",
                  2 * count, " elements on ", device_name(device), " (per tensor: ||p||^2, then "
                  "||u||^2 or ||g||^2); got ", dtype_name(sums->scalar_type()), " with ",
                  sums->numel(), " elements on ", device_name(sums->device()));
  return static_cast<const double*>(sums->data_ptr());
}

// Option checks the schema cannot express, per optimizer (none unless overloaded).
template <class Hyper>
void check_options(const char*, const Hyper&, StepInputs&) {}

void check_options(const char* op, const LambHyper& h, StepInputs& in) {
  FUSEDOPT_CHECK(h.max_grad_norm <= 0.0 || in.global_grad_norm != nullptr, op,
                 ": max_grad_norm=", h.max_grad_norm, " needs global_grad_norm (compute it with "
                 "torch.ops.fusedopt.global_l2_norm over every group's grads), or pass "
                 "max_grad_norm=0 to disable clipping");
  FUSEDOPT_CHECK(h.min_trust_ratio >= 0.0 &&
                     (h.max_trust_ratio <= 0.0 || h.max_trust_ratio >= h.min_trust_ratio),
                 op, ": need 0 <= min_trust_ratio <= max_trust_ratio (max_trust_ratio <= 0 means "
                 "no upper clamp); got ", h.min_trust_ratio, " and ", h.max_trust_ratio);
  if (h.max_grad_norm <= 0.0) in.global_grad_norm = nullptr;  // not read without clipping
}

// Reads the arguments of one call off the dispatcher's stack, in schema order (every argument
// is taken, so each is released).
class ArgReader {
 public:
  ArgReader(StableIValue* stack, uint64_t num_args) : stack_(stack), num_args_(num_args) {}
  template <class T>
  T next() {
    FUSEDOPT_CHECK(next_ < num_args_, "fusedopt: op called with ", num_args_,
                   " arguments, fewer than its declaration has");
    return to<T>(stack_[next_++]);
  }
  uint64_t taken() const { return next_; }

 private:
  StableIValue* stack_;
  uint64_t num_args_;
  uint64_t next_ = 0;
};

// The boxed kernel of every optimizer op: unboxes per the declaration, validates, prepares the
// tensors and runs backend_for(device).*kEntry.
template <OpId kOp, class Hyper, unsigned kExtras,
          void (*Backend::*kEntry)(const ParamLists&, const Hyper&, const StepInputs&)>
void optimizer_op(StableIValue* stack, uint64_t num_args, uint64_t num_outputs) {
  using D = Declared<Hyper>;
  constexpr size_t kStates = D::kStates, kFields = D::kFields;
  const char* op = kOpLabels[static_cast<int>(kOp)];
  ArgReader args(stack, num_args);
  const TensorList params = args.next<TensorList>();
  const TensorList grads = args.next<TensorList>();
  std::array<TensorList, kStates> states;
  for (auto& list : states) list = args.next<TensorList>();
  const TensorList master = args.next<TensorList>();
  const TensorList steps = args.next<TensorList>();
  const double lr = args.next<double>();
  const OptionalTensor lr_tensor = args.next<OptionalTensor>();
  double values[kFields];
  for (size_t i = 0; i < kFields; ++i)
    values[i] = D::fields[i].is_flag ? (args.next<bool>() ? 1.0 : 0.0) : args.next<double>();
  OptionalTensor global_grad_norm, norm_sums;
  if (kExtras & kGlobalGradNormIn) global_grad_norm = args.next<OptionalTensor>();
  if (kExtras & kNormSumsIn) norm_sums = args.next<OptionalTensor>();
  const OptionalTensor grad_scale = args.next<OptionalTensor>();
  const OptionalTensor found_inf = args.next<OptionalTensor>();
  FUSEDOPT_CHECK(args.taken() == num_args && num_outputs == ((kExtras & kNormSumsOut) ? 1 : 0),
                 op, ": the registered schema does not match the declaration");

  // The states this call keeps (those whose `when` hyper-parameter is nonzero).
  std::vector<NamedList> named;
  std::array<std::string, kStates> names;
  for (size_t i = 0; i < kStates; ++i) {
    const StateDecl& st = D::states[i];
    if (st.when[0] != '\0' && values[D::field_index(st.when)] == 0.0) continue;
    names[i] = std::string(st.key) + "s";
    named.push_back({names[i].c_str(), &states[i]});
  }
  PreparedLists prep(op, params, grads, named, master, steps);
  StepInputs in = step_inputs(op, prep, lr, lr_tensor, grad_scale, found_inf);
  const Hyper h = D::make(values);
  if (kExtras & kGlobalGradNormIn) {
    check_scalar_tensor(op, "global_grad_norm", global_grad_norm, prep.device());
    in.global_grad_norm = scalar_ptr(global_grad_norm);
  }
  check_options(op, h, in);
  const int64_t count = static_cast<int64_t>(params.size());
  if (kExtras & kNormSumsIn) {
    in.norm_sums = norm_sums_ptr(op, norm_sums, count, prep.device());
    FUSEDOPT_CHECK(!(kExtras & kNormSumsRequired) || in.norm_sums != nullptr, op,
                   ": needs norm_sums (the full tensors' sums of squares: all-reduce what "
                   "lamb_moments_ returned)");
  }
  std::optional<Tensor> sums_out;
  if (kExtras & kNormSumsOut) {
    sums_out = zeros(2 * count, ScalarType::Double,
                     params.empty() ? Device(torch::headeronly::DeviceType::CPU) : prep.device());
    in.norm_sums_out = static_cast<double*>(sums_out->data_ptr());
  }
  {
    const auto guard = device_guard(prep.device());
    if (prep.lists().count > 0) (backend_for(prep.device()).*kEntry)(prep.lists(), h, in);
  }
  prep.finish();  // writes back tensors that were processed through dense copies
  if (sums_out) stack[0] = from(*sums_out);
}

// Norm ops: inputs are read through dense copies when not contiguous.
struct DenseInputs {
  std::vector<Tensor> keep;
  std::vector<const void*> ptrs;
  std::vector<int64_t> numel;
  explicit DenseInputs(const TensorList& tensors) {
    for (const auto& t : tensors) {
      keep.push_back(dense_input(t));
      ptrs.push_back(keep.back().data_ptr());
      numel.push_back(t.numel());
    }
  }
};

Device norm_device(const TensorList& tensors) {
  return tensors.empty() ? Device(torch::headeronly::DeviceType::CPU) : tensors[0].device();
}

Tensor l2_norms(TensorList tensors, OptionalTensor grad_scale) {
  const DType dtype = check_norm_inputs("fusedopt.l2_norms", tensors);
  const Device device = norm_device(tensors);
  check_scalar_tensor("fusedopt.l2_norms", "grad_scale", grad_scale, device);
  Tensor out = zeros(static_cast<int64_t>(tensors.size()), ScalarType::Float, device);
  DenseInputs in(tensors);
  const auto guard = device_guard(device);
  if (!tensors.empty())
    backend_for(device).l2_norm(in.ptrs.data(), dtype, in.numel.data(),
                                static_cast<int64_t>(tensors.size()), scalar_ptr(grad_scale),
                                static_cast<float*>(out.data_ptr()), nullptr, nullptr);
  return out;
}

Tensor global_l2_norm(TensorList tensors, OptionalTensor grad_scale) {
  const DType dtype = check_norm_inputs("fusedopt.global_l2_norm", tensors);
  const Device device = norm_device(tensors);
  check_scalar_tensor("fusedopt.global_l2_norm", "grad_scale", grad_scale, device);
  Tensor out = zeros(-1, ScalarType::Float, device);
  DenseInputs in(tensors);
  const auto guard = device_guard(device);
  if (!tensors.empty())
    backend_for(device).l2_norm(in.ptrs.data(), dtype, in.numel.data(),
                                static_cast<int64_t>(tensors.size()), scalar_ptr(grad_scale),
                                nullptr, static_cast<float*>(out.data_ptr()), nullptr);
  return out;
}

// Sums of squares in float64, [len(tensors) + len(scaled)]: those of `tensors`, then those of
// `scaled` / grad_scale (e.g. params, then grads). Each list shares one dtype; both share one
// device. The local part of a cross-shard norm (the caller all-reduces it).
Tensor sums_of_squares(TensorList tensors, TensorList scaled, OptionalTensor grad_scale) {
  const char* op = "fusedopt.sums_of_squares";
  const int64_t n = static_cast<int64_t>(tensors.size()), m = static_cast<int64_t>(scaled.size());
  const Device device = n ? norm_device(tensors) : norm_device(scaled);
  check_scalar_tensor(op, "grad_scale", grad_scale, device);
  for (const auto& t : scaled)
    FUSEDOPT_CHECK(t.device() == device, op, ": scaled tensors must be on ",
                    device_name(device), " like the tensors; got one on ",
                    device_name(t.device()));
  Tensor out = zeros(n + m, ScalarType::Double, device);
  const auto guard = device_guard(device);
  auto run_list = [&](const TensorList& list, const float* scale, double* dst) {
    if (list.empty()) return;
    const DType dtype = check_norm_inputs(op, list);
    DenseInputs in(list);
    backend_for(device).l2_norm(in.ptrs.data(), dtype, in.numel.data(),
                                static_cast<int64_t>(list.size()), scale, nullptr, nullptr, dst);
  };
  double* sums = static_cast<double*>(out.data_ptr());
  run_list(tensors, nullptr, sums);
  run_list(scaled, scalar_ptr(grad_scale), sums + n);
  return out;
}

}  // namespace
}  // namespace torch_glue
}  // namespace fusedopt

FUSEDOPT_LIBRARY(FUSEDOPT_OP_NAMESPACE, m) {
  using namespace fusedopt;
  using namespace fusedopt::torch_glue;
#define FUSEDOPT_DEF_OPTIMIZER_OP(entry, optimizer, Hyper, kind, extras) \
  m.def(optimizer_schema<Hyper>(#entry "_", extras).c_str());
  FUSEDOPT_OPTIMIZER_OPS(FUSEDOPT_DEF_OPTIMIZER_OP)
#undef FUSEDOPT_DEF_OPTIMIZER_OP
  m.def("sums_of_squares(Tensor[] tensors, Tensor[] scaled, Tensor? grad_scale=None) -> Tensor");
  m.def("l2_norms(Tensor[] tensors, Tensor? grad_scale=None) -> Tensor");
  m.def("global_l2_norm(Tensor[] tensors, Tensor? grad_scale=None) -> Tensor");
  // No tensors: the declaration for Python, and the list position of the last failed check.
  m.def("_declarations() -> str");
  m.def("_last_error_index() -> int");
}

namespace fusedopt {
namespace torch_glue {
namespace {
int64_t last_error_index() { return g_last_error_index; }
}  // namespace
}  // namespace torch_glue
}  // namespace fusedopt

// The tensor ops, registered per dispatch key: CPU, CUDA (CUDA builds), and the composite key
// for calls with nothing but empty lists (they carry no device). One device-generic
// implementation serves every key: backend_for() picks the kernels of the tensors' device.
#define FUSEDOPT_IMPL_OPTIMIZER_OP(entry, optimizer, Hyper, kind, extras)                      \
  m.impl(#entry "_", &optimizer_op<OpId::entry, Hyper, extras, &Backend::entry>);
#define FUSEDOPT_REGISTER_TENSOR_OPS(m)                                   \
  do {                                                                    \
    using namespace fusedopt;                                             \
    using namespace fusedopt::torch_glue;                                 \
    FUSEDOPT_OPTIMIZER_OPS(FUSEDOPT_IMPL_OPTIMIZER_OP)                    \
    m.impl("sums_of_squares", TORCH_BOX(&sums_of_squares));               \
    m.impl("l2_norms", TORCH_BOX(&l2_norms));                             \
    m.impl("global_l2_norm", TORCH_BOX(&global_l2_norm));                 \
  } while (0)

FUSEDOPT_LIBRARY_IMPL(FUSEDOPT_OP_NAMESPACE, CPU, m) { FUSEDOPT_REGISTER_TENSOR_OPS(m); }
#if defined(FUSEDOPT_WITH_CUDA)
FUSEDOPT_LIBRARY_IMPL(FUSEDOPT_OP_NAMESPACE, CUDA, m) { FUSEDOPT_REGISTER_TENSOR_OPS(m); }
#endif
FUSEDOPT_LIBRARY_IMPL(FUSEDOPT_OP_NAMESPACE, CompositeExplicitAutograd, m) {
  FUSEDOPT_REGISTER_TENSOR_OPS(m);
  using namespace fusedopt::torch_glue;
  m.impl("_declarations", TORCH_BOX(&declarations));
  m.impl("_last_error_index", TORCH_BOX(&last_error_index));
}
