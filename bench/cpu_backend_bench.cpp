// Torch-free microbenchmark of the CPU backend's plain C++ API (csrc/cpu/cpu_backend.h) next to
// a streaming reference kernel with AdamW's memory traffic (reads 4 fp32 arrays, writes 3).
// Build and run: bench/cpu_backend_bench.sh [numel] [tensors] [reps]
// Threads: OpenMP (OMP_NUM_THREADS), the range split at::parallel_for uses.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "cpu_backend.h"

using namespace fusedopt;

namespace {

void omp_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  const int nt = std::min<int64_t>(omp_get_max_threads(), n);
#pragma omp parallel num_threads(nt)
  {
    const int64_t t = omp_get_thread_num(), per = (n + nt - 1) / nt;
    const int64_t b = t * per, e = std::min(n, b + per);
    if (b < e) fn(b, e);
  }
}

struct Arrays {
  std::vector<float*> p, g, s0, s1;
  std::vector<float> steps;
  std::vector<float*> step_ptr;
  std::vector<int64_t> numel;
  ParamLists lists;
  Arrays(int64_t total, int64_t tensors, const std::vector<int64_t>& sizes) {
    const int64_t per = total / tensors;
    for (int64_t t = 0; t < tensors; ++t) {
      numel.push_back(sizes.empty() ? per : sizes[t]);
      const int64_t per = numel.back();
      for (auto* v : {&p, &g, &s0, &s1}) {
        float* a = static_cast<float*>(std::aligned_alloc(64, ((per * 4 + 63) / 64) * 64));
#pragma omp parallel for
        for (int64_t i = 0; i < per; ++i) a[i] = v == &s1 ? 0.01f * float(i % 7) : 0.001f * float(i % 13) - 0.005f;
        v->push_back(a);
      }
    }
    steps.assign(tensors, 1.0f);
    for (auto& s : steps) step_ptr.push_back(&s);
    lists.count = tensors;
    lists.numel = numel.data();
    lists.param = reinterpret_cast<void* const*>(p.data());
    lists.grad = reinterpret_cast<const void* const*>(g.data());
    lists.state[0] = reinterpret_cast<void* const*>(s0.data());
    lists.state[1] = reinterpret_cast<void* const*>(s1.data());
    lists.step = step_ptr.data();
  }
};

struct Case {
  const char* name;
  double bytes_per_elem;
  std::function<void()> fn;
  std::vector<double> ms;
};

}  // namespace

int main(int argc, char** argv) {
  const int64_t total_arg = argc > 1 ? std::atoll(argv[1]) : (64LL << 20);
  const int64_t tensors_arg = argc > 2 ? std::atoll(argv[2]) : 1;
  const int reps = argc > 3 ? std::atoi(argv[3]) : 10;
  const std::string only = argc > 4 ? argv[4] : "";
  // argv[5]: optional file with one tensor size per line (overrides numel / tensors)
  std::vector<int64_t> sizes;
  if (argc > 5) {
    FILE* f = std::fopen(argv[5], "r");
    long long x;
    while (f && std::fscanf(f, "%lld", &x) == 1) sizes.push_back(x);
    if (f) std::fclose(f);
  }
  int64_t total = total_arg, tensors = tensors_arg;
  if (!sizes.empty()) {
    tensors = static_cast<int64_t>(sizes.size());
    total = 0;
    for (auto n : sizes) total += n;
  }
  cpu::set_parallel_for(omp_for);
  Arrays A(total, tensors, sizes);
  std::printf("simd %s, %d threads, %lld elements in %lld tensors\n", cpu::simd_level(),
              omp_get_max_threads(), (long long)total, (long long)tensors);
  std::vector<Case> cases;
  StepInputs in;
  in.lr = ScalarArg<float>::of(1e-3f);
  auto want = [&](const char* n) { return only.empty() || only.find(n) != std::string::npos; };
  ParamLists two = A.lists, one = A.lists, zero = A.lists;
  two.num_states = 2;
  one.num_states = 1;
  if (want("stream"))
    cases.push_back({"stream r4w3", 28, [&] {
      for (int64_t t = 0; t < tensors; ++t) {
        float *p = A.p[t], *g = A.g[t], *m = A.s0[t], *v = A.s1[t];
        const int64_t n = A.numel[t];
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; ++i) {
          const float gi = g[i];
          m[i] = m[i] * 0.9f + gi;
          v[i] = v[i] * 0.999f + gi;
          p[i] = p[i] * 0.99999f;
        }
      }
    }, {}});
  AdamHyper ah;
  ah.decoupled_weight_decay = true;
  ah.weight_decay = 0.01f;
  if (want("adamw")) cases.push_back({"adamw", 28, [&] { cpu::adam(two, ah, in); }, {}});
  SGDHyper sh;
  sh.momentum = 0.9f;
  if (want("sgd")) cases.push_back({"sgd momentum", 20, [&] { cpu::sgd(one, sh, in); }, {}});
  if (want("lion")) cases.push_back({"lion", 20, [&] { cpu::lion(one, LionHyper{}, in); }, {}});
  LarsHyper lh;
  if (want("lars")) cases.push_back({"lars", 28, [&] { cpu::lars(one, lh, in); }, {}});
  LambHyper bh;
  if (want("lamb")) cases.push_back({"lamb (norm + step)", 44, [&] {
    float gn;
    cpu::l2_norm(reinterpret_cast<const void* const*>(A.g.data()), DType::Float32, A.numel.data(),
                 tensors, nullptr, nullptr, &gn);
    StepInputs clipped = in;
    clipped.global_grad_norm = &gn;
    cpu::lamb(two, bh, clipped);
  }, {}});
  if (want("lamb")) cases.push_back({"lamb (no clip)", 40, [&] { cpu::lamb(two, bh, in); }, {}});
  if (want("norm")) cases.push_back({"global norm", 4, [&] {
    float gn;
    cpu::l2_norm(reinterpret_cast<const void* const*>(A.g.data()), DType::Float32, A.numel.data(),
                 tensors, nullptr, nullptr, &gn);
  }, {}});
  (void)zero;
  // Interleaved: every case once per round, so load from other processes hits all alike.
  for (auto& c : cases) c.fn();
  for (int r = 0; r < reps; ++r)
    for (auto& c : cases) {
      auto t0 = std::chrono::steady_clock::now();
      c.fn();
      c.ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
  for (auto& c : cases) {
    std::sort(c.ms.begin(), c.ms.end());
    std::printf("%-22s min %8.2f ms  med %8.2f ms  %6.1f GB/s (model %.0f B/elem)\n", c.name,
                c.ms[0], c.ms[c.ms.size() / 2], c.bytes_per_elem * total / c.ms[0] / 1e6,
                c.bytes_per_elem);
  }
  return 0;
}
