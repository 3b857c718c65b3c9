// Op schemas (the dispatcher contract) and their implementations, on the LibTorch stable ABI
// (torch/csrc/stable, target torch 2.10: see setup.py): the op library uses no at::/c10:: API, so
// one build loads under every torch >= 2.10. Each mutated list has its own alias set; ops return
// () and never sync with the host. The implementations are device-generic (validate, prepare,
// call the device's backend) and are registered per dispatch key: CPU, CUDA (when compiled in),
// and CompositeExplicitAutograd for calls whose lists are all empty (no tensor, no device).
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>

#include <memory>

#include "backends.h"
#include "cpu_backend.h"
#include "prepare.h"

#ifndef FUSEDOPT_VERSION
#define FUSEDOPT_VERSION "0.0.0"
#endif
#ifndef FUSEDOPT_TORCH_BUILT_AGAINST
#define FUSEDOPT_TORCH_BUILT_AGAINST "unknown"
#endif

namespace fusedopt {
namespace torch_glue {
namespace {

using optional_t = OptionalTensor;

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
                       OptionalTensor lr_tensor, OptionalTensor grad_scale,
                       OptionalTensor found_inf) {
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

// Runs the device's backend over prepared lists, then writes back non-contiguous tensors.
template <class Fn>
void run(PreparedLists& prep, Fn&& fn) {
  const auto guard = device_guard(prep.device());
  if (prep.lists().count > 0) fn(backend_for(prep.device()), prep.lists());
  prep.finish();
}

void adam(TensorList params, TensorList grads, TensorList exp_avgs, TensorList exp_avg_sqs,
              TensorList max_exp_avg_sqs, TensorList master_params, TensorList steps, double lr,
              OptionalTensor lr_tensor, double beta1, double beta2, double eps,
              double weight_decay, bool decoupled_weight_decay, bool bias_correction,
              bool amsgrad, bool maximize, OptionalTensor grad_scale,
              OptionalTensor found_inf) {
  const char* op = "fusedopt.adam_";
  std::vector<NamedList> states = {{"exp_avgs", &exp_avgs}, {"exp_avg_sqs", &exp_avg_sqs}};
  if (amsgrad) states.push_back({"max_exp_avg_sqs", &max_exp_avg_sqs});
  PreparedLists prep(op, params, grads, states, master_params, steps);
  const StepInputs in = step_inputs(op, prep, lr, lr_tensor, grad_scale, found_inf);
  AdamHyper h;
  h.beta1 = beta1;
  h.beta2 = beta2;
  h.eps = eps;
  h.weight_decay = weight_decay;
  h.decoupled_weight_decay = decoupled_weight_decay;
  h.bias_correction = bias_correction;
  h.amsgrad = amsgrad;
  h.maximize = maximize;
  run(prep, [&](const Backend& be, const ParamLists& L) { be.adam(L, h, in); });
}

void sgd(TensorList params, TensorList grads, TensorList momentum_buffers,
             TensorList master_params, TensorList steps, double lr,
             OptionalTensor lr_tensor, double momentum, double dampening,
             double weight_decay, bool nesterov, bool maximize,
             OptionalTensor grad_scale, OptionalTensor found_inf) {
  const char* op = "fusedopt.sgd_";
  std::vector<NamedList> states;
  if (momentum != 0.0) states.push_back({"momentum_buffers", &momentum_buffers});
  PreparedLists prep(op, params, grads, states, master_params, steps);
  const StepInputs in = step_inputs(op, prep, lr, lr_tensor, grad_scale, found_inf);
  SGDHyper h;
  h.momentum = momentum;
  h.dampening = dampening;
  h.weight_decay = weight_decay;
  h.nesterov = nesterov;
  h.maximize = maximize;
  run(prep, [&](const Backend& be, const ParamLists& L) { be.sgd(L, h, in); });
}

void lion(TensorList params, TensorList grads, TensorList exp_avgs, TensorList master_params,
              TensorList steps, double lr, OptionalTensor lr_tensor, double beta1,
              double beta2, double weight_decay, bool maximize,
              OptionalTensor grad_scale, OptionalTensor found_inf) {
  const char* op = "fusedopt.lion_";
  PreparedLists prep(op, params, grads, {{"exp_avgs", &exp_avgs}}, master_params, steps);
  const StepInputs in = step_inputs(op, prep, lr, lr_tensor, grad_scale, found_inf);
  LionHyper h;
  h.beta1 = beta1;
  h.beta2 = beta2;
  h.weight_decay = weight_decay;
  h.maximize = maximize;
  run(prep, [&](const Backend& be, const ParamLists& L) { be.lion(L, h, in); });
}

// The LAMB options every LAMB op shares, checked.
LambHyper lamb_hyper(const char* op, const PreparedLists& prep, double beta1, double beta2,
                     double eps, double weight_decay, bool adam_w_mode, bool bias_correction,
                     bool grad_averaging, double max_grad_norm,
                     OptionalTensor global_grad_norm, bool use_nvlamb, bool trust_clip,
                     double min_trust_ratio, double max_trust_ratio) {
  check_scalar_tensor(op, "global_grad_norm", global_grad_norm, prep.device());
  FUSEDOPT_CHECK(max_grad_norm <= 0.0 || (global_grad_norm.has_value() && global_grad_norm->defined()),
              op, ": max_grad_norm=", max_grad_norm, " needs global_grad_norm (compute it with "
              "torch.ops.fusedopt.global_l2_norm over every group's grads), or pass "
              "max_grad_norm=0 to disable clipping");
  FUSEDOPT_CHECK(min_trust_ratio >= 0.0 && (max_trust_ratio <= 0.0 || max_trust_ratio >= min_trust_ratio),
              op, ": need 0 <= min_trust_ratio <= max_trust_ratio (max_trust_ratio <= 0 means "
              "no upper clamp); got ", min_trust_ratio, " and ", max_trust_ratio);
  LambHyper h;
  h.beta1 = beta1;
  h.beta2 = beta2;
  h.eps = eps;
  h.weight_decay = weight_decay;
  h.adam_w_mode = adam_w_mode;
  h.bias_correction = bias_correction;
  h.grad_averaging = grad_averaging;
  h.max_grad_norm = max_grad_norm;
  h.use_nvlamb = use_nvlamb;
  h.trust_clip = trust_clip;
  h.min_trust_ratio = min_trust_ratio;
  h.max_trust_ratio = max_trust_ratio;
  return h;
}

const float* clip_norm(double max_grad_norm, OptionalTensor global_grad_norm) {
  return max_grad_norm > 0.0 ? scalar_ptr(global_grad_norm) : nullptr;
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

void lamb(TensorList params, TensorList grads, TensorList exp_avgs, TensorList exp_avg_sqs,
              TensorList master_params, TensorList steps, double lr,
              OptionalTensor lr_tensor, double beta1, double beta2, double eps,
              double weight_decay, bool adam_w_mode, bool bias_correction, bool grad_averaging,
              double max_grad_norm, OptionalTensor global_grad_norm, bool use_nvlamb,
              bool trust_clip, double min_trust_ratio, double max_trust_ratio,
              OptionalTensor grad_scale, OptionalTensor found_inf) {
  const char* op = "fusedopt.lamb_";
  PreparedLists prep(op, params, grads, {{"exp_avgs", &exp_avgs}, {"exp_avg_sqs", &exp_avg_sqs}},
                     master_params, steps);
  const StepInputs in = step_inputs(op, prep, lr, lr_tensor, grad_scale, found_inf);
  const LambHyper h = lamb_hyper(op, prep, beta1, beta2, eps, weight_decay, adam_w_mode,
                                 bias_correction, grad_averaging, max_grad_norm, global_grad_norm,
                                 use_nvlamb, trust_clip, min_trust_ratio, max_trust_ratio);
  const float* gnorm = clip_norm(max_grad_norm, global_grad_norm);
  run(prep, [&](const Backend& be, const ParamLists& L) { be.lamb(L, h, in, gnorm); });
}

// LAMB pass 1 for sharded tensors: advances the steps, updates m and v, and returns the local
// sums of squares [||p_t||^2, ||u_t||^2] per tensor (float64 [2 * count]; zeros on a skipped
// step). After all-reducing them, lamb_apply_ finishes the step.
Tensor lamb_moments(TensorList params, TensorList grads, TensorList exp_avgs,
                    TensorList exp_avg_sqs, TensorList master_params, TensorList steps,
                    double beta1, double beta2, double eps, double weight_decay,
                    bool adam_w_mode, bool bias_correction, bool grad_averaging,
                    double max_grad_norm, OptionalTensor global_grad_norm,
                    OptionalTensor grad_scale, OptionalTensor found_inf) {
  const char* op = "fusedopt.lamb_moments_";
  PreparedLists prep(op, params, grads, {{"exp_avgs", &exp_avgs}, {"exp_avg_sqs", &exp_avg_sqs}},
                     master_params, steps);
  const StepInputs in = step_inputs(op, prep, 0.0, std::nullopt, grad_scale, found_inf);
  const LambHyper h = lamb_hyper(op, prep, beta1, beta2, eps, weight_decay, adam_w_mode,
                                 bias_correction, grad_averaging, max_grad_norm, global_grad_norm,
                                 false, false, 0.0, 0.0);
  const float* gnorm = clip_norm(max_grad_norm, global_grad_norm);
  Tensor sums = zeros(2 * static_cast<int64_t>(params.size()), ScalarType::Double,
                     params.empty() ? Device(torch::headeronly::DeviceType::CPU) : prep.device());
  double* out = static_cast<double*>(sums.data_ptr());
  run(prep, [&](const Backend& be, const ParamLists& L) { be.lamb_moments(L, h, in, gnorm, out); });
  return sums;
}

// LAMB pass 2 for sharded tensors: p -= lr * trust_ratio * u, with the ratios of norm_sums (the
// full tensors' sums of squares). The steps were advanced by lamb_moments_.
void lamb_apply(TensorList params, TensorList grads, TensorList exp_avgs, TensorList exp_avg_sqs,
                TensorList master_params, TensorList steps, double lr,
                OptionalTensor lr_tensor, double beta1, double beta2, double eps,
                double weight_decay, bool adam_w_mode, bool bias_correction,
                bool grad_averaging, double max_grad_norm,
                OptionalTensor global_grad_norm, bool use_nvlamb, bool trust_clip,
                double min_trust_ratio, double max_trust_ratio, Tensor norm_sums,
                OptionalTensor grad_scale, OptionalTensor found_inf) {
  const char* op = "fusedopt.lamb_apply_";
  PreparedLists prep(op, params, grads, {{"exp_avgs", &exp_avgs}, {"exp_avg_sqs", &exp_avg_sqs}},
                     master_params, steps);
  const StepInputs in = step_inputs(op, prep, lr, lr_tensor, grad_scale, found_inf);
  const LambHyper h = lamb_hyper(op, prep, beta1, beta2, eps, weight_decay, adam_w_mode,
                                 bias_correction, grad_averaging, max_grad_norm, global_grad_norm,
                                 use_nvlamb, trust_clip, min_trust_ratio, max_trust_ratio);
  const float* gnorm = clip_norm(max_grad_norm, global_grad_norm);
  const double* sums = norm_sums_ptr(op, norm_sums, static_cast<int64_t>(params.size()),
                                     prep.device());
  run(prep, [&](const Backend& be, const ParamLists& L) { be.lamb_apply(L, h, in, gnorm, sums); });
}

void lars(TensorList params, TensorList grads, TensorList momentum_buffers,
              TensorList master_params, TensorList steps, double lr,
              OptionalTensor lr_tensor, double momentum, double dampening,
              double weight_decay, bool nesterov, double trust_coefficient, double eps,
              bool clip, bool adapt, OptionalTensor grad_scale,
              OptionalTensor found_inf, OptionalTensor norm_sums) {
  const char* op = "fusedopt.lars_";
  std::vector<NamedList> states;
  if (momentum != 0.0) states.push_back({"momentum_buffers", &momentum_buffers});
  PreparedLists prep(op, params, grads, states, master_params, steps);
  const StepInputs in = step_inputs(op, prep, lr, lr_tensor, grad_scale, found_inf);
  LarsHyper h;
  h.momentum = momentum;
  h.dampening = dampening;
  h.weight_decay = weight_decay;
  h.nesterov = nesterov;
  h.trust_coefficient = trust_coefficient;
  h.eps = eps;
  h.clip = clip;
  const double* sums = norm_sums_ptr(op, norm_sums, static_cast<int64_t>(params.size()),
                                     prep.device());
  run(prep, [&](const Backend& be, const ParamLists& L) { be.lars(L, h, in, adapt, sums); });
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

void torch_parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  torch::stable::parallel_for(0, n, 1, fn);  // torch's thread pool (set_num_threads applies)
}

const bool kParallelInstalled = [] {
  cpu::set_parallel_for(torch_parallel_for);
  return true;
}();

}  // namespace
}  // namespace torch_glue
}  // namespace fusedopt

STABLE_TORCH_LIBRARY(fusedopt, m) {
  m.def(
      "adam_(Tensor(a!)[] params, Tensor[] grads, Tensor(b!)[] exp_avgs, "
      "Tensor(c!)[] exp_avg_sqs, Tensor(d!)[] max_exp_avg_sqs, Tensor(e!)[] master_params, "
      "Tensor(f!)[] steps, float lr, Tensor? lr_tensor, float beta1, float beta2, float eps, "
      "float weight_decay, bool decoupled_weight_decay, bool bias_correction, bool amsgrad, "
      "bool maximize, Tensor? grad_scale, Tensor? found_inf) -> ()");
  m.def(
      "sgd_(Tensor(a!)[] params, Tensor[] grads, Tensor(b!)[] momentum_buffers, "
      "Tensor(c!)[] master_params, Tensor(d!)[] steps, float lr, Tensor? lr_tensor, "
      "float momentum, float dampening, float weight_decay, bool nesterov, bool maximize, "
      "Tensor? grad_scale, Tensor? found_inf) -> ()");
  m.def(
      "lion_(Tensor(a!)[] params, Tensor[] grads, Tensor(b!)[] exp_avgs, "
      "Tensor(c!)[] master_params, Tensor(d!)[] steps, float lr, Tensor? lr_tensor, "
      "float beta1, float beta2, float weight_decay, bool maximize, Tensor? grad_scale, "
      "Tensor? found_inf) -> ()");
  m.def(
      "lamb_(Tensor(a!)[] params, Tensor[] grads, Tensor(b!)[] exp_avgs, "
      "Tensor(c!)[] exp_avg_sqs, Tensor(d!)[] master_params, Tensor(e!)[] steps, float lr, "
      "Tensor? lr_tensor, float beta1, float beta2, float eps, float weight_decay, "
      "bool adam_w_mode, bool bias_correction, bool grad_averaging, float max_grad_norm, "
      "Tensor? global_grad_norm, bool use_nvlamb, bool trust_clip, float min_trust_ratio, "
      "float max_trust_ratio, Tensor? grad_scale, Tensor? found_inf) -> ()");
  m.def(
      "lars_(Tensor(a!)[] params, Tensor[] grads, Tensor(b!)[] momentum_buffers, "
      "Tensor(c!)[] master_params, Tensor(d!)[] steps, float lr, Tensor? lr_tensor, "
      "float momentum, float dampening, float weight_decay, bool nesterov, "
      "float trust_coefficient, float eps, bool clip, bool adapt, Tensor? grad_scale, "
      "Tensor? found_inf, Tensor? norm_sums=None) -> ()");
  m.def(
      "lamb_moments_(Tensor(a!)[] params, Tensor[] grads, Tensor(b!)[] exp_avgs, "
      "Tensor(c!)[] exp_avg_sqs, Tensor(d!)[] master_params, Tensor(e!)[] steps, float beta1, "
      "float beta2, float eps, float weight_decay, bool adam_w_mode, bool bias_correction, "
      "bool grad_averaging, float max_grad_norm, Tensor? global_grad_norm, Tensor? grad_scale, "
      "Tensor? found_inf) -> Tensor");
  m.def(
      "lamb_apply_(Tensor(a!)[] params, Tensor[] grads, Tensor(b!)[] exp_avgs, "
      "Tensor(c!)[] exp_avg_sqs, Tensor(d!)[] master_params, Tensor(e!)[] steps, float lr, "
      "Tensor? lr_tensor, float beta1, float beta2, float eps, float weight_decay, "
      "bool adam_w_mode, bool bias_correction, bool grad_averaging, float max_grad_norm, "
      "Tensor? global_grad_norm, bool use_nvlamb, bool trust_clip, float min_trust_ratio, "
      "float max_trust_ratio, Tensor norm_sums, Tensor? grad_scale, Tensor? found_inf) -> ()");
  m.def("sums_of_squares(Tensor[] tensors, Tensor[] scaled, Tensor? grad_scale) -> Tensor");
  m.def("l2_norms(Tensor[] tensors, Tensor? grad_scale) -> Tensor");
  m.def("global_l2_norm(Tensor[] tensors, Tensor? grad_scale) -> Tensor");
  // Build information and process-wide controls (no tensors; fusedopt/_ops.py wraps them).
  m.def("_build_info() -> str");
  m.def("_simd_level() -> str");
  m.def("_set_simd_level(str name) -> bool");
  m.def("_available_simd_levels() -> str");
  m.def("_simd_level_env_problem() -> str");
  m.def("_set_cpu_route(str name) -> ()");
  m.def("_get_cpu_route() -> str");
  m.def("_last_error_index() -> int");
}

namespace fusedopt {
namespace torch_glue {
namespace {

// "key=value" lines: what this build contains (parsed by fusedopt/_ops.py).
std::string build_info() {
  std::string s = "version=" FUSEDOPT_VERSION "\ntorch_built_against=" FUSEDOPT_TORCH_BUILT_AGAINST;
#if defined(FUSEDOPT_WITH_CUDA)
  s += "\ncuda_compiled=1";
#else
  s += "\ncuda_compiled=0";
#endif
#if defined(FUSEDOPT_WITH_EMULATED_CUDA)
  s += "\ncuda_emulated_compiled=1";
#else
  s += "\ncuda_emulated_compiled=0";
#endif
  return s;
}
std::string simd_level() { return cpu::simd_level(); }
bool set_simd_level(std::string name) { return cpu::set_simd_level(name.c_str()); }
std::string available_simd_levels() { return cpu::available_simd_levels(); }
std::string simd_level_env_problem() { return cpu::simd_level_env_problem(); }
void set_route(std::string name) { set_cpu_route(name); }
std::string get_route() { return cpu_route(); }
int64_t last_error_index() { return g_last_error_index; }

}  // namespace
}  // namespace torch_glue
}  // namespace fusedopt

// The tensor ops, registered per dispatch key: CPU, CUDA (CUDA builds), and the composite key
// for calls with nothing but empty lists (they carry no device). One device-generic
// implementation serves every key: backend_for() picks the kernels of the tensors' device.
#define FUSEDOPT_REGISTER_TENSOR_OPS(m)                                   \
  do {                                                                    \
    using namespace fusedopt::torch_glue;                                 \
    m.impl("adam_", TORCH_BOX(&adam));                                    \
    m.impl("sgd_", TORCH_BOX(&sgd));                                      \
    m.impl("lion_", TORCH_BOX(&lion));                                    \
    m.impl("lamb_", TORCH_BOX(&lamb));                                    \
    m.impl("lars_", TORCH_BOX(&lars));                                    \
    m.impl("lamb_moments_", TORCH_BOX(&lamb_moments));                    \
    m.impl("lamb_apply_", TORCH_BOX(&lamb_apply));                        \
    m.impl("sums_of_squares", TORCH_BOX(&sums_of_squares));               \
    m.impl("l2_norms", TORCH_BOX(&l2_norms));                             \
    m.impl("global_l2_norm", TORCH_BOX(&global_l2_norm));                 \
  } while (0)

STABLE_TORCH_LIBRARY_IMPL(fusedopt, CPU, m) { FUSEDOPT_REGISTER_TENSOR_OPS(m); }
#if defined(FUSEDOPT_WITH_CUDA)
STABLE_TORCH_LIBRARY_IMPL(fusedopt, CUDA, m) { FUSEDOPT_REGISTER_TENSOR_OPS(m); }
#endif
STABLE_TORCH_LIBRARY_IMPL(fusedopt, CompositeExplicitAutograd, m) {
  FUSEDOPT_REGISTER_TENSOR_OPS(m);
  using namespace fusedopt::torch_glue;
  m.impl("_build_info", TORCH_BOX(&build_info));
  m.impl("_simd_level", TORCH_BOX(&simd_level));
  m.impl("_set_simd_level", TORCH_BOX(&set_simd_level));
  m.impl("_available_simd_levels", TORCH_BOX(&available_simd_levels));
  m.impl("_simd_level_env_problem", TORCH_BOX(&simd_level_env_problem));
  m.impl("_set_cpu_route", TORCH_BOX(&set_route));
  m.impl("_get_cpu_route", TORCH_BOX(&get_route));
  m.impl("_last_error_index", TORCH_BOX(&last_error_index));
}
