// The emulator's scheduler (model and limits in emulator.h): a grid's blocks one after another, a block's
// threads as fibers that run in turn until each reaches a barrier or ends, barriers and warp exchanges
// opened once every thread they wait for has arrived.
#include <sys/mman.h>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "cuda/emulator/emulator.h"

// ---- fiber contexts ---------------------------------------------------------------------------------
// On x86-64 a switch saves the callee-saved registers and the floating-point control words (as the
// SysV ABI requires) on the old stack and restores them from the new one: about 25 instructions, where ucontext's
// swapcontext makes a system call (for the signal mask) each time and took half the emulator's time. Elsewhere,
// ucontext.
#if defined(__x86_64__)
extern "C" void minidl_emu_switch(void** save_sp, void* load_sp);
asm(R"(
  .pushsection .text
  .globl minidl_emu_switch
  .type minidl_emu_switch, @function
minidl_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size minidl_emu_switch, .-minidl_emu_switch
  .popsection
)");

#endif

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace {

// A fiber's saved state and its stack's extent (AddressSanitizer is told of each switch, so that it
// checks accesses against the right stack).
struct Context {
#if defined(__x86_64__)
  void* sp = nullptr;
#else
  ucontext_t uc;
#endif
  const void* bottom = nullptr;
  size_t size = 0;
};

// A context that, switched to, starts entry on the given stack.
void make_context(Context& c, void* stack, size_t bytes, void (*entry)()) {
#if defined(__SANITIZE_ADDRESS__)
  ASAN_UNPOISON_MEMORY_REGION(stack, bytes);  // a reused stack keeps the last fiber's frame markings
#endif
  c.bottom = stack;
  c.size = bytes;
#if defined(__x86_64__)
  // Laid out so that minidl_emu_switch's pops and ret enter `entry` aligned as a called function is.
  auto top = reinterpret_cast<uintptr_t>(stack) + bytes;
  top &= ~uintptr_t{15};
  auto* slot = reinterpret_cast<void**>(top);
  *--slot = nullptr;                              // entry's return address: it never returns
  *--slot = reinterpret_cast<void*>(entry);       // popped by ret
  for (int r = 0; r < 6; ++r) *--slot = nullptr;  // rbp, rbx, r12-r15
  // MXCSR and the x87 control word: the defaults (round to nearest, exceptions masked).
  *--slot = reinterpret_cast<void*>(uintptr_t{0x037F} << 32 | 0x1F80);
  c.sp = slot;
#else
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = bytes;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
#endif
}

// `from_ends`: the fiber switching away has finished and is never resumed.
void switch_context(Context& from, Context& to, bool from_ends = false) {
#if defined(__SANITIZE_ADDRESS__)
  void* fake_stack = nullptr;
  __sanitizer_start_switch_fiber(from_ends ? nullptr : &fake_stack, to.bottom, to.size);
#else
  (void)from_ends;
#endif
#if defined(__x86_64__)
  minidl_emu_switch(&from.sp, to.sp);
#else
  swapcontext(&from.uc, &to.uc);
#endif
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
}

// The first thing a fiber does: learn the extent of the scheduler's stack (the host thread's own), which
// AddressSanitizer needs for the switches back to it.
void entered_fiber(Context& scheduler) {
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(nullptr, &scheduler.bottom, &scheduler.size);
#else
  (void)scheduler;
#endif
}

}  // namespace

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace minidl::emu {

// cudaFuncSetAttribute's dynamic shared memory limits, by kernel (runtime.cpp sets them).
std::mutex& attribute_mutex();
std::unordered_map<const void*, int>& shared_limits();

namespace {

constexpr size_t kStackBytes = 256 * 1024;  // the TF32 GEMM keeps 3 KB of fragments per thread
constexpr size_t kDefaultSharedLimit = 48 * 1024, kMaxThreads = 1024;

enum class State : uint8_t { Ready, AtBarrier, AtWarp, Done };

struct PendingCopy {
  unsigned char* dst;
  const unsigned char* src;
  size_t bytes, zero_fill;
  void run() const {
    std::memcpy(dst, src, bytes - zero_fill);
    std::memset(dst + (bytes - zero_fill), 0, zero_fill);
  }
};

struct Fiber {
  Context context;
  State state = State::Ready;
  uint3 index{};
  const char* site = nullptr;  // the __syncthreads this thread waits at (file:line)
  // The warp exchange this thread waits in.
  WarpOp op{};
  unsigned mask = 0;
  int arg = 0, width = 32;
  uint64_t value = 0, result = 0;
  // Its cp.async copies: committed groups first, then the ones not yet committed.
  std::deque<std::vector<PendingCopy>> groups;
  std::vector<PendingCopy> open_group;
};

// One host thread's running block. Fibers and stacks are kept from launch to launch.
struct BlockRun {
  std::vector<Fiber> fibers;
  std::vector<void*> stacks;
  Context scheduler;
  int current = -1, count = 0;
  void (*body)(void*) = nullptr;
  void* closure = nullptr;
  const char* kernel = "";
  std::string error;
  // Dynamic shared memory: exactly the launch's bytes, so that AddressSanitizer sees an overrun.
  unsigned char* dynamic_shared = nullptr;
  size_t dynamic_bytes = 0, shared_limit = 0, static_shared = 0;
  std::vector<const void*> poisoned;  // the static shared variables already filled in this block

  ~BlockRun() {
    for (void* s : stacks) munmap(s, kStackBytes);
    if (dynamic_shared) ::operator delete (dynamic_shared, std::align_val_t{128});
  }
  void set_dynamic_shared(size_t bytes) {
    if (dynamic_shared) ::operator delete (dynamic_shared, std::align_val_t{128});
    dynamic_shared = static_cast<unsigned char*>(::operator new (bytes, std::align_val_t{128}));
    dynamic_bytes = bytes;
  }
  Fiber& self() { return fibers[current]; }
};

thread_local BlockRun* t_run = nullptr;

BlockRun& running(const char* what) {
  if (!t_run) {
    std::fprintf(stderr, "cuda emulator: %s called outside a kernel\n", what);
    std::abort();
  }
  return *t_run;
}

std::string where(const BlockRun& run, int thread) {
  std::ostringstream os;
  const uint3 t = run.fibers[thread].index;
  os << run.kernel << ", block (" << blockIdx.x << "," << blockIdx.y << "," << blockIdx.z << "), thread (" << t.x << ","
     << t.y << "," << t.z << ")";
  return os.str();
}

// Stops the grid after a fault found in a thread (run.error says what): that fiber is never resumed,
// so the message must already be built, not a temporary on its stack.
[[noreturn]] void abandon_thread(BlockRun& run) {
  switch_context(run.self().context, run.scheduler, true);
  std::abort();  // never resumed
}

void yield(BlockRun& run, State state) {
  run.self().state = state;
  switch_context(run.self().context, run.scheduler);
}

void finish_copies(Fiber& f) {
  for (const auto& group : f.groups)
    for (const PendingCopy& c : group) c.run();
  f.groups.clear();
  for (const PendingCopy& c : f.open_group) c.run();
  f.open_group.clear();
}

void fiber_main() {
  BlockRun& run = *t_run;
  entered_fiber(run.scheduler);
  run.body(run.closure);
  finish_copies(run.self());
  run.self().state = State::Done;
  switch_context(run.self().context, run.scheduler, true);  // never resumed: its stack serves a new fiber
  std::abort();
}

const char* op_name(WarpOp op) {
  switch (op) {
    case WarpOp::Sync: return "__syncwarp";
    case WarpOp::Index: return "__shfl_sync";
    case WarpOp::Up: return "__shfl_up_sync";
    case WarpOp::Down: return "__shfl_down_sync";
    case WarpOp::Xor: return "__shfl_xor_sync";
  }
  return "?";
}

// The lane whose value lane `lane` receives, or `lane` itself where CUDA returns the caller's own value.
// Source lanes wrap modulo the width and a lane mask uses its low five bits, as shfl.sync does; a delta
// outside [0, 32) reaches past any group, so the caller's own value.
int source_lane(const Fiber& f, int lane) {
  const int w = f.width, start = lane & ~(w - 1);
  const bool far = f.arg < 0 || f.arg >= 32;
  switch (f.op) {
    case WarpOp::Sync: return lane;
    case WarpOp::Index: return start + (f.arg & (w - 1));
    case WarpOp::Up: return !far && lane - f.arg >= start ? lane - f.arg : lane;
    case WarpOp::Down: return !far && lane + f.arg < start + w ? lane + f.arg : lane;
    case WarpOp::Xor: return (lane ^ (f.arg & 31)) < start + w ? lane ^ (f.arg & 31) : lane;
  }
  return lane;
}

// Opens every warp exchange whose lanes have all arrived; false with run.error set on a fault.
bool open_warp_exchanges(BlockRun& run, bool& opened) {
  for (int w0 = 0; w0 < run.count; w0 += 32) {
    const int lanes = std::min(32, run.count - w0);
    for (int l = 0; l < lanes; ++l) {
      Fiber& f = run.fibers[w0 + l];
      if (f.state != State::AtWarp) continue;
      auto describe = [&](int lane) { return where(run, w0 + lane); };
      // The group is the lanes of f's mask; each must be here, in the same exchange.
      bool complete = true;
      for (int m = 0; m < 32; ++m) {
        if (!(f.mask >> m & 1u)) continue;
        if (m >= lanes) {
          run.error = op_name(f.op) + std::string(" in ") + describe(l) + ": the mask names lane " + std::to_string(m) +
                      ", which this block of " + std::to_string(run.count) + " threads lacks";
          return false;
        }
        const Fiber& g = run.fibers[w0 + m];
        if (g.state == State::Done || g.state == State::AtBarrier) {
          run.error = op_name(f.op) + std::string(" in ") + describe(l) + ": lane " + std::to_string(m) +
                      " of its mask " + (g.state == State::Done ? "has exited" : "waits at __syncthreads");
          return false;
        }
        if (g.state == State::AtWarp && (g.op != f.op || g.mask != f.mask || g.width != f.width)) {
          run.error = op_name(f.op) + std::string(" in ") + describe(l) + ": lane " + std::to_string(m) +
                      " of its mask is in another exchange (" + op_name(g.op) + ")";
          return false;
        }
        complete = complete && g.state == State::AtWarp;
      }
      if (!(f.mask >> l & 1u)) {
        run.error = op_name(f.op) + std::string(" in ") + describe(l) + ": the calling lane is not in its own mask";
        return false;
      }
      if (!complete) continue;
      for (int m = 0; m < lanes; ++m) {
        if (!(f.mask >> m & 1u)) continue;
        Fiber& g = run.fibers[w0 + m];
        const int src = source_lane(g, m);
        if (src < 0 || src >= lanes || !(f.mask >> src & 1u)) {
          run.error = op_name(g.op) + std::string(" in ") + describe(m) + ": reads lane " + std::to_string(src) +
                      ", which is not in the mask";
          return false;
        }
        g.result = run.fibers[w0 + src].value;
      }
      for (int m = 0; m < lanes; ++m)
        if (f.mask >> m & 1u) run.fibers[w0 + m].state = State::Ready;
      opened = true;
    }
  }
  return true;
}

}  // namespace

// ---- the launch count (MINIDL_CUDA_EMULATOR_LAUNCHES) ----------------------------------------------
namespace {

struct LaunchCount {
  struct Row {
    int64_t launches = 0;
    uint64_t blocks = 0, threads = 0;
  };
  std::mutex mutex;
  const char* file = std::getenv("MINIDL_CUDA_EMULATOR_LAUNCHES");
  bool on = file && *file;
  std::map<std::string, Row> rows;  // by "kernel  grid x y z  block x y z"

  ~LaunchCount() {
    if (!file || !*file) return;
    if (FILE* f = std::fopen(file, "w")) {
      std::fputs(table().c_str(), f);
      std::fclose(f);
    } else {
      std::fprintf(stderr, "cuda emulator: cannot write the launch count to %s\n", file);
    }
  }
  void add(const char* kernel, const LaunchConfig& c) {
    const std::lock_guard lock(mutex);
    if (!on) return;
    std::ostringstream key;
    key << kernel << "  grid " << c.grid.x << " x " << c.grid.y << " x " << c.grid.z << "  block " << c.block.x << " x "
        << c.block.y << " x " << c.block.z;
    Row& r = rows[key.str()];
    ++r.launches;
    r.blocks = uint64_t{c.grid.x} * c.grid.y * c.grid.z;
    r.threads = uint64_t{c.block.x} * c.block.y * c.block.z;
  }
  std::string table() {
    const std::lock_guard lock(mutex);
    std::vector<std::pair<const std::string*, const Row*>> sorted;
    int64_t launches = 0;
    for (const auto& [key, row] : rows) {
      sorted.emplace_back(&key, &row);
      launches += row.launches;
    }
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const auto& a, const auto& b) { return a.second->launches > b.second->launches; });
    std::ostringstream out;
    out << "launches  blocks  threads  kernel\n";
    for (const auto& [key, row] : sorted)
      out << row->launches << "  " << row->blocks << "  " << row->threads << "  " << *key << "\n";
    out << launches << " launches of " << sorted.size() << " kernel configurations\n";
    return out.str();
  }
};

LaunchCount& launch_count() {
  static LaunchCount count;
  return count;
}

}  // namespace

void count_launches(bool on) {
  LaunchCount& c = launch_count();
  const std::lock_guard lock(c.mutex);
  if (on) c.rows.clear();
  c.on = on;
}

std::string launch_table() { return launch_count().table(); }

bool reverse_order() {
  static const bool reverse = [] {
    const char* order = std::getenv("MINIDL_CUDA_EMULATOR_ORDER");
    if (!order || std::string(order) == "forward") return false;
    if (std::string(order) == "reverse") return true;
    std::fprintf(stderr, "cuda emulator: MINIDL_CUDA_EMULATOR_ORDER is '%s'; expected forward or reverse\n", order);
    std::exit(2);
  }();
  return reverse;
}

namespace {

// Runs one block to its end; false with run.error set on a fault.
bool run_block(BlockRun& run) {
  const dim3 b = blockDim;
  for (int i = 0; i < run.count; ++i) {
    Fiber& f = run.fibers[i];
    f.state = State::Ready;
    f.index = uint3{static_cast<unsigned>(i) % b.x, static_cast<unsigned>(i) / b.x % b.y,
                    static_cast<unsigned>(i) / (b.x * b.y)};
    f.groups.clear();
    f.open_group.clear();
    make_context(f.context, run.stacks[i], kStackBytes, fiber_main);
  }
  for (;;) {
    for (int k = 0; k < run.count; ++k) {
      const int i = reverse_order() ? run.count - 1 - k : k;
      if (run.fibers[i].state != State::Ready) continue;
      run.current = i;
      threadIdx = run.fibers[i].index;
      switch_context(run.scheduler, run.fibers[i].context);
      if (!run.error.empty()) return false;
    }
    bool opened = false;
    if (!open_warp_exchanges(run, opened)) return false;
    if (opened) continue;
    int live = 0, at_barrier = 0;
    for (int i = 0; i < run.count; ++i) {
      live += run.fibers[i].state != State::Done;
      at_barrier += run.fibers[i].state == State::AtBarrier;
    }
    if (live == 0) return true;
    // Every live thread is at a barrier now: an exchange that could not open has already been
    // reported by open_warp_exchanges.
    if (at_barrier != live) std::abort();
    // Threads that have exited count as arrived, as on the GPU. Threads waiting at different
    // __syncthreads calls would meet on the GPU's one barrier too, but that is a barrier in divergent
    // code, which the Programming Guide forbids: reported.
    const char* site = nullptr;
    for (int i = 0; i < run.count; ++i) {
      const Fiber& f = run.fibers[i];
      if (f.state != State::AtBarrier) continue;
      if (!site) site = f.site;
      if (std::strcmp(site, f.site) != 0) {
        run.error = where(run, i) + " waits at __syncthreads at " + f.site + " while others wait at " + site +
                    " (a barrier in divergent code)";
        return false;
      }
    }
    for (int i = 0; i < run.count; ++i)
      if (run.fibers[i].state == State::AtBarrier) run.fibers[i].state = State::Ready;
  }
}

BlockRun& this_thread_run() {
  thread_local BlockRun run;
  return run;
}

void ensure_stacks(BlockRun& run, int count) {
  if (static_cast<int>(run.fibers.size()) < count) run.fibers.resize(count);
  while (static_cast<int>(run.stacks.size()) < count) {
    void* s = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (s == MAP_FAILED) {
      std::fprintf(stderr, "cuda emulator: no memory for a thread's stack\n");
      std::abort();
    }
    mprotect(s, 4096, PROT_NONE);  // a guard page: a stack overflow faults instead of corrupting a neighbour
    run.stacks.push_back(s);
  }
}

}  // namespace

cudaError_t run_grid(const void* kernel, const char* name, const LaunchConfig& c, void (*thread_body)(void*),
                     void* closure) {
  const uint64_t threads = uint64_t{c.block.x} * c.block.y * c.block.z;
  if (threads == 0 || threads > kMaxThreads || c.block.z > 64 || c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0 ||
      c.grid.x > 0x7fffffffu || c.grid.y > 65535 || c.grid.z > 65535)
    return cudaErrorInvalidConfiguration;
  size_t limit = kDefaultSharedLimit;
  {
    const std::lock_guard lock(attribute_mutex());
    const auto it = shared_limits().find(kernel);
    if (it != shared_limits().end()) limit = std::max<size_t>(limit, it->second);
  }
  if (c.shared_bytes > limit) return cudaErrorInvalidValue;
  launch_count().add(name, c);
  if (t_run) {
    std::fprintf(stderr, "cuda emulator: %s launched from inside a kernel\n", name);
    std::abort();
  }

  BlockRun& run = this_thread_run();
  ensure_stacks(run, static_cast<int>(threads));
  run.count = static_cast<int>(threads);
  run.body = thread_body;
  run.closure = closure;
  run.kernel = name;
  run.error.clear();
  run.set_dynamic_shared(c.shared_bytes);
  run.shared_limit = limit;
  gridDim = c.grid;
  blockDim = c.block;
  t_run = &run;
  bool ok = true;
  for (unsigned z = 0; ok && z < c.grid.z; ++z)
    for (unsigned y = 0; ok && y < c.grid.y; ++y)
      for (unsigned x = 0; ok && x < c.grid.x; ++x) {
        blockIdx = uint3{x, y, z};
        // Shared memory starts as NaNs, so a read before any write shows in the results.
        std::memset(run.dynamic_shared, 0xff, run.dynamic_bytes);
        run.poisoned.clear();
        run.static_shared = 0;
        ok = run_block(run);
      }
  t_run = nullptr;
  if (!ok) {
    std::fprintf(stderr, "cuda emulator: %s\n", run.error.c_str());
    return cudaErrorLaunchFailure;
  }
  return cudaSuccess;
}

void sync_threads(const char* site) {
  BlockRun& run = running("__syncthreads");
  run.self().site = site;
  yield(run, State::AtBarrier);
}

uint64_t warp_exchange(WarpOp op, unsigned mask, uint64_t value, int arg, int width) {
  BlockRun& run = running("a warp exchange");
  Fiber& f = run.self();
  if (width <= 0 || width > 32 || (width & (width - 1)) != 0) {
    run.error = std::string(op_name(op)) + " in " + where(run, run.current) + ": width " + std::to_string(width) +
                " is not a power of two up to 32";
    abandon_thread(run);
  }
  f.op = op;
  f.mask = mask;
  f.value = value;
  f.arg = arg;
  f.width = width;
  yield(run, State::AtWarp);
  return run.self().result;
}

void* dynamic_shared() { return running("extern __shared__").dynamic_shared; }

void poison_shared(void* variable, size_t bytes) {
  BlockRun& run = running("a __shared__ declaration");
  if (std::find(run.poisoned.begin(), run.poisoned.end(), variable) != run.poisoned.end()) return;
  std::memset(variable, 0xff, bytes);
  run.poisoned.push_back(variable);
  // The GPU counts static and dynamic shared memory together against the block's limit; static alone
  // may not pass 48 KB.
  run.static_shared += bytes;
  if (run.static_shared > kDefaultSharedLimit || run.static_shared + run.dynamic_bytes > run.shared_limit) {
    run.error = where(run, run.current) + ": " + std::to_string(run.static_shared) + " bytes of static and " +
                std::to_string(run.dynamic_bytes) + " of dynamic shared memory pass the block's limit of " +
                std::to_string(run.static_shared > kDefaultSharedLimit ? kDefaultSharedLimit : run.shared_limit);
    abandon_thread(run);
  }
}

void pipeline_copy(void* dst, const void* src, size_t bytes, size_t zero_fill) {
  BlockRun& run = running("__pipeline_memcpy_async");
  if ((bytes != 4 && bytes != 8 && bytes != 16) || zero_fill > bytes) {
    run.error = "__pipeline_memcpy_async in " + where(run, run.current) + ": " + std::to_string(bytes) +
                " bytes with " + std::to_string(zero_fill) + " zero-filled";
    abandon_thread(run);
  }
  if (reinterpret_cast<uintptr_t>(dst) % bytes || reinterpret_cast<uintptr_t>(src) % bytes) {
    run.error = "__pipeline_memcpy_async in " + where(run, run.current) + ": an address not aligned to " +
                std::to_string(bytes) + " bytes";
    abandon_thread(run);
  }
  run.self().open_group.push_back(
      {static_cast<unsigned char*>(dst), static_cast<const unsigned char*>(src), bytes, zero_fill});
}

void pipeline_commit() {
  Fiber& f = running("__pipeline_commit").self();
  f.groups.push_back(std::move(f.open_group));
  f.open_group.clear();
}

void pipeline_wait_prior(size_t groups) {
  Fiber& f = running("__pipeline_wait_prior").self();
  while (f.groups.size() > groups) {
    for (const PendingCopy& c : f.groups.front()) c.run();
    f.groups.pop_front();
  }
}

}  // namespace minidl::emu
