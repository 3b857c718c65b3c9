// Shared by every CUDA kernel source: CUDA (or emulator) headers, storage types and their
// conversions, vectorized loads/stores. Torch-free.
#pragma once

#if defined(FUSEDOPT_SIMT)
#include "fusedopt_simt.h"  // must precede every CUDA header in an emulated build
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#endif
#include "fusedopt/launch.h"

#include <cstdint>
#include <type_traits>

#include "cuda_backend.h"

// Full unrolling of the small constant-trip loops (kILP elements, state lists).
#if defined(__CUDACC__)
#define FUSEDOPT_UNROLL _Pragma("unroll")
#else
#define FUSEDOPT_UNROLL _Pragma("GCC unroll 8")
#endif

namespace fusedopt {
namespace FUSEDOPT_CUDA_NS {

// Table arithmetic shared with the host-only planner (launch_plan.h).
using cuda_plan::slot_capacity;
using cuda_plan::step_capacity;
using cuda_plan::tensor_capacity;

// ---- storage types ----------------------------------------------------------------------------
// Storage<S>: compute type C and the conversions (round-to-nearest-even, as the CPU backend).
// Vector I/O moves kILP = 4 consecutive elements: 16 bytes for float (one 128-bit access),
// 2 x 16 bytes for double, 8 bytes for half / bfloat16.
template <class S>
struct Storage;

template <>
struct Storage<float> {
  using C = float;
  static constexpr int kVecAlign = 16;
  static __device__ __forceinline__ float load(float x) { return x; }
  static __device__ __forceinline__ float store(float x) { return x; }
  static __device__ __forceinline__ void load4(const float* p, float (&o)[4]) {
    const float4 v = *reinterpret_cast<const float4*>(p);
    o[0] = v.x; o[1] = v.y; o[2] = v.z; o[3] = v.w;
  }
  static __device__ __forceinline__ void store4(float* p, const float (&o)[4]) {
#if defined(__CUDA_ARCH__)
    // One st.global.v4 in the PTX: a float4 assignment reaches ptxas as four scalar stores,
    // which it merges into STG.E.128 only sometimes (AMSGrad: 0 of its 4 lists on sm_80/90).
    // No "memory" clobber (as in CUTLASS's global stores): each element is stored once, after
    // the loads its value depends on, and nothing reads it back within the kernel.
    asm volatile("st.global.v4.f32 [%0], {%1, %2, %3, %4};" ::"l"(__cvta_generic_to_global(p)),
                 "f"(o[0]), "f"(o[1]), "f"(o[2]), "f"(o[3]));
#else
    *reinterpret_cast<float4*>(p) = make_float4(o[0], o[1], o[2], o[3]);
#endif
  }
};

template <>
struct Storage<double> {
  using C = double;
  static constexpr int kVecAlign = 16;
  static __device__ __forceinline__ double load(double x) { return x; }
  static __device__ __forceinline__ double store(double x) { return x; }
  static __device__ __forceinline__ void load4(const double* p, double (&o)[4]) {
    const double2 a = reinterpret_cast<const double2*>(p)[0];
    const double2 b = reinterpret_cast<const double2*>(p)[1];
    o[0] = a.x; o[1] = a.y; o[2] = b.x; o[3] = b.y;
  }
  static __device__ __forceinline__ void store4(double* p, const double (&o)[4]) {
    reinterpret_cast<double2*>(p)[0] = make_double2(o[0], o[1]);
    reinterpret_cast<double2*>(p)[1] = make_double2(o[2], o[3]);
  }
};

template <>
struct Storage<__half> {
  using C = float;
  static constexpr int kVecAlign = 8;
  static __device__ __forceinline__ float load(__half x) { return __half2float(x); }
  static __device__ __forceinline__ __half store(float x) { return __float2half_rn(x); }
  static __device__ __forceinline__ void load4(const __half* p, float (&o)[4]) {
    const uint2 v = *reinterpret_cast<const uint2*>(p);
    o[0] = __half2float(__ushort_as_half(static_cast<unsigned short>(v.x & 0xffffu)));
    o[1] = __half2float(__ushort_as_half(static_cast<unsigned short>(v.x >> 16)));
    o[2] = __half2float(__ushort_as_half(static_cast<unsigned short>(v.y & 0xffffu)));
    o[3] = __half2float(__ushort_as_half(static_cast<unsigned short>(v.y >> 16)));
  }
  static __device__ __forceinline__ void store4(__half* p, const float (&o)[4]) {
    uint2 v;
    v.x = static_cast<unsigned>(__half_as_ushort(__float2half_rn(o[0]))) |
          (static_cast<unsigned>(__half_as_ushort(__float2half_rn(o[1]))) << 16);
    v.y = static_cast<unsigned>(__half_as_ushort(__float2half_rn(o[2]))) |
          (static_cast<unsigned>(__half_as_ushort(__float2half_rn(o[3]))) << 16);
    *reinterpret_cast<uint2*>(p) = v;
  }
};

template <>
struct Storage<__nv_bfloat16> {
  using C = float;
  static constexpr int kVecAlign = 8;
  static __device__ __forceinline__ float load(__nv_bfloat16 x) { return __bfloat162float(x); }
  static __device__ __forceinline__ __nv_bfloat16 store(float x) { return __float2bfloat16_rn(x); }
  static __device__ __forceinline__ void load4(const __nv_bfloat16* p, float (&o)[4]) {
    const uint2 v = *reinterpret_cast<const uint2*>(p);
    o[0] = __uint_as_float(v.x << 16);
    o[1] = __uint_as_float(v.x & 0xffff0000u);
    o[2] = __uint_as_float(v.y << 16);
    o[3] = __uint_as_float(v.y & 0xffff0000u);
  }
  static __device__ __forceinline__ void store4(__nv_bfloat16* p, const float (&o)[4]) {
    uint2 v;
    v.x = static_cast<unsigned>(__bfloat16_as_ushort(__float2bfloat16_rn(o[0]))) |
          (static_cast<unsigned>(__bfloat16_as_ushort(__float2bfloat16_rn(o[1]))) << 16);
    v.y = static_cast<unsigned>(__bfloat16_as_ushort(__float2bfloat16_rn(o[2]))) |
          (static_cast<unsigned>(__bfloat16_as_ushort(__float2bfloat16_rn(o[3]))) << 16);
    *reinterpret_cast<uint2*>(p) = v;
  }
};

template <class S>
__device__ __forceinline__ bool is_aligned(const S* p) {
  return (reinterpret_cast<uintptr_t>(p) % Storage<S>::kVecAlign) == 0;
}

// Runs fn(S*) with the storage type of dtype (host side dispatch).
template <class Fn>
inline void dispatch_dtype(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::Float32: fn(static_cast<float*>(nullptr)); return;
    case DType::Float64: fn(static_cast<double*>(nullptr)); return;
    case DType::Float16: fn(static_cast<__half*>(nullptr)); return;
    case DType::BFloat16: fn(static_cast<__nv_bfloat16*>(nullptr)); return;
  }
}

template <bool B>
using Bool = std::integral_constant<bool, B>;

// Runs fn(Bool<b>{}) (host side: a runtime flag -> a template flag).
template <class Fn>
inline void dispatch_bool(bool b, Fn&& fn) {
  if (b) fn(Bool<true>{});
  else fn(Bool<false>{});
}

}  // namespace FUSEDOPT_CUDA_NS
}  // namespace fusedopt
