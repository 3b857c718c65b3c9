// A minimal test harness: CHECK records failures and main() returns non-zero if any occurred.
#pragma once

#include <cstdio>

inline int& check_failures() {
  static int n = 0;
  return n;
}

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++check_failures();                                                        \
    }                                                                            \
  } while (0)

#define TEST_MAIN_RESULT()                                                       \
  (check_failures() == 0 ? (std::printf("all checks passed\n"), 0)               \
                         : (std::fprintf(stderr, "%d check(s) failed\n", check_failures()), 1))
