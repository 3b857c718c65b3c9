// The CUDA kernels (csrc/cuda) run on the SIMT emulator against the CPU backend, with the race
// checker on for every launch (the kernels are built instrumented), plus the traffic budgets and
// launch counts. Run: ctest -L cuda, or the binary with test-name substrings as filters.
#include <algorithm>
#include <cinttypes>
#include <map>

#include "cuda_test_support.h"
#include "fusedopt/planner.h"

using namespace cuda_test;
namespace cp = fusedopt::cuda_plan;  // the launch planner every CUDA op runs

namespace {

// The launches plan_op plans for an op shaped like `shape` over `sizes`.
std::vector<cp::PlannedLaunch> planned(const cp::PlanShape& shape, const int64_t* sizes,
                                       int64_t count, cp::TableLayout layout) {
  return cp::planned_launches(cp::plan_op(shape, sizes, count, layout));
}

enum class Which { kCpu, kEmu };

struct OptCase {
  std::string name;
  int num_states;
  bool exact;  // bitwise identical to the CPU backend expected
  std::function<void(Which, const ParamLists&, const StepInputs&)> step;
  cp::PlanShape shape;
};

std::vector<OptCase> optimizer_cases() {
  std::vector<OptCase> v;
  auto adam = [&](const char* name, AdamHyper h) {
    const int ns = h.amsgrad ? 3 : 2;
    cp::PlanShape s;
    s.op = cp::OpKind::kElementwise;
    s.num_states = ns;
    v.push_back({name, ns, true, [h](Which w, const ParamLists& L, const StepInputs& in) {
                   w == Which::kCpu ? cpu::adam(L, h, in) : emu::adam(L, h, in);
                 }, s});
  };
  AdamHyper a;
  a.weight_decay = 0.01;
  adam("adam_l2", a);
  a.decoupled_weight_decay = true;
  a.weight_decay = 0.05;
  adam("adamw", a);
  a = AdamHyper{};
  a.amsgrad = true;
  a.maximize = true;
  a.weight_decay = 0.01;
  adam("adam_amsgrad_maximize", a);
  a = AdamHyper{};
  a.bias_correction = false;
  a.eps = 1e-6;
  a.beta2 = 0.9999;
  adam("adam_no_bias_correction", a);

  auto sgd = [&](const char* name, SGDHyper h) {
    const int ns = h.momentum != 0.0 ? 1 : 0;
    cp::PlanShape s;
    s.op = cp::OpKind::kElementwise;
    s.num_states = ns;
    v.push_back({name, ns, true, [h](Which w, const ParamLists& L, const StepInputs& in) {
                   w == Which::kCpu ? cpu::sgd(L, h, in) : emu::sgd(L, h, in);
                 }, s});
  };
  SGDHyper s;
  s.weight_decay = 0.01;
  sgd("sgd_plain", s);
  s.momentum = 0.9;
  s.nesterov = true;
  s.weight_decay = 1e-3;
  sgd("sgd_momentum_nesterov", s);
  s = SGDHyper{};
  s.momentum = 0.8;
  s.dampening = 0.1;
  s.maximize = true;
  sgd("sgd_dampening_maximize", s);

  auto lion = [&](const char* name, LionHyper h) {
    cp::PlanShape s;
    s.op = cp::OpKind::kElementwise;
    s.num_states = 1;
    v.push_back({name, 1, true, [h](Which w, const ParamLists& L, const StepInputs& in) {
                   w == Which::kCpu ? cpu::lion(L, h, in) : emu::lion(L, h, in);
                 }, s});
  };
  LionHyper l;
  l.weight_decay = 0.1;
  lion("lion_wd", l);
  l = LionHyper{};
  l.maximize = true;
  lion("lion_maximize", l);

  auto lamb = [&](const char* name, LambHyper h) {
    cp::PlanShape s;
    s.op = cp::OpKind::kLamb;
    s.num_states = 2;
    v.push_back({name, 2, false, [h](Which w, const ParamLists& L, const StepInputs& in) {
                   // Global clipping: each backend computes the grad norm with its own l2_norm.
                   float gnorm = 0.0f;
                   if (h.max_grad_norm > 0.0) {
                     w == Which::kCpu
                         ? cpu::l2_norm(L.grad, L.param_dtype, L.numel, L.count, in.grad_scale, nullptr, &gnorm)
                         : emu::l2_norm(L.grad, L.param_dtype, L.numel, L.count, in.grad_scale, nullptr, &gnorm);
                   }
                   StepInputs with_norm = in;
                   with_norm.global_grad_norm = h.max_grad_norm > 0.0 ? &gnorm : nullptr;
                   w == Which::kCpu ? cpu::lamb(L, h, with_norm) : emu::lamb(L, h, with_norm);
                 }, s});
  };
  LambHyper b;
  b.max_grad_norm = 0.5;  // clips with these grads
  lamb("lamb_global_clip", b);
  b = LambHyper{};
  b.adam_w_mode = false;
  b.grad_averaging = false;
  b.max_grad_norm = 0.0;
  lamb("lamb_l2_no_averaging", b);
  b = LambHyper{};
  b.weight_decay = 0.0;
  b.use_nvlamb = true;
  b.trust_clip = true;
  b.min_trust_ratio = 0.01;
  b.max_trust_ratio = 5.0;
  b.max_grad_norm = 0.0;
  lamb("lamb_nvlamb_trust_clamps", b);

  auto lars = [&](const char* name, LarsHyper h, bool adapt) {
    const int ns = h.momentum != 0.0 ? 1 : 0;
    cp::PlanShape s;
    s.op = cp::OpKind::kLars;
    s.num_states = ns;
    s.adapt = adapt;
    h.adapt = adapt;
    v.push_back({name, ns, !adapt, [h](Which w, const ParamLists& L, const StepInputs& in) {
                   w == Which::kCpu ? cpu::lars(L, h, in) : emu::lars(L, h, in);
                 }, s});
  };
  LarsHyper r;
  r.weight_decay = 1e-4;
  lars("lars", r, true);
  r.clip = true;
  r.nesterov = true;
  lars("lars_clip_nesterov", r, true);
  lars("lars_no_adapt", r, false);
  r = LarsHyper{};
  r.momentum = 0.0;
  r.weight_decay = 5e-4;
  lars("lars_no_momentum", r, true);
  return v;
}

struct DtypeCase {
  const char* name;
  DType dtype;
  bool master;
  double tol;  // relative tolerance for the non-elementwise optimizers (LAMB, LARS)
};
const DtypeCase kDtypes[] = {
    {"f32", DType::Float32, false, 2e-6},      {"f64", DType::Float64, false, 1e-12},
    {"f16", DType::Float16, false, 2e-3},      {"bf16", DType::BFloat16, false, 1.6e-2},
    {"f16+master", DType::Float16, true, 2e-3}, {"bf16+master", DType::BFloat16, true, 1.6e-2},
};

// Sizes around every chunk / vector boundary; offsets shift pointers by 0-3 elements.
const std::vector<int64_t> kSizesFull = {0, 1, 3, 4, 5, 1023, 4096, 65536 + 5, 2 * 65536 + 7, 65536};
const std::vector<int> kOffsetsFull = {0, 1, 0, 0, 2, 3, 1, 0, 1, 0};
const std::vector<int64_t> kSizesSmall = {0, 1, 3, 4, 5, 1023, 4099, 8192};
const std::vector<int> kOffsetsSmall = {0, 1, 0, 3, 2, 0, 1, 0};

// Runs `steps` steps of `oc` on CPU and emulated copies; step 2 uses lr/grad_scale through
// pointers with scaled grads, step 3 has found_inf = 1 (must be a bitwise no-op).
void compare_run(const OptCase& oc, const DtypeCase& dc, const std::vector<int64_t>& sizes,
                 const std::vector<int>& offsets, uint32_t seed, int steps = 4) {
  TensorSet cpu_set = TensorSet::make(dc.dtype, dc.master, oc.num_states, sizes, offsets, seed);
  TensorSet emu_set = cpu_set.clone();
  float lr_value = 1e-3f, scale_value = 1024.0f, inf_one = 1.0f, inf_zero = 0.0f;
  double worst = 0.0;
  bool all_identical = true;
  for (int s = 1; s <= steps; ++s) {
    StepInputs in;
    double gscale = 1.0;
    if (s == 2) {
      in.lr = ScalarArg<float>::at(&lr_value);
      in.grad_scale = &scale_value;
      in.found_inf = &inf_zero;
      gscale = scale_value;
    } else {
      in.lr = LrArg::of(s == 4 ? 2e-3 : 1e-3);  // doubles: not representable in float
    }
    if (s == 3) in.found_inf = &inf_one;
    cpu_set.set_grads(seed * 31 + s, gscale);
    emu_set.set_grads(seed * 31 + s, gscale);
    const TensorSet before = s == 3 ? emu_set.clone() : TensorSet{};
    oc.step(Which::kCpu, cpu_set.view(), in);
    oc.step(Which::kEmu, emu_set.view(), in);
    if (s == 3) {
      const Diff d = diff_sets(before, emu_set);
      CHECK_MSG(d.identical, oc.name + " " + dc.name + ": found_inf step changed " + d.first);
    }
    const Diff d = diff_sets(cpu_set, emu_set);
    const std::string where = oc.name + " " + dc.name + " step " + std::to_string(s) + ": ";
    if (oc.exact) {
      CHECK_MSG(d.identical, where + "not bitwise identical to the CPU backend: " + d.first);
    } else {
      char msg[128];
      std::snprintf(msg, sizeof msg, "max relative difference %.3g > %.3g at ", d.max_rel, dc.tol);
      CHECK_MSG(d.max_rel <= dc.tol, where + msg + d.first);
      worst = std::max(worst, d.max_rel);
      all_identical = all_identical && d.identical;
    }
  }
  if (!oc.exact && sizes.size() <= 10)
    std::printf("       %-26s %-12s vs CPU: %s (max relative difference %.3g)\n", oc.name.c_str(),
                dc.name, all_identical ? "bitwise identical" : "within tolerance", worst);
}

bool is_full(const DtypeCase& dc) { return dc.dtype == DType::Float32 || dc.master; }

void run_optimizer_family(const char* prefix) {
  for (const OptCase& oc : optimizer_cases()) {
    if (oc.name.rfind(prefix, 0) != 0) continue;
    for (const DtypeCase& dc : kDtypes) {
      if (is_full(dc)) compare_run(oc, dc, kSizesFull, kOffsetsFull, 7);
      else compare_run(oc, dc, kSizesSmall, kOffsetsSmall, 11);
    }
  }
}

}  // namespace

// ---- CPU backend vs emulated CUDA kernels -----------------------------------------------------
TEST_CASE(adam_matches_cpu_bitwise) { run_optimizer_family("adam"); }
TEST_CASE(sgd_matches_cpu_bitwise) { run_optimizer_family("sgd"); }
TEST_CASE(lion_matches_cpu_bitwise) { run_optimizer_family("lion"); }
TEST_CASE(lamb_matches_cpu_within_tolerance) { run_optimizer_family("lamb"); }
TEST_CASE(lars_matches_cpu) { run_optimizer_family("lars"); }

TEST_CASE(l2_norm_matches_cpu) {
  for (const DtypeCase& dc : kDtypes) {
    if (dc.master) continue;
    const auto& sizes = dc.dtype == DType::Float32 ? kSizesFull : kSizesSmall;
    const auto& offs = dc.dtype == DType::Float32 ? kOffsetsFull : kOffsetsSmall;
    TensorSet s = TensorSet::make(dc.dtype, false, 0, sizes, offs, 5);
    s.set_grads(99, 3.0);
    const ParamLists L = s.view();
    float scale = 4.0f;
    for (const float* gs : {static_cast<const float*>(nullptr), static_cast<const float*>(&scale)}) {
      std::vector<float> pc(L.count), pe(L.count);
      float gc = 0, ge = 0;
      cpu::l2_norm(L.grad, L.param_dtype, L.numel, L.count, gs, pc.data(), &gc);
      emu::l2_norm(L.grad, L.param_dtype, L.numel, L.count, gs, pe.data(), &ge);
      for (int64_t t = 0; t < L.count; ++t)
        CHECK_MSG(std::fabs(pc[t] - pe[t]) <= 1e-6f * std::fabs(pc[t]),
                  std::string(dc.name) + " tensor " + std::to_string(t) + ": " +
                      std::to_string(pc[t]) + " vs " + std::to_string(pe[t]));
      CHECK(std::fabs(gc - ge) <= 1e-6f * gc);
      CHECK(gc > 0.0f);
      // Per-tensor only / global only give the same numbers.
      std::vector<float> only(L.count);
      float g2 = 0;
      emu::l2_norm(L.grad, L.param_dtype, L.numel, L.count, gs, only.data(), nullptr);
      emu::l2_norm(L.grad, L.param_dtype, L.numel, L.count, gs, nullptr, &g2);
      CHECK(std::memcmp(only.data(), pe.data(), only.size() * 4) == 0);
      CHECK(g2 == ge);
    }
  }
}

// Both table layouts, lists needing several launches (the 4 KB layout holds ~50 tensors).
TEST_CASE(multi_launch_lists_both_layouts) {
  std::mt19937 rng(3);
  std::vector<int64_t> sizes;
  std::vector<int> offs;
  for (int i = 0; i < 160; ++i) {
    sizes.push_back(i % 40 == 7 ? 65536 * 2 + 3 : int64_t(rng() % 700));
    offs.push_back(static_cast<int>(rng() % 4) * (i % 3 == 0 ? 0 : 1));
  }
  for (emu::TableLayout layout : {emu::TableLayout::k4KB, emu::TableLayout::k32KB}) {
    CHECK(emu::set_table_layout(layout));
    for (const OptCase& oc : optimizer_cases()) {
      if (oc.name != "adamw" && oc.name != "lamb_global_clip" && oc.name != "lars" &&
          oc.name != "sgd_momentum_nesterov")
        continue;
      compare_run(oc, kDtypes[0], sizes, offs, 17, 2);
      // The emulator's launch counter agrees with the host-side plan.
      TensorSet s = TensorSet::make(DType::Float32, false, oc.num_states, sizes, offs, 1);
      s.set_grads(1);
      const uint64_t before = fusedopt::simt::launch_count();
      StepInputs in;
      in.lr = ScalarArg<float>::of(1e-3f);
      const ParamLists L = s.view();
      if (oc.shape.op == cp::OpKind::kLamb) {  // lamb step without the clipping norm
        LambHyper h;
        h.max_grad_norm = 0.0;
        emu::lamb(L, h, in);
      } else {
        oc.step(Which::kEmu, L, in);
      }
      const uint64_t launched = fusedopt::simt::launch_count() - before;
      const auto plan = planned(oc.shape, sizes.data(), static_cast<int64_t>(sizes.size()), layout);
      CHECK_MSG(launched == plan.size(), oc.name + ": launched " + std::to_string(launched) +
                                             ", planned " + std::to_string(plan.size()));
      if (layout == emu::TableLayout::k4KB) CHECK_MSG(plan.size() >= 4, oc.name + ": expected a multi-launch plan");
    }
    // Norms over more tensors than one cleanup table holds (4 KB: 115): several cleanup
    // launches, then the separate global-norm kernel.
    std::vector<int64_t> many(300);
    std::vector<int> many_offs(300);
    for (size_t i = 0; i < many.size(); ++i) {
      many[i] = int64_t(rng() % 300);
      many_offs[i] = static_cast<int>(i % 4);
    }
    many[17] = 3 * 65536 + 1;
    TensorSet s = TensorSet::make(DType::Float32, false, 0, many, many_offs, 9);
    s.set_grads(10);
    const ParamLists L = s.view();
    std::vector<float> pc(many.size()), pe(many.size());
    float gc = 0, ge = 0;
    const uint64_t before = fusedopt::simt::launch_count();
    emu::l2_norm(L.grad, DType::Float32, L.numel, L.count, nullptr, pe.data(), &ge);
    const uint64_t launched = fusedopt::simt::launch_count() - before;
    cpu::l2_norm(L.grad, DType::Float32, L.numel, L.count, nullptr, pc.data(), &gc);
    for (size_t t = 0; t < many.size(); ++t) CHECK(std::fabs(pc[t] - pe[t]) <= 1e-6f * pc[t]);
    CHECK(std::fabs(gc - ge) <= 1e-6f * gc);
    cp::PlanShape norm;
    norm.op = cp::OpKind::kL2Norm;
    norm.global = true;
    const auto plan = planned(norm, many.data(), static_cast<int64_t>(many.size()), layout);
    CHECK(launched == plan.size());
    if (layout == emu::TableLayout::k4KB) CHECK(plan.back().kernel == "finish");
  }
  emu::set_table_layout(emu::TableLayout::k4KB);
}

// Every op variant issues exactly the launches plan_op plans for it (the ops run those plans;
// this checks the runners issue each planned table once and nothing else), fp32 and bf16 with
// fp32 masters (one more list), lists needing several tables under 4 KB.
TEST_CASE(launches_match_plan_for_every_variant) {
  std::vector<int64_t> sizes;
  std::vector<int> offs;
  for (int i = 0; i < 130; ++i) {
    sizes.push_back(i == 60 ? 65536 + 9 : (i * 37) % 300);
    offs.push_back(i % 3);
  }
  const int64_t n = static_cast<int64_t>(sizes.size());
  auto check = [&](const std::string& what, const cp::PlanShape& shape, cp::TableLayout layout,
                   const std::function<void()>& step) {
    const uint64_t before = fusedopt::simt::launch_count();
    step();
    const uint64_t launched = fusedopt::simt::launch_count() - before;
    const auto plan = planned(shape, sizes.data(), n, layout);
    CHECK_MSG(launched == plan.size(), what + ": launched " + std::to_string(launched) +
                                           ", planned " + std::to_string(plan.size()));
  };
  for (emu::TableLayout layout : {emu::TableLayout::k4KB, emu::TableLayout::k32KB}) {
    CHECK(emu::set_table_layout(layout));
    for (const DtypeCase* dc : {&kDtypes[0], &kDtypes[5]}) {
      StepInputs in;
      in.lr = ScalarArg<float>::of(1e-3f);
      for (const OptCase& oc : optimizer_cases()) {
        TensorSet s = TensorSet::make(dc->dtype, dc->master, oc.num_states, sizes, offs, 4);
        s.set_grads(5);
        cp::PlanShape shape = oc.shape;
        shape.master = dc->master;
        const ParamLists L = s.view();
        if (shape.op == cp::OpKind::kLamb) {  // the lamb op alone (clipping norm: below)
          check(oc.name, shape, layout, [&] { emu::lamb(L, LambHyper{}, in); });
        } else {
          check(oc.name, shape, layout, [&] { oc.step(Which::kEmu, L, in); });
        }
      }
      // The sharded variants: LAMB's two halves, LARS with the full tensors' sums given.
      TensorSet s = TensorSet::make(dc->dtype, dc->master, 2, sizes, offs, 6);
      s.set_grads(7);
      const ParamLists L = s.view();
      std::vector<double> sums(2 * sizes.size(), 1.0);
      cp::PlanShape shape;
      shape.op = cp::OpKind::kLambMoments;
      shape.master = dc->master;
      StepInputs with_sums = in;
      with_sums.norm_sums_out = sums.data();
      check("lamb_moments", shape, layout, [&] { emu::lamb_moments(L, LambHyper{}, with_sums); });
      with_sums = in;
      with_sums.norm_sums = sums.data();
      shape.op = cp::OpKind::kLambApply;
      check("lamb_apply", shape, layout,
            [&] { emu::lamb_apply(L, LambHyper{}, with_sums); });
      TensorSet r = TensorSet::make(dc->dtype, dc->master, 1, sizes, offs, 8);
      r.set_grads(9);
      shape = cp::PlanShape{};
      shape.op = cp::OpKind::kLars;
      shape.num_states = 1;
      shape.master = dc->master;
      shape.norm_sums = true;
      check("lars with norm_sums", shape, layout,
            [&] { emu::lars(r.view(), LarsHyper{}, with_sums); });  // adapt: default
    }
    // l2_norm, per-tensor only and global (the finish launch after several cleanup launches:
    // the 300-tensor case of multi_launch_lists_both_layouts).
    TensorSet s = TensorSet::make(DType::Float32, false, 0, sizes, offs, 10);
    s.set_grads(11);
    std::vector<float> per(sizes.size());
    float global = 0;
    cp::PlanShape shape;
    shape.op = cp::OpKind::kL2Norm;
    shape.num_states = 0;
    check("l2_norm per tensor", shape, layout, [&] {
      emu::l2_norm(s.view().grad, DType::Float32, sizes.data(), n, nullptr, per.data(), nullptr);
    });
    shape.global = true;
    check("l2_norm global", shape, layout, [&] {
      emu::l2_norm(s.view().grad, DType::Float32, sizes.data(), n, nullptr, nullptr, &global);
    });
  }
  emu::set_table_layout(emu::TableLayout::k4KB);
}

// Every schedule order (forward, reverse, random seeds): no race, same results.
TEST_CASE(race_checker_clean_under_every_schedule) {
  const char* specs[] = {"forward", "reverse", "random:1", "random:7", "random:12345"};
  fusedopt::simt::reset_race_count();
  std::vector<int64_t> sizes = {3, 65536 + 5, 1, 4099, 70};
  std::vector<int> offs = {1, 0, 0, 3, 2};
  for (const char* spec : specs) {
    CHECK(fusedopt::simt::set_schedule_from_string(spec));
    for (const OptCase& oc : optimizer_cases())
      compare_run(oc, kDtypes[5], sizes, offs, 23, 2);  // bf16 + fp32 master: most lists
    TensorSet s = TensorSet::make(DType::Float32, false, 0, sizes, offs, 2);
    s.set_grads(4);
    float g = 0;
    std::vector<float> pt(sizes.size());
    emu::l2_norm(s.view().grad, DType::Float32, sizes.data(), 5, nullptr, pt.data(), &g);
  }
  fusedopt::simt::set_schedule(fusedopt::simt::Schedule::kForward);
  CHECK(fusedopt::simt::race_check_enabled());
  CHECK(fusedopt::simt::total_race_count() == 0);
}

// ---- global-memory traffic per element -----------------------------------------------------------
namespace {
struct Budget {
  const char* opt;
  double fp32, bf16_master;
};
// bytes / element / step (read + write). LARS bf16+master: norms read master (4) + grad (2).
const Budget kBudgets[] = {
    {"adamw", 28, 28}, {"sgd_momentum_nesterov", 20, 20}, {"lion_wd", 20, 20},
    {"lamb_l2_no_averaging", 40, 40}, {"lars", 28, 26},
};
// Per-block scalars (found_inf read by every thread, lr / step / grad_scale by one thread),
// reduction partials and per-tensor cleanup data: far below this at 64K-element chunks.
constexpr double kScalarSlack = 0.01;
}  // namespace

TEST_CASE(traffic_within_budget) {
  const int64_t n = 4 * 65536;
  for (const Budget& b : kBudgets) {
    for (const DtypeCase* dc : {&kDtypes[0], &kDtypes[5]}) {
      const OptCase* oc = nullptr;
      static const auto cases = optimizer_cases();
      for (const OptCase& c : cases)
        if (c.name == b.opt) oc = &c;
      CHECK(oc != nullptr);
      TensorSet s = TensorSet::make(dc->dtype, dc->master, oc->num_states, {n}, {0}, 1);
      s.set_grads(2);
      StepInputs in;
      in.lr = ScalarArg<float>::of(1e-3f);
      fusedopt::simt::reset_traffic();
      oc->step(Which::kEmu, s.view(), in);
      const auto tr = fusedopt::simt::total_traffic();
      CHECK(tr.instrumented);
      const double per = double(tr.global_read_bytes + tr.global_write_bytes) / double(n);
      const double budget = dc->master ? b.bf16_master : b.fp32;
      std::printf("       traffic %-24s %-12s %6.3f B/elem (budget %g; read %.3f, write %.3f)\n",
                  b.opt, dc->name, per, budget, double(tr.global_read_bytes) / n,
                  double(tr.global_write_bytes) / n);
      CHECK_MSG(per <= budget + kScalarSlack, std::string(b.opt) + " " + dc->name + ": " + std::to_string(per));
      CHECK_MSG(per >= budget, std::string(b.opt) + " " + dc->name + ": counter below the element traffic");
    }
  }
  // Global grad-norm pass of LAMB clipping: +4 B/elem (fp32 grads).
  TensorSet s = TensorSet::make(DType::Float32, false, 0, {n}, {0}, 1);
  s.set_grads(3);
  float g = 0;
  fusedopt::simt::reset_traffic();
  emu::l2_norm(s.view().grad, DType::Float32, &n, 1, nullptr, nullptr, &g);
  const auto tr = fusedopt::simt::total_traffic();
  const double per = double(tr.global_read_bytes + tr.global_write_bytes) / double(n);
  std::printf("       traffic %-24s %-12s %6.3f B/elem (budget 4)\n", "l2_norm (clipping)", "f32", per);
  CHECK(per >= 4.0 && per <= 4.0 + kScalarSlack);
}

// ---- launch planning (host arithmetic only) ------------------------------------------------------
namespace {
// BERT-large (uncased, 24 layers, hidden 1024, vocab 30522) with MLM + NSP heads: 398 tensors.
std::vector<int64_t> bert_large_layout() {
  const int64_t H = 1024, F = 4096;
  std::vector<int64_t> v = {30522 * H, 512 * H, 2 * H, H, H};  // embeddings + LayerNorm
  for (int l = 0; l < 24; ++l) {
    for (int k = 0; k < 4; ++k) {  // Q, K, V, attention output
      v.push_back(H * H);
      v.push_back(H);
    }
    v.push_back(H); v.push_back(H);          // attention LayerNorm
    v.push_back(H * F); v.push_back(F);      // intermediate
    v.push_back(F * H); v.push_back(H);      // output
    v.push_back(H); v.push_back(H);          // output LayerNorm
  }
  v.push_back(H * H); v.push_back(H);        // pooler
  v.push_back(H * H); v.push_back(H);        // MLM transform
  v.push_back(H); v.push_back(H);            // MLM LayerNorm
  v.push_back(30522);                        // MLM decoder bias (decoder weight tied)
  v.push_back(2 * H); v.push_back(2);        // NSP
  return v;
}
}  // namespace

TEST_CASE(bert_large_lamb_launch_count) {
  const auto sizes = bert_large_layout();
  int64_t total = 0;
  for (int64_t n : sizes) total += n;
  CHECK(sizes.size() == 398);
  CHECK(total > 330000000 && total < 340000000);
  for (emu::TableLayout layout : {emu::TableLayout::k32KB, emu::TableLayout::k4KB}) {
    cp::PlanShape norm;
    norm.op = cp::OpKind::kL2Norm;
    norm.global = true;
    cp::PlanShape lamb;
    lamb.op = cp::OpKind::kLamb;
    lamb.num_states = 2;
    const auto pn = planned(norm, sizes.data(), 398, layout);
    const auto pl = planned(lamb, sizes.data(), 398, layout);
    lamb.master = true;
    const auto pm = planned(lamb, sizes.data(), 398, layout);
    std::printf("       BERT-large (%zu tensors, %" PRId64 " elements), %s tables: LAMB %zu launches "
                "+ %zu for the global grad norm = %zu; with fp32 masters %zu + %zu\n",
                sizes.size(), total, layout == emu::TableLayout::k32KB ? "32 KB" : "4 KB", pl.size(),
                pn.size(), pl.size() + pn.size(), pm.size(), pn.size());
    if (layout == emu::TableLayout::k32KB) {
      CHECK(pl.size() + pn.size() <= 8);
      CHECK(pm.size() + pn.size() <= 8);
    }
    int64_t blocks = 0;
    for (const auto& l : pl) if (l.kernel == "reduce") blocks += l.blocks;
    int64_t chunks = 0;
    for (int64_t n : sizes) chunks += num_chunks(n, emu::kChunkSize);
    CHECK(blocks == chunks);
  }
}

TEST_CASE(planner_sizes_past_2_pow_32) {
  const std::vector<int64_t> sizes = {int64_t(3) << 31, (int64_t(5) << 30) + 7, 1, 0, int64_t(1) << 32};
  cp::PlanShape adam;
  adam.op = cp::OpKind::kElementwise;
  const auto plan = planned(adam, sizes.data(), 5, emu::TableLayout::k32KB);
  int64_t blocks = 0;
  for (const auto& l : plan)
    if (l.kernel == "update") blocks += l.blocks;
  int64_t expect = 0;
  for (int64_t n : sizes) expect += (n + emu::kChunkSize - 1) / emu::kChunkSize;
  CHECK(blocks == expect);
  CHECK(plan.size() == 2);  // step + one update launch
  // The tables' element offsets are 64-bit: the last chunk of a 2^32 + x tensor starts past 2^32.
  const auto chunks = plan_chunks(sizes.data(), 5, emu::kChunkSize);
  int64_t max_begin = 0;
  for (const auto& c : chunks) max_begin = std::max(max_begin, c.begin);
  CHECK(max_begin > (int64_t(1) << 32));
}

int main(int argc, char** argv) { return run_all(argc, argv); }
