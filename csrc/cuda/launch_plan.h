// The CUDA engine's launch arithmetic, as plain host C++ (no CUDA, no torch headers): the engine
// constants and the byte layout of its by-value launch tables, from which every table's
// capacity follows. The kernels' tables are sized from these same functions, so what is planned
// here is what the kernels receive.
#pragma once

#include <cstdint>

namespace fusedopt {
namespace cuda_plan {

constexpr int64_t kChunkSize = 65536;  // elements per block
constexpr int kBlockThreads = 256;
constexpr int kILP = 4;                // elements per thread per iteration
// Parameter bytes kept for a kernel's other arguments (the functor and a pointer).
constexpr int kParamReserve = 384;
constexpr int64_t kMaxBlocksPerLaunch = int64_t(1) << 24;  // 2^40 elements per launch

// Kernel-parameter sizes of the two table layouts: CUDA >= 12.1 on Volta+ accepts 32764 bytes
// (k32KB), older toolkits 4096 (k4KB), which needs ~7x more launches for large lists.
enum class TableLayout { k4KB = 4096, k32KB = 32764 };

// Multi-tensor slot: a pointer per list, numel, first chunk, partial base, step pointer (8 B
// each), block_start and tensor index (4 B each); 8 B for the count and padding.
constexpr int slot_bytes(int lists) { return lists * 8 + 4 * 8 + 2 * 4; }
constexpr int slot_capacity(int lists, int param_bytes) {
  return (param_bytes - kParamReserve - 8) / slot_bytes(lists);
}
// Cleanup table: partial begin, chunk count, step pointer (8 B), tensor index + pad (4 B + 4 B).
constexpr int tensor_capacity(int param_bytes) { return (param_bytes - kParamReserve - 8) / 32; }
// Step table: one step pointer per tensor.
constexpr int step_capacity(int param_bytes) { return (param_bytes - kParamReserve - 8) / 8; }

}  // namespace cuda_plan
}  // namespace fusedopt
