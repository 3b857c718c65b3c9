// Public host-side API of the fusedopt SIMT emulator (test-only).
//
// Plain C++: safe to include from any host TU (tests, Python bindings) without
// pulling in the CUDA qualifier macros that fusedopt_simt.h defines.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace fusedopt {
namespace simt {

enum class ErrorKind {
  kInvalidLaunch,     // bad grid/block/smem configuration
  kDivergentBarrier,  // __syncthreads not reached by every thread of the block
  kWarpSync,          // warp collective with inactive/mismatched lanes
  kDeadlock,          // every live thread blocked, no barrier can complete
  kRace,              // race checker found a data race
  kKernelException,   // C++ exception escaped a kernel thread, or __trap()
  kUsage,             // emulator misuse (e.g. launch from inside a kernel)
};

const char* error_kind_name(ErrorKind k);

// Thrown by an emulated launch that went wrong. what() names the kernel, the
// launch site (file:line), the block and thread, and what happened.
class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& msg) : std::runtime_error(msg), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

// ---- last error (mirrors cudaGetLastError-style polling) -------------------
// Every failed launch stores its message here (as well as throwing, unless
// throwing was disabled with set_throw_on_error(false)).
bool has_last_error();
std::string last_error();        // "" if none
ErrorKind last_error_kind();     // meaningful only if has_last_error()
void clear_last_error();
void set_throw_on_error(bool on);  // default: true
bool throw_on_error();

// ---- schedule order --------------------------------------------------------
// Order in which blocks are run and in which runnable threads are resumed.
// Initialised from FUSEDOPT_SIMT_SCHEDULE=forward|reverse|random[:SEED].
enum class Schedule { kForward, kReverse, kRandom };
void set_schedule(Schedule s, uint64_t seed = 0);
Schedule schedule();
uint64_t schedule_seed();
// Parses "forward", "reverse", "random" or "random:SEED"; false if invalid.
bool set_schedule_from_string(const std::string& spec);

// ---- global-memory traffic counter ----------------------------------------
// Counted only for kernels compiled with the instrumented (RACECHECK) flags;
// `instrumented` tells whether any access of the launch was observed.
struct TrafficStats {
  uint64_t global_read_bytes = 0;
  uint64_t global_write_bytes = 0;
  uint64_t shared_read_bytes = 0;
  uint64_t shared_write_bytes = 0;
  uint64_t atomic_ops = 0;  // atomics also count as a read + a write
  uint64_t launches = 0;
  bool instrumented = false;
};
TrafficStats last_launch_traffic();
TrafficStats total_traffic();  // accumulated since the last reset_traffic()
void reset_traffic();

// ---- race checker ----------------------------------------------------------
// Active for instrumented kernels when enabled (default on; env
// FUSEDOPT_SIMT_RACECHECK=0 disables). A launch with races throws Error
// (kind kRace) after it finished, unless set_throw_on_race(false).
void set_race_check(bool on);
bool race_check_enabled();
void set_throw_on_race(bool on);
// Human-readable reports of the races of the last launch (at most a few).
std::vector<std::string> last_launch_races();
uint64_t total_race_count();  // races found since reset_race_count()
void reset_race_count();

// ---- launch statistics / limits --------------------------------------------
struct LaunchInfo {
  std::string kernel;  // kernel expression as written at the launch site
  std::string file;
  int line = 0;
  uint64_t blocks = 0;
  uint64_t threads_per_block = 0;
  uint64_t dynamic_smem = 0;
};
LaunchInfo last_launch();
uint64_t launch_count();
// Largest dynamic shared memory accepted per launch (default 48 KiB like a
// launch without cudaFuncSetAttribute; at most 227 KiB).
void set_max_dynamic_smem(uint64_t bytes);
uint64_t max_dynamic_smem();

}  // namespace simt
}  // namespace fusedopt
