// The multi-tensor chunk planner: host-only, torch-free, unit-tested with synthetic sizes.
//
// A tensor list is cut into chunks of `chunk_size` elements (the last chunk of a tensor may be
// shorter; empty tensors get none). The CPU backend runs the flat chunk list on its thread pool;
// the CUDA backend groups chunks into launches whose by-value parameter table holds at most
// `max_tensors` tensor slots and `max_blocks` (slot, chunk) entries. A tensor whose chunks
// straddle two launches appears in both tables. All sizes and offsets are 64-bit.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <vector>

namespace fusedopt {

struct ChunkRef {
  int64_t tensor;  // index into the caller's tensor list
  int64_t begin;   // first element of the chunk
  int64_t end;     // one past the last element
};

inline int64_t num_chunks(int64_t numel, int64_t chunk_size) {
  return numel <= 0 ? 0 : (numel - 1) / chunk_size + 1;
}

// Every chunk of every tensor, in list order (CPU backend; also the fixed order in which
// per-chunk reduction partials are combined).
inline std::vector<ChunkRef> plan_chunks(const int64_t* numel, int64_t count, int64_t chunk_size) {
  if (chunk_size <= 0) throw std::invalid_argument("fusedopt planner: chunk_size must be > 0");
  std::vector<ChunkRef> chunks;
  int64_t total = 0;
  for (int64_t t = 0; t < count; ++t) total += num_chunks(numel[t], chunk_size);
  chunks.reserve(static_cast<size_t>(total));
  for (int64_t t = 0; t < count; ++t) {
    for (int64_t begin = 0; begin < numel[t]; begin += chunk_size) {
      const int64_t end = numel[t] - begin > chunk_size ? begin + chunk_size : numel[t];
      chunks.push_back({t, begin, end});
    }
  }
  return chunks;
}

struct LaunchLimits {
  int64_t chunk_size = 65536;
  int max_tensors = 110;  // tensor slots in one launch table
  int max_blocks = 320;   // (slot, chunk) entries in one launch table
};

struct LaunchBlock {
  int32_t slot;   // index into Launch::tensors
  int64_t chunk;  // chunk index within that tensor (element offset = chunk * chunk_size)
};

struct Launch {
  std::vector<int64_t> tensors;  // caller's tensor indices, in table order
  std::vector<LaunchBlock> blocks;
};

inline std::vector<Launch> plan_launches(const int64_t* numel, int64_t count,
                                         const LaunchLimits& limits) {
  if (limits.chunk_size <= 0 || limits.max_tensors <= 0 || limits.max_blocks <= 0)
    throw std::invalid_argument("fusedopt planner: limits must be positive");
  std::vector<Launch> launches;
  Launch current;
  auto flush = [&]() {
    if (!current.blocks.empty()) launches.push_back(std::move(current));
    current = Launch{};
  };
  for (int64_t t = 0; t < count; ++t) {
    const int64_t chunks = num_chunks(numel[t], limits.chunk_size);
    int64_t c = 0;
    while (c < chunks) {
      if (static_cast<int>(current.tensors.size()) == limits.max_tensors) flush();
      current.tensors.push_back(t);
      const int32_t slot = static_cast<int32_t>(current.tensors.size() - 1);
      while (c < chunks && static_cast<int>(current.blocks.size()) < limits.max_blocks)
        current.blocks.push_back({slot, c++});
      if (static_cast<int>(current.blocks.size()) == limits.max_blocks) flush();
    }
  }
  flush();
  return launches;
}

}  // namespace fusedopt
