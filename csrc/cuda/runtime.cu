// Runtime hooks of the CUDA backend (stream, scratch allocator, table layout) and the launch
// planning the driver and the tests share.
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

int lists_of(const PlanShape& s) {
  switch (s.op) {
    case OpKind::kL2Norm: return 1;
    default: return 2 + (s.master ? 1 : 0) + s.num_states;
  }
}

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

int table_capacity(int lists, TableLayout layout) {
  return slot_capacity(lists, static_cast<int>(layout));
}

std::vector<PlannedLaunch> plan_op(const PlanShape& shape, const int64_t* numel, int64_t count,
                                   TableLayout layout) {
  const int pb = static_cast<int>(layout);
  std::vector<PlannedLaunch> out;
  if (count <= 0) return out;
  auto engine = [&](const char* name, int lists) {
    for (const Launch& l : plan_launches(numel, count, engine_limits(slot_capacity(lists, pb))))
      out.push_back({name, static_cast<int64_t>(l.blocks.size()), kBlockThreads});
  };
  auto cleanup = [&](bool global) {
    const int cap = tensor_capacity(pb);
    for (int64_t first = 0; first < count; first += cap) out.push_back({"cleanup", 1, kBlockThreads});
    if (global && count > cap) out.push_back({"finish", 1, kBlockThreads});
  };
  auto steps = [&]() {
    const int cap = step_capacity(pb);
    for (int64_t first = 0; first < count; first += cap) out.push_back({"step", 1, kBlockThreads});
  };
  const int lists = lists_of(shape);
  switch (shape.op) {
    case OpKind::kAdam:
    case OpKind::kSGD:
    case OpKind::kLion:
      steps();
      engine("update", lists);
      break;
    case OpKind::kLamb:
      engine("reduce", lists);        // moments + ||p||^2, ||u||^2 partials
      cleanup(false);                 // trust ratios, step += 1
      engine("update", lists - 1);    // no grad list in pass 2
      break;
    case OpKind::kLars:
      if (shape.adapt) {
        engine("reduce", 2 + (shape.master ? 1 : 0));  // ||p||^2, ||g||^2
        cleanup(false);
      } else {
        steps();
      }
      engine("update", lists);
      break;
    case OpKind::kL2Norm:
      engine("reduce", 1);
      cleanup(shape.global);
      break;
  }
  return out;
}

}  // namespace FUSEDOPT_CUDA_NS
}  // namespace fusedopt
