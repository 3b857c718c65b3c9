// The CPU backend through its plain C++ API (no torch): results are bitwise identical across
// SIMD levels and thread counts; found_inf is a bitwise no-op; bf16 rounding is round-to-even.
#include <cstring>
#include <functional>
#include <random>
#include <thread>
#include <vector>

#include "check.h"
#include "cpu_backend.h"

using namespace fusedopt;

namespace {

// Tensors of one optimizer call: owning storage plus the pointer arrays ParamLists needs.
struct Problem {
  std::vector<std::vector<float>> params, grads, states[3];
  std::vector<float> steps;
  std::vector<int64_t> numel;
  std::vector<void*> p_ptr, s_ptr[3];
  std::vector<const void*> g_ptr;
  std::vector<float*> step_ptr;
  ParamLists lists;

  Problem(const std::vector<int64_t>& sizes, int num_states, unsigned seed) : numel(sizes) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    for (int64_t n : sizes) {
      auto rnd = [&] {
        std::vector<float> v(static_cast<size_t>(n));
        for (auto& x : v) x = dist(rng);
        return v;
      };
      params.push_back(rnd());
      grads.push_back(rnd());
      for (int k = 0; k < num_states; ++k) {
        auto v = rnd();
        if (k == 1)
          for (auto& x : v) x = x * x;  // second moments are non-negative
        states[k].push_back(v);
      }
    }
    steps.assign(sizes.size(), 3.0f);
    for (size_t t = 0; t < sizes.size(); ++t) {
      p_ptr.push_back(params[t].data());
      g_ptr.push_back(grads[t].data());
      for (int k = 0; k < num_states; ++k) s_ptr[k].push_back(states[k][t].data());
      step_ptr.push_back(&steps[t]);
    }
    lists.count = static_cast<int64_t>(sizes.size());
    lists.numel = numel.data();
    lists.param = p_ptr.data();
    lists.grad = g_ptr.data();
    lists.num_states = num_states;
    for (int k = 0; k < num_states; ++k) lists.state[k] = s_ptr[k].data();
    lists.step = step_ptr.data();
  }

  bool bitwise_equal(const Problem& o) const {
    auto eq = [](const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
      for (size_t t = 0; t < a.size(); ++t)
        if (std::memcmp(a[t].data(), b[t].data(), a[t].size() * sizeof(float)) != 0) return false;
      return true;
    };
    return eq(params, o.params) && eq(states[0], o.states[0]) && eq(states[1], o.states[1]) &&
           steps == o.steps;
  }
};

const std::vector<int64_t> kSizes = {1, 15, 16, 17, 1000, 32767, 32769, 70001, 0, 5};

void three_threads(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  std::vector<std::thread> pool;
  const int64_t per = (n + 2) / 3;
  for (int64_t b = 0; b < n; b += per) pool.emplace_back(fn, b, b + per < n ? b + per : n);
  for (auto& t : pool) t.join();
}

void run_all(Problem& pr) {
  StepInputs in;
  in.lr = ScalarArg<float>::of(1e-2f);
  AdamHyper adam;
  adam.weight_decay = 0.1f;
  adam.decoupled_weight_decay = true;
  cpu::adam(pr.lists, adam, in);
  LambHyper lamb;
  lamb.max_grad_norm = 1.0f;
  float gnorm = 0.0f;
  cpu::l2_norm(reinterpret_cast<const void* const*>(pr.g_ptr.data()), DType::Float32,
               pr.numel.data(), pr.lists.count, nullptr, nullptr, &gnorm);
  StepInputs clipped = in;
  clipped.global_grad_norm = &gnorm;
  cpu::lamb(pr.lists, lamb, clipped);
  LarsHyper lars;
  lars.weight_decay = 1e-4f;
  ParamLists one_state = pr.lists;
  one_state.num_states = 1;
  cpu::lars(one_state, lars, in);
}

// Runs every optimizer on a fresh problem with one thread and with three; both must give the
// bits of `expected`.
void check_serial_and_threaded(const std::vector<int64_t>& sizes, unsigned seed,
                               const Problem& expected) {
  for (bool threaded : {false, true}) {
    cpu::set_parallel_for(threaded ? three_threads : nullptr);
    Problem pr(sizes, 2, seed);
    run_all(pr);
    CHECK(pr.bitwise_equal(expected));
  }
  cpu::set_parallel_for(nullptr);
}

}  // namespace

int main() {
  // Every SIMD level gives the same bits, with one thread and with three.
  Problem reference(kSizes, 2, 7);
  cpu::set_simd_level("baseline");
  run_all(reference);
  for (const char* level : {"baseline", "avx2", "avx512"}) {
    if (!cpu::set_simd_level(level)) {
      std::printf("SIMD level %s not supported on this CPU: not compared\n", level);
      continue;
    }
    check_serial_and_threaded(kSizes, 7, reference);
  }

  // LAMB / LARS: the two-pass schedule (solo or cooperative; LAMB's pass 2 from the stored
  // direction or recomputed) changes no bit, with one thread or three. Sizes straddle the default
  // solo limits (128K elements for LAMB, 256K for LARS) and the chunk size.
  {
    const std::vector<int64_t> sizes = {1, 17, 1000, 32769, 70001, 140000, 300001, 0};
    const cpu::TwoPassLimits defaults = cpu::two_pass_limits();
    Problem expected(sizes, 2, 9);
    run_all(expected);
    const cpu::TwoPassLimits schedules[] = {
        {int64_t(1) << 40, defaults.scratch_elems},  // every tensor solo
        {0, int64_t(1) << 40},                       // every tensor cooperative, stored direction
        {0, 0},                                      // every tensor cooperative, recomputed
    };
    for (const cpu::TwoPassLimits& limits : schedules) {
      cpu::set_two_pass_limits(limits);
      check_serial_and_threaded(sizes, 9, expected);
    }
    cpu::set_two_pass_limits(defaults);
  }

  // found_inf: nothing changes, steps included.
  {
    Problem pr(kSizes, 2, 11), untouched(kSizes, 2, 11);
    float found = 1.0f;
    StepInputs in;
    in.lr = ScalarArg<float>::of(0.1f);
    in.found_inf = &found;
    cpu::adam(pr.lists, AdamHyper{}, in);
    cpu::lamb(pr.lists, LambHyper{}, in);
    CHECK(pr.bitwise_equal(untouched));
    found = 0.0f;
    cpu::adam(pr.lists, AdamHyper{}, in);
    CHECK(!pr.bitwise_equal(untouched));
    CHECK(pr.steps[0] == 4.0f);
  }

  // bf16 params with fp32 masters: param = master rounded to nearest even.
  {
    const float one = 1.0f;
    float masters[4] = {one + 0x1p-8f, one + 3 * 0x1p-8f, -(one + 0x1p-8f) - 0x1p-20f, 3.0f};
    const uint16_t expected[4] = {0x3f80, 0x3f82, 0xbf81, 0x4040};
    uint16_t param[4] = {0, 0, 0, 0}, grad[4] = {0, 0, 0, 0};
    int64_t n = 4;
    float step = 0.0f;
    void* p_ptr = param;
    const void* g_ptr = grad;
    float* m_ptr = masters;
    float* step_ptr = &step;
    ParamLists L;
    L.count = 1;
    L.numel = &n;
    L.param = &p_ptr;
    L.param_dtype = DType::BFloat16;
    L.grad = &g_ptr;
    L.master = &m_ptr;
    L.step = &step_ptr;
    StepInputs in;
    in.lr = ScalarArg<float>::of(0.0f);
    cpu::sgd(L, SGDHyper{}, in);
    for (int i = 0; i < 4; ++i) CHECK(param[i] == expected[i]);
    CHECK(step == 1.0f);
  }
  return TEST_MAIN_RESULT();
}
