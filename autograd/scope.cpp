// The scopes of autograd/scope.h: the per-thread stacks of open modules and ops, and the calls into the
// profiler that they make while it records.
#include "autograd/scope.h"

#include <mutex>
#include <unordered_set>

#include "autograd/error.h"
#include "autograd/node.h"
#include "autograd/profiler.h"

namespace minidl {

namespace instrument {

std::atomic<unsigned> g_flags{0};

namespace {
// Users per bit: a bit stays on while any of its users is alive.
std::mutex g_users_mutex;
int g_users[2] = {0, 0};
int slot(unsigned bit) { return bit == kProfiling ? 0 : 1; }
}  // namespace

void acquire(unsigned bit) {
  const std::lock_guard lock(g_users_mutex);
  if (g_users[slot(bit)]++ == 0) g_flags.fetch_or(bit, std::memory_order_relaxed);
}

void release(unsigned bit) {
  const std::lock_guard lock(g_users_mutex);
  MINIDL_CHECK(g_users[slot(bit)] > 0, "instrument: released a tool that was not on");
  if (--g_users[slot(bit)] == 0) g_flags.fetch_and(~bit, std::memory_order_relaxed);
}

}  // namespace instrument

namespace {

struct ThreadState {
  std::vector<const std::string*> modules;  // open module scopes (and backward rules' modules)
  std::vector<const char*> ops;             // open op scopes' names, while a tool is on
  int suppressed = 0;
};
thread_local ThreadState t_state;

}  // namespace

namespace instrument {
Suppress::Suppress() { ++t_state.suppressed; }
Suppress::~Suppress() { --t_state.suppressed; }
}  // namespace instrument

// ---- op scopes ------------------------------------------------------------------------------------
OpScope::OpScope(const char* name, const std::vector<Tensor>& inputs) {
  if (!instrument::on()) return;
  std::vector<const Tensor*> list;
  list.reserve(inputs.size());
  for (const Tensor& t : inputs) list.push_back(&t);
  open(name, list.data(), list.size());
}

OpScope::OpScope(const char* name, Device device) {
  if (instrument::on()) open(name, nullptr, 0, &device);
}

OpScope::OpScope(const Node& node, const std::vector<Tensor>& grad_outputs) {
  if (!instrument::on() || t_state.suppressed) return;
  ThreadState& s = t_state;
  node_ = true;
  open_ = true;
  s.modules.push_back(node.module);
  s.ops.push_back(node.name().c_str());
  if (instrument::g_flags.load(std::memory_order_relaxed) & instrument::kProfiling) {
    std::vector<const Tensor*> list;
    for (const Tensor& t : grad_outputs) list.push_back(&t);
    event_ =
        profiler::detail::begin(profiler::EventKind::Rule, node.name().c_str(), node.module, list.data(), list.size());
  }
}

void OpScope::open(const char* name, const Tensor* const* inputs, size_t count, const Device* device) {
  ThreadState& s = t_state;
  if (s.suppressed) return;
  open_ = true;
  s.ops.push_back(name);
  if (instrument::g_flags.load(std::memory_order_relaxed) & instrument::kProfiling)
    event_ = profiler::detail::begin(profiler::EventKind::Op, name, current_module(), inputs, count, device);
}

void OpScope::close() {
  ThreadState& s = t_state;
  if (event_ >= 0) profiler::detail::end(event_);
  if (!s.ops.empty()) s.ops.pop_back();
  if (node_ && !s.modules.empty()) s.modules.pop_back();
}

void OpScope::work_of_innermost(double flops, double bytes) {
  if (t_state.suppressed) return;
  if (instrument::g_flags.load(std::memory_order_relaxed) & instrument::kProfiling)
    profiler::detail::add_work(flops, bytes);
}

std::string open_ops() {
  std::string out;
  for (const char* op : t_state.ops) out += (out.empty() ? "" : " > ") + std::string(op);
  return out;
}

// ---- module scopes --------------------------------------------------------------------------------
ModuleScope::ModuleScope(const std::string* path) : path_(path) {
  if (!path_) return;
  t_state.modules.push_back(path_);
  if ((instrument::g_flags.load(std::memory_order_relaxed) & instrument::kProfiling) && !t_state.suppressed)
    event_ = profiler::detail::begin(profiler::EventKind::Module, path_->c_str(), path_, nullptr, 0);
}

ModuleScope::~ModuleScope() {
  if (!path_) return;
  if (event_ >= 0) profiler::detail::end(event_);
  t_state.modules.pop_back();
}

const std::string* current_module() { return t_state.modules.empty() ? nullptr : t_state.modules.back(); }

const std::string* intern_path(std::string_view path) {
  if (path.empty()) return nullptr;
  // Paths are few (one per module) and never freed: a node or an event may outlive its module.
  static std::mutex mutex;
  static std::unordered_set<std::string> paths;
  const std::lock_guard lock(mutex);
  return &*paths.emplace(path).first;
}

}  // namespace minidl
