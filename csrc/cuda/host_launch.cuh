// The host side of the engine: table layout selection, the runners that execute one pass of an
// op's launch plan (launch_plan.h) by filling the by-value tables and issuing the multi-tensor,
// cleanup, finish and step kernels, the per-call scratch, and the wiring shared by the
// optimizer ops (list order, dtype / master dispatch, the single-pass step). A runner launches
// exactly the tables its pass lists and checks that the pass fits the kernel it instantiates:
// the plan the op runs is the plan plan_op() reports. Each op in csrc/cuda/*.cu includes this
// header and nothing else of the engine.
#pragma once

#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "launch_plan.h"
#include "multi_tensor_kernel.cuh"

namespace fusedopt {
namespace FUSEDOPT_CUDA_NS {

using cuda_plan::Kernel;
using cuda_plan::OpKind;
using cuda_plan::OpPlan;
using cuda_plan::Pass;
using cuda_plan::PlanShape;

Stream current_stream();
void* scratch_alloc(size_t bytes, Stream s);
void scratch_free(void* p, Stream s);
void check_launch(const char* what);

#if defined(FUSEDOPT_SIMT)
// Both layouts are compiled; the runtime setting picks one.
template <class Fn>
inline void with_layout(Fn&& fn) {
  if (table_layout() == TableLayout::k32KB) fn(std::integral_constant<int, 32764>{});
  else fn(std::integral_constant<int, 4096>{});
}
#else
#ifndef FUSEDOPT_CUDA_PARAM_BYTES
#if CUDART_VERSION >= 12010
#define FUSEDOPT_CUDA_PARAM_BYTES 32764
#else
#define FUSEDOPT_CUDA_PARAM_BYTES 4096
#endif
#endif
template <class Fn>
inline void with_layout(Fn&& fn) {
  fn(std::integral_constant<int, FUSEDOPT_CUDA_PARAM_BYTES>{});
}
#endif

// Host view of the lists of one launch family.
struct HostLists {
  int64_t count = 0;
  const int64_t* numel = nullptr;
  const void* const* list[8] = {};
  int num_lists = 0;
  float* const* step = nullptr;
};

// Global chunk index of each tensor's first chunk (reduction partial layout); [count + 1].
inline std::vector<int64_t> chunk_bases(const int64_t* numel, int64_t count) {
  std::vector<int64_t> base(static_cast<size_t>(count) + 1, 0);
  for (int64_t t = 0; t < count; ++t) base[t + 1] = base[t] + num_chunks(numel[t], kChunkSize);
  return base;
}

// The layout a table size was compiled for (with_layout's kPB).
constexpr TableLayout layout_of(int param_bytes) { return static_cast<TableLayout>(param_bytes); }

[[noreturn]] inline void plan_mismatch(const Pass& pass, const char* what) {
  throw std::logic_error(std::string("fusedopt cuda: ") + cuda_plan::kernel_name(pass.kernel) +
                         " pass of the plan: " + what);
}

// One multi-tensor pass: a launch of multi_tensor_kernel<Op, P, kMaster> per planned table.
template <class Op, class P, bool kMaster, int kPB>
void run_multi_tensor(const Pass& pass, const HostLists& L, const Op& op, double2* partials,
                      const std::vector<int64_t>& bases, Stream stream) {
  using Table = SlotTable<Lists<Op, kMaster>::kCount, kPB>;
  static_assert(sizeof(Table) + sizeof(Op) + sizeof(void*) <= kPB, "kernel parameters too large");
  if (pass.lists != Lists<Op, kMaster>::kCount || L.num_lists != pass.lists)
    plan_mismatch(pass, "its list count is not the element op's");
  for (const Launch& launch : pass.tables) {
    if (launch.tensors.size() > static_cast<size_t>(Table::kCap))
      plan_mismatch(pass, "a table holds more tensors than the kernel's");
    Table t;
    std::memset(static_cast<void*>(&t), 0, sizeof(t));
    t.count = static_cast<int32_t>(launch.tensors.size());
    int32_t prev = -1;
    for (size_t b = 0; b < launch.blocks.size(); ++b) {
      const LaunchBlock& lb = launch.blocks[b];
      if (lb.slot == prev) continue;
      prev = lb.slot;
      const int64_t tensor = launch.tensors[static_cast<size_t>(lb.slot)];
      for (int l = 0; l < L.num_lists; ++l) t.ptr[l][lb.slot] = const_cast<void*>(L.list[l][tensor]);
      t.numel[lb.slot] = L.numel[tensor];
      t.first_chunk[lb.slot] = lb.chunk;
      t.partial_base[lb.slot] = bases.empty() ? 0 : bases[static_cast<size_t>(tensor)] + lb.chunk;
      t.step[lb.slot] = L.step ? L.step[tensor] : nullptr;
      t.block_start[lb.slot] = static_cast<int32_t>(b);
      t.tensor[lb.slot] = static_cast<int32_t>(tensor);
    }
    FUSEDOPT_LAUNCH(static_cast<unsigned>(launch.blocks.size()), kBlockThreads, 0,
                    static_cast<cudaStream_t>(stream), multi_tensor_kernel<Op, P, kMaster, kPB>)(
        t, op, partials);
    check_launch("multi_tensor_kernel");
  }
}

template <int kCap>
void check_ranges(const Pass& pass) {
  for (const cuda_plan::TensorRange& r : pass.ranges)
    if (r.count > kCap) plan_mismatch(pass, "a launch covers more tensors than its table holds");
}

// The cleanup pass: per-tensor sums of the partials, then fin per tensor. With one launch the
// cleanup block also computes the global norm (when `global` is requested); with several, the
// plan's finish pass does.
template <class Fin, int kPB>
void run_cleanup(const Pass& pass, const Fin& fin, int64_t count, float* const* steps,
                 const std::vector<int64_t>& bases, const double2* partials, float* global,
                 Stream stream) {
  using Table = TensorTable<kPB>;
  static_assert(sizeof(Table) + sizeof(Fin) + 32 <= kPB, "kernel parameters too large");
  check_ranges<Table::kCap>(pass);
  float* in_kernel_global = pass.ranges.size() == 1 ? global : nullptr;
  for (const cuda_plan::TensorRange& r : pass.ranges) {
    Table t;
    std::memset(static_cast<void*>(&t), 0, sizeof(t));
    t.count = static_cast<int32_t>(r.count);
    for (int64_t j = 0; j < r.count; ++j) {
      const size_t tensor = static_cast<size_t>(r.first + j);
      t.partial_begin[j] = bases[tensor];
      t.nchunks[j] = bases[tensor + 1] - bases[tensor];
      t.step[j] = steps ? steps[tensor] : nullptr;
      t.tensor[j] = static_cast<int32_t>(tensor);
    }
    FUSEDOPT_LAUNCH(1, kBlockThreads, 0, static_cast<cudaStream_t>(stream),
                    cleanup_kernel<Fin, kPB>)(t, fin, partials, count, in_kernel_global);
    check_launch("cleanup_kernel");
  }
}

// The finish pass: the global norm from the per-tensor sums of several cleanup launches. (A
// template so that only the op that has the pass instantiates global_norm_kernel.)
template <int kPB>
void run_finish(const Pass& pass, const double* tsum, float* global, Stream stream) {
  if (global == nullptr) plan_mismatch(pass, "no global norm was requested");
  for (const cuda_plan::TensorRange& r : pass.ranges) {
    FUSEDOPT_LAUNCH(1, kBlockThreads, 0, static_cast<cudaStream_t>(stream), global_norm_kernel<0>)(
        tsum + r.first, r.count, global);
    check_launch("global_norm_kernel");
  }
}

// The step pass of the single-pass optimizers (and of LARS without a norm pass).
template <int kPB>
void run_steps(const Pass& pass, float* const* steps, const float* found_inf, Stream stream) {
  using Table = StepTable<kPB>;
  check_ranges<Table::kCap>(pass);
  for (const cuda_plan::TensorRange& r : pass.ranges) {
    Table t;
    std::memset(static_cast<void*>(&t), 0, sizeof(t));
    t.count = static_cast<int32_t>(r.count);
    for (int64_t j = 0; j < r.count; ++j) t.step[j] = steps[r.first + j];
    FUSEDOPT_LAUNCH(1, kBlockThreads, 0, static_cast<cudaStream_t>(stream), step_kernel<kPB>)(
        t, found_inf);
    check_launch("step_kernel");
  }
}

// Scratch of one op call: reduction partials (double2 per chunk), per-tensor double sums and
// per-tensor floats (trust ratio / scaled lr). Freed (stream-ordered) when the op returns.
class Scratch {
 public:
  Scratch(int64_t chunks, int64_t tensors, Stream s) : stream_(s) {
    const size_t bytes = static_cast<size_t>(chunks) * sizeof(double2) +
                         static_cast<size_t>(tensors) * (sizeof(double) + sizeof(float)) + 64;
    base_ = scratch_alloc(bytes, s);
    char* p = static_cast<char*>(base_);
    partials = reinterpret_cast<double2*>(p);
    p += static_cast<size_t>(chunks) * sizeof(double2);
    tsum = reinterpret_cast<double*>(p);
    p += static_cast<size_t>(tensors) * sizeof(double);
    per_tensor = reinterpret_cast<float*>(p);
  }
  ~Scratch() { scratch_free(base_, stream_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  double2* partials = nullptr;
  double* tsum = nullptr;
  float* per_tensor = nullptr;

 private:
  void* base_ = nullptr;
  Stream stream_;
};

// Lists of an optimizer op in table order (see Lists<Op, kMaster>).
inline HostLists optimizer_lists(const ParamLists& P, bool with_grad, bool with_master,
                                 int num_states) {
  HostLists L;
  L.count = P.count;
  L.numel = P.numel;
  L.list[L.num_lists++] = reinterpret_cast<const void* const*>(P.param);
  if (with_grad) L.list[L.num_lists++] = P.grad;
  if (with_master) L.list[L.num_lists++] = reinterpret_cast<const void* const*>(P.master);
  for (int s = 0; s < num_states; ++s)
    L.list[L.num_lists++] = reinterpret_cast<const void* const*>(P.state[s]);
  L.step = P.step;
  return L;
}

// Runs fn(P*, Bool<master>) for the param dtype and master flag of the lists.
template <class Fn>
inline void dispatch_param(const ParamLists& L, Fn&& fn) {
  const bool master = L.master != nullptr;
  dispatch_dtype(L.param_dtype, [&](auto* tag) {
    using P = std::remove_pointer_t<decltype(tag)>;
    if constexpr (std::is_same<P, __half>::value || std::is_same<P, __nv_bfloat16>::value) {
      if (master) fn(tag, Bool<true>{});
      else fn(tag, Bool<false>{});
    } else {
      if (master) throw std::invalid_argument("fusedopt cuda: fp32 masters need fp16/bf16 params");
      fn(tag, Bool<false>{});
    }
  });
}

// A single-pass optimizer step (the Elementwise ops: Adam, SGD, Lion): its plan (the step-counter pass, then the
// element op OpT<C, kStates> over the param, grad, [master] and state lists), run for the
// lists' param dtype and master flag.
template <template <class, int> class OpT, int kStates, class Hyper>
void run_single_pass(const ParamLists& L, const Hyper& h, const StepInputs& in) {
  if (L.count <= 0) return;
  const Stream stream = current_stream();
  PlanShape shape;
  shape.op = OpKind::kElementwise;
  shape.num_states = kStates;
  shape.master = L.master != nullptr;
  with_layout([&](auto pb) {
    constexpr int kPB = decltype(pb)::value;
    const OpPlan plan = cuda_plan::plan_op(shape, L.numel, L.count, layout_of(kPB));
    dispatch_param(L, [&](auto* tag, auto master) {
      using P = std::remove_pointer_t<decltype(tag)>;
      using C = typename Storage<P>::C;
      constexpr bool kM = decltype(master)::value;
      using Op = OpT<C, kStates>;
      for (const Pass& pass : plan.passes) {
        switch (pass.kernel) {
          case Kernel::kStep: run_steps<kPB>(pass, L.step, in.found_inf, stream); break;
          case Kernel::kUpdate:
            run_multi_tensor<Op, P, kM, kPB>(pass, optimizer_lists(L, true, kM, kStates),
                                             Op{{}, h, in}, nullptr, {}, stream);  // {}: base
            break;
          default: plan_mismatch(pass, "not a pass of a single-pass optimizer");
        }
      }
    });
  });
}

}  // namespace FUSEDOPT_CUDA_NS
}  // namespace fusedopt
