// Race-checker and traffic-counter tests. Linked against the kernel
// libraries compiled with the instrumented (RACECHECK) flags.
#include <string>
#include <vector>

#include "kernels/simt_test_kernels.h"
#include "simt_test.h"

using namespace simt_tests;
using fusedopt::simt::ErrorKind;

SIMT_TEST(racecheck_missing_syncthreads_in_reduction) {
  std::vector<float> x(4 * 256, 1.f), p(4);
  simt_test::for_each_schedule([&](const std::string&) {
    SIMT_EXPECT_ERROR(ErrorKind::kRace,
                      (std::vector<std::string>{"missing_sync_kernel", "shared memory", "bug_kernels.cu:"}),
                      [&] { bug_missing_syncthreads(4, x.data(), p.data()); });
  });
}

SIMT_TEST(racecheck_back_to_back_reductions_without_trailing_barrier) {
  std::vector<float> x(64), y(64);
  float rx = 0, ry = 0;
  for (int i = 0; i < 64; ++i) { x[i] = (float)i; y[i] = (float)(2 * i + 1); rx += x[i]; ry += y[i]; }
  // The numbers come out right (forward order), only the race checker sees the bug.
  fusedopt::simt::set_throw_on_race(false);
  float out[2] = {0, 0};
  bug_back_to_back_reductions(x.data(), y.data(), out);
  fusedopt::simt::set_throw_on_race(true);
  SIMT_CHECK(out[0] == rx && out[1] == ry);
  SIMT_CHECK(!fusedopt::simt::last_launch_races().empty());
  SIMT_CHECK(fusedopt::simt::last_launch_races()[0].find("shared memory") != std::string::npos);
  fusedopt::simt::clear_last_error();
  simt_test::for_each_schedule([&](const std::string&) {
    SIMT_EXPECT_ERROR(ErrorKind::kRace, (std::vector<std::string>{"back_to_back_kernel", "shared memory", "bug_kernels.cu:"}),
                      [&] { bug_back_to_back_reductions(x.data(), y.data(), out); });
  });
}

SIMT_TEST(racecheck_warp_code_relying_on_lockstep) {
  std::vector<float> x(64, 1.f);
  float out = 0;
  simt_test::for_each_schedule([&](const std::string&) {
    SIMT_EXPECT_ERROR(ErrorKind::kRace, (std::vector<std::string>{"warp_lockstep_kernel", "no __syncthreads/__syncwarp"}),
                      [&] { bug_warp_lockstep(x.data(), &out); });
  });
}

SIMT_TEST(racecheck_two_blocks_write_one_global_slot) {
  std::vector<float> out(8, 0.f);
  simt_test::for_each_schedule([&](const std::string&) {
    SIMT_EXPECT_ERROR(ErrorKind::kRace,
                      (std::vector<std::string>{"two_blocks_one_slot_kernel", "global memory", "different blocks"}),
                      [&] { bug_two_blocks_one_slot(4, out.data()); });
  });
}

SIMT_TEST(racecheck_uninitialized_shared_memory_read) {
  std::vector<float> x(3 * 64, 1.f), y(3 * 64);
  simt_test::for_each_schedule([&](const std::string&) {
    SIMT_EXPECT_ERROR(ErrorKind::kRace,
                      (std::vector<std::string>{"uninit_shared_kernel", "uninitialized shared memory", "bug_kernels.cu:"}),
                      [&] { bug_uninitialized_shared_read(3, x.data(), y.data()); });
  });
}

SIMT_TEST(racecheck_can_be_disabled) {
  std::vector<float> out(8, 0.f);
  fusedopt::simt::set_race_check(false);
  bug_two_blocks_one_slot(4, out.data());  // no throw
  fusedopt::simt::set_race_check(true);
  SIMT_CHECK(fusedopt::simt::last_launch_races().empty());
}

SIMT_TEST(traffic_copy_counts_exactly_4N_read_4N_written) {
  const unsigned launches_before = simt_tests::copy_launches();
  for (int n : {1, 1000, 65536 + 3}) {
    std::vector<float> x(n, 1.f), y(n);
    fusedopt::simt::reset_traffic();
    simt_tests::copy(13, 128, x.data(), y.data(), n);
    auto t = fusedopt::simt::last_launch_traffic();
    SIMT_CHECK(t.instrumented);
    SIMT_CHECK_MSG(t.global_read_bytes == 4ull * n, std::to_string(t.global_read_bytes));
    SIMT_CHECK_MSG(t.global_write_bytes == 4ull * n, std::to_string(t.global_write_bytes));
    SIMT_CHECK(t.shared_read_bytes == 0 && t.shared_write_bytes == 0);
    auto total = fusedopt::simt::total_traffic();
    SIMT_CHECK(total.launches == 1 && total.global_read_bytes == 4ull * n);
  }
  SIMT_CHECK(simt_tests::copy_launches() == launches_before + 3);  // host atomics work when instrumented
  const int n = 4096;
  std::vector<float> x(n, 1.f), y(n);
  simt_tests::copy_vec4(8, 64, x.data(), y.data(), n);
  auto t = fusedopt::simt::last_launch_traffic();
  SIMT_CHECK(t.global_read_bytes == 4ull * n && t.global_write_bytes == 4ull * n);
}

SIMT_TEST(traffic_separates_shared_from_global) {
  const int n = 256 * 4;
  std::vector<float> x(n, 1.f), p(4);
  tree_sum_dynamic(4, 256, x.data(), p.data(), n);
  auto t = fusedopt::simt::last_launch_traffic();
  SIMT_CHECK_MSG(t.global_read_bytes == 4ull * n, std::to_string(t.global_read_bytes));
  SIMT_CHECK(t.global_write_bytes == 4ull * 4);
  SIMT_CHECK(t.shared_write_bytes > 0 && t.shared_read_bytes > 0);
}

SIMT_TEST(traffic_counts_atomics) {
  const int n = 100;
  std::vector<int> keys(n, 3);
  AtomicOut out{};
  atomics(1, 32, keys.data(), n, &out);
  auto t = fusedopt::simt::last_launch_traffic();
  SIMT_CHECK(t.atomic_ops >= 10ull * n);
}

SIMT_TEST_MAIN()
