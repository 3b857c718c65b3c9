// A dlopen()ed module holding race-checked kernels and the emulator runtime,
// like the Python extension of the project: checks that thread_local shared
// memory, dynamic shared memory, the race checker and the traffic counter
// work from a dynamically loaded library.
#include <string>
#include <vector>

#include "fusedopt_simt_api.h"
#include "kernels/simt_test_kernels.h"

extern "C" __attribute__((visibility("default"))) int simt_module_selftest(std::string* log) {
  int failures = 0;
  auto check = [&](bool ok, const std::string& what) {
    *log += (ok ? "[ OK ] " : "[FAIL] ") + what + "\n";
    failures += !ok;
  };
  // Static + dynamic shared memory (raw extern and the macro).
  const int n = 1000, threads = 128, blocks = (n + threads - 1) / threads;
  std::vector<float> x(n, 1.f), p1(blocks), p2(blocks), y(n);
  simt_tests::tree_sum_raw_extern(blocks, threads, x.data(), p1.data(), n);
  simt_tests::tree_sum_dynamic(blocks, threads, x.data(), p2.data(), n);
  check(p1[0] == 128.f && p1[blocks - 1] == (float)(n - (blocks - 1) * threads), "dynamic shared memory (extern)");
  check(p2[0] == 128.f, "dynamic shared memory (FUSEDOPT_DYNAMIC_SHARED)");
  std::vector<float> partials(3);
  simt_tests::block_sums(3, x.data(), partials.data(), n);
  check(partials[0] + partials[1] + partials[2] == (float)n, "static shared memory + shuffles");
  // Traffic: shared-memory accesses of the module must not count as global.
  simt_tests::tree_sum_dynamic(blocks, threads, x.data(), p2.data(), n);
  auto t = fusedopt::simt::last_launch_traffic();
  check(t.instrumented && t.global_read_bytes == 4ull * n && t.global_write_bytes == 4ull * blocks &&
            t.shared_read_bytes > 0,
        "traffic counter in a loaded module (global r=" + std::to_string(t.global_read_bytes) + ")");
  simt_tests::copy(4, 64, x.data(), y.data(), n);
  t = fusedopt::simt::last_launch_traffic();
  check(t.global_read_bytes == 4ull * n && t.global_write_bytes == 4ull * n, "copy counts 4N + 4N");
  // Race checker.
  std::vector<float> xs(2 * 256, 1.f), ps(2);
  bool caught = false;
  try {
    simt_tests::bug_missing_syncthreads(2, xs.data(), ps.data());
  } catch (const fusedopt::simt::Error& e) {
    caught = e.kind() == fusedopt::simt::ErrorKind::kRace;
  }
  check(caught, "race in shared memory detected");
  return failures;
}
