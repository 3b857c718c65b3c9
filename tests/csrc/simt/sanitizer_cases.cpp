// Seeded memory bugs that crash the process. Each case is run by ctest as its
// own process and must die with the report named in CMakeLists.txt
// (PASS_REGULAR_EXPRESSION): sanitizer reports in the ASan+UBSan build, the
// emulator's own stack-overflow report in the plain build.
#include <sys/wait.h>
#include <unistd.h>

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
  if (std::strcmp(argv[1], "stack_overflow") == 0 || std::strcmp(argv[1], "null_write") == 0) {
#if !defined(__SANITIZE_ADDRESS__)
    // The plain build dies from SIGSEGV after its report; ctest treats a
    // signal as failure whatever the output, so crash in a child process.
    std::fflush(stdout);
    pid_t pid = fork();
    if (pid > 0) {
      int status = 0;
      waitpid(pid, &status, 0);
      std::printf("child %s\n", WIFSIGNALED(status) ? "crashed as expected" : "did not crash");
      return WIFSIGNALED(status) ? 0 : 1;
    }
#endif
    if (argv[1][0] == 'n') {
      std::vector<float> x(64, 1.f);
      simt_tests::bug_oob_tail_write(1, 64, x.data(), nullptr);  // writes through a null pointer
      std::printf("null_write: NOT CAUGHT\n");
      return 1;
    }
    std::vector<int> out(32);
    simt_tests::bug_stack_overflow(100000, out.data());
    std::printf("stack_overflow: NOT CAUGHT\n");
    return 1;
  }
  if (std::strcmp(argv[1], "dynamic_smem_overflow") == 0) {
    std::vector<float> y(64);
    simt_tests::bug_dynamic_smem_overflow(y.data());
    std::printf("dynamic_smem_overflow: NOT CAUGHT\n");
    return 1;
  }
  return 2;
}
