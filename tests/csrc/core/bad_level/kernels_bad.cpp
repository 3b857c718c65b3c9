// A deliberately broken "level" object for the self-test of check_level_objects.sh
// (ctest core.level_objects_catches_bad): it has a static initializer that runs code of the
// level at load time, and a function outside fusedopt::cpu::bad. Not part of any library.
namespace fusedopt {
namespace cpu {
namespace bad {
int compute(int x) { return x * 3 + 1; }
int g_runs_at_load = compute(__builtin_LINE());  // dynamic initializer: .init_array
}  // namespace bad
}  // namespace cpu
}  // namespace fusedopt

int stray_kernel(int x) { return fusedopt::cpu::bad::compute(x); }
