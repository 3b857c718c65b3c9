// Known-answer tests: every kernel is compared with a plain C++ computation
// under every schedule order. Linked against the plain kernel library and
// (as test_simt_racecheck_known_answers) against the race-checked one, where
// it also proves the race checker reports nothing for correct kernels.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/simt_test_kernels.h"
#include "simt_test.h"

using namespace simt_tests;

namespace {

uint32_t fbits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
float from_bits(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

// Reference float -> IEEE half, round to nearest even (NaN checked separately).
uint16_t ref_float_to_half(float f) {
  uint16_t sign = (fbits(f) >> 16) & 0x8000;
  double v = std::fabs((double)f);
  if (v >= 65520.0) return sign | 0x7c00;  // rounds to infinity
  double q = v < std::ldexp(1.0, -14) ? std::ldexp(1.0, -24) : std::ldexp(1.0, std::ilogb(v) - 10);
  double r = std::nearbyint(v / q) * q;  // RNE; exact in double
  if (r == 0.0) return sign;
  if (r < std::ldexp(1.0, -14)) return sign | (uint16_t)(r / std::ldexp(1.0, -24));
  int e = std::ilogb(r);
  uint16_t mant = (uint16_t)((r / std::ldexp(1.0, e) - 1.0) * 1024.0);
  return sign | (uint16_t)((e + 15) << 10) | mant;
}
float ref_half_to_float(uint16_t h) {
  int e = (h >> 10) & 31, m = h & 1023;
  double v = e == 0 ? m * std::ldexp(1.0, -24) : e == 31 ? (m ? NAN : INFINITY) : (1024 + m) * std::ldexp(1.0, e - 25);
  return (float)((h & 0x8000) ? -v : v);
}
uint16_t ref_float_to_bf16(float f) {
  uint32_t u = fbits(f);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

std::vector<float> ints_as_floats(int n, int mod, int off) {
  std::vector<float> v(n);
  for (int i = 0; i < n; ++i) v[i] = (float)((i * 7919) % mod - off);
  return v;
}

}  // namespace

SIMT_TEST(grid_stride_axpy) {
  const int n = 100003;
  std::vector<float> x(n), y0(n);
  for (int i = 0; i < n; ++i) { x[i] = 0.001f * (float)i - 3.7f; y0[i] = std::sin((float)i); }
  simt_test::for_each_schedule([&](const std::string& s) {
    std::vector<float> y = y0;
    axpy_grid_stride(37, 128, 1.75f, x.data(), y.data(), n);
    for (int i = 0; i < n; ++i) {
      float ref = 1.75f * x[i] + y0[i];  // same operations, no contraction: bit exact
      SIMT_CHECK_MSG(fbits(y[i]) == fbits(ref), s + " at " + std::to_string(i));
    }
  });
}

SIMT_TEST(block_reduction_shuffles_and_shared) {
  const int n = 70001, blocks = 23;
  std::vector<float> x = ints_as_floats(n, 11, 5);
  simt_test::for_each_schedule([&](const std::string& s) {
    std::vector<float> partials(blocks, -1.f);
    block_sums(blocks, x.data(), partials.data(), n);
    for (int b = 0; b < blocks; ++b) {
      double ref = 0;
      for (int i = b * 256; i < n; i += 256 * blocks)
        for (int t = 0; t < 256 && i + t < n; ++t) ref += x[i + t];
      SIMT_CHECK_MSG(partials[b] == (float)ref, s + " block " + std::to_string(b));
    }
  });
}

SIMT_TEST(two_kernel_reduction) {
  const int n = 123457, blocks = 300;
  std::vector<float> x = ints_as_floats(n, 9, 4);
  double ref = 0;
  for (float v : x) ref += v;
  simt_test::for_each_schedule([&](const std::string& s) {
    std::vector<float> partials(blocks);
    float out = -1.f;
    two_pass_sum(blocks, x.data(), partials.data(), &out, n);
    SIMT_CHECK_MSG(out == (float)ref, s);
  });
}

SIMT_TEST(dynamic_shared_memory_tree_reduction) {
  const int n = 10000, threads = 256, blocks = (n + threads - 1) / threads;
  std::vector<float> x = ints_as_floats(n, 13, 6);
  simt_test::for_each_schedule([&](const std::string& s) {
    std::vector<float> p1(blocks), p2(blocks);
    tree_sum_dynamic(blocks, threads, x.data(), p1.data(), n);
    tree_sum_raw_extern(blocks, threads, x.data(), p2.data(), n);
    for (int b = 0; b < blocks; ++b) {
      double ref = 0;
      for (int i = b * threads; i < std::min(n, (b + 1) * threads); ++i) ref += x[i];
      SIMT_CHECK_MSG(p1[b] == (float)ref, s + " FUSEDOPT_DYNAMIC_SHARED block " + std::to_string(b));
      SIMT_CHECK_MSG(p2[b] == (float)ref, s + " extern __shared__ block " + std::to_string(b));
    }
  });
}

SIMT_TEST(float4_loads_with_scalar_tail) {
  for (int n : {1027, 1024, 3, 1}) {
    std::vector<float> x(n), y(n, 0.f);
    for (int i = 0; i < n; ++i) x[i] = (float)i * 0.5f - 7.f;
    simt_test::for_each_schedule([&](const std::string& s) {
      std::fill(y.begin(), y.end(), -123.f);
      scale_vec4(5, 64, 3.0f, x.data(), y.data(), n);
      for (int i = 0; i < n; ++i) SIMT_CHECK_MSG(y[i] == 3.0f * x[i], s + " n=" + std::to_string(n));
    });
  }
}

SIMT_TEST(half_and_bf16_conversions_round_like_the_gpu) {
  std::vector<float> x = {0.f, -0.f, 1.f, -1.f, 65504.f, 65519.f, 65520.f, 1e6f, -1e6f, INFINITY, -INFINITY,
                          5.9604645e-8f /*min half subnormal*/, 2.9802322e-8f /*tie to 0*/, 2.98023259e-8f,
                          6.1035156e-5f, 6.0975552e-5f, 1.0009765625f, 1.00048828125f /*tie*/, 1.00146484375f,
                          3.14159265f, 1e-10f, -2.5e-5f, 0.1f, 1.00390625f /*bf16 tie*/, 1.01171875f,
                          3.3895314e38f, 1e-40f /*float subnormal*/};
  uint32_t seed = 12345;
  for (int i = 0; i < 20000; ++i) {  // random bit patterns over the finite range
    seed = seed * 1664525u + 1013904223u;
    uint32_t b = seed;
    if (((b >> 23) & 0xff) == 0xff) continue;
    x.push_back(from_bits(b));
  }
  const int n = (int)x.size();
  simt_test::for_each_schedule([&](const std::string& s) {
    std::vector<uint16_t> h(n), b(n);
    std::vector<float> back_h(n), back_b(n);
    to_half(7, 96, x.data(), h.data(), n);
    from_half(7, 96, h.data(), back_h.data(), n);
    to_bf16(7, 96, x.data(), b.data(), n);
    from_bf16(7, 96, b.data(), back_b.data(), n);
    for (int i = 0; i < n; ++i) {
      uint16_t rh = ref_float_to_half(x[i]), rb = ref_float_to_bf16(x[i]);
      SIMT_CHECK_MSG(h[i] == rh, s + " half of " + std::to_string(x[i]));
      SIMT_CHECK_MSG(b[i] == rb, s + " bf16 of " + std::to_string(x[i]));
      SIMT_CHECK(fbits(back_h[i]) == fbits(ref_half_to_float(rh)));
      SIMT_CHECK(fbits(back_b[i]) == ((uint32_t)rb << 16));
    }
  });
  // NaN stays NaN.
  float nan = NAN;
  uint16_t hn = 0, bn = 0;
  float fh = 0, fb = 0;
  to_half(1, 1, &nan, &hn, 1);
  to_bf16(1, 1, &nan, &bn, 1);
  from_half(1, 1, &hn, &fh, 1);
  from_bf16(1, 1, &bn, &fb, 1);
  SIMT_CHECK(std::isnan(fh) && std::isnan(fb));
}

SIMT_TEST(half_arithmetic) {
  const int n = 513;
  std::vector<float> xf(n), yf(n);
  for (int i = 0; i < n; ++i) { xf[i] = (float)i / 7.f - 30.f; yf[i] = (float)(i % 17) * 0.3f; }
  std::vector<uint16_t> x(n), y0(n);
  to_half(3, 64, xf.data(), x.data(), n);
  to_half(3, 64, yf.data(), y0.data(), n);
  simt_test::for_each_schedule([&](const std::string& s) {
    std::vector<uint16_t> y = y0;
    half_axpy(4, 32, x.data(), y.data(), n);
    for (int i = 0; i < n; ++i) {
      // x*2 is exact in half, so the fused result is one rounding of x*2+y.
      float exact = ref_half_to_float(x[i]) * 2.f + ref_half_to_float(y0[i]);
      SIMT_CHECK_MSG(y[i] == ref_float_to_half(exact), s + " i=" + std::to_string(i));
    }
  });
}

SIMT_TEST(atomics_known_answers) {
  const int n = 5000;
  std::vector<int> keys(n);
  for (int i = 0; i < n; ++i) keys[i] = (i * 37) % 101;
  AtomicOut ref{};
  ref.imax = -1000; ref.imin = 1000; ref.fmax_cas = -1.f;
  for (int k : keys) {
    ref.counts[k & 15]++;
    ref.fsum += (float)k;
    ref.dsum += k * 0.5;
    ref.isum += k - 50;
    ref.usum += (unsigned long long)k << 33;
    ref.imax = std::max(ref.imax, k - 50);
    ref.umax = std::max(ref.umax, (unsigned)k * 3u);
    ref.imin = std::min(ref.imin, k - 50);
    ref.fmax_cas = std::max(ref.fmax_cas, k * 0.25f);
    ref.cas_tickets++;
  }
  simt_test::for_each_schedule([&](const std::string& s) {
    AtomicOut out{};
    out.imax = -1000; out.imin = 1000; out.fmax_cas = -1.f;
    atomics(9, 128, keys.data(), n, &out);
    for (int k = 0; k < 16; ++k) SIMT_CHECK_MSG(out.counts[k] == ref.counts[k], s);
    SIMT_CHECK_MSG(out.fsum == ref.fsum, s);
    SIMT_CHECK_MSG(out.dsum == ref.dsum, s);
    SIMT_CHECK_MSG(out.isum == ref.isum, s);
    SIMT_CHECK_MSG(out.usum == ref.usum, s);
    SIMT_CHECK_MSG(out.imax == ref.imax && out.umax == ref.umax && out.imin == ref.imin, s);
    SIMT_CHECK_MSG(out.fmax_cas == ref.fmax_cas, s);
    SIMT_CHECK_MSG(out.cas_tickets == ref.cas_tickets, s);
  });
}

SIMT_TEST(warp_intrinsics) {
  const int n = 1000, blocks = (n + 127) / 128;
  std::vector<int> x(n);
  for (int i = 0; i < n; ++i) x[i] = (i * 13) % 10;
  simt_test::for_each_schedule([&](const std::string& s) {
    std::vector<int> scan(n, -1), misc(8, -1);
    std::vector<unsigned> ballots(blocks * 4, 7);
    warp_ops(blocks, x.data(), scan.data(), ballots.data(), misc.data(), n);
    for (int w = 0; w < blocks * 4; ++w) {
      int acc = 0;
      unsigned ballot = 0;
      for (int l = 0; l < 32; ++l) {
        int i = w * 32 + l;
        int v = i < n ? x[i] : 0;
        acc += v;
        if (v & 1) ballot |= 1u << l;
        if (i < n) SIMT_CHECK_MSG(scan[i] == acc, s + " scan " + std::to_string(i));
      }
      SIMT_CHECK_MSG(ballots[w] == ballot, s + " ballot " + std::to_string(w));
    }
    int cnt = 0, any_neg = 0, all_pos = 1, or7 = 0;
    unsigned match = 0, radd = 0;
    for (int t = 0; t < 128; ++t) { cnt += x[t] & 1; or7 |= x[t] == 7; }
    for (int l = 0; l < 32; ++l) {
      any_neg |= x[l] < 0;
      all_pos &= x[l] >= 0;
      if (x[l] % 4 == x[0] % 4) match |= 1u << l;
      radd += (unsigned)x[l];
    }
    SIMT_CHECK_MSG(misc[0] == cnt, s);
    SIMT_CHECK_MSG(misc[1] == any_neg && misc[2] == all_pos, s);
    SIMT_CHECK_MSG((unsigned)misc[3] == match, s);
    SIMT_CHECK_MSG((unsigned)misc[4] == radd, s);
    SIMT_CHECK_MSG(misc[5] == x[11], s);  // lane 13 reads lane 3 of its 8-lane group
    SIMT_CHECK_MSG(misc[6] == or7 && misc[7] == 1, s);
  });
}

SIMT_TEST(shuffles_of_half_bf16_double) {
  std::vector<float> x(32), out(96);
  for (int l = 0; l < 32; ++l) x[l] = (float)(l * 4 - 50);  // exact in half and bf16
  simt_test::for_each_schedule([&](const std::string& s) {
    shuffle_types(x.data(), out.data());
    for (int l = 0; l < 32; ++l) {
      SIMT_CHECK_MSG(out[l] == x[l ^ 1], s);
      SIMT_CHECK_MSG(out[32 + l] == x[l + 2 < 32 ? l + 2 : l], s);
      SIMT_CHECK_MSG(out[64 + l] == x[31 - l], s);
    }
  });
}

SIMT_TEST(warp_reduction_with_syncwarp) {
  std::vector<float> x(64);
  float ref = 0;
  for (int i = 0; i < 64; ++i) { x[i] = (float)(i * 3 % 17); ref += x[i]; }
  simt_test::for_each_schedule([&](const std::string& s) {
    float out = -1.f;
    warp_sync_reduce(x.data(), &out);
    SIMT_CHECK_MSG(out == ref, s);
  });
}

SIMT_TEST(two_dimensional_transpose) {
  const int rows = 70, cols = 45;
  std::vector<float> in(rows * cols);
  for (int i = 0; i < rows * cols; ++i) in[i] = (float)i;
  simt_test::for_each_schedule([&](const std::string& s) {
    std::vector<float> out(rows * cols, -1.f);
    transpose(in.data(), out.data(), rows, cols);
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) SIMT_CHECK_MSG(out[c * rows + r] == in[r * cols + c], s);
  });
}

SIMT_TEST(launch_with_deduced_template_arguments) {
  std::vector<double> p(1000, -1.0);
  fill_deduced(p.data(), 0.5, 1000, 0);
  for (int i = 0; i < 1000; ++i) SIMT_CHECK(p[i] == 0.5 + i);
}

SIMT_TEST_MAIN()
