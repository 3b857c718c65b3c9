// Performance guard: an elementwise kernel over 1M floats with 512-thread
// blocks must run well under a second in the plain build.
#include <chrono>
#include <vector>

#include "kernels/simt_test_kernels.h"
#include "simt_test.h"

SIMT_TEST(elementwise_1M_floats_512_threads_under_1s) {
  const int n = 1 << 20;
  std::vector<float> x(n, 1.5f), y(n, 2.f);
  simt_tests::axpy_grid_stride(64, 512, 2.f, x.data(), y.data(), 1024);  // warm-up (maps stacks)
  auto t0 = std::chrono::steady_clock::now();
  simt_tests::axpy_grid_stride(n / 512, 512, 2.f, x.data(), y.data(), n);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("  1M-element axpy (2048 blocks x 512 threads): %.3f s\n", s);
  SIMT_CHECK(y[n - 1] == 5.f);
  SIMT_CHECK(s < 1.0);
  // Barrier-heavy: block reduction, 2048 blocks of 256 threads.
  std::vector<float> partials(2048);
  t0 = std::chrono::steady_clock::now();
  simt_tests::block_sums(2048, x.data(), partials.data(), n);
  s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("  1M-element block reduction (2048 blocks x 256 threads): %.3f s\n", s);
  SIMT_CHECK(partials[0] == 1.5f * 512);
  SIMT_CHECK(s < 1.0);
}

SIMT_TEST_MAIN()
