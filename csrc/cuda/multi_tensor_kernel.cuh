// The device side of the multi-tensor engine: the launch table and the one kernel every
// optimizer pass instantiates with its element op (the math of csrc/include/fusedopt/math);
// see docs/kernels.md for the design.
//
// Launch table: a by-value kernel parameter holding, per tensor slot, the pointer of every list,
// the element count, the first chunk this launch covers, the index of its first reduction
// partial, its step counter and the first block that works on it. Block b finds its slot by a
// binary search over block_start (uniform over the block: constant-cache broadcasts), so a
// launch carries any number of blocks; only tensor slots are limited by the parameter size.
#pragma once

#include <cstdint>
#include <type_traits>

#include "chunk_access.cuh"
#include "reduction_kernels.cuh"

namespace fusedopt {
namespace FUSEDOPT_CUDA_NS {

static_assert(kChunkSize % kILP == 0 && kChunkSize <= (int64_t(1) << 30), "in-chunk offsets are 32-bit");

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

template <class Op, class P, bool kMaster, int kParamBytes>
__global__ void __launch_bounds__(kBlockThreads)
    multi_tensor_kernel(SlotTable<Lists<Op, kMaster>::kCount, kParamBytes> t, Op op,
                        double2* partials) {
  static_assert(CheckElementOp<Op>::kOk, "");
  using C = typename Op::C;
  using LL = Lists<Op, kMaster>;
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
  const int n = static_cast<int>(rest < kChunkSize ? rest : kChunkSize);

  ChunkLists<Op, P, kMaster> L;
  L.param = static_cast<P*>(t.ptr[0][slot]) + begin;
  if (Op::kHasGrad) L.grad = static_cast<const P*>(t.ptr[LL::kGrad][slot]) + begin;
  if (kMaster) L.master = static_cast<float*>(t.ptr[LL::kMasterList][slot]) + begin;
FUSEDOPT_UNROLL
  for (int s = 0; s < Op::kStates; ++s)
    L.state[s] = static_cast<C*>(t.ptr[LL::kState0 + s][slot]) + begin;

  double acc_a = 0.0, acc_b = 0.0;
  const int tid = static_cast<int>(threadIdx.x);
  if (L.vector_aligned()) {
    const int nvec = n / kILP * kILP;  // elements covered by whole vector groups
    for (int i = tid * kILP; i < nvec; i += kBlockThreads * kILP)
      load_element_store(L, VectorAccess{i}, op, k, acc_a, acc_b);
    // The < kILP elements left, one per thread (written as a loop: ptxas allocates fewer
    // registers for this form than for a single guarded call).
    for (int i = nvec + tid; i < n; i += kBlockThreads)
      load_element_store(L, StridedAccess<1>{i, n}, op, k, acc_a, acc_b);
  } else {
    for (int base = 0; base < n; base += kBlockThreads * kILP)
      load_element_store(L, StridedAccess<kILP>{base + tid, n}, op, k, acc_a, acc_b);
  }
  if (Op::kReduce) block_reduce_store(acc_a, acc_b, partials + t.partial_base[slot] + chunk_in_slot);
}

}  // namespace FUSEDOPT_CUDA_NS
}  // namespace fusedopt
