// Loads the module built from dlopen_module.cpp and runs its self test.
#include <dlfcn.h>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  void* h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    std::printf("dlopen failed: %s\n0 passed, 1 failed\n", dlerror());
    return 1;
  }
  auto fn = reinterpret_cast<int (*)(std::string*)>(dlsym(h, "simt_module_selftest"));
  if (!fn) {
    std::printf("no simt_module_selftest\n0 passed, 1 failed\n");
    return 1;
  }
  std::string log;
  int failures = fn(&log);
  std::printf("%s", log.c_str());
  std::printf("module self test: %d failed\n", failures);
  return failures == 0 ? 0 : 1;
}
