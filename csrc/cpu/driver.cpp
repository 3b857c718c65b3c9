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

// Runs body(chunk) for every chunk on the thread pool.
template <class Body>
void for_each_chunk(const std::vector<ChunkRef>& chunks, Body&& body) {
  g_parallel_for(static_cast<int64_t>(chunks.size()), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) body(chunks[static_cast<size_t>(i)], i);
  });
}

// Shared prologue of every optimizer step: honours found_inf (the whole call becomes a no-op,
// step counters included) and advances the per-tensor step counters.
bool begin_step(const ParamLists& L, const StepInputs& in) {
  if (in.skip()) return false;
  for (int64_t t = 0; t < L.count; ++t) *L.step[t] += 1.0f;
  return true;
}

// Sums per-chunk partials into per-tensor totals in chunk order (deterministic).
std::vector<SquaresPartial> per_tensor_sums(const ParamLists& L,
                                            const std::vector<ChunkRef>& chunks,
                                            const std::vector<SquaresPartial>& partials) {
  std::vector<SquaresPartial> sums(static_cast<size_t>(L.count));
  for (size_t i = 0; i < chunks.size(); ++i) {
    sums[static_cast<size_t>(chunks[i].tensor)].param += partials[i].param;
    sums[static_cast<size_t>(chunks[i].tensor)].second += partials[i].second;
  }
  return sums;
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
  const float lr = in.lr.get(), inv = in.inv_grad_scale();
  const auto chunks = plan_chunks(L.numel, L.count, kChunkSize);
  for_each_chunk(chunks, [&](const ChunkRef& ck, int64_t) { kernels().adam(L, h, lr, inv, ck); });
}

void sgd(const ParamLists& L, const SGDHyper& h, const StepInputs& in) {
  if (!begin_step(L, in)) return;
  const float lr = in.lr.get(), inv = in.inv_grad_scale();
  const auto chunks = plan_chunks(L.numel, L.count, kChunkSize);
  for_each_chunk(chunks, [&](const ChunkRef& ck, int64_t) { kernels().sgd(L, h, lr, inv, ck); });
}

void lion(const ParamLists& L, const LionHyper& h, const StepInputs& in) {
  if (!begin_step(L, in)) return;
  const float lr = in.lr.get(), inv = in.inv_grad_scale();
  const auto chunks = plan_chunks(L.numel, L.count, kChunkSize);
  for_each_chunk(chunks, [&](const ChunkRef& ck, int64_t) { kernels().lion(L, h, lr, inv, ck); });
}

void lamb(const ParamLists& L, const LambHyper& h, const StepInputs& in,
          const float* global_grad_norm) {
  if (!begin_step(L, in)) return;
  const float lr = in.lr.get(), inv = in.inv_grad_scale();
  const float gnorm = global_grad_norm ? *global_grad_norm : 0.0f;
  const auto chunks = plan_chunks(L.numel, L.count, kChunkSize);
  std::vector<SquaresPartial> partials(chunks.size());
  for_each_chunk(chunks, [&](const ChunkRef& ck, int64_t i) {
    partials[static_cast<size_t>(i)] = kernels().lamb_moments(L, h, inv, gnorm, ck);
  });
  const auto sums = per_tensor_sums(L, chunks, partials);
  std::vector<float> scaled_lr(static_cast<size_t>(L.count));
  for (int64_t t = 0; t < L.count; ++t) {
    const auto& s = sums[static_cast<size_t>(t)];
    const float ratio = math::lamb_trust_ratio(h, static_cast<float>(std::sqrt(s.param)),
                                               static_cast<float>(std::sqrt(s.second)));
    scaled_lr[static_cast<size_t>(t)] = lr * ratio;
  }
  for_each_chunk(chunks, [&](const ChunkRef& ck, int64_t) {
    kernels().lamb_apply(L, h, inv, gnorm, scaled_lr[static_cast<size_t>(ck.tensor)], ck);
  });
}

void lars(const ParamLists& L, const LarsHyper& h, const StepInputs& in, bool adapt) {
  if (!begin_step(L, in)) return;
  const float lr = in.lr.get(), inv = in.inv_grad_scale();
  const auto chunks = plan_chunks(L.numel, L.count, kChunkSize);
  std::vector<float> ratio(static_cast<size_t>(L.count), 1.0f);
  if (adapt) {
    std::vector<SquaresPartial> partials(chunks.size());
    for_each_chunk(chunks, [&](const ChunkRef& ck, int64_t i) {
      partials[static_cast<size_t>(i)] = kernels().lars_norms(L, inv, ck);
    });
    const auto sums = per_tensor_sums(L, chunks, partials);
    for (int64_t t = 0; t < L.count; ++t) {
      const auto& s = sums[static_cast<size_t>(t)];
      ratio[static_cast<size_t>(t)] =
          math::lars_trust_ratio(h, true, h.weight_decay, lr, static_cast<float>(std::sqrt(s.param)),
                                 static_cast<float>(std::sqrt(s.second)));
    }
  }
  for_each_chunk(chunks, [&](const ChunkRef& ck, int64_t) {
    kernels().lars_apply(L, h, lr, inv, h.weight_decay, ratio[static_cast<size_t>(ck.tensor)], ck);
  });
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
