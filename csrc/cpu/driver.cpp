// CPU backend driver: plans chunks, runs the selected SIMD level's kernels on the thread pool,
// and combines reduction partials in a fixed order.
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernel_table.h"

namespace fusedopt {
namespace cpu {
namespace {

void serial_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n > 0) fn(0, n);
}

ParallelFor g_parallel_for = serial_for;

const KernelTable* detect_level() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return &kAvx512Kernels;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c"))
    return &kAvx2Kernels;
  return &kBaselineKernels;
}

// Lowest to highest; a level may be selected only if this CPU supports it.
const KernelTable* const kLevels[] = {&kBaselineKernels, &kAvx2Kernels, &kAvx512Kernels};

const KernelTable* find_level(const char* name) {
  const KernelTable* best = detect_level();
  for (const KernelTable* t : kLevels) {
    if (std::strcmp(t->name, name) == 0) return t;
    if (t == best) break;
  }
  return nullptr;
}

// Chosen on first use (not during static initialization: the tables live in other TUs).
std::atomic<const KernelTable*> g_kernels{nullptr};

const KernelTable& kernels() {
  const KernelTable* k = g_kernels.load(std::memory_order_acquire);
  if (k == nullptr) {
    const char* forced = std::getenv("FUSEDOPT_CPU_ISA");
    k = forced ? find_level(forced) : nullptr;
    if (k == nullptr) k = detect_level();
    g_kernels.store(k, std::memory_order_release);
  }
  return *k;
}

// ---- scheduling ------------------------------------------------------------------------------
// Work is cut into tasks handed out through an atomic counter: a core slowed down by another
// process simply takes fewer tasks (a static split would wait for its half). Each task writes
// only its own outputs (elements of its chunks, the partial slots of its chunks), so results do
// not depend on which thread runs which task, nor on the order tasks run in.
template <class Task>
void run_tasks(int64_t n, Task&& task) {
  if (n <= 0) return;
  if (n == 1) {
    task(0);
    return;
  }
  std::atomic<int64_t> next{0};
  g_parallel_for(n, [&](int64_t, int64_t) {
    for (int64_t i = next.fetch_add(1, std::memory_order_relaxed); i < n;
         i = next.fetch_add(1, std::memory_order_relaxed))
      task(i);
  });
}

// Smallest amount of work per task: consecutive chunks of small tensors share a task so that
// many tiny tensors do not cost one scheduling round trip each.
constexpr int64_t kTaskElems = kChunkSize;

// Runs body(chunk, index) for chunks [first, last) of the plan. reverse: hand out the last
// chunks first (to start on data the previous pass touched last, while it is still in cache).
template <class Body>
void for_chunks(const std::vector<ChunkRef>& chunks, size_t first, size_t last, bool reverse,
                Body&& body) {
  if (first >= last) return;
  std::vector<size_t> starts;  // task t covers chunks [starts[t], starts[t + 1])
  starts.reserve(last - first + 1);
  int64_t elems = kTaskElems;
  for (size_t i = first; i < last; ++i) {
    if (elems >= kTaskElems) {
      starts.push_back(i);
      elems = 0;
    }
    elems += chunks[i].end - chunks[i].begin;
  }
  starts.push_back(last);
  const int64_t ntasks = static_cast<int64_t>(starts.size()) - 1;
  run_tasks(ntasks, [&](int64_t k) {
    const size_t t = static_cast<size_t>(reverse ? ntasks - 1 - k : k);
    for (size_t i = starts[t]; i < starts[t + 1]; ++i)
      body(chunks[i], static_cast<int64_t>(i));
  });
}

template <class Body>
void for_each_chunk(const std::vector<ChunkRef>& chunks, Body&& body) {
  for_chunks(chunks, 0, chunks.size(), false, body);
}

// Two-pass optimizers (LAMB, LARS) run in waves: consecutive whole tensors of about kWaveElems
// elements get pass 1, their per-tensor norms, then pass 2, so pass 2 re-reads data pass 1 just
// brought into L2/L3 instead of going back to DRAM. A tensor larger than a wave is a wave.
constexpr int64_t kWaveElems = int64_t(1) << 20;

struct Wave {
  size_t first_chunk, last_chunk;  // [first, last) in the chunk plan
  int64_t first_tensor, last_tensor;
};

std::vector<Wave> plan_waves(const ParamLists& L, const std::vector<ChunkRef>& chunks) {
  std::vector<Wave> waves;
  size_t c = 0;
  int64_t t = 0;
  while (t < L.count) {
    Wave w{c, c, t, t};
    int64_t elems = 0;
    while (t < L.count && (t == w.first_tensor || elems + L.numel[t] <= kWaveElems)) {
      elems += L.numel[t];
      ++t;
    }
    while (c < chunks.size() && chunks[c].tensor < t) ++c;
    w.last_chunk = c;
    w.last_tensor = t;
    waves.push_back(w);
  }
  return waves;
}

// Shared prologue of every optimizer step: honours found_inf (the whole call becomes a no-op,
// step counters included) and advances the per-tensor step counters.
bool begin_step(const ParamLists& L, const StepInputs& in) {
  if (in.skip()) return false;
  for (int64_t t = 0; t < L.count; ++t) *L.step[t] += 1.0f;
  return true;
}

// Sums the partials of chunks [first, last) into per-tensor totals, in chunk order
// (deterministic).
void per_tensor_sums(const std::vector<ChunkRef>& chunks, const std::vector<SquaresPartial>& partials,
                     size_t first, size_t last, std::vector<SquaresPartial>& sums) {
  for (size_t i = first; i < last; ++i) {
    sums[static_cast<size_t>(chunks[i].tensor)].param += partials[i].param;
    sums[static_cast<size_t>(chunks[i].tensor)].second += partials[i].second;
  }
}

}  // namespace

void set_parallel_for(ParallelFor fn) { g_parallel_for = fn ? fn : serial_for; }

const char* simd_level() { return kernels().name; }

bool set_simd_level(const char* name) {
  const KernelTable* k = find_level(name);
  if (k != nullptr) g_kernels.store(k, std::memory_order_release);
  return k != nullptr;
}

void adam(const ParamLists& L, const AdamHyper& h, const StepInputs& in) {
  if (!begin_step(L, in)) return;
  const double lr = in.lr.get();
  const float inv = in.inv_grad_scale();
  const auto chunks = plan_chunks(L.numel, L.count, kChunkSize);
  for_each_chunk(chunks, [&](const ChunkRef& ck, int64_t) { kernels().adam(L, h, lr, inv, ck); });
}

void sgd(const ParamLists& L, const SGDHyper& h, const StepInputs& in) {
  if (!begin_step(L, in)) return;
  const double lr = in.lr.get();
  const float inv = in.inv_grad_scale();
  const auto chunks = plan_chunks(L.numel, L.count, kChunkSize);
  for_each_chunk(chunks, [&](const ChunkRef& ck, int64_t) { kernels().sgd(L, h, lr, inv, ck); });
}

void lion(const ParamLists& L, const LionHyper& h, const StepInputs& in) {
  if (!begin_step(L, in)) return;
  const double lr = in.lr.get();
  const float inv = in.inv_grad_scale();
  const auto chunks = plan_chunks(L.numel, L.count, kChunkSize);
  for_each_chunk(chunks, [&](const ChunkRef& ck, int64_t) { kernels().lion(L, h, lr, inv, ck); });
}

void lamb(const ParamLists& L, const LambHyper& h, const StepInputs& in,
          const float* global_grad_norm) {
  if (!begin_step(L, in)) return;
  const double lr = in.lr.get();
  const float inv = in.inv_grad_scale();
  const float gnorm = global_grad_norm ? *global_grad_norm : 0.0f;
  const auto chunks = plan_chunks(L.numel, L.count, kChunkSize);
  std::vector<SquaresPartial> partials(chunks.size());
  std::vector<SquaresPartial> sums(static_cast<size_t>(L.count));
  std::vector<float> scaled_lr(static_cast<size_t>(L.count));
  const auto waves = plan_waves(L, chunks);
  // Last wave first: the global grad norm pass has just read the grads front to back.
  for (auto w = waves.rbegin(); w != waves.rend(); ++w) {
    for_chunks(chunks, w->first_chunk, w->last_chunk, /*reverse=*/true,
               [&](const ChunkRef& ck, int64_t i) {
                 partials[static_cast<size_t>(i)] = kernels().lamb_moments(L, h, inv, gnorm, ck);
               });
    per_tensor_sums(chunks, partials, w->first_chunk, w->last_chunk, sums);
    for (int64_t t = w->first_tensor; t < w->last_tensor; ++t) {
      const auto& s = sums[static_cast<size_t>(t)];
      const float ratio = math::lamb_trust_ratio(h, static_cast<float>(std::sqrt(s.param)),
                                                 static_cast<float>(std::sqrt(s.second)));
      scaled_lr[static_cast<size_t>(t)] = lr * ratio;
    }
    for_chunks(chunks, w->first_chunk, w->last_chunk, /*reverse=*/false,
               [&](const ChunkRef& ck, int64_t) {
                 kernels().lamb_apply(L, h, inv, gnorm, scaled_lr[static_cast<size_t>(ck.tensor)],
                                      ck);
               });
  }
}

void lars(const ParamLists& L, const LarsHyper& h, const StepInputs& in, bool adapt) {
  if (!begin_step(L, in)) return;
  const double lr = in.lr.get();
  const float inv = in.inv_grad_scale();
  const auto chunks = plan_chunks(L.numel, L.count, kChunkSize);
  std::vector<float> ratio(static_cast<size_t>(L.count), 1.0f);
  auto apply = [&](size_t first, size_t last) {
    for_chunks(chunks, first, last, /*reverse=*/false, [&](const ChunkRef& ck, int64_t) {
      kernels().lars_apply(L, h, lr, inv, h.weight_decay, ratio[static_cast<size_t>(ck.tensor)],
                           ck);
    });
  };
  if (!adapt) {
    apply(0, chunks.size());
    return;
  }
  std::vector<SquaresPartial> partials(chunks.size());
  std::vector<SquaresPartial> sums(static_cast<size_t>(L.count));
  for (const Wave& w : plan_waves(L, chunks)) {
    for_chunks(chunks, w.first_chunk, w.last_chunk, /*reverse=*/true,
               [&](const ChunkRef& ck, int64_t i) {
                 partials[static_cast<size_t>(i)] = kernels().lars_norms(L, inv, ck);
               });
    per_tensor_sums(chunks, partials, w.first_chunk, w.last_chunk, sums);
    for (int64_t t = w.first_tensor; t < w.last_tensor; ++t) {
      const auto& s = sums[static_cast<size_t>(t)];
      ratio[static_cast<size_t>(t)] =
          math::lars_trust_ratio(h, true, h.weight_decay, lr, static_cast<float>(std::sqrt(s.param)),
                                 static_cast<float>(std::sqrt(s.second)));
    }
    apply(w.first_chunk, w.last_chunk);
  }
}

void l2_norm(const void* const* ptrs, DType dtype, const int64_t* numel, int64_t count,
             const float* grad_scale, float* per_tensor, float* global) {
  const float inv = grad_scale ? 1.0f / *grad_scale : 1.0f;
  const auto chunks = plan_chunks(numel, count, kChunkSize);
  std::vector<double> partials(chunks.size());
  for_each_chunk(chunks, [&](const ChunkRef& ck, int64_t i) {
    partials[static_cast<size_t>(i)] =
        kernels().sum_squares(ptrs[ck.tensor], dtype, inv, ck.begin, ck.end);
  });
  std::vector<double> sums(static_cast<size_t>(count), 0.0);
  for (size_t i = 0; i < chunks.size(); ++i) sums[static_cast<size_t>(chunks[i].tensor)] += partials[i];
  double total = 0.0;
  for (int64_t t = 0; t < count; ++t) {
    if (per_tensor) per_tensor[t] = static_cast<float>(std::sqrt(sums[static_cast<size_t>(t)]));
    total += sums[static_cast<size_t>(t)];
  }
  if (global) *global = static_cast<float>(std::sqrt(total));
}

}  // namespace cpu
}  // namespace fusedopt
