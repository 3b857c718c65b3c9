// Kernels with seeded bugs: the emulator, the race checker or the sanitizer
// build must catch each of them. Valid CUDA (compiles with nvcc).
#if defined(FUSEDOPT_SIMT)
#include "fusedopt_simt.h"
#else
#include <cuda_runtime.h>
#include "fusedopt/launch.h"
#endif

#include "simt_test_kernels.h"

namespace simt_tests {
namespace {

constexpr unsigned kFull = 0xffffffffu;

// BUG: no __syncthreads inside the tree loop.
__global__ void missing_sync_kernel(const float* x, float* partials) {
  __shared__ float s[256];
  s[threadIdx.x] = x[blockIdx.x * 256 + threadIdx.x];
  __syncthreads();
  for (unsigned st = 128; st > 0; st >>= 1) {
    if (threadIdx.x < st) s[threadIdx.x] += s[threadIdx.x + st];
  }
  if (threadIdx.x == 0) partials[blockIdx.x] = s[0];
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}
// BUG: no trailing barrier, so a second call may overwrite ws[] while other
// warps still read the first call's values. Usually gives the right numbers.
__device__ float block_sum_no_trailing_sync(float v, float* ws) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  if (lane == 0) ws[warp] = v;
  __syncthreads();
  float t = lane < static_cast<int>(blockDim.x >> 5) ? ws[lane] : 0.f;
  return warp_sum(t);
}
__global__ void back_to_back_kernel(const float* x, const float* y, float* out) {
  __shared__ float ws[32];
  float a = block_sum_no_trailing_sync(x[threadIdx.x], ws);
  float b = block_sum_no_trailing_sync(y[threadIdx.x], ws);
  if (threadIdx.x == 0) {
    out[0] = a;
    out[1] = b;
  }
}

// BUG: pre-Volta warp-synchronous reduction: relies on the lanes of a warp
// executing in lock-step (no __syncwarp between the steps).
__global__ void warp_lockstep_kernel(const float* x, float* out) {
  __shared__ float s[64];
  s[threadIdx.x] = x[threadIdx.x];
  __syncthreads();
  if (threadIdx.x < 32) {
    volatile float* vs = s;
    vs[threadIdx.x] = vs[threadIdx.x] + vs[threadIdx.x + 32];
    vs[threadIdx.x] = vs[threadIdx.x] + vs[threadIdx.x + 16];
    vs[threadIdx.x] = vs[threadIdx.x] + vs[threadIdx.x + 8];
    vs[threadIdx.x] = vs[threadIdx.x] + vs[threadIdx.x + 4];
    vs[threadIdx.x] = vs[threadIdx.x] + vs[threadIdx.x + 2];
    vs[threadIdx.x] = vs[threadIdx.x] + vs[threadIdx.x + 1];
  }
  if (threadIdx.x == 0) out[0] = s[0];
}

// BUG: every block writes slot 0 (meant out[blockIdx.x]).
__global__ void two_blocks_one_slot_kernel(float* out) {
  if (threadIdx.x == 0) out[0] = static_cast<float>(blockIdx.x);
}

// BUG: only half of the shared array is written, all of it is read. Passes
// numerically in the first block only by luck of the previous contents.
__global__ void uninit_shared_kernel(const float* x, float* y) {
  __shared__ float s[64];
  if (threadIdx.x < 32) s[threadIdx.x] = x[blockIdx.x * 64 + threadIdx.x];
  __syncthreads();
  y[blockIdx.x * 64 + threadIdx.x] = s[threadIdx.x];
}

// BUG: early exit before a barrier.
__global__ void divergent_exit_kernel(const float* x, float* y, int n) {
  __shared__ float s[1024];
  int i = threadIdx.x;
  if (i >= n) return;
  s[i] = x[i];
  __syncthreads();
  y[i] = s[n - 1 - i];
}

// BUG: the two halves of the block wait at different barriers.
__global__ void divergent_sites_kernel(float* y) {
  if (threadIdx.x < 32) {
    y[threadIdx.x] = 1.f;
    __syncthreads();
  } else {
    __syncthreads();
    y[threadIdx.x] = 2.f;
  }
}

// BUG: full-mask shuffle executed by half of the warp only.
__global__ void shuffle_inactive_kernel(float* y) {
  float v = static_cast<float>(threadIdx.x);
  if (threadIdx.x < 16) v = __shfl_down_sync(kFull, v, 1);
  y[threadIdx.x] = v;
}

// BUG: lanes 16..31 skip the first shuffle and meet lanes 0..15 at the second.
__global__ void shuffle_skipped_kernel(float* y) {
  float v = static_cast<float>(threadIdx.x);
  if (threadIdx.x < 16) v = __shfl_xor_sync(kFull, v, 1);
  v += __shfl_xor_sync(kFull, v, 2);
  y[threadIdx.x] = v;
}

// BUG: full mask in a 48-thread block: lanes 16..31 of warp 1 do not exist.
__global__ void shuffle_partial_warp_kernel(float* y) {
  float v = static_cast<float>(threadIdx.x);
  v += __shfl_xor_sync(kFull, v, 1);
  y[threadIdx.x] = v;
}

// BUG: lanes 0..15 wait in a full-mask shuffle, lanes 16..31 wait at the
// block barrier: neither can proceed.
__global__ void deadlock_kernel(float* y) {
  float v = static_cast<float>(threadIdx.x);
  if ((threadIdx.x & 31) < 16) v = __shfl_sync(kFull, v, 0);
  __syncthreads();
  y[threadIdx.x] = v;
}

// BUG: no bounds check in the tail (grid covers more than n elements).
__global__ void oob_tail_kernel(const float* x, float* y) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  y[i] = x[i] * 2.f;
}

// BUG: float4 load from an address that is only 4-byte aligned.
__global__ void misaligned_float4_kernel(const float* x, float* y, int n4) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n4) {
    float4 v = reinterpret_cast<const float4*>(x + 1)[i];
    y[i] = v.x + v.y + v.z + v.w;
  }
}

// BUG: unbounded-looking recursion with big frames overflows the stack.
__device__ int deep_recursion(int depth, int* sink) {
  volatile int pad[256];  // 1 KiB per frame
  pad[depth & 255] = depth;
  if (depth <= 0) return pad[0];
  int r = deep_recursion(depth - 1, sink) + pad[depth & 255];
  sink[depth & 7] = r;  // not a tail call
  return r;
}
__global__ void stack_overflow_kernel(int depth, int* out) { out[threadIdx.x] = deep_recursion(depth, out); }

// BUG: dynamic shared memory is sized for blockDim.x floats, read one past.
__global__ void dynsmem_overflow_kernel(float* y) {
  FUSEDOPT_DYNAMIC_SHARED(float, s);
  s[threadIdx.x] = static_cast<float>(threadIdx.x);
  __syncthreads();
  y[threadIdx.x] = s[threadIdx.x + 1];
}

__global__ void trap_kernel(float* y) {
  if (threadIdx.x == 5) __trap();
  y[threadIdx.x] = 1.f;
}

__global__ void trivial_kernel(float* y) { y[threadIdx.x] = 0.f; }

}  // namespace

void bug_missing_syncthreads(int blocks, const float* x, float* partials) {
  FUSEDOPT_LAUNCH(blocks, 256, 0, 0, missing_sync_kernel)(x, partials);
}
void bug_back_to_back_reductions(const float* x, const float* y, float* out) {
  FUSEDOPT_LAUNCH(1, 64, 0, 0, back_to_back_kernel)(x, y, out);
}
void bug_warp_lockstep(const float* x, float* out) { FUSEDOPT_LAUNCH(1, 64, 0, 0, warp_lockstep_kernel)(x, out); }
void bug_uninitialized_shared_read(int blocks, const float* x, float* y) {
  FUSEDOPT_LAUNCH(blocks, 64, 0, 0, uninit_shared_kernel)(x, y);
}
void bug_two_blocks_one_slot(int blocks, float* out) {
  FUSEDOPT_LAUNCH(blocks, 32, 0, 0, two_blocks_one_slot_kernel)(out);
}
void bug_divergent_barrier_exit(int threads, const float* x, float* y, int n) {
  FUSEDOPT_LAUNCH(1, threads, 0, 0, divergent_exit_kernel)(x, y, n);
}
void bug_divergent_barrier_sites(float* y) { FUSEDOPT_LAUNCH(1, 64, 0, 0, divergent_sites_kernel)(y); }
void bug_shuffle_inactive_lanes(float* y) { FUSEDOPT_LAUNCH(1, 32, 0, 0, shuffle_inactive_kernel)(y); }
void bug_shuffle_skipped_by_some_lanes(float* y) { FUSEDOPT_LAUNCH(1, 32, 0, 0, shuffle_skipped_kernel)(y); }
void bug_shuffle_partial_warp(float* y) { FUSEDOPT_LAUNCH(1, 48, 0, 0, shuffle_partial_warp_kernel)(y); }
void bug_deadlock_shfl_vs_barrier(float* y) { FUSEDOPT_LAUNCH(1, 64, 0, 0, deadlock_kernel)(y); }
void bug_oob_tail_write(int blocks, int threads, const float* x, float* y) {
  FUSEDOPT_LAUNCH(blocks, threads, 0, 0, oob_tail_kernel)(x, y);
}
void bug_misaligned_float4(const float* x, float* y, int n4) {
  FUSEDOPT_LAUNCH(1, 64, 0, 0, misaligned_float4_kernel)(x, y, n4);
}
void bug_stack_overflow(int depth, int* out) { FUSEDOPT_LAUNCH(1, 32, 0, 0, stack_overflow_kernel)(depth, out); }
void bug_dynamic_smem_overflow(float* y) { FUSEDOPT_LAUNCH(1, 64, 64 * sizeof(float), 0, dynsmem_overflow_kernel)(y); }
void bug_trap(float* y) { FUSEDOPT_LAUNCH(1, 32, 0, 0, trap_kernel)(y); }
void bug_invalid_launch(int blocks, int threads, int smem, float* y) {
  FUSEDOPT_LAUNCH(blocks, threads, smem, 0, trivial_kernel)(y);
}

}  // namespace simt_tests
