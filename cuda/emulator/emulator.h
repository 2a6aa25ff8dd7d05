// The CUDA emulator: runs the kernels of cuda/ on the CPU, so that their index arithmetic, barriers and
// warp exchanges are tested on machines without a GPU (CI has none). Configured with -DMINIDL_CUDA=EMULATE,
// the .cu files are compiled by the C++ compiler after cuda/emulator/translate.cpp has rewritten their
// launches; cuda/emulator/runtime.cpp stands in for the CUDA runtime library.
//
// Model: every launch runs at once, to completion, on the calling host thread (so every stream is always
// idle and every event complete). Blocks run one after another; the threads of a block are fibers that
// run one at a time until they reach a barrier (__syncthreads, a warp exchange, __syncwarp) or finish.
// A barrier opens when every live thread that must meet there has arrived; threads that have exited
// count as arrived at a __syncthreads, as on the GPU. That is enough for the results of a race-free
// kernel. What it reports, with the kernel and thread named (the grid stops and the launch's error,
// for cudaGetLastError, is cudaErrorLaunchFailure):
//   - a warp exchange whose mask names a lane that has exited or waits elsewhere. This is stricter than
//     CUDA's minimum (which lets exited lanes drop out of a mask) and follows NVIDIA's guidance that
//     every lane a mask names executes the same intrinsic;
//   - threads waiting at different __syncthreads calls (a barrier in divergent code);
//   - a launch the H100 would refuse for its threads, grid size or shared memory (static plus dynamic,
//     against 48 KB or the kernel's opt-in); __launch_bounds__ is not checked;
//   - misaligned cp.async addresses.
// What it cannot see: every race between threads (a fiber runs until its barrier, so a missing
// __syncthreads shows only when the reader's fiber runs before the writer's; MINIDL_CUDA_EMULATOR_ORDER=
// reverse runs a block's threads last to first, for the races the usual order hides), the memory model,
// timing, and tensor-core rounding. Those need the GPU and compute-sanitizer (scripts/gpu-check).
//
// For sizing work without a GPU: MINIDL_CUDA_EMULATOR_SMS sets how many multiprocessors the device
// reports (4 by default, so that small tests reach the kernels' big-grid choices; 132, an H100's,
// makes the kernels size their grids as they would there), and MINIDL_CUDA_EMULATOR_LAUNCHES=FILE
// counts every launch by kernel and configuration and writes the table to FILE at exit (launch_table).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace minidl::emu {

// The arguments between <<< and >>>, as the translation writes them: LaunchConfig(grid, block[, shared, stream]).
struct LaunchConfig {
  LaunchConfig(dim3 grid_, dim3 block_, size_t shared_ = 0, cudaStream_t stream_ = nullptr)
      : grid(grid_), block(block_), shared_bytes(shared_), stream(stream_) {}
  dim3 grid, block;
  size_t shared_bytes;
  cudaStream_t stream;
};

// Runs `thread_body(closure)` once for every thread of the grid. `kernel` identifies the kernel for
// cudaFuncSetAttribute's shared-memory limit; `name` is used in error messages. Returns cudaSuccess or the
// error a GPU would give at launch; a fault inside the kernel (see above) prints its message and
// returns cudaErrorLaunchFailure.
cudaError_t run_grid(const void* kernel, const char* name, const LaunchConfig& config, void (*thread_body)(void*),
                     void* closure);

// cudaGetLastError's state, set by a refused launch (runtime.cpp).
void set_last_error(cudaError_t error);

// Starts counting launches afresh (on) or stops (off); MINIDL_CUDA_EMULATOR_LAUNCHES turns it on from the
// start. The count so far, one line per kernel and configuration, most launched first:
// "launches  blocks  threads  kernel", then the totals.
void count_launches(bool on);
std::string launch_table();

// MINIDL_CUDA_EMULATOR_ORDER=reverse: a block's threads run last to first. A missing barrier shows only
// where the reader runs before the writer, so each order finds races the other hides; scripts/test runs
// the CUDA tests in both. Anything but forward or reverse stops the program with a message.
bool reverse_order();

// ---- what kernels call ------------------------------------------------------------------------------
// `site` names the __syncthreads call ("file:line"): threads waiting at different ones are a fault.
void sync_threads(const char* site);

enum class WarpOp : uint8_t { Sync, Index, Up, Down, Xor };
// One lane's part of a warp exchange: returns the 8 bytes that lane `source` contributed (see warp.h).
uint64_t warp_exchange(WarpOp op, unsigned mask, uint64_t value, int arg, int width);

// Dynamic shared memory, NaN bytes at the start of each block.
void* dynamic_shared();
// Fills a static __shared__ variable with NaN bytes the first time a thread of the block reaches its
// declaration (translate.cpp puts the call there).
void poison_shared(void* variable, size_t bytes);

// Asynchronous global-to-shared copies (cp.async): queued per thread, done when waited for, so a kernel
// that reads before it waits reads the old contents, as it could on the GPU.
void pipeline_copy(void* dst, const void* src, size_t bytes, size_t zero_fill);
void pipeline_commit();
void pipeline_wait_prior(size_t groups);

// ---- launch -------------------------------------------------------------------------------------------
// `kernel` is called once per thread with copies of the launch's arguments. `id` is the kernel's address
// where the launch names it without deducing template arguments (cudaFuncSetAttribute is keyed by it),
// null where it does not, and then dynamic shared memory is held to the default 48 KB.
template <class Kernel>
struct Launch {
  Kernel kernel;
  const void* id;
  const char* name;
  LaunchConfig config;

  template <class... Args>
  void operator()(Args&&... args) const {
    // Converted once, as a launch copies its arguments; each thread's call copies them again into its
    // own parameters, so a kernel that changes a parameter changes only its own.
    using Values = std::tuple<std::decay_t<Args>...>;
    Values values(std::forward<Args>(args)...);
    struct Closure {
      const Kernel* kernel;
      Values* values;
    } closure{&kernel, &values};
    auto body = [](void* p) {
      auto* c = static_cast<Closure*>(p);
      std::apply(*c->kernel, *c->values);
    };
    set_last_error(run_grid(id, name, config, body, &closure));
  }
};

// A launch of a kernel named by its address: a plain function or explicit template arguments.
template <class... Params>
Launch<void (*)(Params...)> launch(void (*kernel)(Params...), const char* name, LaunchConfig config) {
  return {kernel, reinterpret_cast<const void*>(kernel), name, config};
}

// A launch through a generic lambda that calls the kernel, for templates whose arguments the call deduces.
template <class Caller>
Launch<Caller> launch_deduced(Caller caller, const char* name, LaunchConfig config) {
  return {caller, nullptr, name, config};
}

}  // namespace minidl::emu
