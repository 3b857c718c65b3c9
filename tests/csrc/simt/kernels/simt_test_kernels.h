// Host launchers of the emulator test kernels (plain C++ declarations).
// Under the emulator pointers are host pointers; the same .cu files also
// compile with nvcc (where they would be device pointers).
#pragma once
#include <cstdint>

namespace simt_tests {

// ---- known-answer kernels (known_answer_kernels.cu) ----
void axpy_grid_stride(int blocks, int threads, float a, const float* x, float* y, int n);
// One partial sum per block (warp shuffles + shared memory).
void block_sums(int blocks, const float* x, float* partials, int n);
// Two launches: block partials, then one block over the partials.
void two_pass_sum(int blocks, const float* x, float* partials, float* out, int n);
// Classic shared-memory tree reduction over dynamic shared memory
// (FUSEDOPT_DYNAMIC_SHARED) and over a raw `extern __shared__` array.
void tree_sum_dynamic(int blocks, int threads, const float* x, float* partials, int n);
void tree_sum_raw_extern(int blocks, int threads, const float* x, float* partials, int n);
// y = s * x with float4 loads/stores and a scalar tail; x, y 16-byte aligned.
void scale_vec4(int blocks, int threads, float s, const float* x, float* y, int n);
// float <-> half / bf16 round trips (raw 16-bit storage).
void to_half(int blocks, int threads, const float* x, uint16_t* h, int n);
void from_half(int blocks, int threads, const uint16_t* h, float* x, int n);
void to_bf16(int blocks, int threads, const float* x, uint16_t* b, int n);
void from_bf16(int blocks, int threads, const uint16_t* b, float* x, int n);
void half_axpy(int blocks, int threads, const uint16_t* x, uint16_t* y, int n);  // y = x*2 + y in half
// Atomics: per-key counts and sums, global min/max, CAS-based float max.
struct AtomicOut {
  unsigned counts[16];
  float fsum;
  double dsum;
  int isum;
  unsigned long long usum;
  int imax;
  unsigned umax;
  int imin;
  float fmax_cas;
  unsigned cas_tickets;  // atomicCAS-incremented counter
};
void atomics(int blocks, int threads, const int* keys, int n, AtomicOut* out);
// Warp intrinsics: inclusive scan (shfl_up), ballot/any/all, match_any,
// reduce_add, segmented shuffle with width 8, __syncthreads_count.
void warp_ops(int blocks, const int* x, int* scan, unsigned* ballots, int* misc, int n);
// One warp: out[l] = x[l^1] via __half, out[32+l] = x[l+2] (own value for
// l >= 30) via bf16, out[64+l] = x[31-l] via double shuffles.
void shuffle_types(const float* x, float* out);
// Sum of 64 floats: shared-memory warp reduction with __syncwarp (1 block, 64 threads).
void warp_sync_reduce(const float* x, float* out);
// 2D transpose through a padded shared tile (dim3 grid/block).
void transpose(const float* in, float* out, int rows, int cols);
// p[i] = v + i through a kernel template whose arguments are deduced.
void fill_deduced(double* p, double v, int n, unsigned stream_like);
// Copy kernel for the traffic counter.
void copy(int blocks, int threads, const float* x, float* y, int n);
unsigned copy_launches();  // host-side std::atomic counter of copy() calls
void copy_vec4(int blocks, int threads, const float* x, float* y, int n);

// ---- seeded bugs (bug_kernels.cu) ----
void bug_missing_syncthreads(int blocks, const float* x, float* partials);  // 256 threads
void bug_back_to_back_reductions(const float* x, const float* y, float* out);  // 1 block, 64 threads
void bug_warp_lockstep(const float* x, float* out);  // 1 block, 64 threads
void bug_two_blocks_one_slot(int blocks, float* out);
void bug_uninitialized_shared_read(int blocks, const float* x, float* y);  // 64 threads per block
void bug_divergent_barrier_exit(int threads, const float* x, float* y, int n);
void bug_divergent_barrier_sites(float* y);
void bug_shuffle_inactive_lanes(float* y);
void bug_shuffle_skipped_by_some_lanes(float* y);
void bug_shuffle_partial_warp(float* y);  // 48-thread block, full mask
void bug_deadlock_shfl_vs_barrier(float* y);
void bug_oob_tail_write(int blocks, int threads, const float* x, float* y);  // no n check
void bug_misaligned_float4(const float* x, float* y, int n4);  // reads x+1 as float4
void bug_stack_overflow(int depth, int* out);   // 32 threads, ~1 KiB per recursion level
void bug_dynamic_smem_overflow(float* y);        // 64 threads, reads s[64] of 64 floats
void bug_trap(float* y);
void bug_invalid_launch(int blocks, int threads, int smem, float* y);

}  // namespace simt_tests
