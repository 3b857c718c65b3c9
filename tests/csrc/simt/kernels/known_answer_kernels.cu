// Known-answer kernels for the SIMT emulator tests. Valid CUDA: this file
// also compiles with nvcc (see run_ci.sh).
#if defined(FUSEDOPT_SIMT)
#include "fusedopt_simt.h"
#else
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include "fusedopt/launch.h"
#endif

#include <atomic>

#include "simt_test_kernels.h"

namespace simt_tests {
namespace {

constexpr unsigned kFull = 0xffffffffu;

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

// Block-wide sum; valid in every thread. Trailing barrier lets the caller
// reuse `ws` right away.
__device__ float block_sum(float v, float* ws) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  if (lane == 0) ws[warp] = v;
  __syncthreads();
  const int nwarps = (blockDim.x + 31) >> 5;
  float t = lane < nwarps ? ws[lane] : 0.f;
  t = warp_sum(t);
  __syncthreads();
  return t;
}

__global__ void axpy_kernel(float a, const float* __restrict__ x, float* __restrict__ y, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) y[i] = a * x[i] + y[i];
}

template <int kBlock>
__global__ void __launch_bounds__(kBlock) block_sum_kernel(const float* __restrict__ x, float* partials, int n) {
  __shared__ float ws[32];
  float v = 0.f;
  for (int i = blockIdx.x * kBlock + threadIdx.x; i < n; i += kBlock * gridDim.x) v += x[i];
  v = block_sum(v, ws);
  if (threadIdx.x == 0) partials[blockIdx.x] = v;
}

__global__ void tree_sum_dynamic_kernel(const float* x, float* partials, int n) {
  FUSEDOPT_DYNAMIC_SHARED(float, s);
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  s[threadIdx.x] = i < n ? x[i] : 0.f;
  __syncthreads();
  for (unsigned st = blockDim.x / 2; st > 0; st >>= 1) {
    if (threadIdx.x < st) s[threadIdx.x] += s[threadIdx.x + st];
    __syncthreads();
  }
  if (threadIdx.x == 0) partials[blockIdx.x] = s[0];
}

__global__ void tree_sum_raw_extern_kernel(const float* x, float* partials, int n) {
  extern __shared__ float raw_smem[];
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  raw_smem[threadIdx.x] = i < n ? x[i] : 0.f;
  __syncthreads();
  for (unsigned st = blockDim.x / 2; st > 0; st >>= 1) {
    if (threadIdx.x < st) raw_smem[threadIdx.x] += raw_smem[threadIdx.x + st];
    __syncthreads();
  }
  if (threadIdx.x == 0) partials[blockIdx.x] = raw_smem[0];
}

__global__ void scale_vec4_kernel(float s, const float* __restrict__ x, float* __restrict__ y, int n) {
  const int n4 = n / 4;
  const int stride = blockDim.x * gridDim.x;
  const float4* x4 = reinterpret_cast<const float4*>(x);
  float4* y4 = reinterpret_cast<float4*>(y);
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += stride) {
    float4 v = __ldg(x4 + i);
    v.x *= s; v.y *= s; v.z *= s; v.w *= s;
    y4[i] = v;
  }
  for (int i = n4 * 4 + blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) y[i] = s * x[i];
}

__global__ void to_half_kernel(const float* x, __half* h, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) h[i] = __float2half_rn(x[i]);
}
__global__ void from_half_kernel(const __half* h, float* x, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) x[i] = __half2float(h[i]);
}
__global__ void to_bf16_kernel(const float* x, __nv_bfloat16* b, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) b[i] = __float2bfloat16_rn(x[i]);
}
__global__ void from_bf16_kernel(const __nv_bfloat16* b, float* x, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) x[i] = __bfloat162float(b[i]);
}
__global__ void half_axpy_kernel(const __half* x, __half* y, int n) {
  const __half two = __float2half(2.0f);
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) y[i] = __hfma(x[i], two, y[i]);
}

__global__ void atomics_kernel(const int* keys, int n, AtomicOut* out) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
    const int k = keys[i];
    atomicAdd(&out->counts[k & 15], 1u);
    atomicAdd(&out->fsum, static_cast<float>(k));  // small integers: exact in any order
    atomicAdd(&out->dsum, static_cast<double>(k) * 0.5);
    atomicAdd(&out->isum, k - 50);
    atomicAdd(&out->usum, static_cast<unsigned long long>(k) << 33);
    atomicMax(&out->imax, k - 50);
    atomicMax(&out->umax, static_cast<unsigned>(k) * 3u);
    atomicMin(&out->imin, k - 50);
    // CAS loop: float max via the bit pattern.
    unsigned* addr = reinterpret_cast<unsigned*>(&out->fmax_cas);
    unsigned old = atomicAdd(addr, 0u), assumed;  // atomic read: a plain one would race
    do {
      assumed = old;
      const float cur = __uint_as_float(assumed);
      const float mine = static_cast<float>(k) * 0.25f;
      if (!(mine > cur)) break;
      old = atomicCAS(addr, assumed, __float_as_uint(mine));
    } while (old != assumed);
    unsigned t = atomicAdd(&out->cas_tickets, 0u);
    while (true) {
      unsigned prev = atomicCAS(&out->cas_tickets, t, t + 1);
      if (prev == t) break;
      t = prev;
    }
  }
}

// misc layout: [0] __syncthreads_count(x odd), [1] any(x<0) of warp 0,
// [2] all(x>=0) of warp 0, [3] match_any mask of lane 0 (x % 4), [4]
// reduce_add of warp 0, [5] width-8 broadcast of lane 3 within each 8-lane group
// as seen by lane 13 of warp 0, [6] __syncthreads_or(x == 7), [7] __syncthreads_and(x >= 0).
__global__ void warp_ops_kernel(const int* x, int* scan, unsigned* ballots, int* misc, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const int lane = threadIdx.x & 31;
  const int v = i < n ? x[i] : 0;
  int s = v;
  for (int o = 1; o < 32; o <<= 1) {
    int up = __shfl_up_sync(kFull, s, o);
    if (lane >= o) s += up;
  }
  if (i < n) scan[i] = s;
  unsigned b = __ballot_sync(kFull, v & 1);
  if (lane == 0) ballots[i / 32] = b;
  int cnt = __syncthreads_count(v & 1);
  int any_neg = __any_sync(kFull, v < 0);
  int all_pos = __all_sync(kFull, v >= 0);
  unsigned match = __match_any_sync(kFull, v % 4);
  unsigned radd = __reduce_add_sync(kFull, static_cast<unsigned>(v));
  int bcast = __shfl_sync(kFull, v, 3, 8);
  int or7 = __syncthreads_or(v == 7);
  int and_pos = __syncthreads_and(v >= 0);
  __syncwarp();
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    misc[0] = cnt;
    misc[1] = any_neg;
    misc[2] = all_pos;
    misc[3] = static_cast<int>(match);
    misc[4] = static_cast<int>(radd);
    misc[6] = or7;
    misc[7] = and_pos;
  }
  if (blockIdx.x == 0 && threadIdx.x == 13) misc[5] = bcast;
}

// Warp-level reduction through shared memory done right (Volta+): every
// step is separated by __syncwarp, so the race checker must stay quiet.
__global__ void warp_sync_reduce_kernel(const float* x, float* out) {
  __shared__ float s[64];
  s[threadIdx.x] = x[threadIdx.x];
  __syncthreads();
  if (threadIdx.x < 32) {
    float v = s[threadIdx.x] + s[threadIdx.x + 32];
    __syncwarp();
    s[threadIdx.x] = v;
    __syncwarp();
    for (unsigned o = 16; o > 0; o >>= 1) {
      if (threadIdx.x < o) v += s[threadIdx.x + o];
      __syncwarp();
      if (threadIdx.x < o) s[threadIdx.x] = v;
      __syncwarp();
    }
  }
  if (threadIdx.x == 0) out[0] = s[0];
}

// Shuffles of 16-bit and 64-bit types (NVIDIA's __half/__nv_bfloat16 are not
// trivially copyable in C++ terms; they must still shuffle).
__global__ void shuffle_types_kernel(const float* x, float* out) {
  const int lane = threadIdx.x;
  __half h = __float2half(x[lane]);
  __nv_bfloat16 b = __float2bfloat16(x[lane]);
  double d = static_cast<double>(x[lane]);
  h = __shfl_xor_sync(kFull, h, 1);
  b = __shfl_down_sync(kFull, b, 2);
  d = __shfl_sync(kFull, d, 31 - lane);
  out[lane] = __half2float(h);
  out[32 + lane] = __bfloat162float(b);
  out[64 + lane] = static_cast<float>(d);
}

constexpr int kTile = 32;
__global__ void transpose_kernel(const float* in, float* out, int rows, int cols) {
  __shared__ float tile[kTile][kTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y, step = blockDim.y;
  const int row0 = blockIdx.y * kTile, col0 = blockIdx.x * kTile;
  for (int r = ty; r < kTile; r += step)
    if (row0 + r < rows && col0 + tx < cols) tile[r][tx] = in[(row0 + r) * cols + col0 + tx];
  __syncthreads();
  // out is cols x rows: out[c][r] = in[r][c].
  for (int c = ty; c < kTile; c += step)
    if (col0 + c < cols && row0 + tx < rows) out[(col0 + c) * rows + row0 + tx] = tile[tx][c];
}

template <typename T>
__global__ void fill_kernel(T* p, T v, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) p[i] = v + static_cast<T>(i);
}

__global__ void copy_kernel(const float* __restrict__ x, float* __restrict__ y, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) y[i] = x[i];
}
__global__ void copy_vec4_kernel(const float4* __restrict__ x, float4* __restrict__ y, int n4) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += blockDim.x * gridDim.x) y[i] = x[i];
}

}  // namespace

void axpy_grid_stride(int blocks, int threads, float a, const float* x, float* y, int n) {
  FUSEDOPT_LAUNCH(blocks, threads, 0, 0, axpy_kernel)(a, x, y, n);
}
void block_sums(int blocks, const float* x, float* partials, int n) {
  FUSEDOPT_LAUNCH(blocks, 256, 0, 0, block_sum_kernel<256>)(x, partials, n);
}
void two_pass_sum(int blocks, const float* x, float* partials, float* out, int n) {
  FUSEDOPT_LAUNCH(blocks, 256, 0, 0, block_sum_kernel<256>)(x, partials, n);
  FUSEDOPT_LAUNCH(1, 1024, 0, 0, block_sum_kernel<1024>)(partials, out, blocks);
}
void tree_sum_dynamic(int blocks, int threads, const float* x, float* partials, int n) {
  FUSEDOPT_LAUNCH(blocks, threads, threads * sizeof(float), 0, tree_sum_dynamic_kernel)(x, partials, n);
}
void tree_sum_raw_extern(int blocks, int threads, const float* x, float* partials, int n) {
  FUSEDOPT_LAUNCH(blocks, threads, threads * sizeof(float), 0, tree_sum_raw_extern_kernel)(x, partials, n);
}
void scale_vec4(int blocks, int threads, float s, const float* x, float* y, int n) {
  FUSEDOPT_LAUNCH(blocks, threads, 0, 0, scale_vec4_kernel)(s, x, y, n);
}
void to_half(int blocks, int threads, const float* x, uint16_t* h, int n) {
  FUSEDOPT_LAUNCH(blocks, threads, 0, 0, to_half_kernel)(x, reinterpret_cast<__half*>(h), n);
}
void from_half(int blocks, int threads, const uint16_t* h, float* x, int n) {
  FUSEDOPT_LAUNCH(blocks, threads, 0, 0, from_half_kernel)(reinterpret_cast<const __half*>(h), x, n);
}
void to_bf16(int blocks, int threads, const float* x, uint16_t* b, int n) {
  FUSEDOPT_LAUNCH(blocks, threads, 0, 0, to_bf16_kernel)(x, reinterpret_cast<__nv_bfloat16*>(b), n);
}
void from_bf16(int blocks, int threads, const uint16_t* b, float* x, int n) {
  FUSEDOPT_LAUNCH(blocks, threads, 0, 0, from_bf16_kernel)(reinterpret_cast<const __nv_bfloat16*>(b), x, n);
}
void half_axpy(int blocks, int threads, const uint16_t* x, uint16_t* y, int n) {
  FUSEDOPT_LAUNCH(blocks, threads, 0, 0, half_axpy_kernel)(reinterpret_cast<const __half*>(x),
                                                          reinterpret_cast<__half*>(y), n);
}
void atomics(int blocks, int threads, const int* keys, int n, AtomicOut* out) {
  FUSEDOPT_LAUNCH(blocks, threads, 0, 0, atomics_kernel)(keys, n, out);
}
void warp_ops(int blocks, const int* x, int* scan, unsigned* ballots, int* misc, int n) {
  FUSEDOPT_LAUNCH(blocks, 128, 0, 0, warp_ops_kernel)(x, scan, ballots, misc, n);
}
void shuffle_types(const float* x, float* out) { FUSEDOPT_LAUNCH(1, 32, 0, 0, shuffle_types_kernel)(x, out); }
void warp_sync_reduce(const float* x, float* out) { FUSEDOPT_LAUNCH(1, 64, 0, 0, warp_sync_reduce_kernel)(x, out); }
void transpose(const float* in, float* out, int rows, int cols) {
  dim3 block(kTile, 8);
  dim3 grid((cols + kTile - 1) / kTile, (rows + kTile - 1) / kTile);
  FUSEDOPT_LAUNCH(grid, block, 0, 0, transpose_kernel)(in, out, rows, cols);
}
// Host-side std::atomic in a kernel source: in the instrumented build g++
// lowers it to __tsan_atomic* calls, which the emulator runtime provides.
std::atomic<unsigned> g_copy_launches{0};
unsigned copy_launches() { return g_copy_launches.load(); }

void fill_deduced(double* p, double v, int n, unsigned stream_like) {
  // No template arguments: deduced from the call, as with <<<>>>. Grid and
  // block given as dim3, smem as size_t.
  FUSEDOPT_LAUNCH(dim3(3), dim3(32), size_t(0), (cudaStream_t)(uintptr_t)stream_like, fill_kernel)(p, v, n);
}

void copy(int blocks, int threads, const float* x, float* y, int n) {
  g_copy_launches.fetch_add(1);
  FUSEDOPT_LAUNCH(blocks, threads, 0, 0, copy_kernel)(x, y, n);
}
void copy_vec4(int blocks, int threads, const float* x, float* y, int n) {
  FUSEDOPT_LAUNCH(blocks, threads, 0, 0, copy_vec4_kernel)(reinterpret_cast<const float4*>(x),
                                                           reinterpret_cast<float4*>(y), n / 4);
}

}  // namespace simt_tests
