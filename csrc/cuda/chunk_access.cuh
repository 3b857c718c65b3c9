// How a thread moves its elements of a chunk: the one load -> element -> store routine every
// multi-tensor pass runs, and the two access policies it is instantiated with.
//
//   VectorAccess      the chunk's pointers are all aligned to their vector width: a thread's
//                     kILP elements are consecutive and move in one access per list (128-bit for
//                     fp32, 2 x 128-bit for fp64, 64-bit for fp16/bf16).
//   StridedAccess<W>  misaligned chunks (W = kILP) and the < kILP tail of aligned ones (W = 1,
//                     one element per thread is all a tail needs, and it keeps fewer registers
//                     live across the vector loop): a thread's W elements are kBlockThreads
//                     apart (coalesced scalar accesses, W loads in flight before any math);
//                     elements at or past the chunk end are neither loaded nor stored.
//
// Both policies are indexed with 32-bit offsets from pointers already advanced to the chunk's
// first element (chunks hold <= 2^30 elements): the 64-bit part is folded in once per block,
// which is what keeps every kernel spill-free.
#pragma once

#include "element_op.cuh"

namespace fusedopt {
namespace FUSEDOPT_CUDA_NS {

// Lists in table order: param, [grad], [fp32 master], states...
template <class Op, bool kMaster>
struct Lists {
  static constexpr int kGrad = 1;
  static constexpr int kMasterList = Op::kHasGrad ? 2 : 1;
  static constexpr int kState0 = kMasterList + (kMaster ? 1 : 0);
  static constexpr int kCount = kState0 + Op::kStates;
};

// The lists of one chunk, each pointer at the chunk's first element. With a master the math
// reads and writes the master and the param only receives its rounded value (never read).
template <class Op, class P, bool kMaster>
struct ChunkLists {
  using C = typename Op::C;
  static constexpr int kS = Op::kStates;
  P* param = nullptr;
  const P* grad = nullptr;
  float* master = nullptr;
  C* state[kS > 0 ? kS : 1] = {};

  // Whether every list this op touches is aligned to its vector width (uniform over the block).
  __device__ __forceinline__ bool vector_aligned() const {
    bool ok = kMaster ? is_aligned(master) : is_aligned(param);
    if (Op::kHasGrad) ok = ok && is_aligned(grad);
    if (kMaster && Op::kWriteParam) ok = ok && is_aligned(param);
FUSEDOPT_UNROLL
    for (int s = 0; s < kS; ++s) ok = ok && is_aligned(state[s]);
    return ok;
  }
};

// Consecutive elements i .. i + kILP - 1 (all inside the chunk).
struct VectorAccess {
  static constexpr int kWidth = kILP;
  int i;
  __device__ __forceinline__ bool valid(int) const { return true; }
  template <class S>
  __device__ __forceinline__ void load(const S* p, typename Storage<S>::C (&o)[kWidth]) const {
    Storage<S>::load4(p + i, o);
  }
  template <class S>
  __device__ __forceinline__ void store(S* p, const typename Storage<S>::C (&o)[kWidth]) const {
    Storage<S>::store4(p + i, o);
  }
};
static_assert(kILP == 4, "VectorAccess moves 4 elements (Storage::load4 / store4)");

// Elements i + j * kBlockThreads (j < kWidth) that lie before n.
template <int kWidth_>
struct StridedAccess {
  static constexpr int kWidth = kWidth_;
  int i, n;
  __device__ __forceinline__ int at(int j) const { return i + j * kBlockThreads; }
  __device__ __forceinline__ bool valid(int j) const { return at(j) < n; }
  template <class S>
  __device__ __forceinline__ void load(const S* p, typename Storage<S>::C (&o)[kWidth]) const {
FUSEDOPT_UNROLL
    for (int j = 0; j < kWidth; ++j)
      o[j] = valid(j) ? Storage<S>::load(p[at(j)]) : typename Storage<S>::C(0);
  }
  template <class S>
  __device__ __forceinline__ void store(S* p, const typename Storage<S>::C (&o)[kWidth]) const {
FUSEDOPT_UNROLL
    for (int j = 0; j < kWidth; ++j)
      if (valid(j)) p[at(j)] = Storage<S>::store(o[j]);
  }
};

template <class C, int kStates>
struct ElemState {
  C s[kStates > 0 ? kStates : 1];
};

// The one load -> element -> store routine: a thread's Access::kWidth elements of every list
// are loaded through the access policy (lists an op does not read start at 0), op.element runs
// on each valid element, and the lists it writes are stored back.
template <class Op, class P, bool kMaster, class Access>
__device__ __forceinline__ void load_element_store(const ChunkLists<Op, P, kMaster>& L,
                                                   const Access& at, const Op& op,
                                                   const typename Op::Coeffs& k, double& acc_a,
                                                   double& acc_b) {
  using C = typename Op::C;
  constexpr int kS = Op::kStates;
  constexpr int kW = Access::kWidth;
  C p[kW], g[kW];
  ElemState<C, kS> e[kW];
  if constexpr (kMaster) at.load(L.master, p);  // C == float here
  else at.load(L.param, p);
  if constexpr (Op::kHasGrad) at.load(L.grad, g);
  else
FUSEDOPT_UNROLL
    for (int j = 0; j < kW; ++j) g[j] = C(0);
FUSEDOPT_UNROLL
  for (int s = 0; s < kS; ++s) {
    C tmp[kW];
    if ((Op::kReadStates >> s) & 1) at.load(L.state[s], tmp);
    else
FUSEDOPT_UNROLL
      for (int j = 0; j < kW; ++j) tmp[j] = C(0);
FUSEDOPT_UNROLL
    for (int j = 0; j < kW; ++j) e[j].s[s] = tmp[j];
  }
FUSEDOPT_UNROLL
  for (int j = 0; j < kW; ++j)
    if (at.valid(j)) op.element(p[j], g[j], e[j].s, k, acc_a, acc_b);
FUSEDOPT_UNROLL
  for (int s = 0; s < kS; ++s) {
    if ((Op::kWriteStates >> s) & 1) {
      C tmp[kW];
FUSEDOPT_UNROLL
      for (int j = 0; j < kW; ++j) tmp[j] = e[j].s[s];
      at.store(L.state[s], tmp);
    }
  }
  if constexpr (Op::kWriteParam) {
    if constexpr (kMaster) at.store(L.master, p);
    at.store(L.param, p);
  }
}

}  // namespace FUSEDOPT_CUDA_NS
}  // namespace fusedopt
