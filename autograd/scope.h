// Scopes: what every op front end and every module call opens, so that the study tools can see a step.
//
//   OpScope      at the top of an op's front end (autograd/ops_*.cpp, the copies of tensor.cpp, the
//                optimisers): names the op and its inputs. The engine opens one around each node's
//                backward rule. When no tool is on, opening and closing one is a load and a branch each.
//   ModuleScope  around a module's forward (nn::Module's call operators): the module's dotted path
//                ("visual.layer2.0.conv1"), which every node recorded inside remembers (Node::module), so
//                backward work is attributed to the module whose forward made it.
//
// The tools that listen: the op profiler (autograd/profiler.h: times, FLOPs, bytes and memory per op) and
// anomaly detection (autograd/anomaly.h: the first NaN or Inf an op makes, forward or backward). Both
// are off unless a program turns them on; instrument::on() says whether either is on anywhere.
#pragma once

#include <atomic>
#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "autograd/tensor.h"

namespace minidl {

namespace instrument {
// What is on somewhere in the process, as bits: a profiler on some thread, anomaly detection.
inline constexpr unsigned kProfiling = 1, kAnomaly = 2;
extern std::atomic<unsigned> g_flags;
inline bool on() { return g_flags.load(std::memory_order_relaxed) != 0; }
// Turns a tool's bit on or off (each keeps a count of its users, so nested users do not clash).
void acquire(unsigned bit);
void release(unsigned bit);

// Ops that a tool runs for itself (anomaly's finiteness checks, the profiler's reads) open no scopes:
// they must neither appear in a profile nor be checked themselves.
class Suppress {
 public:
  Suppress();
  ~Suppress();
  Suppress(const Suppress&) = delete;
  Suppress& operator=(const Suppress&) = delete;
};
}  // namespace instrument

class Node;

class OpScope {
 public:
  // A forward op and its tensor inputs (undefined ones allowed: an absent bias).
  template <class... Ts>
  requires(std::same_as<Ts, Tensor>&&...) explicit OpScope(const char* name, const Ts&... inputs) {
    if (instrument::on()) [[unlikely]] {
      const Tensor* list[] = {&inputs..., nullptr};
      open(name, list, sizeof...(Ts));
    }
  }
  OpScope(const char* name, const std::vector<Tensor>& inputs);
  // An op whose inputs are too many to list (an optimiser's step over every parameter), on `device`.
  OpScope(const char* name, Device device);
  // The backward rule of `node`, run by the engine with the gradients of its outputs; ops the rule calls
  // count as the node's module's backward.
  OpScope(const Node& node, const std::vector<Tensor>& grad_outputs);
  ~OpScope() {
    if (open_) close();
  }
  OpScope(const OpScope&) = delete;
  OpScope& operator=(const OpScope&) = delete;

  // The floating-point operations and bytes moved by this op's own kernels (not by the ops it calls),
  // for the profiler's GFLOP/s and GB/s. A multiply-add counts as two operations; bytes count each
  // input read and each output written once.
  void work(double flops, double bytes) {
    if (open_) work_of_innermost(flops, bytes);
  }
  // Adds to the innermost scope open on this thread (count_work below).
  static void work_of_innermost(double flops, double bytes);

 private:
  void open(const char* name, const Tensor* const* inputs, size_t count, const Device* device = nullptr);
  void close();
  bool open_ = false;
  bool node_ = false;  // a backward rule's scope: it pushed the node's module
  int event_ = -1;     // the profiler's event, if this thread is profiling
};

// The same as OpScope::work for code that has no scope object at hand: a backward rule counting its
// kernels' work adds it to the node's scope the engine opened.
inline void count_work(double flops, double bytes) {
  if (instrument::on()) [[unlikely]]
    OpScope::work_of_innermost(flops, bytes);
}

class ModuleScope {
 public:
  // path: an interned dotted path (intern_path), or null for a module that has none (the root).
  explicit ModuleScope(const std::string* path);
  ~ModuleScope();
  ModuleScope(const ModuleScope&) = delete;
  ModuleScope& operator=(const ModuleScope&) = delete;

 private:
  const std::string* path_;
  int event_ = -1;  // the profiler's event for this call, if one is recording
};

// The innermost module whose forward (or, in backward, whose node's rule) is running on this thread;
// null outside every module.
const std::string* current_module();
// The one stored copy of a dotted path, alive for the whole process, so nodes and events can keep a
// pointer to it; "" gives null.
const std::string* intern_path(std::string_view path);
// "linear > matmul": the op scopes open on this thread, outermost first (kept only while a tool is on).
std::string open_ops();

}  // namespace minidl
