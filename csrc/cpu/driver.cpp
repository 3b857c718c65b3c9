// CPU backend driver: plans chunks, runs the selected SIMD level's kernels on the thread pool,
// and combines reduction partials in a fixed order.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "kernel_table.h"

namespace fusedopt {
namespace cpu {
namespace {

void serial_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n > 0) fn(0, n);
}

ParallelFor g_parallel_for = serial_for;

// Lowest to highest.
const KernelTable* const kLevels[] = {
    &kBaselineKernels,
#if defined(FUSEDOPT_CPU_X86_LEVELS)
    &kAvx2Kernels,
    &kAvx512Kernels,
#endif
};

// Index in kLevels of the highest level this CPU (and its OS: libgcc checks that XSAVE
// enables the AVX / AVX-512 registers) can run.
int best_level() {
#if defined(FUSEDOPT_CPU_X86_LEVELS)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c"))
    return 2;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c"))
    return 1;
#endif
  return 0;
}

// The level called `name` if this CPU can run it, else nullptr.
const KernelTable* find_level(const char* name) {
  const int best = best_level();
  for (int i = 0; i <= best; ++i)
    if (std::strcmp(kLevels[i]->name, name) == 0) return kLevels[i];
  return nullptr;
}

std::string level_list(int last) {
  std::string s;
  for (int i = 0; i <= last; ++i) s += (i ? ", " : "") + std::string(kLevels[i]->name);
  return s;
}

// The level FUSEDOPT_CPU_ISA asks for, or the best one; *problem says why the request was not
// honoured.
const KernelTable* level_from_env(std::string* problem) {
  const KernelTable* best = kLevels[best_level()];
  const char* forced = std::getenv("FUSEDOPT_CPU_ISA");
  if (forced == nullptr || *forced == '\0') return best;
  if (const KernelTable* k = find_level(forced)) return k;
  bool known = false;
  for (const KernelTable* t : kLevels) known = known || std::strcmp(t->name, forced) == 0;
  *problem = std::string("FUSEDOPT_CPU_ISA=") + forced +
             (known ? " is a SIMD level this CPU cannot run" : " is not a SIMD level") +
             "; this CPU can run: " + level_list(best_level()) + " (unset it to use " +
             best->name + "); using " + best->name;
  return best;
}

// Chosen on first use (not during static initialization: the tables live in other TUs).
std::atomic<const KernelTable*> g_kernels{nullptr};

const KernelTable& kernels() {
  const KernelTable* k = g_kernels.load(std::memory_order_acquire);
  if (k == nullptr) {
    std::string problem;
    k = level_from_env(&problem);
    // The Python package checks FUSEDOPT_CPU_ISA itself and raises; C++ users get a warning.
    if (!problem.empty()) std::fprintf(stderr, "fusedopt: %s\n", problem.c_str());
    g_kernels.store(k, std::memory_order_release);
  }
  return *k;
}

// ---- scheduling ------------------------------------------------------------------------------
// Work is cut into tasks that threads claim atomically: a core slowed down by another process
// simply runs fewer tasks (a static split would wait for its half). Each task writes only its
// own outputs (elements of its chunks, the partial slots of its chunks), so results do not
// depend on which thread runs which task, nor on the order tasks run in.
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

// Like run_tasks, but each thread of the pool first runs its home share of the tasks, in order.
// The pool splits [0, n) into the same contiguous shares in every call with the same n, so
//  - each core streams through its own contiguous region (with tasks handed out one by one the
//    cores interleaved chunks, and AdamW / SGD / Lion ran 6-14% behind torch's fused kernels in
//    this VM's fast-memory phases; with home shares they are level);
//  - a two-pass schedule finds pass-1 data in the caches of the core that read it (the two cores
//    of a VM may not share a last-level cache: with tasks handed out one by one, LARS's pass 2
//    ran no faster than a cold pass).
// A thread done with its share takes what is left of the others' from the end, so a core slowed
// by another process still delays nobody.
template <class Task>
void run_home_tasks(int64_t n, Task&& task) {
  if (n <= 0) return;
  std::unique_ptr<std::atomic<bool>[]> claimed(new std::atomic<bool>[static_cast<size_t>(n)]);
  for (int64_t i = 0; i < n; ++i) claimed[i].store(false, std::memory_order_relaxed);
  auto claim = [&](int64_t i) {
    return !claimed[i].load(std::memory_order_relaxed) &&
           !claimed[i].exchange(true, std::memory_order_relaxed);
  };
  g_parallel_for(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      if (claim(i)) task(i);
    for (int64_t i = n; i-- > 0;)
      if (claim(i)) task(i);
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
  run_home_tasks(static_cast<int64_t>(starts.size()) - 1, [&](int64_t t) {
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
// (trust ratio), pass 2 applies it. Pass 2 re-reads what pass 1 read, so the schedule is about
// finding that data still in cache:
//  - A tensor whose pass 1 reads at most solo_bytes (2 MB) is "solo": one thread runs its
//    pass 1, its sums and its pass 2 back to back, from its own L2, with no barrier. Tiny
//    tensors share a task (up to kTaskElems elements).
//  - A larger tensor is cooperative: all threads run its pass 1 chunks, then (one barrier) its
//    pass 2 chunks, before the next tensor starts, so only one tensor's working set is in
//    flight and up to L3 size of it is re-read from cache.
// Measured with a C model of both schedules on 2 EPYC cores (LARS-like norm pass + SGD-momentum
// update over 64M elements in equal tensors, time vs the update alone):
// solo 1.04x at 64K elements, 1.07x at 256K, 1.29x at 1M; cooperative 1.20x / 1.13x / 1.12x,
// 1.24x at 2M, 1.41x at 4M, 1.60x at 64M (there nothing is re-read from cache).
// Sums are taken over a tensor's chunk partials in chunk order either way: the result does not
// depend on the thread count or on which path a tensor took.
TwoPassLimits g_two_pass;  // defaults in cpu_backend.h; tests set extremes

// Per-element scratch of one tensor (scratch_bytes per element, in storage grown as needed), or
// none; at(chunk) is where the chunk's part starts.
class Scratch {
 public:
  Scratch(std::vector<char>& storage, int64_t numel, size_t elem_bytes) : bytes_(elem_bytes) {
    if (elem_bytes == 0) return;
    const size_t need = static_cast<size_t>(numel) * elem_bytes;
    if (storage.size() < need) storage.resize(need);
    base_ = storage.data();
  }
  char* at(const ChunkRef& ck) const {
    return base_ ? base_ + static_cast<size_t>(ck.begin) * bytes_ : nullptr;
  }

 private:
  char* base_ = nullptr;
  size_t bytes_;
};

// pass1_bytes: bytes pass 1 reads per element (the solo test). scratch_bytes: per element, a
// buffer handed to both passes (LAMB keeps its update direction there so that pass 2 neither
// re-reads m, v nor recomputes it); 0 for none. Solo tensors use their worker's buffer,
// cooperative ones one of the calling thread, up to scratch_elems (8M) elements (larger ones
// get none: pass 2 recomputes).
template <class Pass1, class Finish, class Pass2>
void two_pass(const ParamLists& L, const std::vector<ChunkRef>& chunks, int64_t pass1_bytes,
              size_t scratch_bytes, Pass1&& pass1, Finish&& finish, Pass2&& pass2) {
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
  const TwoPassLimits limits = g_two_pass;
  const int64_t solo_elems = limits.solo_bytes / pass1_bytes;
  struct SoloTask {
    size_t begin, end;  // tensors [begin, end)
  };
  std::vector<SoloTask> solo;
  std::vector<size_t> cooperative;
  for (size_t t = 0; t < count;) {
    if (L.numel[t] > solo_elems) {
      cooperative.push_back(t++);
      continue;
    }
    SoloTask k{t, t};
    int64_t elems = 0;  // group tiny tensors up to kTaskElems per task
    while (t < count && L.numel[t] <= solo_elems &&
           (k.end == k.begin || elems + L.numel[t] <= kTaskElems)) {
      elems += L.numel[t++];
      k.end = t;
    }
    solo.push_back(k);
  }
  // Largest first: a solo tensor runs on one core, and a large one taken last would leave the
  // other cores idle while it finishes.
  auto solo_elems_of = [&](const SoloTask& k) {
    int64_t e = 0;
    for (size_t t = k.begin; t < k.end; ++t) e += L.numel[t];
    return e;
  };
  std::stable_sort(solo.begin(), solo.end(), [&](const SoloTask& a, const SoloTask& b) {
    return solo_elems_of(a) > solo_elems_of(b);
  });

  run_tasks(static_cast<int64_t>(solo.size()), [&](int64_t k) {
    thread_local std::vector<char> scratch;
    const SoloTask& task = solo[static_cast<size_t>(k)];
    for (size_t t = task.begin; t < task.end; ++t) {
      const Scratch buf(scratch, L.numel[t], scratch_bytes);
      for (size_t i = first[t]; i < first[t + 1]; ++i)
        partials[i] = pass1(chunks[i], buf.at(chunks[i]));
      finish(t, sums_of(t));
      for (size_t i = first[t]; i < first[t + 1]; ++i) pass2(chunks[i], buf.at(chunks[i]));
    }
  });
  thread_local std::vector<char> shared_scratch;  // workers write disjoint chunk ranges
  for (size_t t : cooperative) {
    const bool stored = L.numel[t] <= limits.scratch_elems;
    const Scratch buf(shared_scratch, L.numel[t], stored ? scratch_bytes : 0);
    const size_t c0 = first[t];
    const auto n = static_cast<int64_t>(first[t + 1] - c0);
    run_home_tasks(n, [&](int64_t i) {
      const ChunkRef& ck = chunks[c0 + static_cast<size_t>(i)];
      partials[c0 + static_cast<size_t>(i)] = pass1(ck, buf.at(ck));
    });
    finish(t, sums_of(t));
    run_home_tasks(n, [&](int64_t i) {
      const ChunkRef& ck = chunks[c0 + static_cast<size_t>(i)];
      pass2(ck, buf.at(ck));
    });
  }
}

// Shared prologue of every optimizer step: honours found_inf (the whole call becomes a no-op,
// step counters included) and advances the per-tensor step counters.
bool begin_step(const ParamLists& L, const StepInputs& in) {
  if (in.skip()) return false;
  for (int64_t t = 0; t < L.count; ++t) advance_step(L.step[t]);
  return true;
}

}  // namespace

void set_parallel_for(ParallelFor fn) { g_parallel_for = fn ? fn : serial_for; }

TwoPassLimits two_pass_limits() { return g_two_pass; }
void set_two_pass_limits(const TwoPassLimits& limits) { g_two_pass = limits; }

const char* simd_level() { return kernels().name; }

std::string available_simd_levels() { return level_list(best_level()); }
std::string simd_level_env_problem() {
  std::string problem;
  level_from_env(&problem);
  return problem;
}


bool set_simd_level(const char* name) {
  const KernelTable* k = find_level(name);
  if (k != nullptr) g_kernels.store(k, std::memory_order_release);
  return k != nullptr;
}

namespace {
// An Elementwise op (fusedopt/optimizers.h): the level's chunk kernel over every chunk.
template <class Hyper, class Kernel>
void run_elementwise(const ParamLists& L, const Hyper& h, const StepInputs& in,
                     Kernel KernelTable::*kernel) {
  if (!begin_step(L, in)) return;
  const double lr = in.lr.get();
  const double inv = in.inv_grad_scale();
  const auto chunks = plan_chunks(L.numel, L.count, kChunkSize);
  const Kernel run = kernels().*kernel;
  for_each_chunk(chunks, [&](const ChunkRef& ck, int64_t) { run(L, h, lr, inv, ck); });
}
}  // namespace

// The entry points of the Elementwise ops (those of the Passes ops follow).
#define FUSEDOPT_ELEMENTWISE_EACH(entry, Hyper)                           \
  void entry(const ParamLists& L, const Hyper& h, const StepInputs& in) { \
    run_elementwise(L, h, in, &KernelTable::entry);                       \
  }
FUSEDOPT_FOR_EACH_ELEMENTWISE_OP
#undef FUSEDOPT_ELEMENTWISE_EACH

namespace {
// lr * the trust ratio of one tensor, from its sums of squares: the ratio is rounded to float
// first, as the CUDA kernels do.
float lamb_scaled_lr(const LambHyper& h, double lr, double param_sq, double update_sq) {
  const float ratio = math::lamb_trust_ratio(h, static_cast<float>(std::sqrt(param_sq)),
                                             static_cast<float>(std::sqrt(update_sq)));
  return lr * ratio;
}

float lars_ratio(const LarsHyper& h, double lr, double param_sq, double grad_sq) {
  return math::lars_trust_ratio(h, true, h.weight_decay, lr,
                                static_cast<float>(std::sqrt(param_sq)),
                                static_cast<float>(std::sqrt(grad_sq)));
}

// Per-tensor sums of a per-chunk pass, in chunk order (the order the fused ops use).
template <class Pass>
void per_tensor_sums(const ParamLists& L, const std::vector<ChunkRef>& chunks, Pass&& pass,
                     double* sums) {
  std::vector<SquaresPartial> partials(chunks.size());
  for_each_chunk(chunks, [&](const ChunkRef& ck, int64_t i) {
    partials[static_cast<size_t>(i)] = pass(ck);
  });
  std::fill(sums, sums + 2 * L.count, 0.0);
  for (size_t i = 0; i < chunks.size(); ++i) {
    sums[2 * chunks[i].tensor] += partials[i].param;
    sums[2 * chunks[i].tensor + 1] += partials[i].second;
  }
}
}  // namespace

void lamb(const ParamLists& L, const LambHyper& h, const StepInputs& in) {
  if (!begin_step(L, in)) return;
  const double lr = in.lr.get(), inv = in.inv_grad_scale();
  const float gnorm = in.global_grad_norm ? *in.global_grad_norm : 0.0f;
  const auto chunks = plan_chunks(L.numel, L.count, kChunkSize);
  std::vector<float> scaled_lr(static_cast<size_t>(L.count));
  const KernelTable& k = kernels();
  const int64_t elem = L.compute_in_double() ? 8 : 4;
  two_pass(
      L, chunks, 4 * elem, static_cast<size_t>(elem),
      [&](const ChunkRef& ck, char* u) { return k.lamb_moments(L, h, inv, gnorm, u, ck); },
      [&](size_t t, const SquaresPartial& s) {
        scaled_lr[t] = lamb_scaled_lr(h, lr, s.param, s.second);
      },
      [&](const ChunkRef& ck, const char* u) {
        const float lr_t = scaled_lr[static_cast<size_t>(ck.tensor)];
        if (u) k.lamb_apply_direction(L, lr_t, u, ck);
        else k.lamb_apply(L, h, inv, gnorm, lr_t, ck);
      });
}

void lamb_moments(const ParamLists& L, const LambHyper& h, const StepInputs& in) {
  double* const norm_sums = in.norm_sums_out;
  if (!begin_step(L, in)) {
    std::fill(norm_sums, norm_sums + 2 * L.count, 0.0);
    return;
  }
  const double inv = in.inv_grad_scale();
  const float gnorm = in.global_grad_norm ? *in.global_grad_norm : 0.0f;
  const KernelTable& k = kernels();
  per_tensor_sums(
      L, plan_chunks(L.numel, L.count, kChunkSize),
      [&](const ChunkRef& ck) { return k.lamb_moments(L, h, inv, gnorm, nullptr, ck); },
      norm_sums);
}

void lamb_apply(const ParamLists& L, const LambHyper& h, const StepInputs& in) {
  if (in.skip()) return;
  const double* const norm_sums = in.norm_sums;
  const double lr = in.lr.get(), inv = in.inv_grad_scale();
  const float gnorm = in.global_grad_norm ? *in.global_grad_norm : 0.0f;
  std::vector<float> scaled_lr(static_cast<size_t>(L.count));
  for (int64_t t = 0; t < L.count; ++t)
    scaled_lr[static_cast<size_t>(t)] = lamb_scaled_lr(h, lr, norm_sums[2 * t], norm_sums[2 * t + 1]);
  const KernelTable& k = kernels();
  for_each_chunk(plan_chunks(L.numel, L.count, kChunkSize), [&](const ChunkRef& ck, int64_t) {
    k.lamb_apply(L, h, inv, gnorm, scaled_lr[static_cast<size_t>(ck.tensor)], ck);
  });
}

void lars(const ParamLists& L, const LarsHyper& h, const StepInputs& in) {
  if (!begin_step(L, in)) return;
  const bool adapt = h.adapt;
  const double* const norm_sums = in.norm_sums;
  const double lr = in.lr.get(), inv = in.inv_grad_scale();
  const auto chunks = plan_chunks(L.numel, L.count, kChunkSize);
  std::vector<float> ratio(static_cast<size_t>(L.count), 1.0f);
  const KernelTable& k = kernels();
  auto apply = [&](const ChunkRef& ck) {
    k.lars_apply(L, h, lr, inv, h.weight_decay, ratio[static_cast<size_t>(ck.tensor)], ck);
  };
  if (!adapt || norm_sums != nullptr) {
    if (adapt)
      for (int64_t t = 0; t < L.count; ++t)
        ratio[static_cast<size_t>(t)] = lars_ratio(h, lr, norm_sums[2 * t], norm_sums[2 * t + 1]);
    for_each_chunk(chunks, [&](const ChunkRef& ck, int64_t) { apply(ck); });
    return;
  }
  two_pass(
      L, chunks, 2 * (L.compute_in_double() ? 8 : 4), 0,
      [&](const ChunkRef& ck, char*) { return k.lars_norms(L, inv, ck); },
      [&](size_t t, const SquaresPartial& s) { ratio[t] = lars_ratio(h, lr, s.param, s.second); },
      [&](const ChunkRef& ck, const char*) { apply(ck); });
}

void l2_norm(const void* const* ptrs, DType dtype, const int64_t* numel, int64_t count,
             const float* grad_scale, float* per_tensor, float* global, double* squares) {
  const double inv = grad_scale ? 1.0 / double(*grad_scale) : 1.0;
  const auto chunks = plan_chunks(numel, count, kChunkSize);
  std::vector<double> partials(chunks.size());
  // Chunk i is read together with chunk i + half (two streams per core, see sum_squares);
  // consecutive pairs of small chunks share a task.
  const size_t half = (chunks.size() + 1) / 2;
  std::vector<size_t> starts;  // task k covers pairs [starts[k], starts[k + 1])
  int64_t elems = kTaskElems;
  for (size_t i = 0; i < half; ++i) {
    if (elems >= kTaskElems) {
      starts.push_back(i);
      elems = 0;
    }
    elems += chunks[i].end - chunks[i].begin;
    if (i + half < chunks.size()) elems += chunks[i + half].end - chunks[i + half].begin;
  }
  starts.push_back(half);
  const KernelTable& k = kernels();
  run_home_tasks(static_cast<int64_t>(starts.size()) - 1, [&](int64_t t) {
    for (size_t i = starts[static_cast<size_t>(t)]; i < starts[static_cast<size_t>(t) + 1]; ++i) {
      SquaresRange ranges[2];
      int n = 0;
      for (size_t c : {i, i + half})
        if (c < chunks.size())
          ranges[n++] = {ptrs[chunks[c].tensor], chunks[c].begin, chunks[c].end};
      double out[2];
      k.sum_squares(ranges, n, dtype, inv, out);
      partials[i] = out[0];
      if (n == 2) partials[i + half] = out[1];
    }
  });
  std::vector<double> sums(static_cast<size_t>(count), 0.0);
  for (size_t i = 0; i < chunks.size(); ++i) sums[static_cast<size_t>(chunks[i].tensor)] += partials[i];
  double total = 0.0;
  for (int64_t t = 0; t < count; ++t) {
    if (per_tensor) per_tensor[t] = static_cast<float>(std::sqrt(sums[static_cast<size_t>(t)]));
    if (squares) squares[t] = sums[static_cast<size_t>(t)];
    total += sums[static_cast<size_t>(t)];
  }
  if (global) *global = static_cast<float>(std::sqrt(total));
}

}  // namespace cpu
}  // namespace fusedopt
