// fusedopt SIMT emulator: compile CUDA kernel sources with g++ and run them on
// the CPU (test-only). See docs/emulator.md.
//
// Kernel sources do
//     #if defined(FUSEDOPT_SIMT)
//     #include "fusedopt_simt.h"
//     #else
//     #include <cuda_runtime.h>
//     #endif
// and launch with FUSEDOPT_LAUNCH (csrc/include/fusedopt/launch.h). Under nvcc this header
// only provides FUSEDOPT_LAUNCH and never pulls in emulator code.
#pragma once

#if defined(__CUDACC__)
#include "../../include/fusedopt/launch.h"
#else  // emulated build

#if !defined(FUSEDOPT_SIMT)
#error "fusedopt_simt.h: define FUSEDOPT_SIMT (emulated build) or compile with nvcc"
#endif
#if !defined(__x86_64__)
#error "fusedopt SIMT emulator: only x86-64 is supported (hand-written context switch)"
#endif

// ---- CUDA qualifiers, defined before any CUDA header ----------------------
// crt/host_defines.h keeps definitions that already exist (outside nvcc).
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __launch_bounds__(...)
// __shared__ must give one instance per *block*, shared by all of its
// threads (fibers), and must also work as `extern __shared__ T a[];`.
// thread_local is the one specifier that (a) implies static storage at block
// scope and (b) combines with `extern`. All fibers of a block run on the
// launching OS thread and blocks run one after another, so a thread_local is
// exactly one block's shared memory at a time. Contents survive from one
// block to the next (real GPUs leave shared memory undefined instead).
#define __shared__ thread_local

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <math.h>
#include <tuple>
#include <type_traits>
#include <utility>

// NVIDIA's own host-capable headers: exact vector types and fp16/bf16
// conversions (the host paths round exactly like the device instructions).
#include <vector_types.h>
#include <vector_functions.h>
#include <driver_types.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>

#include "fusedopt_simt_api.h"

#ifndef __forceinline__
#define __forceinline__ inline __attribute__((always_inline))
#endif
#ifndef __noinline__
#define __noinline__ __attribute__((noinline))
#endif

namespace fusedopt {
namespace simt {

// Base of the current launch's dynamic shared memory (16-byte aligned, more
// precisely 128). Valid only inside a kernel.
void* dynamic_shared_memory();

namespace detail {

// Built-in variables of the running CUDA thread. The scheduler rewrites this
// before resuming a fiber; the race checker / traffic counter ignore it.
struct ThreadCtx {
  uint3 thread_idx;
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
};
extern ThreadCtx g_ctx;

void syncthreads(const char* file, int line);
int syncthreads_reduce(int op, int pred, const char* file, int line);  // 0 count, 1 and, 2 or

enum WarpOp : int {
  kShflIdx, kShflUp, kShflDown, kShflXor, kBallot, kAny, kAll, kSyncWarp,
  kReduceAdd, kReduceMin, kReduceMax, kReduceAnd, kReduceOr, kReduceXor,
  kReduceMinS, kReduceMaxS, kMatchAny, kMatchAll,
};
// Mask-keyed exchange (Volta+ semantics: the calling lane waits until every
// lane of `mask` arrived at a warp collective). `in`/`out` hold `size` bytes.
void warp_collective(int op, unsigned mask, const void* in, unsigned size, int arg, int width,
                     void* out, const char* file, int line);
unsigned active_mask();
[[noreturn]] void trap(const char* file, int line);
void note_atomic(const volatile void* addr, unsigned size, void* pc);  // race/traffic hook

template <class T>
inline T shfl(int op, unsigned mask, T var, int arg, int width, const char* file, int line) {
  // Not is_trivially_copyable: __half / __half2 / __nv_bfloat16 have
  // user-provided assignment operators but are plain bit containers.
  static_assert(sizeof(T) <= 16 && std::is_standard_layout<T>::value,
                "__shfl_*_sync: value must be a plain type of at most 16 bytes");
  T out;
  warp_collective(op, mask, &var, sizeof(T), arg, width, &out, file, line);
  return out;
}
inline unsigned warp_u32(int op, unsigned mask, unsigned v, const char* file, int line) {
  unsigned out;
  warp_collective(op, mask, &v, 4, 0, 32, &out, file, line);
  return out;
}
template <class T>
inline unsigned match_any(unsigned mask, T v, const char* file, int line) {
  unsigned long long w = 0;
  std::memcpy(&w, &v, sizeof(T));
  unsigned out;
  warp_collective(kMatchAny, mask, &w, 8, 0, 32, &out, file, line);
  return out;
}
template <class T>
inline unsigned match_all(unsigned mask, T v, int* pred, const char* file, int line) {
  unsigned long long w = 0;
  std::memcpy(&w, &v, sizeof(T));
  unsigned out;
  warp_collective(kMatchAll, mask, &w, 8, 0, 32, &out, file, line);
  *pred = out != 0;
  return out;
}

// ---- launch plumbing --------------------------------------------------------
struct LaunchSpec {
  uint64_t grid[3];
  uint64_t block[3];
  uint64_t smem;
  const char* kernel;
  const char* file;
  int line;
};
using Thunk = void (*)(void*);
// Runs the whole grid synchronously; throws Error on failure.
// ctx/ctx_size: the stored kernel arguments (ignored by the traffic counter).
void run_launch(const LaunchSpec& spec, Thunk body, void* ctx, size_t ctx_size);

inline void dims_of(const dim3& d, uint64_t out[3]) { out[0] = d.x; out[1] = d.y; out[2] = d.z; }
template <class T, class = typename std::enable_if<std::is_integral<T>::value>::type>
inline void dims_of(T v, uint64_t out[3]) {
  // Negative counts wrap to huge values and are rejected by validation.
  out[0] = static_cast<uint64_t>(static_cast<long long>(v)); out[1] = 1; out[2] = 1;
}

template <class F>
class BoundLaunch {
 public:
  BoundLaunch(const LaunchSpec& s, F f) : spec_(s), f_(f) {}
  template <class... A>
  void operator()(A&&... a) const {
    // Arguments are stored once; each CUDA thread calls the kernel with them,
    // so by-value kernel parameters are per-thread copies as on the GPU.
    struct Ctx {
      F f;
      std::tuple<typename std::decay<A>::type...> args;
    } ctx{f_, std::tuple<typename std::decay<A>::type...>(std::forward<A>(a)...)};
    run_launch(spec_, [](void* p) {
      Ctx* c = static_cast<Ctx*>(p);
      std::apply(c->f, c->args);
    }, &ctx, sizeof(ctx));
  }

 private:
  LaunchSpec spec_;
  F f_;
};

class Launcher {
 public:
  template <class G, class B, class S, class St>
  Launcher(const G& grid, const B& block, S smem, const St& /*stream: launches are synchronous*/,
           const char* kernel, const char* file, int line) {
    dims_of(grid, spec_.grid);
    dims_of(block, spec_.block);
    spec_.smem = static_cast<uint64_t>(static_cast<long long>(smem));
    spec_.kernel = kernel;
    spec_.file = file;
    spec_.line = line;
  }
  template <class F>
  BoundLaunch<F> with(F f) const { return BoundLaunch<F>(spec_, f); }

 private:
  LaunchSpec spec_;
};

}  // namespace detail
}  // namespace simt
}  // namespace fusedopt

// ---- built-in variables -----------------------------------------------------
#define threadIdx (static_cast<const uint3&>(::fusedopt::simt::detail::g_ctx.thread_idx))
#define blockIdx (static_cast<const uint3&>(::fusedopt::simt::detail::g_ctx.block_idx))
#define blockDim (static_cast<const dim3&>(::fusedopt::simt::detail::g_ctx.block_dim))
#define gridDim (static_cast<const dim3&>(::fusedopt::simt::detail::g_ctx.grid_dim))
constexpr int warpSize = 32;

// ---- barriers and warp collectives -----------------------------------------
// Macros so that error reports carry the kernel source line of the call.
#define __syncthreads() ::fusedopt::simt::detail::syncthreads(__FILE__, __LINE__)
#define __syncthreads_count(p) ::fusedopt::simt::detail::syncthreads_reduce(0, (p), __FILE__, __LINE__)
#define __syncthreads_and(p) ::fusedopt::simt::detail::syncthreads_reduce(1, (p), __FILE__, __LINE__)
#define __syncthreads_or(p) ::fusedopt::simt::detail::syncthreads_reduce(2, (p), __FILE__, __LINE__)

namespace fusedopt { namespace simt { namespace detail {
// __syncwarp() and __syncwarp(mask) through one macro without __VA_OPT__.
struct SyncWarpAt {
  const char* file;
  int line;
  void operator()(unsigned mask = 0xffffffffu) const {
    warp_collective(kSyncWarp, mask, nullptr, 0, 0, 32, nullptr, file, line);
  }
};
template <class T>
inline T shfl_idx(const char* f, int l, unsigned m, T v, int src, int w = 32) { return shfl(kShflIdx, m, v, src, w, f, l); }
template <class T>
inline T shfl_up(const char* f, int l, unsigned m, T v, unsigned d, int w = 32) { return shfl(kShflUp, m, v, (int)d, w, f, l); }
template <class T>
inline T shfl_down(const char* f, int l, unsigned m, T v, unsigned d, int w = 32) { return shfl(kShflDown, m, v, (int)d, w, f, l); }
template <class T>
inline T shfl_xor(const char* f, int l, unsigned m, T v, int lm, int w = 32) { return shfl(kShflXor, m, v, lm, w, f, l); }
}}}  // namespace fusedopt::simt::detail

#define __syncwarp(...) (::fusedopt::simt::detail::SyncWarpAt{__FILE__, __LINE__}(__VA_ARGS__))
#define __shfl_sync(...) ::fusedopt::simt::detail::shfl_idx(__FILE__, __LINE__, __VA_ARGS__)
#define __shfl_up_sync(...) ::fusedopt::simt::detail::shfl_up(__FILE__, __LINE__, __VA_ARGS__)
#define __shfl_down_sync(...) ::fusedopt::simt::detail::shfl_down(__FILE__, __LINE__, __VA_ARGS__)
#define __shfl_xor_sync(...) ::fusedopt::simt::detail::shfl_xor(__FILE__, __LINE__, __VA_ARGS__)
#define __ballot_sync(m, p) \
  ::fusedopt::simt::detail::warp_u32(::fusedopt::simt::detail::kBallot, (m), (p) ? 1u : 0u, __FILE__, __LINE__)
#define __any_sync(m, p) \
  ((int)::fusedopt::simt::detail::warp_u32(::fusedopt::simt::detail::kAny, (m), (p) ? 1u : 0u, __FILE__, __LINE__))
#define __all_sync(m, p) \
  ((int)::fusedopt::simt::detail::warp_u32(::fusedopt::simt::detail::kAll, (m), (p) ? 1u : 0u, __FILE__, __LINE__))
#define __reduce_add_sync(m, v) \
  ::fusedopt::simt::detail::warp_u32(::fusedopt::simt::detail::kReduceAdd, (m), (unsigned)(v), __FILE__, __LINE__)
#define __reduce_and_sync(m, v) \
  ::fusedopt::simt::detail::warp_u32(::fusedopt::simt::detail::kReduceAnd, (m), (unsigned)(v), __FILE__, __LINE__)
#define __reduce_or_sync(m, v) \
  ::fusedopt::simt::detail::warp_u32(::fusedopt::simt::detail::kReduceOr, (m), (unsigned)(v), __FILE__, __LINE__)
#define __reduce_xor_sync(m, v) \
  ::fusedopt::simt::detail::warp_u32(::fusedopt::simt::detail::kReduceXor, (m), (unsigned)(v), __FILE__, __LINE__)
// min/max come in signed and unsigned flavours in CUDA.
namespace fusedopt { namespace simt { namespace detail {
inline unsigned reduce_minmax(const char* f, int l, unsigned m, unsigned v, bool mx) {
  return warp_u32(mx ? kReduceMax : kReduceMin, m, v, f, l);
}
inline int reduce_minmax(const char* f, int l, unsigned m, int v, bool mx) {
  return (int)warp_u32(mx ? kReduceMaxS : kReduceMinS, m, (unsigned)v, f, l);
}
}}}  // namespace fusedopt::simt::detail
#define __reduce_min_sync(m, v) ::fusedopt::simt::detail::reduce_minmax(__FILE__, __LINE__, (m), (v), false)
#define __reduce_max_sync(m, v) ::fusedopt::simt::detail::reduce_minmax(__FILE__, __LINE__, (m), (v), true)
#define __match_any_sync(m, v) ::fusedopt::simt::detail::match_any((m), (v), __FILE__, __LINE__)
#define __match_all_sync(m, v, pred) ::fusedopt::simt::detail::match_all((m), (v), (pred), __FILE__, __LINE__)
#define __activemask() ::fusedopt::simt::detail::active_mask()
#define __trap() ::fusedopt::simt::detail::trap(__FILE__, __LINE__)
#define __brkpt() ::fusedopt::simt::detail::trap(__FILE__, __LINE__)

// Fences order memory on the GPU; fibers of one launch never run
// concurrently, so here they only need to stop compiler reordering. The race
// checker does not treat fences as synchronisation (neither does CUDA for
// plain accesses).
inline void __threadfence() { __atomic_signal_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_signal_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system() { __atomic_signal_fence(__ATOMIC_SEQ_CST); }
inline void __nanosleep(unsigned) {}
inline long long clock64() {
  static long long c = 0;  // monotonic, deterministic
  return ++c;
}

// ---- atomics ------------------------------------------------------------------
// Fibers of a launch never run concurrently, so a plain read-modify-write is
// atomic. In the instrumented build the RMW is done in a non-instrumented
// function and reported to the race checker as an atomic access instead.
#if defined(__SANITIZE_THREAD__)
#define FUSEDOPT_SIMT_ATOMIC_FN inline __attribute__((noinline, no_sanitize_thread))
#define FUSEDOPT_SIMT_NOTE_ATOMIC(p) \
  ::fusedopt::simt::detail::note_atomic((p), sizeof(*(p)), __builtin_return_address(0))
#else
#define FUSEDOPT_SIMT_ATOMIC_FN inline
#define FUSEDOPT_SIMT_NOTE_ATOMIC(p) ((void)0)
#endif

#define FUSEDOPT_SIMT_DEF_ATOMIC(NAME, T, EXPR)      \
  FUSEDOPT_SIMT_ATOMIC_FN T NAME(T* address, T val) { \
    FUSEDOPT_SIMT_NOTE_ATOMIC(address);               \
    T old = *address;                                 \
    *address = (EXPR);                                \
    return old;                                       \
  }
#define FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(NAME, T, EXPR) \
  FUSEDOPT_SIMT_DEF_ATOMIC(NAME, T, EXPR)              \
  FUSEDOPT_SIMT_DEF_ATOMIC(NAME##_block, T, EXPR)      \
  FUSEDOPT_SIMT_DEF_ATOMIC(NAME##_system, T, EXPR)

FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicAdd, int, old + val)
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicAdd, unsigned int, old + val)
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicAdd, unsigned long long, old + val)
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicAdd, float, old + val)
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicAdd, double, old + val)
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicAdd, __half, __hadd(old, val))
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicAdd, __nv_bfloat16, __hadd(old, val))
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicSub, int, old - val)
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicSub, unsigned int, old - val)
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicExch, int, val)
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicExch, unsigned int, val)
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicExch, unsigned long long, val)
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicExch, float, val)
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicMax, int, old < val ? val : old)
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicMax, unsigned int, old < val ? val : old)
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicMax, long long, old < val ? val : old)
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicMax, unsigned long long, old < val ? val : old)
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicMin, int, val < old ? val : old)
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicMin, unsigned int, val < old ? val : old)
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicMin, long long, val < old ? val : old)
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicMin, unsigned long long, val < old ? val : old)
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicAnd, int, old & val)
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicAnd, unsigned int, old & val)
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicAnd, unsigned long long, old & val)
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicOr, int, old | val)
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicOr, unsigned int, old | val)
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicOr, unsigned long long, old | val)
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicXor, int, old ^ val)
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicXor, unsigned int, old ^ val)
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicXor, unsigned long long, old ^ val)
// CUDA semantics: inc wraps to 0 past val, dec wraps to val at 0 or above val.
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicInc, unsigned int, old >= val ? 0u : old + 1u)
FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES(atomicDec, unsigned int, (old == 0u || old > val) ? val : old - 1u)

#define FUSEDOPT_SIMT_DEF_CAS(NAME, T)                                 \
  FUSEDOPT_SIMT_ATOMIC_FN T NAME(T* address, T compare, T val) {        \
    FUSEDOPT_SIMT_NOTE_ATOMIC(address);                                 \
    T old = *address;                                                   \
    if (old == compare) *address = val;                                 \
    return old;                                                         \
  }
FUSEDOPT_SIMT_DEF_CAS(atomicCAS, int)
FUSEDOPT_SIMT_DEF_CAS(atomicCAS, unsigned int)
FUSEDOPT_SIMT_DEF_CAS(atomicCAS, unsigned long long)
FUSEDOPT_SIMT_DEF_CAS(atomicCAS, unsigned short)
FUSEDOPT_SIMT_DEF_CAS(atomicCAS_block, int)
FUSEDOPT_SIMT_DEF_CAS(atomicCAS_block, unsigned int)
FUSEDOPT_SIMT_DEF_CAS(atomicCAS_block, unsigned long long)
FUSEDOPT_SIMT_DEF_CAS(atomicCAS_system, int)
FUSEDOPT_SIMT_DEF_CAS(atomicCAS_system, unsigned int)
FUSEDOPT_SIMT_DEF_CAS(atomicCAS_system, unsigned long long)
#undef FUSEDOPT_SIMT_DEF_ATOMIC_SCOPES
#undef FUSEDOPT_SIMT_DEF_ATOMIC
#undef FUSEDOPT_SIMT_DEF_CAS

// ---- bit reinterpretation and integer intrinsics ---------------------------
inline unsigned __float_as_uint(float x) { unsigned u; std::memcpy(&u, &x, 4); return u; }
inline int __float_as_int(float x) { int u; std::memcpy(&u, &x, 4); return u; }
inline float __uint_as_float(unsigned u) { float x; std::memcpy(&x, &u, 4); return x; }
inline float __int_as_float(int u) { float x; std::memcpy(&x, &u, 4); return x; }
inline long long __double_as_longlong(double x) { long long u; std::memcpy(&u, &x, 8); return u; }
inline double __longlong_as_double(long long u) { double x; std::memcpy(&x, &u, 8); return x; }
inline int __double2hiint(double x) { return (int)((unsigned long long)__double_as_longlong(x) >> 32); }
inline int __double2loint(double x) { return (int)(unsigned)(unsigned long long)__double_as_longlong(x); }
inline double __hiloint2double(int hi, int lo) {
  return __longlong_as_double((long long)(((unsigned long long)(unsigned)hi << 32) | (unsigned)lo));
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
inline unsigned long long __brevll(unsigned long long x) {
  return ((unsigned long long)__brev((unsigned)x) << 32) | __brev((unsigned)(x >> 32));
}
inline int __mul24(int x, int y) {  // low 24 bits, sign-extended, multiplied
  auto s24 = [](int v) { return (int)((unsigned)v << 8) >> 8; };
  return (int)((unsigned)s24(x) * (unsigned)s24(y));
}
inline unsigned __umul24(unsigned x, unsigned y) { return (x & 0xffffffu) * (y & 0xffffffu); }
inline int __mulhi(int x, int y) { return (int)(((long long)x * y) >> 32); }
inline unsigned __umulhi(unsigned x, unsigned y) { return (unsigned)(((unsigned long long)x * y) >> 32); }
inline long long __mul64hi(long long x, long long y) { return (long long)(((__int128)x * y) >> 64); }
inline unsigned long long __umul64hi(unsigned long long x, unsigned long long y) {
  return (unsigned long long)(((unsigned __int128)x * y) >> 64);
}
inline unsigned __funnelshift_l(unsigned lo, unsigned hi, unsigned s) {
  unsigned long long v = ((unsigned long long)hi << 32) | lo;
  return (unsigned)((v << (s & 31)) >> 32);
}
inline unsigned __funnelshift_r(unsigned lo, unsigned hi, unsigned s) {
  unsigned long long v = ((unsigned long long)hi << 32) | lo;
  return (unsigned)(v >> (s & 31));
}
inline int __sad(int x, int y, unsigned z) { return (int)(z + (unsigned)(x > y ? x - y : y - x)); }
inline unsigned __usad(unsigned x, unsigned y, unsigned z) { return z + (x > y ? x - y : y - x); }

// ---- floating point intrinsics ----------------------------------------------
// Deterministic CPU semantics (see docs/emulator.md): approximate hardware
// intrinsics are computed exactly-rounded here, e.g. rsqrtf = 1/sqrtf and
// __fdividef = x/y; on the GPU they may differ by a few ulp.
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float rcbrtf(float x) { return 1.0f / cbrtf(x); }
inline float __fdividef(float x, float y) { return x / y; }
inline float fdividef(float x, float y) { return x / y; }
inline double fdivide(double x, double y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline double __drcp_rn(double x) { return 1.0 / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline double __dsqrt_rn(double x) { return sqrt(x); }
inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }
inline float __fadd_rn(float x, float y) { return x + y; }
inline float __fsub_rn(float x, float y) { return x - y; }
inline float __fmul_rn(float x, float y) { return x * y; }
inline float __fdiv_rn(float x, float y) { return x / y; }
inline float __fmaf_rn(float x, float y, float z) { return fmaf(x, y, z); }
inline double __dadd_rn(double x, double y) { return x + y; }
inline double __dsub_rn(double x, double y) { return x - y; }
inline double __dmul_rn(double x, double y) { return x * y; }
inline double __ddiv_rn(double x, double y) { return x / y; }
inline double __fma_rn(double x, double y, double z) { return fma(x, y, z); }
inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return powf(10.0f, x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline void __sincosf(float x, float* s, float* c) { *s = sinf(x); *c = cosf(x); }
inline float __saturatef(float x) { return x > 0.0f ? (x < 1.0f ? x : 1.0f) : 0.0f; }  // NaN -> 0
inline int __float2int_rn(float x) { return (int)nearbyintf(x); }
inline int __float2int_rz(float x) { return (int)x; }
inline int __float2int_rd(float x) { return (int)floorf(x); }
inline int __float2int_ru(float x) { return (int)ceilf(x); }
inline unsigned __float2uint_rn(float x) { return (unsigned)nearbyintf(x); }
inline unsigned __float2uint_rz(float x) { return (unsigned)x; }
inline long long __float2ll_rn(float x) { return (long long)nearbyintf(x); }
inline long long __float2ll_rz(float x) { return (long long)x; }
inline float __int2float_rn(int x) { return (float)x; }
inline float __uint2float_rn(unsigned x) { return (float)x; }
inline float __ll2float_rn(long long x) { return (float)x; }
inline double __int2double_rn(int x) { return (double)x; }
inline int __double2int_rn(double x) { return (int)nearbyint(x); }
inline int __double2int_rz(double x) { return (int)x; }
inline float __double2float_rn(double x) { return (float)x; }
// CUDA spells these as free functions (global namespace on the device).
using std::isfinite;
using std::isinf;
using std::isnan;
using std::signbit;

// CUDA's overloaded min/max (crt/math_functions.hpp) for device code.
#define FUSEDOPT_SIMT_MINMAX(T)                              \
  inline T min(T a, T b) { return b < a ? b : a; }           \
  inline T max(T a, T b) { return a < b ? b : a; }
FUSEDOPT_SIMT_MINMAX(int)
FUSEDOPT_SIMT_MINMAX(unsigned int)
FUSEDOPT_SIMT_MINMAX(long)
FUSEDOPT_SIMT_MINMAX(unsigned long)
FUSEDOPT_SIMT_MINMAX(long long)
FUSEDOPT_SIMT_MINMAX(unsigned long long)
#undef FUSEDOPT_SIMT_MINMAX
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
inline double min(float a, double b) { return fmin((double)a, b); }
inline double min(double a, float b) { return fmin(a, (double)b); }
inline double max(float a, double b) { return fmax((double)a, b); }
inline double max(double a, float b) { return fmax(a, (double)b); }
inline unsigned min(int a, unsigned b) { return min((unsigned)a, b); }
inline unsigned min(unsigned a, int b) { return min(a, (unsigned)b); }
inline unsigned max(int a, unsigned b) { return max((unsigned)a, b); }
inline unsigned max(unsigned a, int b) { return max(a, (unsigned)b); }
inline unsigned umin(unsigned a, unsigned b) { return b < a ? b : a; }
inline unsigned umax(unsigned a, unsigned b) { return a < b ? b : a; }
inline long long llmin(long long a, long long b) { return b < a ? b : a; }
inline long long llmax(long long a, long long b) { return a < b ? b : a; }
inline unsigned long long ullmin(unsigned long long a, unsigned long long b) { return b < a ? b : a; }
inline unsigned long long ullmax(unsigned long long a, unsigned long long b) { return a < b ? b : a; }

// ---- fp16 / bf16 math missing from the host paths of cuda_fp16/bf16 --------
// Computed in float and rounded once more; a fused half FMA on the GPU rounds
// once, so results can differ in rare tie cases (documented).
inline __half __hfma(__half a, __half b, __half c) {
  return __float2half_rn(fmaf(__half2float(a), __half2float(b), __half2float(c)));
}
inline __half2 __hfma2(__half2 a, __half2 b, __half2 c) {
  return __halves2half2(__hfma(__low2half(a), __low2half(b), __low2half(c)),
                        __hfma(__high2half(a), __high2half(b), __high2half(c)));
}
inline __nv_bfloat16 __hfma(__nv_bfloat16 a, __nv_bfloat16 b, __nv_bfloat16 c) {
  return __float2bfloat16_rn(fmaf(__bfloat162float(a), __bfloat162float(b), __bfloat162float(c)));
}
inline __nv_bfloat162 __hfma2(__nv_bfloat162 a, __nv_bfloat162 b, __nv_bfloat162 c) {
  return __halves2bfloat162(__hfma(__low2bfloat16(a), __low2bfloat16(b), __low2bfloat16(c)),
                            __hfma(__high2bfloat16(a), __high2bfloat16(b), __high2bfloat16(c)));
}
inline __half hsqrt(__half a) { return __float2half_rn(sqrtf(__half2float(a))); }
inline __half hrsqrt(__half a) { return __float2half_rn(1.0f / sqrtf(__half2float(a))); }
inline __half hrcp(__half a) { return __float2half_rn(1.0f / __half2float(a)); }
inline __half hexp(__half a) { return __float2half_rn(expf(__half2float(a))); }
inline __half hlog(__half a) { return __float2half_rn(logf(__half2float(a))); }
inline __nv_bfloat16 hsqrt(__nv_bfloat16 a) { return __float2bfloat16_rn(sqrtf(__bfloat162float(a))); }
inline __nv_bfloat16 hrsqrt(__nv_bfloat16 a) { return __float2bfloat16_rn(1.0f / sqrtf(__bfloat162float(a))); }
inline __nv_bfloat16 hrcp(__nv_bfloat16 a) { return __float2bfloat16_rn(1.0f / __bfloat162float(a)); }
inline __nv_bfloat16 hexp(__nv_bfloat16 a) { return __float2bfloat16_rn(expf(__bfloat162float(a))); }
inline __nv_bfloat16 hlog(__nv_bfloat16 a) { return __float2bfloat16_rn(logf(__bfloat162float(a))); }

// ---- cache-hinted loads/stores: plain accesses --------------------------------
// Templates so every pointee type (float, float4, __half2, ...) works; the
// access is done in kernel code, so it is visible to the race checker.
template <class T> inline T __ldg(const T* p) { return *p; }
template <class T> inline T __ldca(const T* p) { return *p; }
template <class T> inline T __ldcg(const T* p) { return *p; }
template <class T> inline T __ldcs(const T* p) { return *p; }
template <class T> inline T __ldlu(const T* p) { return *p; }
template <class T> inline T __ldcv(const T* p) { return *p; }
template <class T> inline void __stwb(T* p, T v) { *p = v; }
template <class T> inline void __stcg(T* p, T v) { *p = v; }
template <class T> inline void __stcs(T* p, T v) { *p = v; }
template <class T> inline void __stwt(T* p, T v) { *p = v; }

#include "../../include/fusedopt/launch.h"

#endif  // emulated build
