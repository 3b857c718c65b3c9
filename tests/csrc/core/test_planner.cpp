// The chunk planner with synthetic sizes, including tensors past 2^31 and 2^32 elements
// (nothing is allocated: the planner only does arithmetic).
#include <cstdint>
#include <map>
#include <vector>

#include "check.h"
#include "fusedopt/planner.h"

using namespace fusedopt;

// Every element of every tensor is covered exactly once, in order, by chunks of <= chunk_size.
static void check_flat_cover(const std::vector<int64_t>& numel, int64_t chunk_size) {
  const auto chunks = plan_chunks(numel.data(), static_cast<int64_t>(numel.size()), chunk_size);
  std::vector<int64_t> covered(numel.size(), 0);
  int64_t prev_tensor = -1;
  for (const auto& c : chunks) {
    CHECK(c.tensor >= prev_tensor);  // list order
    CHECK(c.end > c.begin);
    CHECK(c.end - c.begin <= chunk_size);
    CHECK(c.begin == covered[static_cast<size_t>(c.tensor)]);  // contiguous, no overlap
    covered[static_cast<size_t>(c.tensor)] = c.end;
    prev_tensor = c.tensor;
  }
  for (size_t t = 0; t < numel.size(); ++t) CHECK(covered[t] == numel[t]);
}

// Launch plans: every (tensor, chunk) appears exactly once, tables respect the limits, and
// a tensor straddling two launches is listed in both.
static void check_launches(const std::vector<int64_t>& numel, const LaunchLimits& lim) {
  const auto launches = plan_launches(numel.data(), static_cast<int64_t>(numel.size()), lim);
  std::map<std::pair<int64_t, int64_t>, int> seen;
  for (const auto& l : launches) {
    CHECK(!l.blocks.empty());
    CHECK(static_cast<int>(l.tensors.size()) <= lim.max_tensors);
    CHECK(static_cast<int>(l.blocks.size()) <= lim.max_blocks);
    for (const auto& b : l.blocks) {
      CHECK(b.slot >= 0 && b.slot < static_cast<int32_t>(l.tensors.size()));
      const int64_t t = l.tensors[static_cast<size_t>(b.slot)];
      CHECK(b.chunk >= 0 && b.chunk < num_chunks(numel[static_cast<size_t>(t)], lim.chunk_size));
      // 64-bit element offset of the chunk
      const int64_t offset = b.chunk * lim.chunk_size;
      CHECK(offset < numel[static_cast<size_t>(t)]);
      ++seen[{t, b.chunk}];
    }
  }
  int64_t expected = 0;
  for (int64_t n : numel) expected += num_chunks(n, lim.chunk_size);
  CHECK(static_cast<int64_t>(seen.size()) == expected);
  for (const auto& kv : seen) CHECK(kv.second == 1);
}

int main() {
  const int64_t k2_31 = int64_t(1) << 31, k2_32 = int64_t(1) << 32;

  CHECK(num_chunks(0, 65536) == 0);
  CHECK(num_chunks(1, 65536) == 1);
  CHECK(num_chunks(65536, 65536) == 1);
  CHECK(num_chunks(65537, 65536) == 2);
  CHECK(num_chunks(k2_32 + 5, 65536) == 65537);
  CHECK(num_chunks(k2_31 + 1, 1 << 20) == 2049);

  check_flat_cover({0, 1, 15, 16, 17, 32767, 32768, 32769, 0}, 32768);
  check_flat_cover({5, 0, 100}, 7);

  // Huge tensors: the last chunk starts past 2^32 and its end is exact.
  {
    const std::vector<int64_t> numel = {k2_31 + 3, 7, k2_32 + 5};
    const int64_t cs = int64_t(1) << 24;
    const auto chunks = plan_chunks(numel.data(), 3, cs);
    CHECK(chunks.size() == static_cast<size_t>(num_chunks(k2_31 + 3, cs) + 1 +
                                               num_chunks(k2_32 + 5, cs)));
    CHECK(chunks.back().tensor == 2);
    CHECK(chunks.back().end == k2_32 + 5);
    CHECK(chunks.back().begin == (k2_32 / cs) * cs);
    CHECK(chunks[static_cast<size_t>(num_chunks(k2_31 + 3, cs)) - 1].end == k2_31 + 3);
    check_flat_cover(numel, cs);
  }

  LaunchLimits lim;
  lim.chunk_size = 65536;
  lim.max_tensors = 4;
  lim.max_blocks = 10;
  check_launches({1, 2, 3, 4, 5, 6, 7, 8, 9}, lim);           // tensor-slot limit
  check_launches({65536 * 25 + 1, 3, 0, 65536 * 3}, lim);     // block limit, straddling
  check_launches({0, 0, 0}, lim);                              // nothing to do
  {
    const std::vector<int64_t> none = {0, 0};
    CHECK(plan_launches(none.data(), 2, lim).empty());
  }
  lim.max_blocks = 320;
  lim.max_tensors = 110;
  check_launches({k2_32 + 5, 1, k2_31 + 1}, lim);  // 2^32+5 elements: 65537 chunks

  // A straddling tensor appears in both launches, in slot 0 of the second.
  {
    LaunchLimits small;
    small.chunk_size = 10;
    small.max_tensors = 8;
    small.max_blocks = 4;
    const std::vector<int64_t> numel = {25, 41};  // 3 + 5 chunks
    const auto launches = plan_launches(numel.data(), 2, small);
    CHECK(launches.size() == 2);
    CHECK(launches[0].tensors == std::vector<int64_t>({0, 1}));
    CHECK(launches[0].blocks.size() == 4 && launches[0].blocks[3].slot == 1 &&
          launches[0].blocks[3].chunk == 0);
    CHECK(launches[1].tensors == std::vector<int64_t>({1}));
    CHECK(launches[1].blocks.size() == 4 && launches[1].blocks[0].slot == 0 &&
          launches[1].blocks[0].chunk == 1 && launches[1].blocks[3].chunk == 4);
  }
  return TEST_MAIN_RESULT();
}
