// Seeded memory bugs that only the ASan+UBSan build can catch. Each case is
// run by ctest as its own process and must die with the sanitizer report
// named in CMakeLists.txt (PASS_REGULAR_EXPRESSION).
#include <cstdio>
#include <cstring>
#include <vector>

#include "fusedopt_simt_api.h"
#include "kernels/simt_test_kernels.h"

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  if (std::strcmp(argv[1], "oob_tail") == 0) {
    const int n = 1000;  // 4 blocks x 256 threads cover 1024 elements
    std::vector<float> x(1024, 1.f);
    float* y = new float[n];
    simt_tests::bug_oob_tail_write(4, 256, x.data(), y);
    std::printf("oob_tail: NOT CAUGHT\n");
    delete[] y;
    return 1;
  }
  if (std::strcmp(argv[1], "misaligned_float4") == 0) {
    const int n4 = 16;
    alignas(16) static float x[4 * 16 + 8];
    std::vector<float> y(n4);
    simt_tests::bug_misaligned_float4(x, y.data(), n4);
    std::printf("misaligned_float4: NOT CAUGHT\n");
    return 1;
  }
  return 2;
}
