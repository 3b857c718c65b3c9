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

// Runs body(chunk, index) for the chunks at plan indices [first, last).
template <class Body>
void for_chunks(const std::vector<ChunkRef>& chunks, size_t first, size_t last, Body&& body) {
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
  run_tasks(static_cast<int64_t>(starts.size()) - 1, [&](int64_t t) {
    for (size_t i = starts[static_cast<size_t>(t)]; i < starts[static_cast<size_t>(t) + 1]; ++i)
      body(chunks[i], static_cast<int64_t>(i));
  });
}

template <class Body>
void for_each_chunk(const std::vector<ChunkRef>& chunks, Body&& body) {
  for_chunks(chunks, 0, chunks.size(), body);
}

// ---- two-pass optimizers (LAMB, LARS) ----------------------------------------------------------
// Pass 1 yields a partial per chunk, finish(t, sums) turns tensor t's sums into its scalar
// (trust ratio), pass 2 applies it. A tensor of at most kSoloElems elements is a "solo" task: one
// thread runs its pass 1, its sums and its pass 2 back to back, so pass 2 re-reads data that is
// still in that core's caches, and no barrier is needed. The chunks of larger tensors join the
// same pool of tasks for pass 1; after the one barrier, their pass-2 chunks run. Sums are taken
// over a tensor's chunk partials in chunk order either way: the result does not depend on the
// thread count or on which path a tensor took.
// Solo limit, 4M elements: GPT-2 (768 x 3072) and BERT-large (1024 x 4096) matrices are solo.
// Up to ~1M elements a tensor's data stays in L2 + L3 between the passes; above that, LAMB's
// pass 2 still reads p and the stored u (8 B/elem; u was written in pass 1) instead of p, m, v
// (12 B) and skips recomputing u. Scratch: numel x 4 B (x 8 B for float64) per thread, kept.
constexpr int64_t kSoloElems = int64_t(1) << 22;

template <class Pass1, class Finish, class Pass2>
void two_pass(const ParamLists& L, const std::vector<ChunkRef>& chunks, size_t scratch_bytes,
              Pass1&& pass1, Finish&& finish, Pass2&& pass2) {
  const size_t count = static_cast<size_t>(L.count);
  std::vector<size_t> first(count + 1);  // tensor t owns chunks [first[t], first[t + 1])
  for (size_t t = 0, c = 0; t <= count; ++t) {
    while (c < chunks.size() && static_cast<size_t>(chunks[c].tensor) < t) ++c;
    first[t] = c;
  }
  std::vector<SquaresPartial> partials(chunks.size());
  auto sums_of = [&](size_t t) {
    SquaresPartial s;
    for (size_t i = first[t]; i < first[t + 1]; ++i) {
      s.param += partials[i].param;
      s.second += partials[i].second;
    }
    return s;
  };
  struct Task {
    size_t begin, end;  // solo: tensors [begin, end); else: the one chunk `begin`
    bool solo;
  };
  std::vector<Task> tasks;
  std::vector<size_t> large;
  for (size_t t = 0; t < count;) {
    if (L.numel[t] > kSoloElems) {
      large.push_back(t++);
      continue;
    }
    Task k{t, t, true};
    int64_t elems = 0;  // group tiny tensors up to kTaskElems per task
    while (t < count && L.numel[t] <= kSoloElems &&
           (k.end == k.begin || elems + L.numel[t] <= kTaskElems)) {
      elems += L.numel[t++];
      k.end = t;
    }
    tasks.push_back(k);
  }
  for (size_t t : large)
    for (size_t i = first[t]; i < first[t + 1]; ++i) tasks.push_back({i, i + 1, false});

  run_tasks(static_cast<int64_t>(tasks.size()), [&](int64_t k) {
    const Task& task = tasks[static_cast<size_t>(k)];
    if (!task.solo) {
      partials[task.begin] = pass1(chunks[task.begin], nullptr);
      return;
    }
    thread_local std::vector<char> scratch;
    for (size_t t = task.begin; t < task.end; ++t) {
      char* buf = nullptr;
      if (scratch_bytes > 0) {
        const size_t need = static_cast<size_t>(L.numel[t]) * scratch_bytes;
        if (scratch.size() < need) scratch.resize(need);
        buf = scratch.data();
      }
      auto at = [&](const ChunkRef& ck) {
        return buf ? buf + static_cast<size_t>(ck.begin) * scratch_bytes : nullptr;
      };
      for (size_t i = first[t]; i < first[t + 1]; ++i)
        partials[i] = pass1(chunks[i], at(chunks[i]));
      finish(t, sums_of(t));
      for (size_t i = first[t]; i < first[t + 1]; ++i) pass2(chunks[i], at(chunks[i]));
    }
  });
  if (large.empty()) return;
  std::vector<ChunkRef> rest;
  for (size_t t : large) {
    finish(t, sums_of(t));
    rest.insert(rest.end(), chunks.begin() + static_cast<std::ptrdiff_t>(first[t]),
                chunks.begin() + static_cast<std::ptrdiff_t>(first[t + 1]));
  }
  for_chunks(rest, 0, rest.size(), [&](const ChunkRef& ck, int64_t) { pass2(ck, nullptr); });
}

// Shared prologue of every optimizer step: honours found_inf (the whole call becomes a no-op,
// step counters included) and advances the per-tensor step counters.
bool begin_step(const ParamLists& L, const StepInputs& in) {
  if (in.skip()) return false;
  for (int64_t t = 0; t < L.count; ++t) *L.step[t] += 1.0f;
  return true;
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
  const double inv = in.inv_grad_scale();
  const auto chunks = plan_chunks(L.numel, L.count, kChunkSize);
  for_each_chunk(chunks, [&](const ChunkRef& ck, int64_t) { kernels().adam(L, h, lr, inv, ck); });
}

void sgd(const ParamLists& L, const SGDHyper& h, const StepInputs& in) {
  if (!begin_step(L, in)) return;
  const double lr = in.lr.get();
  const double inv = in.inv_grad_scale();
  const auto chunks = plan_chunks(L.numel, L.count, kChunkSize);
  for_each_chunk(chunks, [&](const ChunkRef& ck, int64_t) { kernels().sgd(L, h, lr, inv, ck); });
}

void lion(const ParamLists& L, const LionHyper& h, const StepInputs& in) {
  if (!begin_step(L, in)) return;
  const double lr = in.lr.get();
  const double inv = in.inv_grad_scale();
  const auto chunks = plan_chunks(L.numel, L.count, kChunkSize);
  for_each_chunk(chunks, [&](const ChunkRef& ck, int64_t) { kernels().lion(L, h, lr, inv, ck); });
}

void lamb(const ParamLists& L, const LambHyper& h, const StepInputs& in,
          const float* global_grad_norm) {
  if (!begin_step(L, in)) return;
  const double lr = in.lr.get(), inv = in.inv_grad_scale();
  const float gnorm = global_grad_norm ? *global_grad_norm : 0.0f;
  const auto chunks = plan_chunks(L.numel, L.count, kChunkSize);
  std::vector<float> scaled_lr(static_cast<size_t>(L.count));
  const KernelTable& k = kernels();
  two_pass(
      L, chunks, L.compute_in_double() ? sizeof(double) : sizeof(float),
      [&](const ChunkRef& ck, char* u) { return k.lamb_moments(L, h, inv, gnorm, u, ck); },
      [&](size_t t, const SquaresPartial& s) {
        const float ratio = math::lamb_trust_ratio(h, static_cast<float>(std::sqrt(s.param)),
                                                   static_cast<float>(std::sqrt(s.second)));
        scaled_lr[t] = lr * ratio;
      },
      [&](const ChunkRef& ck, const char* u) {
        const float lr_t = scaled_lr[static_cast<size_t>(ck.tensor)];
        if (u) k.lamb_apply_direction(L, lr_t, u, ck);
        else k.lamb_apply(L, h, inv, gnorm, lr_t, ck);
      });
}

void lars(const ParamLists& L, const LarsHyper& h, const StepInputs& in, bool adapt) {
  if (!begin_step(L, in)) return;
  const double lr = in.lr.get(), inv = in.inv_grad_scale();
  const auto chunks = plan_chunks(L.numel, L.count, kChunkSize);
  std::vector<float> ratio(static_cast<size_t>(L.count), 1.0f);
  const KernelTable& k = kernels();
  auto apply = [&](const ChunkRef& ck) {
    k.lars_apply(L, h, lr, inv, h.weight_decay, ratio[static_cast<size_t>(ck.tensor)], ck);
  };
  if (!adapt) {
    for_each_chunk(chunks, [&](const ChunkRef& ck, int64_t) { apply(ck); });
    return;
  }
  two_pass(
      L, chunks, 0, [&](const ChunkRef& ck, char*) { return k.lars_norms(L, inv, ck); },
      [&](size_t t, const SquaresPartial& s) {
        ratio[t] = math::lars_trust_ratio(h, true, h.weight_decay, lr,
                                          static_cast<float>(std::sqrt(s.param)),
                                          static_cast<float>(std::sqrt(s.second)));
      },
      [&](const ChunkRef& ck, const char*) { apply(ck); });
}

void l2_norm(const void* const* ptrs, DType dtype, const int64_t* numel, int64_t count,
             const float* grad_scale, float* per_tensor, float* global) {
  const double inv = grad_scale ? 1.0 / double(*grad_scale) : 1.0;
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
