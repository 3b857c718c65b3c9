// The multi-tensor launch engine and the per-tensor reduction engine. Every optimizer kernel is
// an instantiation of multi_tensor_kernel with an element functor (the math from
// csrc/include/fusedopt/math); see docs/kernels.md for the design.
//
// Launch table: a by-value kernel parameter holding, per tensor slot, the pointer of every list,
// the element count, the first chunk this launch covers, the index of its first reduction
// partial, its step counter and the first block that works on it. Block b finds its slot by a
// binary search over block_start (uniform over the block: constant-cache broadcasts), so a
// launch carries any number of blocks; only tensor slots are limited by the parameter size.
#pragma once

#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "common.cuh"
#include "fusedopt/planner.h"

namespace fusedopt {
namespace FUSEDOPT_CUDA_NS {

// Parameter bytes kept for the kernel's other arguments (the functor and a pointer).
constexpr int kParamReserve = 384;
constexpr int64_t kMaxBlocksPerLaunch = int64_t(1) << 24;  // 2^40 elements per launch
constexpr int kWarps = kBlockThreads / 32;
static_assert(kChunkSize % kILP == 0 && kChunkSize <= (int64_t(1) << 30), "in-chunk offsets are 32-bit");

constexpr int slot_bytes(int lists) { return lists * 8 + 4 * 8 + 2 * 4; }
constexpr int slot_capacity(int lists, int param_bytes) {
  return (param_bytes - kParamReserve - 8) / slot_bytes(lists);
}

template <int kLists, int kParamBytes>
struct SlotTable {
  static constexpr int kCap = slot_capacity(kLists, kParamBytes);
  void* ptr[kLists][kCap];
  int64_t numel[kCap];
  int64_t first_chunk[kCap];   // chunk index (within the tensor) of the slot's first block
  int64_t partial_base[kCap];  // reduction partial index of that chunk
  float* step[kCap];           // per-tensor step counter (nullptr for l2_norm)
  int32_t block_start[kCap];   // first block of the slot (ascending)
  int32_t tensor[kCap];        // caller's tensor index
  int32_t count;
};

// Per-tensor table of the cleanup kernels (one entry per tensor, including empty ones).
constexpr int tensor_capacity(int param_bytes) { return (param_bytes - kParamReserve - 8) / 32; }
template <int kParamBytes>
struct TensorTable {
  static constexpr int kCap = tensor_capacity(kParamBytes);
  int64_t partial_begin[kCap];
  int64_t nchunks[kCap];
  float* step[kCap];
  int32_t tensor[kCap];
  int32_t pad_[kCap];
  int32_t count;
};

constexpr int step_capacity(int param_bytes) { return (param_bytes - kParamReserve - 8) / 8; }
template <int kParamBytes>
struct StepTable {
  static constexpr int kCap = step_capacity(kParamBytes);
  float* step[kCap];
  int32_t count;
};

// ---- list layout of an op -----------------------------------------------------------------------
// Lists in table order: param, [grad], [fp32 master], states...
template <class Op, bool kMaster>
struct Lists {
  static constexpr int kGrad = 1;
  static constexpr int kMasterList = Op::kHasGrad ? 2 : 1;
  static constexpr int kState0 = kMasterList + (kMaster ? 1 : 0);
  static constexpr int kCount = kState0 + Op::kStates;
};

template <class C, int kStates>
struct ElemState {
  C s[kStates > 0 ? kStates : 1];
};

// ---- block reduction (fixed tree: bitwise reproducible) -------------------------------------------
__device__ __forceinline__ void block_reduce_store(double a, double b, double2* out) {
  __shared__ double red_a[kWarps];
  __shared__ double red_b[kWarps];
  for (int off = 16; off > 0; off >>= 1) {
    a += __shfl_down_sync(0xffffffffu, a, off);
    b += __shfl_down_sync(0xffffffffu, b, off);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    red_a[warp] = a;
    red_b[warp] = b;
  }
  __syncthreads();
  if (warp == 0) {
    a = lane < kWarps ? red_a[lane] : 0.0;
    b = lane < kWarps ? red_b[lane] : 0.0;
    for (int off = 16; off > 0; off >>= 1) {
      a += __shfl_down_sync(0xffffffffu, a, off);
      b += __shfl_down_sync(0xffffffffu, b, off);
    }
    if (lane == 0) *out = make_double2(a, b);
  }
}

// sqrt of the sum of tsum[0, count): every thread of the block calls it; fixed order.
__device__ __forceinline__ void block_global_norm(const double* tsum, int64_t count, float* out) {
  __shared__ double acc[kBlockThreads];
  double s = 0.0;
  for (int64_t j = threadIdx.x; j < count; j += kBlockThreads) s += tsum[j];
  acc[threadIdx.x] = s;
  __syncthreads();
  for (int w = kBlockThreads / 2; w > 0; w >>= 1) {
    if (static_cast<int>(threadIdx.x) < w) acc[threadIdx.x] += acc[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = static_cast<float>(sqrt(acc[0]));
}

// ---- the multi-tensor kernel ------------------------------------------------------------------------
template <class Op, class P, bool kMaster, int kParamBytes>
__global__ void __launch_bounds__(kBlockThreads)
    multi_tensor_kernel(SlotTable<Lists<Op, kMaster>::kCount, kParamBytes> t, Op op,
                        double2* partials) {
  using C = typename Op::C;
  using LL = Lists<Op, kMaster>;
  constexpr int kS = Op::kStates;
  static_assert(std::is_same<C, typename Storage<P>::C>::value, "compute type mismatch");
  static_assert(!kMaster || std::is_same<C, float>::value, "fp32 masters need fp32 compute");
  if (op.in.skip()) return;

  // Slot of this block: last slot whose block_start <= blockIdx.x.
  const int block = static_cast<int>(blockIdx.x);
  int lo = 0, hi = t.count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (t.block_start[mid] <= block) lo = mid;
    else hi = mid - 1;
  }
  const int slot = lo;
  // Per-tensor coefficients (lr, step, grad_scale reads; double pow() for bias corrections):
  // evaluated by one thread per block and shared.
  __shared__ typename Op::Coeffs shared_coeffs;
  if (threadIdx.x == 0) shared_coeffs = op.coeffs(t.step[slot], t.tensor[slot]);
  __syncthreads();
  const typename Op::Coeffs k = shared_coeffs;
  const int64_t chunk_in_slot = block - t.block_start[slot];
  const int64_t begin = (t.first_chunk[slot] + chunk_in_slot) * kChunkSize;
  const int64_t rest = t.numel[slot] - begin;
  // Offsets within a chunk fit in 32 bits (kChunkSize <= 2^30); the 64-bit part is in `begin`,
  // folded into the base pointers once.
  const int n = static_cast<int>(rest < kChunkSize ? rest : kChunkSize);

  P* param = static_cast<P*>(t.ptr[0][slot]) + begin;
  const P* grad = nullptr;
  if (Op::kHasGrad) grad = static_cast<const P*>(t.ptr[LL::kGrad][slot]) + begin;
  float* master = nullptr;
  if (kMaster) master = static_cast<float*>(t.ptr[LL::kMasterList][slot]) + begin;
  C* st[kS > 0 ? kS : 1];
FUSEDOPT_UNROLL
  for (int s = 0; s < kS; ++s) st[s] = static_cast<C*>(t.ptr[LL::kState0 + s][slot]) + begin;

  bool aligned = kMaster ? is_aligned(master) : is_aligned(param);
  if (Op::kHasGrad) aligned = aligned && is_aligned(grad);
  if (kMaster && Op::kWriteParam) aligned = aligned && is_aligned(param);
FUSEDOPT_UNROLL
  for (int s = 0; s < kS; ++s) aligned = aligned && is_aligned(st[s]);

  double acc_a = 0.0, acc_b = 0.0;
  // One element: load -> op -> store (scalar accesses).
  auto scalar_element = [&](int i) {
    C p = kMaster ? C(master[i]) : Storage<P>::load(param[i]);
    C g = C(0);
    if (Op::kHasGrad) g = Storage<P>::load(grad[i]);
    ElemState<C, kS> e;
FUSEDOPT_UNROLL
    for (int s = 0; s < kS; ++s) e.s[s] = ((Op::kReadStates >> s) & 1) ? st[s][i] : C(0);
    op.element(p, g, e.s, k, acc_a, acc_b);
FUSEDOPT_UNROLL
    for (int s = 0; s < kS; ++s)
      if ((Op::kWriteStates >> s) & 1) st[s][i] = e.s[s];
    if (Op::kWriteParam) {
      if (kMaster) master[i] = p;
      param[i] = Storage<P>::store(p);
    }
  };

  if (aligned) {
    // Fast path: kILP consecutive elements per thread per iteration with vector accesses
    // (128-bit for fp32 lists), then a scalar tail of < kILP elements.
    const int nvec = n / kILP;
    for (int v = threadIdx.x; v < nvec; v += kBlockThreads) {
      const int i = v * kILP;
      C p[kILP], g[kILP];
      ElemState<C, kS> e[kILP];
      if constexpr (kMaster) Storage<float>::load4(master + i, p);  // C == float here
      else Storage<P>::load4(param + i, p);
      if (Op::kHasGrad) Storage<P>::load4(grad + i, g);
      else
FUSEDOPT_UNROLL
        for (int j = 0; j < kILP; ++j) g[j] = C(0);
FUSEDOPT_UNROLL
      for (int s = 0; s < kS; ++s) {
        C tmp[kILP];
        if ((Op::kReadStates >> s) & 1) Storage<C>::load4(st[s] + i, tmp);
        else
FUSEDOPT_UNROLL
          for (int j = 0; j < kILP; ++j) tmp[j] = C(0);
FUSEDOPT_UNROLL
        for (int j = 0; j < kILP; ++j) e[j].s[s] = tmp[j];
      }
FUSEDOPT_UNROLL
      for (int j = 0; j < kILP; ++j) op.element(p[j], g[j], e[j].s, k, acc_a, acc_b);
FUSEDOPT_UNROLL
      for (int s = 0; s < kS; ++s) {
        if ((Op::kWriteStates >> s) & 1) {
          C tmp[kILP];
FUSEDOPT_UNROLL
          for (int j = 0; j < kILP; ++j) tmp[j] = e[j].s[s];
          Storage<C>::store4(st[s] + i, tmp);
        }
      }
      if (Op::kWriteParam) {
        if constexpr (kMaster) Storage<float>::store4(master + i, p);
        Storage<P>::store4(param + i, p);
      }
    }
    for (int i = nvec * kILP + threadIdx.x; i < n; i += kBlockThreads) scalar_element(i);
  } else {
    // Misaligned chunk: strided scalar accesses, kILP independent elements in flight per thread
    // (all loads of an iteration are issued before any math).
    for (int base = 0; base < n; base += kBlockThreads * kILP) {
      C p[kILP], g[kILP];
      ElemState<C, kS> e[kILP];
FUSEDOPT_UNROLL
      for (int j = 0; j < kILP; ++j) {
        const int i = base + static_cast<int>(threadIdx.x) + j * kBlockThreads;
        p[j] = C(0);
        g[j] = C(0);
FUSEDOPT_UNROLL
        for (int s = 0; s < kS; ++s) e[j].s[s] = C(0);
        if (i < n) {
          p[j] = kMaster ? C(master[i]) : Storage<P>::load(param[i]);
          if (Op::kHasGrad) g[j] = Storage<P>::load(grad[i]);
FUSEDOPT_UNROLL
          for (int s = 0; s < kS; ++s)
            if ((Op::kReadStates >> s) & 1) e[j].s[s] = st[s][i];
        }
      }
FUSEDOPT_UNROLL
      for (int j = 0; j < kILP; ++j) {
        const int i = base + static_cast<int>(threadIdx.x) + j * kBlockThreads;
        if (i < n) op.element(p[j], g[j], e[j].s, k, acc_a, acc_b);
      }
FUSEDOPT_UNROLL
      for (int j = 0; j < kILP; ++j) {
        const int i = base + static_cast<int>(threadIdx.x) + j * kBlockThreads;
        if (i < n) {
FUSEDOPT_UNROLL
          for (int s = 0; s < kS; ++s)
            if ((Op::kWriteStates >> s) & 1) st[s][i] = e[j].s[s];
          if (Op::kWriteParam) {
            if (kMaster) master[i] = p[j];
            param[i] = Storage<P>::store(p[j]);
          }
        }
      }
    }
  }
  if (Op::kReduce) block_reduce_store(acc_a, acc_b, partials + t.partial_base[slot] + chunk_in_slot);
}

// ---- cleanup: per-tensor sums of the partials in chunk order, then Fin per tensor -------------
// Fin::tensor(index, step, sum_a, sum_b); Fin::kGlobal: afterwards the whole block computes the
// global norm from fin.tsum (only when this launch covers every tensor).
template <class Fin, int kParamBytes>
__global__ void __launch_bounds__(kBlockThreads)
    cleanup_kernel(TensorTable<kParamBytes> t, Fin fin, const double2* partials,
                   int64_t total_tensors, float* global_out) {
  if (fin.in.skip()) return;
  for (int j = threadIdx.x; j < t.count; j += kBlockThreads) {
    double a = 0.0, b = 0.0;
    const double2* pp = partials + t.partial_begin[j];
    for (int64_t c = 0; c < t.nchunks[j]; ++c) {
      const double2 v = pp[c];
      a += v.x;
      b += v.y;
    }
    fin.tensor(t.tensor[j], t.step[j], a, b);
  }
  if (global_out != nullptr) {
    __syncthreads();
    block_global_norm(fin.tsum, total_tensors, global_out);
  }
}

// Global norm when the tensors needed several cleanup launches (a template: defined in a header).
template <int kUnused = 0>
__global__ void __launch_bounds__(kBlockThreads)
    global_norm_kernel(const double* tsum, int64_t count, float* out) {
  block_global_norm(tsum, count, out);
}

template <int kParamBytes>
__global__ void __launch_bounds__(kBlockThreads)
    step_kernel(StepTable<kParamBytes> t, const float* found_inf) {
  if (found_inf != nullptr && *found_inf != 0.0f) return;
  for (int j = threadIdx.x; j < t.count; j += kBlockThreads) *t.step[j] += 1.0f;
}

// ===================================== host side ==============================================
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

inline LaunchLimits engine_limits(int capacity) {
  LaunchLimits lim;
  lim.chunk_size = kChunkSize;
  lim.max_tensors = capacity;
  lim.max_blocks = static_cast<int>(kMaxBlocksPerLaunch);
  return lim;
}

// Plans and launches multi_tensor_kernel<Op, P, kMaster> over the lists.
template <class Op, class P, bool kMaster, int kPB>
void run_multi_tensor(const HostLists& L, const Op& op, double2* partials,
                      const std::vector<int64_t>& bases, Stream stream) {
  using Table = SlotTable<Lists<Op, kMaster>::kCount, kPB>;
  static_assert(sizeof(Table) + sizeof(Op) + sizeof(void*) <= kPB, "kernel parameters too large");
  if (L.num_lists != Lists<Op, kMaster>::kCount)
    throw std::logic_error("fusedopt cuda: list count mismatch");
  const auto launches = plan_launches(L.numel, L.count, engine_limits(Table::kCap));
  for (const Launch& launch : launches) {
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

// Cleanup launches over every tensor (empty ones included: their steps advance too).
template <class Fin, int kPB>
void run_cleanup(const Fin& fin, int64_t count, float* const* steps,
                 const std::vector<int64_t>& bases, const double2* partials, float* global,
                 Stream stream) {
  using Table = TensorTable<kPB>;
  static_assert(sizeof(Table) + sizeof(Fin) + 32 <= kPB, "kernel parameters too large");
  const bool single = count <= Table::kCap;
  for (int64_t first = 0; first < count; first += Table::kCap) {
    Table t;
    std::memset(static_cast<void*>(&t), 0, sizeof(t));
    const int64_t n = count - first < Table::kCap ? count - first : Table::kCap;
    t.count = static_cast<int32_t>(n);
    for (int64_t j = 0; j < n; ++j) {
      const int64_t tensor = first + j;
      t.partial_begin[j] = bases[static_cast<size_t>(tensor)];
      t.nchunks[j] = bases[static_cast<size_t>(tensor) + 1] - bases[static_cast<size_t>(tensor)];
      t.step[j] = steps ? steps[tensor] : nullptr;
      t.tensor[j] = static_cast<int32_t>(tensor);
    }
    FUSEDOPT_LAUNCH(1, kBlockThreads, 0, static_cast<cudaStream_t>(stream),
                    cleanup_kernel<Fin, kPB>)(t, fin, partials, count,
                                              single ? global : static_cast<float*>(nullptr));
    check_launch("cleanup_kernel");
  }
  if (global != nullptr && !single) {
    FUSEDOPT_LAUNCH(1, kBlockThreads, 0, static_cast<cudaStream_t>(stream), global_norm_kernel<0>)(
        static_cast<const double*>(fin.tsum), count, global);
    check_launch("global_norm_kernel");
  }
}

template <int kPB>
void run_step_increment(float* const* steps, int64_t count, const float* found_inf,
                        Stream stream) {
  using Table = StepTable<kPB>;
  for (int64_t first = 0; first < count; first += Table::kCap) {
    Table t;
    std::memset(static_cast<void*>(&t), 0, sizeof(t));
    const int64_t n = count - first < Table::kCap ? count - first : Table::kCap;
    t.count = static_cast<int32_t>(n);
    for (int64_t j = 0; j < n; ++j) t.step[j] = steps[first + j];
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

// A single-pass optimizer step (Adam, SGD, Lion): the step-counter launch, then the element op
// OpT<C, kStates> over the param, grad and state lists, for the lists' param dtype and master flag.
template <template <class, int> class OpT, int kStates, class Hyper>
void run_single_pass(const ParamLists& L, const Hyper& h, const StepInputs& in) {
  if (L.count <= 0) return;
  const Stream stream = current_stream();
  with_layout([&](auto pb) {
    constexpr int kPB = decltype(pb)::value;
    run_step_increment<kPB>(L.step, L.count, in.found_inf, stream);
    dispatch_param(L, [&](auto* tag, auto master) {
      using P = std::remove_pointer_t<decltype(tag)>;
      using C = typename Storage<P>::C;
      constexpr bool kM = decltype(master)::value;
      using Op = OpT<C, kStates>;
      run_multi_tensor<Op, P, kM, kPB>(optimizer_lists(L, true, kM, kStates), Op{h, in}, nullptr,
                                       {}, stream);
    });
  });
}

}  // namespace FUSEDOPT_CUDA_NS
}  // namespace fusedopt
