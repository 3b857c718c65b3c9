// Runtime hooks of the CUDA backend: stream, scratch allocator, table layout. (Launch plans:
// launch_plan.cpp, plain host code shared with the CPU-only build.)
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "host_launch.cuh"

namespace fusedopt {
namespace FUSEDOPT_CUDA_NS {
namespace {

Stream default_stream() { return nullptr; }

#if defined(FUSEDOPT_SIMT)
void* default_alloc(size_t bytes, Stream) {
  void* p = std::malloc(bytes > 0 ? bytes : 1);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
void default_free(void* p, Stream) { std::free(p); }
// FUSEDOPT_EMULATED_TABLE=32k selects the large layout at start-up (default 4k: the emulator
// copies the kernel parameters into each of a block's threads).
TableLayout initial_layout() {
  const char* e = std::getenv("FUSEDOPT_EMULATED_TABLE");
  return (e != nullptr && std::string(e) == "32k") ? TableLayout::k32KB : TableLayout::k4KB;
}
TableLayout g_layout = initial_layout();
#else
void* default_alloc(size_t bytes, Stream s) {
  void* p = nullptr;
  const cudaError_t e = cudaMallocAsync(&p, bytes > 0 ? bytes : 1, static_cast<cudaStream_t>(s));
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("fusedopt cuda: scratch allocation failed: ") +
                             cudaGetErrorString(e));
  return p;
}
void default_free(void* p, Stream s) { cudaFreeAsync(p, static_cast<cudaStream_t>(s)); }
constexpr TableLayout kCompiledLayout = static_cast<TableLayout>(FUSEDOPT_CUDA_PARAM_BYTES);
#endif

// Plain globals (set once by the registration layer at load time): no std::atomic, whose
// instrumented form would need the TSan runtime in the race-checked test build.
StreamFn g_stream = &default_stream;
AllocFn g_alloc = &default_alloc;
FreeFn g_free = &default_free;

}  // namespace

void set_stream_provider(StreamFn fn) { g_stream = fn ? fn : &default_stream; }
void set_allocator(AllocFn alloc, FreeFn free) {
  g_alloc = alloc ? alloc : &default_alloc;
  g_free = free ? free : &default_free;
}

Stream current_stream() { return g_stream(); }
void* scratch_alloc(size_t bytes, Stream s) { return g_alloc(bytes, s); }
void scratch_free(void* p, Stream s) {
  if (p != nullptr) g_free(p, s);
}

#if defined(FUSEDOPT_SIMT)
bool set_table_layout(TableLayout layout) {
  if (layout != TableLayout::k4KB && layout != TableLayout::k32KB) return false;
  g_layout = layout;
  return true;
}
TableLayout table_layout() { return g_layout; }
void check_launch(const char*) {}  // emulated launches throw on failure
#else
bool set_table_layout(TableLayout layout) { return layout == kCompiledLayout; }
TableLayout table_layout() { return kCompiledLayout; }
void check_launch(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("fusedopt cuda: launch of ") + what +
                             " failed: " + cudaGetErrorString(e));
}
#endif

}  // namespace FUSEDOPT_CUDA_NS
}  // namespace fusedopt
