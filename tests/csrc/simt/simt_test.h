// Minimal test harness for the emulator tests (no external dependencies).
#pragma once
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "fusedopt_simt_api.h"

namespace simt_test {

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

inline int& check_count() {
  static int c = 0;
  return c;
}

[[noreturn]] inline void fail(const char* file, int line, const std::string& what) {
  throw Failure{std::string(file) + ":" + std::to_string(line) + ": " + what};
}

// Runs fn under every schedule order: forward, reverse, random with 3 seeds.
inline void for_each_schedule(const std::function<void(const std::string&)>& fn) {
  using fusedopt::simt::Schedule;
  const char* specs[] = {"forward", "reverse", "random:1", "random:7", "random:12345"};
  for (const char* s : specs) {
    fusedopt::simt::set_schedule_from_string(s);
    fn(s);
  }
  fusedopt::simt::set_schedule(Schedule::kForward);
}

// Runs `fn`, which must throw fusedopt::simt::Error of `kind` whose message
// contains every string of `needles`. Returns the message.
template <class F>
std::string expect_error(const char* file, int line, fusedopt::simt::ErrorKind kind,
                         const std::vector<std::string>& needles, F fn) {
  try {
    fn();
  } catch (const fusedopt::simt::Error& e) {
    if (e.kind() != kind)
      fail(file, line, std::string("wrong error kind ") + fusedopt::simt::error_kind_name(e.kind()) +
                           ", expected " + fusedopt::simt::error_kind_name(kind) + ": " + e.what());
    std::string m = e.what();
    for (const auto& n : needles)
      if (m.find(n) == std::string::npos) fail(file, line, "error message lacks '" + n + "': " + m);
    ++check_count();
    return m;
  }
  fail(file, line, std::string("expected an error of kind ") + fusedopt::simt::error_kind_name(kind));
}

inline int run_all(int argc, char** argv) {
  int passed = 0, failed = 0;
  for (const auto& c : registry()) {
    if (argc > 1 && std::strstr(c.name, argv[1]) == nullptr) continue;
    try {
      c.fn();
      std::printf("[ OK ] %s\n", c.name);
      ++passed;
    } catch (const Failure& f) {
      std::printf("[FAIL] %s: %s\n", c.name, f.msg.c_str());
      ++failed;
    } catch (const std::exception& e) {
      std::printf("[FAIL] %s: unexpected exception: %s\n", c.name, e.what());
      ++failed;
    }
    std::fflush(stdout);
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 && passed > 0 ? 0 : 1;
}

}  // namespace simt_test

#define SIMT_TEST(name)                                                   \
  static void name();                                                     \
  static ::simt_test::Registrar name##_registrar(#name, &name);           \
  static void name()

#define SIMT_CHECK(cond)                                                            \
  do {                                                                              \
    ++::simt_test::check_count();                                                   \
    if (!(cond)) ::simt_test::fail(__FILE__, __LINE__, "check failed: " #cond);     \
  } while (0)

#define SIMT_CHECK_MSG(cond, msg)                                                               \
  do {                                                                                          \
    ++::simt_test::check_count();                                                               \
    if (!(cond)) ::simt_test::fail(__FILE__, __LINE__, std::string("check failed: " #cond ": ") + (msg)); \
  } while (0)

#define SIMT_EXPECT_ERROR(kind, needles, ...) \
  ::simt_test::expect_error(__FILE__, __LINE__, kind, needles, __VA_ARGS__)

#define SIMT_TEST_MAIN() \
  int main(int argc, char** argv) { return ::simt_test::run_all(argc, argv); }
