// Plain C++ API of the CUDA backend (torch-free, CUDA-header-free).
//
// The same sources build two backends:
//   - nvcc:                 namespace fusedopt::cuda           (real GPU kernels)
//   - g++ -DFUSEDOPT_SIMT:  namespace fusedopt::cuda_emulated  (the same kernels on the SIMT
//                           emulator, operating on host memory)
// Both can live in one binary. Signatures mirror fusedopt::cpu (csrc/cpu/cpu_backend.h) and
// the conventions of csrc/include/fusedopt/tensor_lists.h: every pointer (data, step counters,
// lr / grad_scale / found_inf / global_grad_norm scalars, norm outputs) points to memory of the
// backend's device. No function synchronizes with the host or reads device memory on the host,
// so a step can be captured in a CUDA graph.
#pragma once

#include <cstddef>
#include <cstdint>

#include "fusedopt/optimizers.h"
#include "fusedopt/scalar.h"
#include "fusedopt/tensor_lists.h"
#include "launch_plan.h"

#if defined(FUSEDOPT_SIMT)
#define FUSEDOPT_CUDA_NS cuda_emulated
#else
#define FUSEDOPT_CUDA_NS cuda
#endif

namespace fusedopt {
namespace FUSEDOPT_CUDA_NS {

// ---- runtime hooks (installed by the registration layer) ----------------------------------
using Stream = void*;  // cudaStream_t; ignored by the emulator (its launches are synchronous)
// Stream every launch of an op goes to (torch: the current stream). Default: the legacy
// default stream (nullptr).
using StreamFn = Stream (*)();
// Scratch memory for reduction partials (a few bytes per 64K-element chunk and per tensor).
// alloc(bytes, stream) returns device memory usable in stream order on `stream`; free(p,
// stream) is called right after the op's launches were enqueued (a stream-ordered allocator,
// such as torch's caching allocator, makes that safe). Default: cudaMallocAsync/cudaFreeAsync
// (nvcc) or malloc/free (emulated).
using AllocFn = void* (*)(size_t bytes, Stream stream);
using FreeFn = void (*)(void* ptr, Stream stream);
void set_stream_provider(StreamFn fn);
void set_allocator(AllocFn alloc, FreeFn free);

// ---- launch-table layout --------------------------------------------------------------------
// Multi-tensor launches carry their tensor table as a kernel parameter. CUDA >= 12.1 on Volta+
// accepts 32764 bytes of parameters (k32KB); older toolkits 4096 (k4KB), which needs ~7x more
// launches for large lists. nvcc builds compile the layout their toolkit supports
// (CUDART_VERSION; override with -DFUSEDOPT_CUDA_PARAM_BYTES=4096); the emulated build has both
// and can switch at run time (tests run both; default k4KB there because the emulator copies
// the parameters into every emulated thread).
using cuda_plan::TableLayout;  // enum class { k4KB = 4096, k32KB = 32764 }
bool set_table_layout(TableLayout layout);  // false if not compiled in
TableLayout table_layout();

// ---- optimizers: the entry points of fusedopt/optimizers.h, as in fusedopt::cpu -------------
FUSEDOPT_DECLARE_ENTRY_POINTS
void l2_norm(const void* const* ptrs, DType dtype, const int64_t* numel, int64_t count,
             const float* grad_scale, float* per_tensor, float* global,
             double* squares = nullptr);

// ---- launch planning ---------------------------------------------------------------------------
// Which launches an op issues for a list shaped like numel: fusedopt::cuda_plan::plan_op
// (launch_plan.h; host arithmetic only, the same plan for both backends, used by every op).

// Engine constants (launch_plan.h; documented in docs/kernels.md).
using cuda_plan::kBlockThreads;
using cuda_plan::kChunkSize;
using cuda_plan::kILP;

}  // namespace FUSEDOPT_CUDA_NS
}  // namespace fusedopt
