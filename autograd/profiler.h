// The op profiler: every op's forward and backward, timed, with its FLOPs, bytes and memory.
//
//   profiler::Profiler prof;                 // records on this thread from here
//   for (int i = 0; i < 3; ++i) {
//     profiler::Range step("step");          // each "step" range is one step of the report
//     Tensor loss = ...; loss.backward(); opt.step();
//   }
//   prof.stop();
//   std::cout << prof.report();              // tables by op and by module
//   std::ofstream("trace.json") << prof.chrome_trace();   // opens in Perfetto or chrome://tracing
//
// What it records, one Event per scope (autograd/scope.h): each op front end (its name, its inputs'
// shapes, its device), each backward rule the engine runs, each module's forward (and, in backward, a
// span per module around the rules of the nodes its forward recorded), and the named Ranges of the
// program. Times are host wall-clock times; an op on a CUDA tensor also gets the time between two CUDA
// events recorded around it on its stream, which is when the GPU ran its kernels. Each op also notes the
// allocator's bytes in use on its device before and after, and the FLOPs and bytes its own kernels
// report (OpScope::work).
//
// Only the thread that made the Profiler is recorded (the loader's threads are not), and a thread has
// one Profiler at a time. The Profiler starts the allocators' peak-memory counters afresh. When no
// Profiler exists, an op pays one branch (what recording costs: docs/perf.md).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "autograd/device.h"
#include "autograd/tensor.h"

namespace minidl::profiler {

enum class EventKind : uint8_t {
  Op,      // an op's front end (forward, or called by a backward rule)
  Rule,    // the backward rule of one node (named after the node's op)
  Module,  // a module's forward, or the span of its nodes' rules in backward
  Range,   // a profiler::Range of the program ("step", "forward", "backward", "optimizer")
};

struct Event {
  EventKind kind = EventKind::Op;
  std::string name;                     // the op, the module's path, or the range
  const std::string* module = nullptr;  // the module it ran in (interned); null outside every module
  std::string inputs;                   // the inputs' dtypes and shapes: "float32[64,16,512] float32[128,512]"
  Device device;
  int parent = -1;                                  // the enclosing event, or -1
  bool backward = false;                            // ran inside a backward pass
  double start_us = 0, end_us = 0;                  // host clock, microseconds from the Profiler's start
  double device_start_us = -1, device_end_us = -1;  // CUDA events, on the same time base; -1 off the GPU
  double flops = 0, bytes = 0;                      // of the op's own kernels; 0 where not counted
  int64_t memory_before = 0, memory_after = 0;      // bytes in use on the device's allocator
};

struct Options {
  std::string step_range = "step";  // the Range that marks one step of the report
};

class Profiler {
 public:
  explicit Profiler(Options options = {});
  ~Profiler();
  Profiler(const Profiler&) = delete;
  Profiler& operator=(const Profiler&) = delete;

  // Stops recording; waits for the GPU (if any op ran there) and reads the CUDA events' times. Open
  // scopes are closed at the stop. Called by the destructor if not before.
  void stop();
  bool running() const;

  // Everything below needs stop() first.
  const std::vector<Event>& events() const;
  int steps() const;       // "step" ranges at the top level; at least 1 (the whole recording)
  double step_us() const;  // wall time per step
  // The events of one (kind, name, pass) summed over the recording, sorted by self time.
  struct Row {
    std::string name, pass;  // pass: forward, backward, or the enclosing range's name (optimizer)
    EventKind kind = EventKind::Op;
    Device device;
    int64_t calls = 0;
    double self_us = 0, total_us = 0;  // per step; GPU time for CUDA ops, host time otherwise
    double host_self_us = 0;           // per step, host time (the launch cost of a CUDA op)
    double flops = 0, bytes = 0;       // per step
    double memory_delta = 0;           // per step: bytes in use after minus before
  };
  std::vector<Row> op_rows() const;
  // Self time per module path and pass, a module's submodules included (Row.name = the path, or
  // "(top level)" for ops outside every named module: the root module's own, the loss, the optimiser).
  std::vector<Row> module_rows(int max_depth = 3) const;

  // The two tables as text: by op (at most max_rows rows, the rest summed into one), then by module.
  std::string report(size_t max_rows = 40, int module_depth = 3) const;
  // Chrome's trace-event JSON: complete events nested by time (host thread; one more track per GPU),
  // and memory counters.
  std::string chrome_trace() const;

  struct Impl;  // the recording's state, defined in autograd/profiler_impl.h

 private:
  std::unique_ptr<Impl> impl_;
};

// A named span of the recording (nothing when no Profiler is recording on this thread).
class Range {
 public:
  explicit Range(const char* name);
  ~Range();
  Range(const Range&) = delete;
  Range& operator=(const Range&) = delete;

 private:
  int event_ = -1;
};

// Calls of the scopes (autograd/scope.cpp and the engine); each returns -1 when this thread records
// nothing.
namespace detail {
// The event's device is the first defined input's, else `device` if given, else the enclosing event's.
int begin(EventKind kind, const char* name, const std::string* module, const Tensor* const* inputs, size_t count,
          const Device* device = nullptr);
void end(int event);
void add_work(double flops, double bytes);  // to the innermost open op or rule of this thread
// Backward: moves the open module spans to the module of the next node's rule (closing those that are
// not its ancestors, opening the missing ones); with null, closes them all.
void backward_module(const std::string* module);
// Held by run_backward: every event inside counts as backward, and its spans are closed at the end.
class BackwardPass {
 public:
  BackwardPass();
  ~BackwardPass();
  BackwardPass(const BackwardPass&) = delete;
  BackwardPass& operator=(const BackwardPass&) = delete;

 private:
  bool on_ = false;
};
}  // namespace detail

}  // namespace minidl::profiler
