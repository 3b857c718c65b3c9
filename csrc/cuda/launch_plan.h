// The CUDA engine's launch plans, as plain host C++ (no CUDA, no torch headers; compiled into
// the op library of every build, the CPU-only one included).
//
// Every CUDA op first asks plan_op() for the launches it is to make, then runs exactly that
// plan (csrc/cuda/host_launch.cuh executes each pass); the same function answers "which
// launches would this op issue for these tensor sizes" for the tests and, through the private
// op torch.ops.fusedopt._cuda_launch_plan (csrc/torch/plan_ops.cpp), for the static GPU report.
// The engine constants and the byte layout of the by-value launch tables live here too: the
// kernels' tables are sized from the same functions, so a plan's tables are the kernels' tables.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fusedopt/planner.h"

namespace fusedopt {
namespace cuda_plan {

constexpr int64_t kChunkSize = 65536;  // elements per block
constexpr int kBlockThreads = 256;
constexpr int kILP = 4;                // elements per thread per iteration
// Parameter bytes kept for a kernel's other arguments (the functor and a pointer).
constexpr int kParamReserve = 384;
constexpr int64_t kMaxBlocksPerLaunch = int64_t(1) << 24;  // 2^40 elements per launch
constexpr int kMaxLists = 8;  // pointer lists of one multi-tensor pass (AMSGrad + master: 6)

// Kernel-parameter sizes of the two table layouts: CUDA >= 12.1 on Volta+ accepts 32764 bytes
// (k32KB), older toolkits 4096 (k4KB), which needs ~7x more launches for large lists.
enum class TableLayout { k4KB = 4096, k32KB = 32764 };

// Multi-tensor slot: a pointer per list, numel, first chunk, partial base, step pointer (8 B
// each), block_start and tensor index (4 B each); 8 B for the count and padding.
constexpr int slot_bytes(int lists) { return lists * 8 + 4 * 8 + 2 * 4; }
constexpr int slot_capacity(int lists, int param_bytes) {
  return (param_bytes - kParamReserve - 8) / slot_bytes(lists);
}
// Cleanup table: partial begin, chunk count, step pointer (8 B), tensor index + pad (4 B + 4 B).
constexpr int tensor_capacity(int param_bytes) { return (param_bytes - kParamReserve - 8) / 32; }
// Step table: one step pointer per tensor.
constexpr int step_capacity(int param_bytes) { return (param_bytes - kParamReserve - 8) / 8; }

// Tensors one multi-tensor table of `lists` pointer lists holds under `layout`.
inline int table_capacity(int lists, TableLayout layout) {
  return slot_capacity(lists, static_cast<int>(layout));
}

// ---- plans -------------------------------------------------------------------------------------
// The kernels of a plan: the multi-tensor kernel as an update or a reducing pass, and the
// one-block kernels of csrc/cuda/reduction_kernels.cuh.
enum class Kernel { kStep, kUpdate, kReduce, kCleanup, kFinish };
const char* kernel_name(Kernel k);  // "step", "update", "reduce", "cleanup", "finish"

struct TensorRange {
  int64_t first;  // first tensor of a per-tensor launch
  int64_t count;
};

// One kernel of the op, run as one or more launches (one per table).
struct Pass {
  Kernel kernel;
  int lists = 0;                    // kUpdate / kReduce: pointer lists per tensor slot
  std::vector<Launch> tables;       // kUpdate / kReduce: slots and block map of each launch
  std::vector<TensorRange> ranges;  // kStep / kCleanup: tensors of each launch; kFinish: all
  size_t launches() const { return tables.empty() ? ranges.size() : tables.size(); }
  int64_t blocks(size_t launch) const;
};

struct OpPlan {
  std::vector<Pass> passes;  // in launch order
};

// What decides an op's launches besides the tensor sizes.
// kElementwise: every Elementwise op of fusedopt/optimizers.h (Adam, SGD, Lion: step + update).
enum class OpKind { kElementwise, kLamb, kLambMoments, kLambApply, kLars, kL2Norm };
struct PlanShape {
  OpKind op = OpKind::kElementwise;
  int num_states = 2;      // state lists the op reads/writes (Adam 2 or 3, SGD/LARS 0 or 1, ...)
  bool master = false;     // fp32 master weights present
  bool adapt = true;       // LARS: trust ratio on
  bool norm_sums = false;  // LARS: the caller passes the full tensors' sums (no norm pass)
  bool global = false;     // l2_norm: global norm requested
};

OpPlan plan_op(const PlanShape& shape, const int64_t* numel, int64_t count, TableLayout layout);

// The plan as a flat list of launches (what a profiler would count).
struct PlannedLaunch {
  std::string kernel;  // kernel_name()
  int64_t blocks;
  int threads;
};
std::vector<PlannedLaunch> planned_launches(const OpPlan& plan);

// ---- the plan query of the op library (torch.ops.fusedopt._cuda_launch_plan) -----------------
// op: an op of fusedopt/optimizers.h (adam, sgd, lion, lamb, lamb_moments, lamb_apply, lars) or
// l2_norm; states: the state lists of the call, between the declaration's fewest and most (< 0:
// the fewest); layout "4KB" | "32KB". Returns
// "key=value" lines: the engine constants (chunk_size, block_threads, ilp, param_bytes,
// table_capacity = tensors per multi-tensor table for 1..kMaxLists lists, comma-separated,
// tensor_capacity, step_capacity, max_blocks), then one "launch=kernel,blocks,threads" line per
// launch in order. Throws std::invalid_argument for an unknown op or layout.
std::string describe_plan(const std::string& op, const int64_t* numel, int64_t count,
                          const std::string& layout, int64_t states, bool master, bool adapt,
                          bool norm_sums, bool global);

}  // namespace cuda_plan
}  // namespace fusedopt
