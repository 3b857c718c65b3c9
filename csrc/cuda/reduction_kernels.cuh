// The per-tensor side of the engine: the fixed-order block reductions a reducing pass ends
// with, the cleanup kernel that turns per-chunk partials into per-tensor results (and a global
// norm), the separate global-norm ("finish") kernel, and the step-counter kernel of the
// single-pass optimizers. One block per launch, one table entry per tensor. No float atomics
// anywhere: every sum is taken in a fixed order, so results are bitwise reproducible.
#pragma once

#include <cstdint>

#include "element_op.cuh"

namespace fusedopt {
namespace FUSEDOPT_CUDA_NS {

constexpr int kWarps = kBlockThreads / 32;

// ---- block reductions (fixed trees) ---------------------------------------------------------------
// Sums a and b over the block (shuffles, then the warp sums in warp order); thread 0 writes them.
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

// ---- per-tensor tables ------------------------------------------------------------------------
// Cleanup table (one entry per tensor, including empty ones).
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

template <int kParamBytes>
struct StepTable {
  static constexpr int kCap = step_capacity(kParamBytes);
  float* step[kCap];
  int32_t count;
};

// ---- cleanup: per-tensor sums of the partials in chunk order, then Fin per tensor -------------
// Fin::tensor(index, step, sum_a, sum_b); with global_out the whole block then computes the
// global norm from fin.tsum (only when this launch covers every tensor).
template <class Fin, int kParamBytes>
__global__ void __launch_bounds__(kBlockThreads)
    cleanup_kernel(TensorTable<kParamBytes> t, Fin fin, const double2* partials,
                   int64_t total_tensors, float* global_out) {
  static_assert(CheckFinisher<Fin>::kOk, "");
  if (fin.in.skip()) return;
  for (int j = threadIdx.x; j < t.count; j += kBlockThreads) {
    double a = 0.0, b = 0.0;
    const double2* pp = partials + t.partial_begin[j];
    for (int64_t c = 0; c < t.nchunks[j]; ++c) {
      const double2 v = pp[c];
      a += v.x;
      b += v.y;
    }
    fin.tensor(t.tensor[j], a, b);
    if (t.step[j] != nullptr) advance_step(t.step[j]);  // the cleanup owns the step (see advance_step)
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

// Step counters of the single-pass optimizers, advanced before their update reads them.
template <int kParamBytes>
__global__ void __launch_bounds__(kBlockThreads)
    step_kernel(StepTable<kParamBytes> t, const float* found_inf) {
  if (found_inf != nullptr && *found_inf != 0.0f) return;
  for (int j = threadIdx.x; j < t.count; j += kBlockThreads) advance_step(t.step[j]);
}

}  // namespace FUSEDOPT_CUDA_NS
}  // namespace fusedopt
