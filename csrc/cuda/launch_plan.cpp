// The CUDA engine's launch plans (see launch_plan.h). Host arithmetic only.
#include "launch_plan.h"

#include <stdexcept>

#include "fusedopt/optimizers.h"

namespace fusedopt {
namespace cuda_plan {
namespace {

LaunchLimits engine_limits(int capacity) {
  LaunchLimits lim;
  lim.chunk_size = kChunkSize;
  lim.max_tensors = capacity;
  lim.max_blocks = static_cast<int>(kMaxBlocksPerLaunch);
  return lim;
}

// The multi-tensor kernel over `lists` pointer lists: as many tables as the layout needs.
Pass multi_tensor_pass(Kernel kernel, int lists, const int64_t* numel, int64_t count, int pb) {
  if (lists < 1 || lists > kMaxLists) throw std::logic_error("fusedopt cuda plan: bad list count");
  Pass p{kernel};
  p.lists = lists;
  p.tables = plan_launches(numel, count, engine_limits(slot_capacity(lists, pb)));
  return p;
}

// A one-block kernel over every tensor (empty ones included: their steps advance too),
// `capacity` tensors per launch.
Pass per_tensor_pass(Kernel kernel, int64_t count, int capacity) {
  Pass p{kernel};
  for (int64_t first = 0; first < count; first += capacity)
    p.ranges.push_back({first, count - first < capacity ? count - first : capacity});
  return p;
}

// Per-tensor sums of a reducing pass; a global norm needs its own launch when the tensors took
// several cleanup launches (otherwise the single cleanup block computes it).
void add_cleanup(OpPlan& plan, int64_t count, int pb, bool global) {
  plan.passes.push_back(per_tensor_pass(Kernel::kCleanup, count, tensor_capacity(pb)));
  if (global && plan.passes.back().ranges.size() > 1) {
    Pass finish{Kernel::kFinish};
    finish.ranges.push_back({0, count});
    plan.passes.push_back(finish);
  }
}

// The ops a plan can be asked for: every op of the declaration (fusedopt/optimizers.h) with its
// state counts, and l2_norm. A Passes op gets its kind by name (its plan is written below).
struct Known {
  const char* name;
  OpKind kind;
  int min_states, max_states;
};
// (kKnownOps is constexpr: a Passes op without a plan here stops the build at the throw.)
constexpr OpKind passes_kind(const char* entry) {
  if (same_name(entry, "lamb")) return OpKind::kLamb;
  if (same_name(entry, "lamb_moments")) return OpKind::kLambMoments;
  if (same_name(entry, "lamb_apply")) return OpKind::kLambApply;
  if (same_name(entry, "lars")) return OpKind::kLars;
  throw std::logic_error("a Passes op of fusedopt/optimizers.h has no launch plan in plan_op");
}
#define FUSEDOPT_PLAN_KIND_Elementwise(entry) OpKind::kElementwise
#define FUSEDOPT_PLAN_KIND_Passes(entry) passes_kind(#entry)
#define FUSEDOPT_PLAN_KNOWN(entry, optimizer, Hyper, kind, extras)             \
  Known{#entry, FUSEDOPT_PLAN_KIND_##kind(entry), Declared<Hyper>::min_states(), \
        Declared<Hyper>::kStates},
constexpr Known kKnownOps[] = {FUSEDOPT_OPTIMIZER_OPS(FUSEDOPT_PLAN_KNOWN)
                                   Known{"l2_norm", OpKind::kL2Norm, 0, 0}};
#undef FUSEDOPT_PLAN_KNOWN
#undef FUSEDOPT_PLAN_KIND_Passes
#undef FUSEDOPT_PLAN_KIND_Elementwise

}  // namespace

const char* kernel_name(Kernel k) {
  switch (k) {
    case Kernel::kStep: return "step";
    case Kernel::kUpdate: return "update";
    case Kernel::kReduce: return "reduce";
    case Kernel::kCleanup: return "cleanup";
    case Kernel::kFinish: return "finish";
  }
  return "?";
}

int64_t Pass::blocks(size_t launch) const {
  return tables.empty() ? 1 : static_cast<int64_t>(tables[launch].blocks.size());
}

OpPlan plan_op(const PlanShape& s, const int64_t* numel, int64_t count, TableLayout layout) {
  const int pb = static_cast<int>(layout);
  OpPlan plan;
  if (count <= 0) return plan;
  // Lists in table order: param, [grad], [fp32 master], states.
  const int base = 1 + (s.master ? 1 : 0);
  auto add = [&](Pass p) { plan.passes.push_back(std::move(p)); };
  auto steps = [&]() { add(per_tensor_pass(Kernel::kStep, count, step_capacity(pb))); };
  switch (s.op) {
    case OpKind::kElementwise:
      // The counters advance first; the update reads the new value.
      steps();
      add(multi_tensor_pass(Kernel::kUpdate, base + 1 + s.num_states, numel, count, pb));
      break;
    case OpKind::kLamb:
    case OpKind::kLambMoments:
    case OpKind::kLambApply:
      // Pass 1: moments + ||p||^2, ||u||^2 partials (reads step + 1); cleanup: trust ratios (or
      // the sums, for lamb_moments), step += 1; pass 2 recomputes u: no grad list.
      if (s.op != OpKind::kLambApply) {
        add(multi_tensor_pass(Kernel::kReduce, base + 1 + s.num_states, numel, count, pb));
        add_cleanup(plan, count, pb, false);
      }
      if (s.op != OpKind::kLambMoments)
        add(multi_tensor_pass(Kernel::kUpdate, base + s.num_states, numel, count, pb));
      break;
    case OpKind::kLars:
      if (s.adapt && !s.norm_sums) {
        add(multi_tensor_pass(Kernel::kReduce, base + 1, numel, count, pb));  // ||p||^2, ||g||^2
        add_cleanup(plan, count, pb, false);  // trust ratios, step += 1
      } else {
        steps();
      }
      add(multi_tensor_pass(Kernel::kUpdate, base + 1 + s.num_states, numel, count, pb));
      break;
    case OpKind::kL2Norm:
      add(multi_tensor_pass(Kernel::kReduce, 1, numel, count, pb));
      add_cleanup(plan, count, pb, s.global);
      break;
  }
  return plan;
}

std::vector<PlannedLaunch> planned_launches(const OpPlan& plan) {
  std::vector<PlannedLaunch> out;
  for (const Pass& p : plan.passes)
    for (size_t l = 0; l < p.launches(); ++l)
      out.push_back({kernel_name(p.kernel), p.blocks(l), kBlockThreads});
  return out;
}

std::string describe_plan(const std::string& op, const int64_t* numel, int64_t count,
                          const std::string& layout_name, int64_t states, bool master, bool adapt,
                          bool norm_sums, bool global) {
  const Known* known = nullptr;
  for (const Known& k : kKnownOps)
    if (op == k.name) known = &k;
  if (known == nullptr) {
    std::string names;
    for (const Known& k : kKnownOps) names += std::string(names.empty() ? "" : ", ") + k.name;
    throw std::invalid_argument("fusedopt: no CUDA launch plan for op '" + op + "' (" + names +
                                ")");
  }
  TableLayout layout;
  if (layout_name == "4KB") layout = TableLayout::k4KB;
  else if (layout_name == "32KB") layout = TableLayout::k32KB;
  else throw std::invalid_argument("fusedopt: table layout '" + layout_name + "' (4KB or 32KB)");
  if (states >= 0 && (states < known->min_states || states > known->max_states))
    throw std::invalid_argument("fusedopt: " + op + " cannot have " + std::to_string(states) +
                                " state lists (" + std::to_string(known->min_states) + " to " +
                                std::to_string(known->max_states) + ")");
  PlanShape shape;
  shape.op = known->kind;
  shape.num_states = states < 0 ? known->min_states : static_cast<int>(states);
  shape.master = master;
  shape.adapt = adapt;
  shape.norm_sums = norm_sums;
  shape.global = global;

  const int pb = static_cast<int>(layout);
  std::string s = "chunk_size=" + std::to_string(kChunkSize) +
                  "\nblock_threads=" + std::to_string(kBlockThreads) +
                  "\nilp=" + std::to_string(kILP) + "\nparam_bytes=" + std::to_string(pb) +
                  "\ntable_capacity=";
  for (int lists = 1; lists <= kMaxLists; ++lists)
    s += (lists > 1 ? "," : "") + std::to_string(slot_capacity(lists, pb));
  s += "\ntensor_capacity=" + std::to_string(tensor_capacity(pb)) +
       "\nstep_capacity=" + std::to_string(step_capacity(pb)) +
       "\nmax_blocks=" + std::to_string(kMaxBlocksPerLaunch);
  for (const PlannedLaunch& l : planned_launches(plan_op(shape, numel, count, layout)))
    s += "\nlaunch=" + l.kernel + "," + std::to_string(l.blocks) + "," + std::to_string(l.threads);
  return s;
}

}  // namespace cuda_plan
}  // namespace fusedopt
