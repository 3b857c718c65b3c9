// Support for the CUDA-kernel tests: tensor lists in host memory that both the CPU backend
// (fusedopt::cpu) and the emulated CUDA kernels (fusedopt::cuda_emulated) can run on.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu_backend.h"
#include "fusedopt_simt_api.h"
#ifndef FUSEDOPT_SIMT
#define FUSEDOPT_SIMT 1  // names namespace fusedopt::cuda_emulated in cuda_backend.h
#endif
#include "cuda_backend.h"

namespace cuda_test {

using namespace fusedopt;
namespace emu = fusedopt::cuda_emulated;

// ---- tiny harness ---------------------------------------------------------------------------
struct Case {
  const char* name;
  void (*fn)();
};
inline std::vector<Case>& registry() {
  static std::vector<Case> r;
  return r;
}
struct Registrar {
  Registrar(const char* n, void (*f)()) { registry().push_back({n, f}); }
};
struct Failure {
  std::string msg;
};
[[noreturn]] inline void fail(const char* file, int line, const std::string& what) {
  throw Failure{std::string(file) + ":" + std::to_string(line) + ": " + what};
}
#define TEST_CASE(name)                                           \
  static void name();                                             \
  static ::cuda_test::Registrar name##_registrar(#name, &name);   \
  static void name()
#define CHECK(cond)                                                               \
  do {                                                                            \
    if (!(cond)) ::cuda_test::fail(__FILE__, __LINE__, "CHECK failed: " #cond);   \
  } while (0)
#define CHECK_MSG(cond, msg)                                                                \
  do {                                                                                      \
    if (!(cond)) ::cuda_test::fail(__FILE__, __LINE__, std::string("CHECK failed: " #cond ": ") + (msg)); \
  } while (0)

inline int run_all(int argc, char** argv) {
  int failed = 0, ran = 0;
  for (const Case& c : registry()) {
    if (argc > 1) {
      bool wanted = false;
      for (int i = 1; i < argc; ++i) wanted |= std::strstr(c.name, argv[i]) != nullptr;
      if (!wanted) continue;
    }
    ++ran;
    try {
      c.fn();
      std::printf("[ OK ] %s\n", c.name);
    } catch (const Failure& f) {
      ++failed;
      std::printf("[FAIL] %s\n       %s\n", c.name, f.msg.c_str());
    } catch (const std::exception& e) {
      ++failed;
      std::printf("[FAIL] %s\n       exception: %s\n", c.name, e.what());
    }
    std::fflush(stdout);
  }
  std::printf("%d/%d passed\n", ran - failed, ran);
  return failed == 0 && ran > 0 ? 0 : 1;
}

// ---- storage helpers ------------------------------------------------------------------------
inline uint16_t float_to_bf16_bits(float f) {  // round to nearest even
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline float bf16_bits_to_float(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline void store_value(void* base, DType d, int64_t i, double v) {
  switch (d) {
    case DType::Float32: static_cast<float*>(base)[i] = static_cast<float>(v); break;
    case DType::Float64: static_cast<double*>(base)[i] = v; break;
    case DType::Float16: static_cast<_Float16*>(base)[i] = static_cast<_Float16>(static_cast<float>(v)); break;
    case DType::BFloat16: static_cast<uint16_t*>(base)[i] = float_to_bf16_bits(static_cast<float>(v)); break;
  }
}
inline double load_value(const void* base, DType d, int64_t i) {
  switch (d) {
    case DType::Float32: return static_cast<const float*>(base)[i];
    case DType::Float64: return static_cast<const double*>(base)[i];
    case DType::Float16: return static_cast<float>(static_cast<const _Float16*>(base)[i]);
    case DType::BFloat16: return bf16_bits_to_float(static_cast<const uint16_t*>(base)[i]);
  }
  return 0.0;
}

struct AlignedBuf {
  std::shared_ptr<uint8_t> mem;
  size_t bytes = 0;
  static AlignedBuf make(size_t bytes) {
    AlignedBuf b;
    b.bytes = bytes;
    const size_t rounded = (bytes + 64) / 64 * 64;
    b.mem.reset(static_cast<uint8_t*>(std::aligned_alloc(64, rounded)), [](uint8_t* p) { std::free(p); });
    std::memset(b.mem.get(), 0, rounded);
    return b;
  }
  AlignedBuf clone() const {
    AlignedBuf b = make(bytes);
    std::memcpy(b.mem.get(), mem.get(), bytes);
    return b;
  }
};

// One tensor list: params (optionally misaligned by `offset` elements), grads, fp32 masters,
// states and step counters, owned. clone() deep-copies.
struct TensorSet {
  DType dtype = DType::Float32;
  bool master = false;
  int num_states = 0;
  std::vector<int64_t> numel;
  std::vector<int> offset;  // elements by which every pointer of tensor t is shifted
  std::vector<AlignedBuf> param, grad, mast, state[kMaxStates];
  std::vector<float> steps;

  // Pointer views (rebuilt by view()).
  std::vector<void*> pp;
  std::vector<const void*> gp;
  std::vector<float*> mp;
  std::vector<void*> sp[kMaxStates];
  std::vector<float*> stp;

  DType state_dtype() const { return dtype == DType::Float64 ? DType::Float64 : DType::Float32; }

  static TensorSet make(DType dtype, bool master, int num_states, const std::vector<int64_t>& numel,
                        const std::vector<int>& offset, uint32_t seed) {
    TensorSet s;
    s.dtype = dtype;
    s.master = master;
    s.num_states = num_states;
    s.numel = numel;
    s.offset = offset;
    std::mt19937 rng(seed);
    std::normal_distribution<double> nd(0.0, 1.0);
    std::uniform_real_distribution<double> ud(0.0, 1.0);
    const int es = dtype_size(dtype), ss = dtype_size(s.state_dtype());
    for (size_t t = 0; t < numel.size(); ++t) {
      const int64_t n = numel[t], o = offset[t];
      s.param.push_back(AlignedBuf::make((n + o) * es));
      s.grad.push_back(AlignedBuf::make((n + o) * es));
      s.mast.push_back(AlignedBuf::make(master ? (n + o) * 4 : 0));
      for (int k = 0; k < kMaxStates; ++k)
        s.state[k].push_back(AlignedBuf::make(k < num_states ? (n + o) * ss : 0));
      for (int64_t i = 0; i < n; ++i) {
        const double v = nd(rng);
        store_value(s.param[t].mem.get() + o * es, dtype, i, v);
        if (master) static_cast<float*>(static_cast<void*>(s.mast[t].mem.get()))[o + i] =
            static_cast<float>(load_value(s.param[t].mem.get() + o * es, dtype, i));
        for (int k = 0; k < num_states; ++k)  // non-negative so exp_avg_sq stays valid
          store_value(s.state[k][t].mem.get() + o * ss, s.state_dtype(), i, k == 0 ? 0.1 * nd(rng) : 0.01 * ud(rng));
      }
    }
    s.steps.assign(numel.size(), 0.0f);
    return s;
  }

  void set_grads(uint32_t seed, double scale = 1.0) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> nd(0.0, 1.0);
    const int es = dtype_size(dtype);
    for (size_t t = 0; t < numel.size(); ++t)
      for (int64_t i = 0; i < numel[t]; ++i)
        store_value(grad[t].mem.get() + offset[t] * es, dtype, i, scale * nd(rng));
  }

  TensorSet clone() const {
    TensorSet s = *this;
    for (auto& b : s.param) b = b.clone();
    for (auto& b : s.grad) b = b.clone();
    for (auto& b : s.mast) b = b.clone();
    for (int k = 0; k < kMaxStates; ++k)
      for (auto& b : s.state[k]) b = b.clone();
    return s;
  }

  ParamLists view() {
    const int es = dtype_size(dtype), ss = dtype_size(state_dtype());
    const size_t n = numel.size();
    pp.assign(n, nullptr);
    gp.assign(n, nullptr);
    mp.assign(n, nullptr);
    stp.assign(n, nullptr);
    for (int k = 0; k < kMaxStates; ++k) sp[k].assign(n, nullptr);
    for (size_t t = 0; t < n; ++t) {
      pp[t] = param[t].mem.get() + offset[t] * es;
      gp[t] = grad[t].mem.get() + offset[t] * es;
      mp[t] = master ? reinterpret_cast<float*>(mast[t].mem.get()) + offset[t] : nullptr;
      for (int k = 0; k < num_states; ++k) sp[k][t] = state[k][t].mem.get() + offset[t] * ss;
      stp[t] = &steps[t];
    }
    ParamLists L;
    L.count = static_cast<int64_t>(n);
    L.numel = numel.data();
    L.param = pp.data();
    L.param_dtype = dtype;
    L.grad = gp.data();
    L.master = master ? mp.data() : nullptr;
    for (int k = 0; k < num_states; ++k) L.state[k] = sp[k].data();
    L.num_states = num_states;
    L.step = stp.data();
    return L;
  }

  int64_t total() const {
    int64_t s = 0;
    for (int64_t n : numel) s += n;
    return s;
  }
};

// Compares two sets: returns the largest difference in units of the storage's ulp-ish relative
// error (0 = bitwise identical everywhere). `what` receives the first differing location.
struct Diff {
  bool identical = true;
  double max_rel = 0.0;
  std::string first;
};

inline void diff_buffer(const char* name, size_t t, const void* a, const void* b, DType d,
                        int64_t n, Diff& out) {
  const int es = dtype_size(d);
  if (std::memcmp(a, b, n * es) == 0) return;
  for (int64_t i = 0; i < n; ++i) {
    if (std::memcmp(static_cast<const uint8_t*>(a) + i * es, static_cast<const uint8_t*>(b) + i * es, es) == 0)
      continue;
    const double x = load_value(a, d, i), y = load_value(b, d, i);
    const double rel = std::fabs(x - y) / std::max(std::fabs(x), 1e-30);
    if (out.identical) {
      char buf[256];
      std::snprintf(buf, sizeof buf, "%s[%zu][%lld]: %.9g vs %.9g", name, t, (long long)i, x, y);
      out.first = buf;
    }
    out.identical = false;
    if (!(rel <= out.max_rel)) out.max_rel = std::isnan(rel) ? INFINITY : rel;
  }
}

inline Diff diff_sets(const TensorSet& a, const TensorSet& b) {
  Diff d;
  const int es = dtype_size(a.dtype), ss = dtype_size(a.state_dtype());
  for (size_t t = 0; t < a.numel.size(); ++t) {
    const int64_t n = a.numel[t], o = a.offset[t];
    diff_buffer("param", t, a.param[t].mem.get() + o * es, b.param[t].mem.get() + o * es, a.dtype, n, d);
    if (a.master)
      diff_buffer("master", t, a.mast[t].mem.get() + o * 4, b.mast[t].mem.get() + o * 4, DType::Float32, n, d);
    for (int k = 0; k < a.num_states; ++k)
      diff_buffer("state", t, a.state[k][t].mem.get() + o * ss, b.state[k][t].mem.get() + o * ss,
                  a.state_dtype(), n, d);
  }
  if (std::memcmp(a.steps.data(), b.steps.data(), a.steps.size() * sizeof(float)) != 0) {
    if (d.identical) d.first = "step counters differ";
    d.identical = false;
    d.max_rel = INFINITY;
  }
  return d;
}

}  // namespace cuda_test
