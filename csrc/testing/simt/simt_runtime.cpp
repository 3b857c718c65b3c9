// Runtime of the fusedopt SIMT emulator: fibers, block scheduler, barriers,
// warp collectives, error reporting, race checker and traffic counter.
//
// Must be compiled WITHOUT -fsanitize=thread: it provides the __tsan_* hooks
// that instrumented kernel code calls (no TSan runtime is linked).
#if defined(__SANITIZE_THREAD__)
#error "simt_runtime.cpp must not be compiled with -fsanitize=thread (it implements the hooks)"
#endif
#ifndef FUSEDOPT_SIMT
#define FUSEDOPT_SIMT 1
#endif

#include "fusedopt_simt.h"

#include <dlfcn.h>
#include <link.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <numeric>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define FUSEDOPT_SIMT_ASAN 1
#endif

// Largest dynamic shared memory per block (sm_90 opt-in maximum).
static constexpr uint64_t kMaxDynSmemCap = 227 * 1024;

// Backing store of dynamic shared memory. thread_local like every other
// __shared__ variable; a raw `extern __shared__ T name[]` in kernel code is
// aliased to this symbol at link time (--defsym, see simt.cmake).
extern "C" {
alignas(128) thread_local unsigned char fusedopt_simt_dynsmem_tls[kMaxDynSmemCap];
}

// ---------------------------------------------------------------------------
// Context switch (x86-64 SysV). Saves the callee-saved registers on the old
// stack, stores the old stack pointer to *save_sp and continues on new_sp. No
// syscalls, unlike swapcontext. MXCSR / x87 control word are not switched
// (ldmxcsr is slow and kernels never change rounding modes): every fiber
// starts with, and shares, the launching thread's floating-point environment.
extern "C" void fusedopt_simt_switch(void** save_sp, void* new_sp);
extern "C" void fusedopt_simt_fiber_start();
__asm__(
    ".text\n"
    ".globl fusedopt_simt_switch\n"
    ".hidden fusedopt_simt_switch\n"
    ".type fusedopt_simt_switch,@function\n"
    "fusedopt_simt_switch:\n"
    "  pushq %rbp\n"
    "  pushq %rbx\n"
    "  pushq %r12\n"
    "  pushq %r13\n"
    "  pushq %r14\n"
    "  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n"
    "  popq %r14\n"
    "  popq %r13\n"
    "  popq %r12\n"
    "  popq %rbx\n"
    "  popq %rbp\n"
    "  ret\n"
    ".size fusedopt_simt_switch,.-fusedopt_simt_switch\n"
    // First code a new fiber runs: r12 = Fiber*, r13 = entry function. The
    // stack is 16-byte aligned here, so the call gives the callee a proper
    // ABI frame. The entry never returns.
    ".globl fusedopt_simt_fiber_start\n"
    ".hidden fusedopt_simt_fiber_start\n"
    ".type fusedopt_simt_fiber_start,@function\n"
    "fusedopt_simt_fiber_start:\n"
    "  movq %r12, %rdi\n"
    "  callq *%r13\n"
    "  ud2\n"
    ".size fusedopt_simt_fiber_start,.-fusedopt_simt_fiber_start\n");

namespace fusedopt {
namespace simt {
namespace detail {
ThreadCtx g_ctx;
}  // namespace detail

namespace {

using detail::g_ctx;

enum class FState : uint8_t { kReady, kAtBarrier, kAtWarp, kExited };

struct Fiber {
  void* sp = nullptr;
  uint32_t linear = 0;
  uint3 tid{};
  FState state = FState::kReady;
  // Where the fiber blocks (barrier or warp collective), for reports.
  const char* wfile = nullptr;
  int wline = 0;
  // Barrier variant (-1 plain, 0 count, 1 and, 2 or) and predicate/result.
  int bop = -1;
  int bpred = 0;
  int bresult = 0;
  // Warp collective slot.
  int wop = 0;
  uint32_t wmask = 0;
  int warg = 0;
  int wwidth = 32;
  alignas(16) unsigned char win[16];
  alignas(16) unsigned char wout[16];
  // Race checker: vector clock over the lanes of this thread's warp
  // (vc[own lane] is the own clock), reset at every block barrier.
  uint32_t vc[32];
  char* stack_lo = nullptr;
  size_t stack_size = 0;
  void* asan_fake = nullptr;
  bool suspended = false;  // inside yield_fiber (has live frames)
};

struct Warp {
  uint32_t present = 0;  // lanes that exist (last warp may be partial)
  uint32_t exited = 0;
  uint32_t arrived = 0;  // lanes waiting in a warp collective
  // Fast path: while every waiting lane uses the same (mask, op), arrivals
  // are checked against this instead of against each waiting lane.
  bool uniform = true;
  uint32_t group_mask = 0;
  int group_op = 0;
  const char* group_file = nullptr;
  int group_line = 0;
};

struct BlockState {
  uint32_t nthreads = 0;
  uint32_t live = 0;
  uint32_t exited = 0;
  uint32_t arrived = 0;  // at __syncthreads
  uint32_t epoch = 0;    // completed barriers
  uint64_t linear = 0;
  uint3 idx{};
};

struct RaceRecord {
  uintptr_t addr;
  unsigned size;
  bool shared;
  uint64_t block_a, block_b;
  uint32_t tid_a, tid_b;
  bool write_a, write_b, atomic_a, atomic_b;
  bool uninit;           // read of shared memory this block never wrote (no b)
  uintptr_t pc_a, pc_b;  // a = current access, b = earlier access
};

struct LaunchState {
  const detail::LaunchSpec* spec = nullptr;
  detail::Thunk body = nullptr;
  void* ctx = nullptr;
  size_t ctx_size = 0;  // kernel arguments: read by every thread, not "global memory"
  bool failed = false;
  ErrorKind kind = ErrorKind::kUsage;
  std::string message;
  // Instrumented-build data.
  TrafficStats traffic;
  bool tls_ready = false;
  std::vector<std::pair<uintptr_t, uintptr_t>> tls;  // "shared" address ranges
  uint64_t race_count = 0;
  std::vector<RaceRecord> races;
};

// ---- global emulator state ---------------------------------------------------
// One launch runs at a time (g_launch_mutex); all of its fibers run on the
// launching OS thread, so plain globals suffice for the hot state.
std::recursive_mutex g_launch_mutex;
thread_local bool t_in_launch = false;

Fiber* g_cur = nullptr;  // running fiber, null in the scheduler / host code
bool g_unwinding = false;  // resumed fibers unwind (FiberAbort) instead of continuing
void* g_sched_sp = nullptr;
void* g_sched_fake = nullptr;
const void* g_sched_stack_bottom = nullptr;
size_t g_sched_stack_size = 0;

std::vector<Fiber> g_fibers;
Warp g_warps[32];
BlockState g_block;
LaunchState g_launch;

// Race checker "segments": one id per (block, barrier epoch) of a launch,
// increasing through the whole process. A shadow record stores its segment,
// which tells at once whether it is from an earlier launch (stale), another
// block (concurrent; stale for shared memory), an earlier epoch of this block
// (ordered) or the current epoch (ordered only through warp clocks).
uint32_t g_seg = 0;
uint32_t g_launch_first_seg = 1;
uint32_t g_block_first_seg = 1;
std::vector<uint64_t> g_seg_blocks;  // block of every segment of this launch

void new_segment(bool block_start) {
  ++g_seg;
  if (block_start) g_block_first_seg = g_seg;
  g_seg_blocks.push_back(g_block.linear);
}

char* g_stack_region = nullptr;  // all fiber stacks, each with a guard page
uintptr_t g_stack_region_lo = 0, g_stack_region_span = 0;
size_t g_stack_stride = 0;  // guard page + stack
size_t g_stack_count = 0;

// Settings.
struct Settings {
  Schedule schedule = Schedule::kForward;
  uint64_t seed = 0;
  bool race_check = true;
  bool throw_on_error = true;
  bool throw_on_race = true;
  uint64_t max_dyn_smem = 48 * 1024;
  size_t stack_bytes = 0;
  bool initialized = false;
};
Settings g_settings;

// Results visible through the API.
std::mutex g_result_mutex;
bool g_has_last_error = false;
std::string g_last_error;
ErrorKind g_last_error_kind = ErrorKind::kUsage;
TrafficStats g_last_traffic, g_total_traffic;
std::vector<std::string> g_last_races;
uint64_t g_total_races = 0;
LaunchInfo g_last_launch;
uint64_t g_launch_count = 0;

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

bool parse_schedule(const std::string& spec, Schedule* s, uint64_t* seed) {
  if (spec == "forward") { *s = Schedule::kForward; *seed = 0; return true; }
  if (spec == "reverse") { *s = Schedule::kReverse; *seed = 0; return true; }
  if (spec.rfind("random", 0) == 0) {
    *s = Schedule::kRandom;
    *seed = 0;
    if (spec.size() == 6) return true;
    if (spec[6] != ':' || spec.size() == 7) return false;
    char* end = nullptr;
    unsigned long long v = std::strtoull(spec.c_str() + 7, &end, 0);
    if (*end != '\0') return false;
    *seed = v;
    return true;
  }
  return false;
}

void init_settings() {
  if (g_settings.initialized) return;
  g_settings.initialized = true;
  if (const char* e = std::getenv("FUSEDOPT_SIMT_SCHEDULE")) {
    if (!parse_schedule(e, &g_settings.schedule, &g_settings.seed))
      std::fprintf(stderr, "fusedopt::simt: ignoring invalid FUSEDOPT_SIMT_SCHEDULE=%s\n", e);
  }
  if (const char* e = std::getenv("FUSEDOPT_SIMT_RACECHECK")) g_settings.race_check = std::atoi(e) != 0;
  if (const char* e = std::getenv("FUSEDOPT_SIMT_MAX_DYNAMIC_SMEM"))
    g_settings.max_dyn_smem = std::min<uint64_t>(std::strtoull(e, nullptr, 0), kMaxDynSmemCap);
#if defined(FUSEDOPT_SIMT_ASAN)
  size_t kb = 512;  // ASan frames are much larger
#else
  size_t kb = 128;
#endif
  if (const char* e = std::getenv("FUSEDOPT_SIMT_STACK_KB")) kb = std::max<size_t>(16, std::strtoull(e, nullptr, 0));
  g_settings.stack_bytes = kb * 1024;
}

std::string dim_str(uint64_t x, uint64_t y, uint64_t z) {
  return "(" + std::to_string(x) + "," + std::to_string(y) + "," + std::to_string(z) + ")";
}
std::string thread_str(uint32_t linear) {
  const dim3& b = g_ctx.block_dim;
  return dim_str(linear % b.x, (linear / b.x) % b.y, linear / (b.x * b.y));
}
std::string block_str(uint64_t linear) {
  const dim3& g = g_ctx.grid_dim;
  return dim_str(linear % g.x, (linear / g.x) % g.y, linear / ((uint64_t)g.x * g.y));
}
std::string site(const char* file, int line) {
  return std::string(file ? file : "?") + ":" + std::to_string(line);
}
std::string hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", (unsigned long long)v);
  return buf;
}
std::string lanes_str(uint32_t m) {
  std::string s;
  for (int i = 0; i < 32; ++i)
    if (m & (1u << i)) s += (s.empty() ? "" : ",") + std::to_string(i);
  return "{" + s + "}";
}
const char* warp_op_name(int op) {
  switch (op) {
    case detail::kShflIdx: return "__shfl_sync";
    case detail::kShflUp: return "__shfl_up_sync";
    case detail::kShflDown: return "__shfl_down_sync";
    case detail::kShflXor: return "__shfl_xor_sync";
    case detail::kBallot: return "__ballot_sync";
    case detail::kAny: return "__any_sync";
    case detail::kAll: return "__all_sync";
    case detail::kSyncWarp: return "__syncwarp";
    case detail::kMatchAny: return "__match_any_sync";
    case detail::kMatchAll: return "__match_all_sync";
    default: return "__reduce_*_sync";
  }
}

std::string launch_prefix(ErrorKind kind) {
  const detail::LaunchSpec* s = g_launch.spec;
  return std::string("fusedopt::simt: ") + error_kind_name(kind) + " in kernel `" +
         (s ? s->kernel : "?") + "` (launched at " + (s ? site(s->file, s->line) : "?") + ")";
}

// ---- crash reports ------------------------------------------------------------
// A fault in a guard page below a fiber stack means the kernel overflowed its
// fiber stack; any other fault while a kernel runs is a bad access of the
// kernel. Say so (with kernel, block, thread) before the default crash.
// Not installed under ASan, which has its own handler and knows the fiber
// stacks from the switch annotations.
struct sigaction g_old_segv;

void segv_handler(int sig, siginfo_t* si, void* uc) {
  uintptr_t a = (uintptr_t)si->si_addr;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  const detail::LaunchSpec* s = g_launch.spec;
  char buf[1024];
  int n = 0;
  if (g_stack_stride && a - g_stack_region_lo < g_stack_region_span &&
      (a - g_stack_region_lo) % g_stack_stride < page) {
    n = std::snprintf(buf, sizeof buf,
                      "fusedopt::simt: fiber stack overflow in kernel `%s` (launched at %s:%d), block %llu, "
                      "thread %u: the %zu KiB stack of an emulated thread is exhausted (deep recursion or "
                      "large local arrays; raise FUSEDOPT_SIMT_STACK_KB)\n",
                      s ? s->kernel : "?", s ? s->file : "?", s ? s->line : 0,
                      (unsigned long long)g_block.linear, g_cur ? g_cur->linear : 0u,
                      (g_stack_stride - page) / 1024);
  } else if (g_cur && s) {
    // Any other fault inside a kernel: at least say which kernel and thread
    // (invalid pointer, out-of-bounds access into unmapped memory, or a
    // misaligned vector access compiled to an aligned SSE instruction).
    n = std::snprintf(buf, sizeof buf,
                      "fusedopt::simt: segmentation fault in kernel `%s` (launched at %s:%d), block %llu, "
                      "thread %u, address %p\n",
                      s->kernel, s->file, s->line, (unsigned long long)g_block.linear, g_cur->linear,
                      si->si_addr);
  }
  if (n > 0) (void)!write(2, buf, (size_t)std::min(n, (int)sizeof buf - 1));
  // Re-run the faulting access under the previous disposition.
  sigaction(SIGSEGV, &g_old_segv, nullptr);
  (void)sig;
  (void)uc;
}

void install_segv_handler() {
#if !defined(FUSEDOPT_SIMT_ASAN)
  // The handler runs on an alternate stack (the fiber's is exhausted); keep
  // one that is already installed (e.g. by Python's faulthandler).
  static thread_local bool alt_ready = false;
  if (!alt_ready) {
    alt_ready = true;
    stack_t old;
    if (sigaltstack(nullptr, &old) == 0 && (old.ss_flags & SS_DISABLE)) {
      static thread_local char* mem = nullptr;
      const size_t size = 64 * 1024;
      mem = static_cast<char*>(std::malloc(size));
      stack_t ss{};
      ss.ss_sp = mem;
      ss.ss_size = size;
      if (mem) sigaltstack(&ss, nullptr);
    }
  }
  struct sigaction cur;
  if (sigaction(SIGSEGV, nullptr, &cur) == 0 && cur.sa_sigaction == segv_handler) return;
  struct sigaction sa{};
  sa.sa_sigaction = segv_handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &g_old_segv);
#endif
}

// ---- fibers --------------------------------------------------------------------
void ensure_stacks(size_t n) {
  if (n <= g_stack_count) return;
  if (g_stack_region) munmap(g_stack_region, g_stack_stride * g_stack_count);
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t stack = (g_settings.stack_bytes + page - 1) / page * page;
  g_stack_stride = stack + page;
  size_t count = 1024;  // the CUDA maximum; mapped once and reused
  void* mem = mmap(nullptr, g_stack_stride * count, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) throw Error(ErrorKind::kUsage, "fusedopt::simt: cannot map fiber stacks");
  g_stack_region = static_cast<char*>(mem);
  for (size_t i = 0; i < count; ++i)  // guard page below each stack
    mprotect(g_stack_region + i * g_stack_stride, page, PROT_NONE);
  g_stack_count = count;
  g_stack_region_lo = (uintptr_t)g_stack_region;
  g_stack_region_span = g_stack_stride * count;
  g_fibers.assign(count, Fiber());
  for (size_t i = 0; i < count; ++i) {
    g_fibers[i].stack_lo = g_stack_region + i * g_stack_stride + page;
    g_fibers[i].stack_size = stack;
  }
}

inline void asan_start(void** fake, const void* bottom, size_t size) {
#if defined(FUSEDOPT_SIMT_ASAN)
  __sanitizer_start_switch_fiber(fake, bottom, size);
#else
  (void)fake; (void)bottom; (void)size;
#endif
}
inline void asan_finish(void* fake, const void** bottom, size_t* size) {
#if defined(FUSEDOPT_SIMT_ASAN)
  __sanitizer_finish_switch_fiber(fake, bottom, size);
#else
  (void)fake; (void)bottom; (void)size;
#endif
}

struct FiberAbort {};

// Fiber -> scheduler. Returns when the scheduler resumes this fiber, or
// throws FiberAbort when the launch failed and the fiber must unwind.
void yield_fiber(Fiber* f) {
  f->suspended = true;
  asan_start(&f->asan_fake, g_sched_stack_bottom, g_sched_stack_size);
  fusedopt_simt_switch(&f->sp, g_sched_sp);
  asan_finish(f->asan_fake, &g_sched_stack_bottom, &g_sched_stack_size);
  f->suspended = false;
  if (g_unwinding) throw FiberAbort{};
}

// Leave the fiber for good (exit or abort); its stack is reused later.
[[noreturn]] void leave_fiber(Fiber* f) {
  asan_start(nullptr, g_sched_stack_bottom, g_sched_stack_size);
  fusedopt_simt_switch(&f->sp, g_sched_sp);
  __builtin_unreachable();
}

// FiberAbort unwinds a failing fiber up to fusedopt_simt_fiber_main, so that
// the destructors of kernel and emulator frames run before it is dropped.

// Records the launch error (reported for `thread` of the current block) and
// abandons the calling fiber: the launch stops.
[[noreturn]] void fail_at(uint32_t thread, ErrorKind kind, const std::string& detail) {
  Fiber* f = g_cur;
  if (!g_launch.failed) {
    g_launch.failed = true;
    g_launch.kind = kind;
    g_launch.message = launch_prefix(kind) + ", block " + block_str(g_block.linear) + ", thread " +
                       thread_str(thread) + ": " + detail;
  }
  if (!f) throw Error(kind, g_launch.message);
  throw FiberAbort{};
}
[[noreturn]] void fail(ErrorKind kind, const std::string& detail) {
  fail_at(g_cur ? g_cur->linear : 0, kind, detail);
}

void scheduler_fail(ErrorKind kind, const std::string& detail) {
  if (g_launch.failed) return;
  g_launch.failed = true;
  g_launch.kind = kind;
  g_launch.message = launch_prefix(kind) + ", block " + block_str(g_block.linear) + ": " + detail;
}

void on_thread_exit(Fiber* f);

extern "C" void fusedopt_simt_fiber_main(Fiber* f) {
  asan_finish(nullptr, &g_sched_stack_bottom, &g_sched_stack_size);
  {  // scope: every local is destroyed before the fiber is left for good
    bool aborted = false;
    std::string what;
    try {
      g_launch.body(g_launch.ctx);
    } catch (const FiberAbort&) {
      aborted = true;
    } catch (const std::exception& e) {
      what = std::string("exception escaped the kernel: ") + e.what();
    } catch (...) {
      what = "unknown exception escaped the kernel";
    }
    // Handled outside the catch blocks: leaving a fiber inside a handler would
    // leave the OS thread's C++ exception stack unbalanced.
    if (!aborted && !what.empty()) {
      try {
        fail(ErrorKind::kKernelException, what);
      } catch (const FiberAbort&) {
        aborted = true;
      }
    }
    if (!aborted) {
      try {
        on_thread_exit(f);
      } catch (const FiberAbort&) {
      }
    }
  }
  leave_fiber(f);
}

void init_fiber(Fiber* f) {
  // Initial frame consumed by fusedopt_simt_switch's epilogue (see asm).
  uintptr_t top = ((uintptr_t)(f->stack_lo + f->stack_size)) & ~(uintptr_t)15;
#if defined(FUSEDOPT_SIMT_ASAN)
  // The previous fiber on this stack left fusedopt_simt_fiber_main without
  // returning, so its frame's redzone / scope poisoning is still there.
  ASAN_UNPOISON_MEMORY_REGION(reinterpret_cast<void*>(top - 8192), 8192);
#endif
  void** sp = reinterpret_cast<void**>(top);
  *--sp = reinterpret_cast<void*>(&fusedopt_simt_fiber_start);  // ret target
  *--sp = nullptr;                                                // rbp: end of frame chain
  *--sp = nullptr;                                                // rbx
  *--sp = f;                                                      // r12
  *--sp = reinterpret_cast<void*>(&fusedopt_simt_fiber_main);    // r13
  *--sp = nullptr;                                                // r14
  *--sp = nullptr;                                                // r15
  f->sp = sp;
  f->state = FState::kReady;
  f->bop = -1;
  f->asan_fake = nullptr;
}

inline void resume(Fiber* f) {
  g_cur = f;
  g_ctx.thread_idx = f->tid;
  asan_start(&g_sched_fake, f->stack_lo, f->stack_size);
  fusedopt_simt_switch(&g_sched_sp, f->sp);
  asan_finish(g_sched_fake, &g_sched_stack_bottom, &g_sched_stack_size);
  g_cur = nullptr;
}

inline bool same_site(const char* f1, int l1, const char* f2, int l2) {
  return l1 == l2 && (f1 == f2 || (f1 && f2 && std::strcmp(f1, f2) == 0));
}

// ---- race-checker clocks -----------------------------------------------------
void reset_clocks() {
  for (uint32_t i = 0; i < g_block.nthreads; ++i) {
    Fiber& f = g_fibers[i];
    std::fill(std::begin(f.vc), std::end(f.vc), 0u);
    f.vc[i & 31] = 1;
  }
}
void join_clocks(uint32_t warp, uint32_t mask) {
  uint32_t j[32] = {0};
  for (int l = 0; l < 32; ++l)
    if (mask & (1u << l))
      for (int k = 0; k < 32; ++k) j[k] = std::max(j[k], g_fibers[warp * 32 + l].vc[k]);
  for (int l = 0; l < 32; ++l)
    if (mask & (1u << l)) {
      Fiber& f = g_fibers[warp * 32 + l];
      std::copy(j, j + 32, f.vc);
      f.vc[l] += 1;
    }
}

// ---- barriers ------------------------------------------------------------------
std::string barrier_name(int op) {
  switch (op) {
    case 0: return "__syncthreads_count";
    case 1: return "__syncthreads_and";
    case 2: return "__syncthreads_or";
    default: return "__syncthreads";
  }
}

void divergent_exit_error(Fiber* waiter) {
  std::string who;
  for (uint32_t i = 0; i < g_block.nthreads; ++i)
    if (g_fibers[i].state == FState::kExited) { who = thread_str(i); break; }
  std::string d = std::to_string(g_block.arrived) + " thread(s) wait at " + barrier_name(waiter->bop) + " (" +
                  site(waiter->wfile, waiter->wline) + ") but " + std::to_string(g_block.exited) +
                  " thread(s) of the block already exited (e.g. thread " + who +
                  "): divergent barrier, every thread of the block must reach it";
  if (g_cur) fail(ErrorKind::kDivergentBarrier, d);
  scheduler_fail(ErrorKind::kDivergentBarrier, d);
}

// Called by the last thread to arrive: checks and opens the barrier.
void complete_barrier(Fiber* self) {
  if (g_block.exited > 0) divergent_exit_error(self);
  int count = 0, all = 1, any = 0;
  for (uint32_t i = 0; i < g_block.nthreads; ++i) {
    Fiber& o = g_fibers[i];
    if (o.state != FState::kAtBarrier) continue;
    if (!same_site(o.wfile, o.wline, self->wfile, self->wline) || o.bop != self->bop)
      fail(ErrorKind::kDivergentBarrier,
           "threads wait at different barriers: this thread at " + barrier_name(self->bop) + " (" +
               site(self->wfile, self->wline) + "), thread " + thread_str(i) + " at " + barrier_name(o.bop) +
               " (" + site(o.wfile, o.wline) + ")");
    count += o.bpred != 0;
    all &= o.bpred != 0;
    any |= o.bpred != 0;
  }
  int result = self->bop == 0 ? count : self->bop == 1 ? all : any;
  for (uint32_t i = 0; i < g_block.nthreads; ++i) {
    Fiber& o = g_fibers[i];
    if (o.state != FState::kAtBarrier) continue;
    o.bresult = result;
    o.state = FState::kReady;
  }
  g_block.arrived = 0;
  g_block.epoch++;
  if (g_launch.tls_ready) {  // only matters for instrumented kernels
    new_segment(false);
    reset_clocks();
  }
}

int barrier(int op, int pred, const char* file, int line) {
  Fiber* f = g_cur;
  if (!f) throw Error(ErrorKind::kUsage, "fusedopt::simt: " + barrier_name(op) + " called outside a kernel at " + site(file, line));
  f->state = FState::kAtBarrier;
  f->wfile = file;
  f->wline = line;
  f->bop = op;
  f->bpred = pred;
  g_block.arrived++;
  if (g_block.arrived == g_block.live) {
    complete_barrier(f);
  } else {
    yield_fiber(f);
  }
  f->state = FState::kReady;
  return f->bresult;
}

// ---- warp collectives ------------------------------------------------------------
// Shuffles: every lane of the group reads the input of its source lane.
void complete_shuffle(Fiber* lanes, uint32_t mask) {
  for (int l = 0; l < 32; ++l) {
    if (!(mask & (1u << l))) continue;
    Fiber& f = lanes[l];
    const int width = f.wwidth;
    const int seg = l & ~(width - 1);  // first lane of this lane's width-segment
    int src = l;
    switch (f.wop) {
      case detail::kShflIdx: src = seg + (f.warg & (width - 1)); break;
      case detail::kShflUp: src = l - f.warg; if (src < seg) src = l; break;
      case detail::kShflDown: src = l + f.warg; if (src >= seg + width) src = l; break;
      default: src = l ^ f.warg; if (src >= seg + width) src = l; break;  // xor
    }
    if (!(mask & (1u << src)))
      fail_at(f.linear, ErrorKind::kWarpSync,
              std::string(warp_op_name(f.wop)) + " at " + site(f.wfile, f.wline) + ": lane " + std::to_string(l) +
                  " reads lane " + std::to_string(src) + " which is not in the mask " + hex(mask) +
                  " (undefined value)");
    std::memcpy(f.wout, lanes[src].win, 16);
  }
}

// Votes, reductions and matches: one 32-bit result per lane.
void complete_vote(Fiber* lanes, uint32_t mask, int op) {
  uint32_t ballot = 0, rsum = 0, rand_ = ~0u, ror = 0, rxor = 0, umin = ~0u, umax = 0;
  int smin = 0x7fffffff, smax = (int)0x80000000;
  for (int l = 0; l < 32; ++l) {
    if (!(mask & (1u << l))) continue;
    uint32_t v;
    std::memcpy(&v, lanes[l].win, 4);
    if (v) ballot |= 1u << l;
    rsum += v; rand_ &= v; ror |= v; rxor ^= v;
    umin = std::min(umin, v); umax = std::max(umax, v);
    smin = std::min(smin, (int)v); smax = std::max(smax, (int)v);
  }
  for (int l = 0; l < 32; ++l) {
    if (!(mask & (1u << l))) continue;
    Fiber& f = lanes[l];
    uint32_t r = 0;
    switch (op) {
      case detail::kBallot: r = ballot; break;
      case detail::kAny: r = ballot != 0; break;
      case detail::kAll: r = ballot == mask; break;
      case detail::kReduceAdd: r = rsum; break;
      case detail::kReduceAnd: r = rand_; break;
      case detail::kReduceOr: r = ror; break;
      case detail::kReduceXor: r = rxor; break;
      case detail::kReduceMin: r = umin; break;
      case detail::kReduceMax: r = umax; break;
      case detail::kReduceMinS: r = (uint32_t)smin; break;
      case detail::kReduceMaxS: r = (uint32_t)smax; break;
      default: {  // match_any / match_all on the 8-byte input
        uint32_t same = 0;
        for (int k = 0; k < 32; ++k)
          if ((mask & (1u << k)) && std::memcmp(lanes[k].win, f.win, 8) == 0) same |= 1u << k;
        r = op == detail::kMatchAny ? same : (same == mask ? mask : 0u);
      }
    }
    std::memcpy(f.wout, &r, 4);
  }
}

// Called by the last lane of `mask` to arrive: computes every lane's result
// and releases the group.
void complete_warp(uint32_t w, uint32_t mask) {
  Fiber* lanes = &g_fibers[w * 32];
  const int op = lanes[__builtin_ctz(mask)].wop;  // one op per group (checked on arrival)
  if (op <= detail::kShflXor) complete_shuffle(lanes, mask);
  else if (op != detail::kSyncWarp) complete_vote(lanes, mask, op);
  for (int l = 0; l < 32; ++l)
    if (mask & (1u << l)) lanes[l].state = FState::kReady;
  g_warps[w].arrived &= ~mask;
  if (g_launch.tls_ready) join_clocks(w, mask);
}

void warp_inactive_error(Fiber* f, uint32_t bad, const char* why) {
  fail(ErrorKind::kWarpSync, std::string(warp_op_name(f->wop)) + " at " + site(f->wfile, f->wline) + " with mask " +
                                 hex(f->wmask) + " names lane(s) " + lanes_str(bad) + " of warp " +
                                 std::to_string(f->linear / 32) + " that " + why +
                                 " (inactive lanes in a *_sync mask are undefined behaviour)");
}

void on_thread_exit(Fiber* f) {
  f->state = FState::kExited;
  g_block.live--;
  g_block.exited++;
  uint32_t w = f->linear / 32, bit = 1u << (f->linear & 31);
  Warp& W = g_warps[w];
  W.exited |= bit;
  for (int l = 0; l < 32; ++l) {  // a lane still waiting for us can never finish
    if (!(W.arrived & (1u << l))) continue;
    Fiber& o = g_fibers[w * 32 + l];
    if (o.wmask & bit)  // reported for the waiting lane
      fail_at(o.linear, ErrorKind::kWarpSync,
              std::string(warp_op_name(o.wop)) + " at " + site(o.wfile, o.wline) + " with mask " + hex(o.wmask) +
                  " waits for lane " + std::to_string(f->linear & 31) + " which exited (thread " +
                  thread_str(f->linear) + "): inactive lanes in a *_sync mask are undefined behaviour");
  }
  if (g_block.arrived > 0 && g_block.arrived == g_block.live) {
    for (uint32_t i = 0; i < g_block.nthreads; ++i)
      if (g_fibers[i].state == FState::kAtBarrier) divergent_exit_error(&g_fibers[i]);
  }
}

}  // namespace

// ---- entry points used by the header ---------------------------------------------
namespace detail {

void syncthreads(const char* file, int line) { barrier(-1, 0, file, line); }
int syncthreads_reduce(int op, int pred, const char* file, int line) { return barrier(op, pred, file, line); }

void warp_collective(int op, unsigned mask, const void* in, unsigned size, int arg, int width, void* out,
                     const char* file, int line) {
  Fiber* f = g_cur;
  if (!f)
    throw Error(ErrorKind::kUsage, std::string("fusedopt::simt: ") + warp_op_name(op) + " called outside a kernel at " + site(file, line));
  uint32_t lane = f->linear & 31, w = f->linear / 32, bit = 1u << lane;
  Warp& W = g_warps[w];
  f->wop = op;
  f->wmask = mask;
  f->warg = arg;
  f->wwidth = width;
  f->wfile = file;
  f->wline = line;
  std::memset(f->win, 0, 16);
  if (size) std::memcpy(f->win, in, size);
  if (!(mask & bit))
    fail(ErrorKind::kWarpSync, std::string(warp_op_name(op)) + " at " + site(file, line) + ": calling lane " +
                                   std::to_string(lane) + " is not in the mask " + hex(mask));
  if (op <= kShflXor && (width < 1 || width > 32 || (width & (width - 1))))
    fail(ErrorKind::kWarpSync, std::string(warp_op_name(op)) + " at " + site(file, line) + ": width " +
                                   std::to_string(width) + " is not a power of two in [1, 32]");
  if (uint32_t bad = mask & ~W.present) warp_inactive_error(f, bad, "do not exist (block size not a multiple of 32)");
  if (uint32_t bad = mask & W.exited) warp_inactive_error(f, bad, "already exited");
  // Every lane waiting in this warp must agree with us on mask and operation,
  // and (except for __syncwarp, which Volta+ allows at different call sites)
  // wait at the same call: "all non-exited threads named in mask must
  // execute the same intrinsic with the same mask".
  if (W.arrived == 0) {
    W.uniform = true;
    W.group_mask = mask;
    W.group_op = op;
    W.group_file = file;
    W.group_line = line;
  } else if (!W.uniform || W.group_mask != mask || W.group_op != op ||
             (op != kSyncWarp && !same_site(W.group_file, W.group_line, file, line))) {
    W.uniform = false;
    for (int l = 0; l < 32; ++l) {
      if (!(W.arrived & (1u << l))) continue;
      Fiber& o = g_fibers[w * 32 + l];
      bool overlaps = (mask & (1u << l)) || (o.wmask & bit);
      if (!overlaps) continue;
      if (o.wmask != mask || o.wop != op)
        fail(ErrorKind::kWarpSync, std::string("mismatched warp collectives: ") + warp_op_name(op) + " at " +
                                       site(file, line) + " with mask " + hex(mask) + " while lane " +
                                       std::to_string(l) + " waits in " + warp_op_name(o.wop) + " at " +
                                       site(o.wfile, o.wline) + " with mask " + hex(o.wmask));
      if (op != kSyncWarp && !same_site(o.wfile, o.wline, file, line))
        fail(ErrorKind::kWarpSync, std::string("lanes of mask ") + hex(mask) + " are at different calls of " +
                                       warp_op_name(op) + ": this lane at " + site(file, line) + ", lane " +
                                       std::to_string(l) + " at " + site(o.wfile, o.wline) +
                                       " (a lane of the mask skipped the collective)");
    }
  }
  f->state = FState::kAtWarp;
  W.arrived |= bit;
  if ((W.arrived & mask) == mask) {
    complete_warp(w, mask);
  } else {
    yield_fiber(f);
  }
  f->state = FState::kReady;
  // Shuffles return a value of the input's size, the other collectives a u32.
  if (out) std::memcpy(out, f->wout, op <= kShflXor ? size : 4);
}

unsigned active_mask() {
  Fiber* f = g_cur;
  if (!f) return 0;
  const Warp& W = g_warps[f->linear / 32];
  return W.present & ~W.exited;
}

void trap(const char* file, int line) {
  if (!g_cur) throw Error(ErrorKind::kKernelException, "fusedopt::simt: __trap() outside a kernel at " + site(file, line));
  fail(ErrorKind::kKernelException, "__trap() at " + site(file, line));
}

}  // namespace detail

void* dynamic_shared_memory() { return fusedopt_simt_dynsmem_tls; }

// ==== race checker and traffic counter ========================================
namespace {

// One shadow cell (one cache line) per 4-byte word: the last write and up to
// 3 reads that are not ordered before one another. Records carry their
// segment, so nothing needs clearing between blocks or launches.
struct Rec {
  uint32_t seg;    // see g_seg
  uint32_t clock;  // own warp clock of the accessing thread
  uint32_t pc;     // code address relative to g_pc_base (0: unknown)
  uint16_t tid;
  uint8_t mask;  // bytes of the word
  uint8_t flags;
};
static_assert(sizeof(Rec) == 16, "compact shadow records");
// flags: bit 0 write, bit 1 atomic, bits 4..7 the bytes of the word written
// by this block so far (shared memory only; write records).
enum : uint8_t { kWrite = 1, kAtomic = 2, kInitShift = 4 };
struct alignas(64) Cell {
  Rec w;
  Rec r[3];
};
constexpr size_t kPageWords = 1024;  // 4 KiB of application memory per shadow page
std::unordered_map<uintptr_t, Cell*> g_shadow;
// Direct-mapped cache in front of the map: kernels stream through a few
// arrays at once (param, grad, moments, ...).
struct PageCacheEntry {
  uintptr_t key;
  Cell* page;
};
PageCacheEntry g_page_cache[64];
uintptr_t g_pc_base = 0;

Cell* shadow_cell(uintptr_t word_addr) {
  uintptr_t key = word_addr >> 12;
  PageCacheEntry& e = g_page_cache[key & 63];
  if (e.key != key || !e.page) {
    Cell*& page = g_shadow[key];
    if (!page) {
      page = static_cast<Cell*>(std::aligned_alloc(64, kPageWords * sizeof(Cell)));
      if (!page) throw std::bad_alloc();
      std::memset(static_cast<void*>(page), 0, kPageWords * sizeof(Cell));
    }
    e.key = key;
    e.page = page;
  }
  return &e.page[(word_addr >> 2) & (kPageWords - 1)];
}

void shadow_reset() {
  for (auto& kv : g_shadow) std::free(kv.second);
  g_shadow.clear();
  for (auto& e : g_page_cache) e = PageCacheEntry{0, nullptr};
}

inline uint32_t encode_pc(uintptr_t pc) {
  if (!g_pc_base) g_pc_base = pc > (1ull << 31) ? pc - (1ull << 31) : 1;
  uintptr_t d = pc - g_pc_base;
  return d < (1ull << 32) ? (uint32_t)d : 0u;
}
inline uintptr_t decode_pc(uint32_t v) { return v ? g_pc_base + v : 0; }

struct TlsIndex {
  unsigned long ti_module;
  unsigned long ti_offset;
};
extern "C" void* __tls_get_addr(TlsIndex*);

// __shared__ variables are thread_local: every TLS block of this OS thread is
// treated as shared memory (plus nothing else: stacks are skipped earlier).
void compute_tls_ranges() {
  g_launch.tls.clear();
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void*) -> int {
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const auto& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_TLS || ph.p_memsz == 0) continue;
          void* blk = info->dlpi_tls_data;
          if (!blk && info->dlpi_tls_modid) {
            TlsIndex ti{info->dlpi_tls_modid, 0};
            blk = __tls_get_addr(&ti);  // allocates this thread's block if needed
          }
          if (blk) g_launch.tls.emplace_back((uintptr_t)blk, (uintptr_t)blk + ph.p_memsz);
        }
        return 0;
      },
      nullptr);
  g_launch.tls_ready = true;
  new_segment(true);  // first instrumented access of the launch: mid-block
  reset_clocks();
}

inline bool is_shared(uintptr_t p) {
  for (const auto& r : g_launch.tls)
    if (p >= r.first && p < r.second) return true;
  return false;
}

inline bool rec_valid(const Rec& r, bool shared) {
  // Shared memory is re-used by the next block at the same address, so
  // records of other blocks are stale there.
  return r.mask && r.seg >= (shared ? g_block_first_seg : g_launch_first_seg);
}

inline bool ordered_before(const Rec& r, const Fiber* f) {
  if (r.seg < g_block_first_seg) return false;  // other blocks: never ordered
  if (r.tid == f->linear) return true;
  if (r.seg != g_seg) return true;  // a block barrier separates them
  if ((r.tid >> 5) != (f->linear >> 5)) return false;
  return r.clock <= f->vc[r.tid & 31];  // warp-level sync (shuffle / __syncwarp)
}

void report_race(uintptr_t addr, unsigned size, bool shared, const Rec& prev, bool write, bool atomic, uintptr_t pc) {
  g_launch.race_count++;
  uintptr_t prev_pc = decode_pc(prev.pc);
  for (const auto& r : g_launch.races)
    if (r.pc_a == pc && r.pc_b == prev_pc) return;  // same pair of source locations
  if (g_launch.races.size() >= 8) return;
  RaceRecord rr;
  rr.addr = addr;
  rr.size = size;
  rr.shared = shared;
  rr.block_a = g_block.linear;
  rr.block_b = g_seg_blocks[prev.seg - g_launch_first_seg];
  rr.tid_a = g_cur->linear;
  rr.tid_b = prev.tid;
  rr.write_a = write;
  rr.write_b = prev.flags & kWrite;
  rr.atomic_a = atomic;
  rr.atomic_b = prev.flags & kAtomic;
  rr.pc_a = pc;
  rr.pc_b = prev_pc;
  rr.uninit = false;
  g_launch.races.push_back(rr);
}

// Shared memory starts undefined in every block: reading bytes the block has
// not written is a bug (here it would silently see the previous block's data).
void report_uninit(uintptr_t addr, unsigned size, uintptr_t pc) {
  g_launch.race_count++;
  for (const auto& r : g_launch.races)
    if (r.uninit && r.pc_a == pc) return;
  if (g_launch.races.size() >= 8) return;
  RaceRecord rr{};
  rr.addr = addr;
  rr.size = size;
  rr.shared = true;
  rr.block_a = g_block.linear;
  rr.tid_a = g_cur->linear;
  rr.uninit = true;
  rr.pc_a = pc;
  g_launch.races.push_back(rr);
}

void race_access(uintptr_t p, unsigned size, bool write, bool atomic, bool shared, uintptr_t pc) {
  const Fiber* f = g_cur;
  const uintptr_t end = p + size;
  const Rec cur{g_seg, f->vc[f->linear & 31], encode_pc(pc), (uint16_t)f->linear, 0,
                (uint8_t)((write ? kWrite : 0) | (atomic ? kAtomic : 0))};
  bool uninit_reported = false;
  for (uintptr_t w = p & ~(uintptr_t)3; w < end; w += 4) {
    uint8_t mask = 0;
    for (unsigned b = 0; b < 4; ++b)
      if (w + b >= p && w + b < end) mask |= 1u << b;
    Cell* c = shadow_cell(w);
    auto conflicts = [&](const Rec& r) {
      return rec_valid(r, shared) && (r.mask & mask) && !(atomic && (r.flags & kAtomic)) &&
             !ordered_before(r, f);
    };
    const bool w_valid = rec_valid(c->w, shared);
    if (w_valid && conflicts(c->w)) report_race(p, size, shared, c->w, write, atomic, pc);
    Rec rec = cur;
    rec.mask = mask;
    if (shared) {
      uint8_t init = w_valid ? (uint8_t)(c->w.flags >> kInitShift) : 0;
      if ((!write || atomic) && (init & mask) != mask && !uninit_reported) {
        report_uninit(p, size, pc);
        uninit_reported = true;  // once per access, not per word
      }
      if (write) rec.flags |= (uint8_t)((init | mask) << kInitShift);
    }
    if (write) {
      for (Rec& r : c->r) {
        if (r.mask && conflicts(r)) report_race(p, size, shared, r, write, atomic, pc);
        r.mask = 0;  // later accesses conflict with this write if with any read
      }
      c->w = rec;
    } else {
      // Keep reads that may still race with a later write; a read ordered
      // before this one (or by the same thread) is subsumed by it.
      Rec* slot = nullptr;
      for (Rec& r : c->r)
        if (!rec_valid(r, shared) || r.tid == f->linear || ordered_before(r, f)) { slot = &r; break; }
      if (!slot) slot = &c->r[(f->linear) % 3];
      *slot = rec;
    }
  }
}

inline void on_access(void* addr, unsigned size, bool write, bool atomic, void* pc) {
  if (!g_cur) return;  // host code of an instrumented TU
  uintptr_t p = (uintptr_t)addr;
  if (p - g_stack_region_lo < g_stack_region_span) return;  // thread-local (stack) memory
  if (p - (uintptr_t)&g_ctx < sizeof(g_ctx)) return;         // threadIdx & co
  if (p - (uintptr_t)g_launch.ctx < g_launch.ctx_size) return;  // kernel parameters
  if (!g_launch.tls_ready) compute_tls_ranges();
  bool shared = is_shared(p);
  TrafficStats& t = g_launch.traffic;
  t.instrumented = true;
  if (atomic) {
    t.atomic_ops++;
    (shared ? t.shared_read_bytes : t.global_read_bytes) += size;
    (shared ? t.shared_write_bytes : t.global_write_bytes) += size;
  } else if (write) {
    (shared ? t.shared_write_bytes : t.global_write_bytes) += size;
  } else {
    (shared ? t.shared_read_bytes : t.global_read_bytes) += size;
  }
  if (g_settings.race_check) race_access(p, size, write, atomic, shared, (uintptr_t)pc);
}

// ---- symbolization for reports -------------------------------------------------
std::string symbolize(uintptr_t pc) {
  if (!pc) return "?";
  struct Q {
    uintptr_t pc;
    std::string file;
    uintptr_t bias;
    bool found;
  } q{pc, "", 0, false};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) -> int {
        Q* qq = static_cast<Q*>(data);
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const auto& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD) continue;
          uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
          if (qq->pc >= lo && qq->pc < lo + ph.p_memsz) {
            qq->file = (info->dlpi_name && info->dlpi_name[0]) ? info->dlpi_name : "/proc/self/exe";
            qq->bias = info->dlpi_addr;
            qq->found = true;
            return 1;
          }
        }
        return 0;
      },
      &q);
  if (!q.found) return hex(pc);
  if (q.file == "/proc/self/exe") {  // resolve here: in the addr2line child it would name the shell
    char buf[4096];
    ssize_t len = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (len > 0) q.file.assign(buf, (size_t)len);
  }
  // Without -p, addr2line prints "function\nfile:line" per inlining level,
  // innermost first. Report the innermost source line; if it lies in a
  // library or emulator header, also the first line of user code.
  std::string cmd = "addr2line -C -f -i -e '" + q.file + "' " + hex(pc - q.bias - 1) + " 2>/dev/null";
  std::vector<std::string> locs;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[4096];
    for (int line = 0; std::fgets(buf, sizeof buf, p); ++line) {
      std::string l(buf);
      while (!l.empty() && (l.back() == '\n' || l.back() == ' ')) l.pop_back();
      if (line % 2 == 0) continue;  // function names: noisy for lambdas/templates
      size_t d = l.find(" (discriminator");
      if (d != std::string::npos) l.erase(d);
      locs.push_back(l);
    }
    pclose(p);
  }
  if (locs.empty() || locs[0].find("??") == 0) return q.file + "+" + hex(pc - q.bias);
  auto is_lib = [](const std::string& l) {
    return l.find("/usr/include/") != std::string::npos || l.find("fusedopt_simt") != std::string::npos ||
           l.find("/cuda/include/") != std::string::npos;
  };
  if (!is_lib(locs[0])) return locs[0];
  for (const auto& l : locs)
    if (!is_lib(l)) return locs[0] + " (called from " + l + ")";
  return locs[0];
}

std::string describe_race(const RaceRecord& r) {
  auto kind = [](bool w, bool a) { return a ? "atomic" : w ? "write" : "read"; };
  std::ostringstream os;
  if (r.uninit) {
    os << "read of uninitialized shared memory at " << hex(r.addr) << " (" << r.size << " bytes) by block "
       << block_str(r.block_a) << " thread " << thread_str(r.tid_a) << " at " << symbolize(r.pc_a)
       << ": no thread of this block wrote it (shared memory is undefined at block start)";
    return os.str();
  }
  os << "data race on " << (r.shared ? "shared" : "global") << " memory at " << hex(r.addr) << " (" << r.size
     << " bytes): " << kind(r.write_a, r.atomic_a) << " by block " << block_str(r.block_a) << " thread "
     << thread_str(r.tid_a) << " at " << symbolize(r.pc_a) << " conflicts with earlier "
     << kind(r.write_b, r.atomic_b) << " by block " << block_str(r.block_b) << " thread " << thread_str(r.tid_b)
     << " at " << symbolize(r.pc_b)
     << (r.block_a == r.block_b ? " (no __syncthreads/__syncwarp between them)" : " (different blocks)");
  return os.str();
}

// ---- launch driver -----------------------------------------------------------
std::string validate(const detail::LaunchSpec& s) {
  const uint64_t* b = s.block;
  const uint64_t* g = s.grid;
  auto d = [](const uint64_t* v) { return dim_str(v[0], v[1], v[2]); };
  if (!b[0] || !b[1] || !b[2]) return "block " + d(b) + " has a zero dimension";
  if (b[0] > 1024 || b[1] > 1024 || b[2] > 64) return "block " + d(b) + " exceeds the per-dimension limit (1024,1024,64)";
  if (b[0] * b[1] * b[2] > 1024) return "block " + d(b) + " has " + std::to_string(b[0] * b[1] * b[2]) + " threads (max 1024)";
  if (!g[0] || !g[1] || !g[2]) return "grid " + d(g) + " has a zero dimension";
  if (g[0] > 0x7fffffffull || g[1] > 65535 || g[2] > 65535) return "grid " + d(g) + " exceeds the limit (2^31-1,65535,65535)";
  if (s.smem > g_settings.max_dyn_smem)
    return "dynamic shared memory of " + std::to_string(s.smem) + " bytes exceeds the limit of " +
           std::to_string(g_settings.max_dyn_smem) + " bytes";
  return "";
}

// After a failure: let every fiber that is still inside yield_fiber unwind
// its frames (FiberAbort), so no destructor is skipped and no memory leaks.
void unwind_suspended() {
  g_unwinding = true;
  for (uint32_t i = 0; i < g_block.nthreads; ++i)
    if (g_fibers[i].suspended) resume(&g_fibers[i]);
  g_unwinding = false;
}

void run_block(uint64_t linear, std::vector<uint32_t>& order, uint64_t& rng) {
  const dim3& gd = g_ctx.grid_dim;
  const dim3& bd = g_ctx.block_dim;
  g_block.linear = linear;
  g_block.idx = make_uint3((unsigned)(linear % gd.x), (unsigned)((linear / gd.x) % gd.y),
                           (unsigned)(linear / ((uint64_t)gd.x * gd.y)));
  g_ctx.block_idx = g_block.idx;
  uint32_t n = g_block.nthreads;
  g_block.live = n;
  g_block.exited = 0;
  g_block.arrived = 0;
  g_block.epoch = 0;
  for (uint32_t w = 0; w < (n + 31) / 32; ++w) {
    uint32_t lanes = std::min<uint32_t>(32, n - w * 32);
    g_warps[w].present = lanes == 32 ? ~0u : ((1u << lanes) - 1);
    g_warps[w].exited = 0;
    g_warps[w].arrived = 0;
  }
  for (uint32_t i = 0; i < n; ++i) {
    Fiber& f = g_fibers[i];
    f.linear = i;
    f.tid = make_uint3(i % bd.x, (i / bd.x) % bd.y, i / (bd.x * bd.y));
    init_fiber(&f);
  }
  if (g_launch.tls_ready) {
    new_segment(true);
    reset_clocks();
  }
  // Uninitialised dynamic shared memory reads as NaN / all-ones, not zeros.
  if (g_launch.spec->smem) std::memset(fusedopt_simt_dynsmem_tls, 0xff, g_launch.spec->smem);

  for (;;) {
    if (g_settings.schedule == Schedule::kRandom)
      for (uint32_t i = n; i > 1; --i) std::swap(order[i - 1], order[splitmix(rng) % i]);
    bool ran = false;
    for (uint32_t k = 0; k < n; ++k) {
      Fiber* f = &g_fibers[order[k]];
      if (f->state != FState::kReady) continue;
      resume(f);
      ran = true;
      if (g_launch.failed) return unwind_suspended();
    }
    if (g_block.live == 0) return;
    if (!ran) break;
  }
  // Every live thread is blocked and nothing can wake it: describe why,
  // grouping threads that wait at the same place.
  struct Group {
    FState state;
    int op;
    const char* file;
    int line;
    uint32_t missing;
    uint32_t count;
    uint32_t first;
  };
  std::vector<Group> groups;
  for (uint32_t i = 0; i < n; ++i) {
    Fiber& f = g_fibers[i];
    if (f.state != FState::kAtBarrier && f.state != FState::kAtWarp) continue;
    int op = f.state == FState::kAtBarrier ? f.bop : f.wop;
    uint32_t missing = f.state == FState::kAtWarp ? f.wmask & ~g_warps[i / 32].arrived : 0;
    bool merged = false;
    for (Group& g : groups)
      if (g.state == f.state && g.op == op && g.missing == missing && same_site(g.file, g.line, f.wfile, f.wline)) {
        g.count++;
        merged = true;
        break;
      }
    if (!merged) groups.push_back(Group{f.state, op, f.wfile, f.wline, missing, 1, i});
  }
  std::ostringstream os;
  os << "deadlock: all " << g_block.live << " live thread(s) of the block are blocked:";
  for (size_t k = 0; k < groups.size() && k < 8; ++k) {
    const Group& g = groups[k];
    os << (k ? ";" : "") << " " << g.count << " thread(s) ";
    if (g.state == FState::kAtBarrier)
      os << "at " << barrier_name(g.op) << " (" << site(g.file, g.line) << ")";
    else
      os << "in " << warp_op_name(g.op) << " (" << site(g.file, g.line) << ") waiting for lane(s) "
         << lanes_str(g.missing) << " of their warp";
    os << ", e.g. thread " << thread_str(g.first);
  }
  scheduler_fail(ErrorKind::kDeadlock, os.str());
  unwind_suspended();
}

void store_result(const std::string& err, ErrorKind kind, bool has_err) {
  std::lock_guard<std::mutex> lk(g_result_mutex);
  if (has_err) {
    g_has_last_error = true;
    g_last_error = err;
    g_last_error_kind = kind;
  }
}

}  // namespace

namespace detail {

void note_atomic(const volatile void* addr, unsigned size, void* pc) {
  on_access(const_cast<void*>(addr), size, true, true, pc);
}

void run_launch(const LaunchSpec& spec, Thunk body, void* ctx, size_t ctx_size) {
  if (t_in_launch)
    throw Error(ErrorKind::kUsage, std::string("fusedopt::simt: kernel `") + spec.kernel + "` launched at " +
                                       site(spec.file, spec.line) +
                                       " from inside a kernel (dynamic parallelism is not emulated)");
  std::lock_guard<std::recursive_mutex> lock(g_launch_mutex);
  init_settings();
  {
    std::lock_guard<std::mutex> lk(g_result_mutex);
    g_last_launch.kernel = spec.kernel;
    g_last_launch.file = spec.file;
    g_last_launch.line = spec.line;
    g_last_launch.blocks = spec.grid[0] * spec.grid[1] * spec.grid[2];
    g_last_launch.threads_per_block = spec.block[0] * spec.block[1] * spec.block[2];
    g_last_launch.dynamic_smem = spec.smem;
    g_launch_count++;
    g_last_races.clear();
    g_last_traffic = TrafficStats();
  }
  g_launch = LaunchState();
  g_launch.spec = &spec;
  std::string bad = validate(spec);
  if (!bad.empty()) {
    std::string msg = launch_prefix(ErrorKind::kInvalidLaunch) + ": invalid launch configuration: " + bad;
    store_result(msg, ErrorKind::kInvalidLaunch, true);
    if (g_settings.throw_on_error) throw Error(ErrorKind::kInvalidLaunch, msg);
    return;
  }
  // Bound shadow memory (8192 pages = 512 MiB of shadow for 32 MiB of
  // data); far before segment ids could wrap, start over.
  if (g_shadow.size() > 8192 || g_seg > 0xf0000000u) {
    shadow_reset();
    g_seg = 0;
  }
  g_launch_first_seg = g_seg + 1;
  g_block_first_seg = g_seg + 1;
  g_seg_blocks.clear();
  g_launch.body = body;
  g_launch.ctx = ctx;
  g_launch.ctx_size = ctx_size;
  ensure_stacks(1024);
  install_segv_handler();
  g_ctx.grid_dim = dim3((unsigned)spec.grid[0], (unsigned)spec.grid[1], (unsigned)spec.grid[2]);
  g_ctx.block_dim = dim3((unsigned)spec.block[0], (unsigned)spec.block[1], (unsigned)spec.block[2]);
  g_block = BlockState();
  g_block.nthreads = (uint32_t)(spec.block[0] * spec.block[1] * spec.block[2]);
#if defined(FUSEDOPT_SIMT_ASAN)
  // Dynamic shared memory past the requested size is off limits.
  ASAN_POISON_MEMORY_REGION(fusedopt_simt_dynsmem_tls + spec.smem, kMaxDynSmemCap - spec.smem);
#endif

  t_in_launch = true;
  uint64_t nblocks = spec.grid[0] * spec.grid[1] * spec.grid[2];
  uint64_t rng = g_settings.seed * 0x2545f4914f6cdd1dull + g_launch_count;
  std::vector<uint32_t> order(g_block.nthreads);
  for (uint32_t i = 0; i < g_block.nthreads; ++i)
    order[i] = g_settings.schedule == Schedule::kReverse ? g_block.nthreads - 1 - i : i;
  // Random block order without materialising it: i -> (a*i + c) mod n with a
  // coprime to n is a permutation.
  uint64_t a = 1, c = 0;
  if (g_settings.schedule == Schedule::kRandom && nblocks > 1) {
    c = splitmix(rng) % nblocks;
    do { a = splitmix(rng) % nblocks; } while (a == 0 || std::gcd(a, nblocks) != 1);
  }
  for (uint64_t i = 0; i < nblocks && !g_launch.failed; ++i) {
    uint64_t b = i;
    if (g_settings.schedule == Schedule::kReverse) b = nblocks - 1 - i;
    else if (g_settings.schedule == Schedule::kRandom) b = (uint64_t)(((unsigned __int128)a * i + c) % nblocks);
    run_block(b, order, rng);
  }
  t_in_launch = false;
#if defined(FUSEDOPT_SIMT_ASAN)
  ASAN_UNPOISON_MEMORY_REGION(fusedopt_simt_dynsmem_tls, kMaxDynSmemCap);
  // Belt and braces after a failure: no fiber frame poisoning may survive on
  // the stacks the next launch reuses.
  if (g_launch.failed) ASAN_UNPOISON_MEMORY_REGION(g_stack_region, g_stack_stride * g_stack_count);
#endif

  // Publish traffic and races.
  std::vector<std::string> races;
  for (const auto& r : g_launch.races) races.push_back(describe_race(r));
  {
    std::lock_guard<std::mutex> lk(g_result_mutex);
    g_launch.traffic.launches = 1;
    g_last_traffic = g_launch.traffic;
    g_total_traffic.global_read_bytes += g_launch.traffic.global_read_bytes;
    g_total_traffic.global_write_bytes += g_launch.traffic.global_write_bytes;
    g_total_traffic.shared_read_bytes += g_launch.traffic.shared_read_bytes;
    g_total_traffic.shared_write_bytes += g_launch.traffic.shared_write_bytes;
    g_total_traffic.atomic_ops += g_launch.traffic.atomic_ops;
    g_total_traffic.launches += 1;
    g_total_traffic.instrumented |= g_launch.traffic.instrumented;
    g_last_races = races;
    g_total_races += g_launch.race_count;
  }
  if (g_launch.failed) {
    store_result(g_launch.message, g_launch.kind, true);
    if (g_settings.throw_on_error) throw Error(g_launch.kind, g_launch.message);
    return;
  }
  if (g_launch.race_count) {
    std::string msg = launch_prefix(ErrorKind::kRace) + ": " + std::to_string(g_launch.race_count) +
                      " racy or uninitialized shared-memory access(es); first: " + races.front();
    for (size_t i = 1; i < races.size() && i < 4; ++i) msg += "\n  also: " + races[i];
    store_result(msg, ErrorKind::kRace, true);
    if (g_settings.throw_on_race && g_settings.throw_on_error) throw Error(ErrorKind::kRace, msg);
  }
}

}  // namespace detail

// ==== public API ================================================================
const char* error_kind_name(ErrorKind k) {
  switch (k) {
    case ErrorKind::kInvalidLaunch: return "invalid launch";
    case ErrorKind::kDivergentBarrier: return "divergent barrier";
    case ErrorKind::kWarpSync: return "warp synchronisation error";
    case ErrorKind::kDeadlock: return "deadlock";
    case ErrorKind::kRace: return "data race";
    case ErrorKind::kKernelException: return "kernel failure";
    case ErrorKind::kUsage: return "usage error";
  }
  return "error";
}

bool has_last_error() { std::lock_guard<std::mutex> lk(g_result_mutex); return g_has_last_error; }
std::string last_error() { std::lock_guard<std::mutex> lk(g_result_mutex); return g_has_last_error ? g_last_error : ""; }
ErrorKind last_error_kind() { std::lock_guard<std::mutex> lk(g_result_mutex); return g_last_error_kind; }
void clear_last_error() {
  std::lock_guard<std::mutex> lk(g_result_mutex);
  g_has_last_error = false;
  g_last_error.clear();
}
void set_throw_on_error(bool on) { std::lock_guard<std::recursive_mutex> l(g_launch_mutex); init_settings(); g_settings.throw_on_error = on; }
bool throw_on_error() { std::lock_guard<std::recursive_mutex> l(g_launch_mutex); init_settings(); return g_settings.throw_on_error; }

void set_schedule(Schedule s, uint64_t seed) {
  std::lock_guard<std::recursive_mutex> l(g_launch_mutex);
  init_settings();
  g_settings.schedule = s;
  g_settings.seed = seed;
}
Schedule schedule() { std::lock_guard<std::recursive_mutex> l(g_launch_mutex); init_settings(); return g_settings.schedule; }
uint64_t schedule_seed() { std::lock_guard<std::recursive_mutex> l(g_launch_mutex); init_settings(); return g_settings.seed; }
bool set_schedule_from_string(const std::string& spec) {
  Schedule s;
  uint64_t seed;
  if (!parse_schedule(spec, &s, &seed)) return false;
  set_schedule(s, seed);
  return true;
}

TrafficStats last_launch_traffic() { std::lock_guard<std::mutex> lk(g_result_mutex); return g_last_traffic; }
TrafficStats total_traffic() { std::lock_guard<std::mutex> lk(g_result_mutex); return g_total_traffic; }
void reset_traffic() {
  std::lock_guard<std::mutex> lk(g_result_mutex);
  g_total_traffic = TrafficStats();
  g_last_traffic = TrafficStats();
}

void set_race_check(bool on) { std::lock_guard<std::recursive_mutex> l(g_launch_mutex); init_settings(); g_settings.race_check = on; }
bool race_check_enabled() { std::lock_guard<std::recursive_mutex> l(g_launch_mutex); init_settings(); return g_settings.race_check; }
void set_throw_on_race(bool on) { std::lock_guard<std::recursive_mutex> l(g_launch_mutex); init_settings(); g_settings.throw_on_race = on; }
std::vector<std::string> last_launch_races() { std::lock_guard<std::mutex> lk(g_result_mutex); return g_last_races; }
uint64_t total_race_count() { std::lock_guard<std::mutex> lk(g_result_mutex); return g_total_races; }
void reset_race_count() { std::lock_guard<std::mutex> lk(g_result_mutex); g_total_races = 0; }

LaunchInfo last_launch() { std::lock_guard<std::mutex> lk(g_result_mutex); return g_last_launch; }
uint64_t launch_count() { std::lock_guard<std::mutex> lk(g_result_mutex); return g_launch_count; }
void set_max_dynamic_smem(uint64_t bytes) {
  std::lock_guard<std::recursive_mutex> l(g_launch_mutex);
  init_settings();
  g_settings.max_dyn_smem = std::min(bytes, kMaxDynSmemCap);
}
uint64_t max_dynamic_smem() { std::lock_guard<std::recursive_mutex> l(g_launch_mutex); init_settings(); return g_settings.max_dyn_smem; }

}  // namespace simt
}  // namespace fusedopt

// ==== instrumentation hooks (g++ -fsanitize=thread without the TSan runtime) ====
// Each hook receives the accessed address; the caller's PC identifies the
// kernel source line for race reports.
#define FUSEDOPT_SIMT_HOOK(name, size, write)                                                   \
  extern "C" __attribute__((visibility("default"))) void name(void* addr) {                     \
    fusedopt::simt::on_access(addr, size, write, false, __builtin_return_address(0));          \
  }
#define FUSEDOPT_SIMT_HOOKS(n)                                   \
  FUSEDOPT_SIMT_HOOK(__tsan_read##n, n, false)                   \
  FUSEDOPT_SIMT_HOOK(__tsan_write##n, n, true)                   \
  FUSEDOPT_SIMT_HOOK(__tsan_unaligned_read##n, n, false)         \
  FUSEDOPT_SIMT_HOOK(__tsan_unaligned_write##n, n, true)         \
  FUSEDOPT_SIMT_HOOK(__tsan_volatile_read##n, n, false)          \
  FUSEDOPT_SIMT_HOOK(__tsan_volatile_write##n, n, true)          \
  FUSEDOPT_SIMT_HOOK(__tsan_unaligned_volatile_read##n, n, false) \
  FUSEDOPT_SIMT_HOOK(__tsan_unaligned_volatile_write##n, n, true)
FUSEDOPT_SIMT_HOOKS(1)
FUSEDOPT_SIMT_HOOKS(2)
FUSEDOPT_SIMT_HOOKS(4)
FUSEDOPT_SIMT_HOOKS(8)
FUSEDOPT_SIMT_HOOKS(16)
#undef FUSEDOPT_SIMT_HOOKS
#undef FUSEDOPT_SIMT_HOOK

extern "C" {
__attribute__((visibility("default"))) void __tsan_read_range(void* addr, long size) {
  fusedopt::simt::on_access(addr, (unsigned)size, false, false, __builtin_return_address(0));
}
__attribute__((visibility("default"))) void __tsan_write_range(void* addr, long size) {
  fusedopt::simt::on_access(addr, (unsigned)size, true, false, __builtin_return_address(0));
}
__attribute__((visibility("default"))) void __tsan_func_entry(void*) {}
__attribute__((visibility("default"))) void __tsan_func_exit(void*) {}
__attribute__((visibility("default"))) void __tsan_init() {}
__attribute__((visibility("default"))) void __tsan_vptr_update(void*, void*) {}
__attribute__((visibility("default"))) void __tsan_vptr_read(void*) {}
}

// Atomic builtins in instrumented code (std::atomic in host code of a kernel
// TU, __atomic_* in device code) are lowered to these calls by g++. They must
// really perform the operation; seq_cst is used whatever order was asked for.
// Signatures follow g++'s built-in declarations (unsigned types, void*).
#define FUSEDOPT_SIMT_ATOMIC_HOOKS(bits, T)                                                        \
  extern "C" __attribute__((visibility("default"))) T __tsan_atomic##bits##_load(const volatile void* a, int) { \
    fusedopt::simt::on_access(const_cast<void*>(a), sizeof(T), false, true, __builtin_return_address(0));     \
    return __atomic_load_n(static_cast<const volatile T*>(a), __ATOMIC_SEQ_CST);                  \
  }                                                                                                \
  extern "C" __attribute__((visibility("default"))) void __tsan_atomic##bits##_store(volatile void* a, T v, int) { \
    fusedopt::simt::on_access(const_cast<void*>(a), sizeof(T), true, true, __builtin_return_address(0));      \
    __atomic_store_n(static_cast<volatile T*>(a), v, __ATOMIC_SEQ_CST);                           \
  }                                                                                                \
  FUSEDOPT_SIMT_ATOMIC_RMW(bits, T, exchange, __atomic_exchange_n)                                 \
  FUSEDOPT_SIMT_ATOMIC_RMW(bits, T, fetch_add, __atomic_fetch_add)                                 \
  FUSEDOPT_SIMT_ATOMIC_RMW(bits, T, fetch_sub, __atomic_fetch_sub)                                 \
  FUSEDOPT_SIMT_ATOMIC_RMW(bits, T, fetch_and, __atomic_fetch_and)                                 \
  FUSEDOPT_SIMT_ATOMIC_RMW(bits, T, fetch_or, __atomic_fetch_or)                                   \
  FUSEDOPT_SIMT_ATOMIC_RMW(bits, T, fetch_xor, __atomic_fetch_xor)                                 \
  FUSEDOPT_SIMT_ATOMIC_RMW(bits, T, fetch_nand, __atomic_fetch_nand)                               \
  extern "C" __attribute__((visibility("default"))) bool __tsan_atomic##bits##_compare_exchange_strong( \
      volatile void* a, void* expected, T desired, int, int) {                                     \
    fusedopt::simt::on_access(const_cast<void*>(a), sizeof(T), true, true, __builtin_return_address(0));      \
    return __atomic_compare_exchange_n(static_cast<volatile T*>(a), static_cast<T*>(expected), desired, false, \
                                       __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                        \
  }                                                                                                \
  extern "C" __attribute__((visibility("default"))) bool __tsan_atomic##bits##_compare_exchange_weak(   \
      volatile void* a, void* expected, T desired, int, int) {                                     \
    fusedopt::simt::on_access(const_cast<void*>(a), sizeof(T), true, true, __builtin_return_address(0));      \
    return __atomic_compare_exchange_n(static_cast<volatile T*>(a), static_cast<T*>(expected), desired, true,  \
                                       __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                        \
  }
#define FUSEDOPT_SIMT_ATOMIC_RMW(bits, T, name, builtin)                                                  \
  extern "C" __attribute__((visibility("default"))) T __tsan_atomic##bits##_##name(volatile void* a, T v, int) { \
    fusedopt::simt::on_access(const_cast<void*>(a), sizeof(T), true, true, __builtin_return_address(0));   \
    return builtin(static_cast<volatile T*>(a), v, __ATOMIC_SEQ_CST);                                    \
  }
FUSEDOPT_SIMT_ATOMIC_HOOKS(8, unsigned char)
FUSEDOPT_SIMT_ATOMIC_HOOKS(16, unsigned short)
FUSEDOPT_SIMT_ATOMIC_HOOKS(32, unsigned int)
FUSEDOPT_SIMT_ATOMIC_HOOKS(64, unsigned long)
#undef FUSEDOPT_SIMT_ATOMIC_RMW
#undef FUSEDOPT_SIMT_ATOMIC_HOOKS

extern "C" {
__attribute__((visibility("default"))) void __tsan_atomic_thread_fence(int) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
__attribute__((visibility("default"))) void __tsan_atomic_signal_fence(int) { __atomic_signal_fence(__ATOMIC_SEQ_CST); }
}
