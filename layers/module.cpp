#include "layers/module.h"

#include <atomic>
#include <map>
#include <sstream>
#include <tuple>

#include "autograd/error.h"
#include "autograd/grad_mode.h"
#include "autograd/safetensors.h"

namespace minidl::nn {
namespace {

void check_name(const std::string& owner, const std::string& name) {
  MINIDL_CHECK(!name.empty() && name.find('.') == std::string::npos, owner, ": '", name,
               "' is not a valid name (non-empty, no '.': dots join the names of nested modules)");
}

// Parameters, buffers and children share one namespace (as attributes do in torch): a repeated name would
// give two state_dict entries of that name, and load_state_dict would fill only one of the two slots.
template <class A, class B, class C>
void check_unique(const std::string& owner, const std::string& name, const A& params, const B& buffers,
                  const C& children) {
  auto has = [&name](const auto& list) {
    for (const auto& entry : list)
      if (entry.first == name) return true;
    return false;
  };
  MINIDL_CHECK(!has(params) && !has(buffers) && !has(children), owner, ": the name '", name,
               "' is already registered (as a parameter, buffer or child module)");
}

}  // namespace

void Module::register_parameter(std::string name, Tensor* slot) {
  check_name(type_name(), name);
  check_unique(type_name(), name, params_, buffers_, children_);
  MINIDL_CHECK(slot != nullptr, type_name(), ": parameter '", name, "' has a null slot");
  if (slot->defined()) {
    MINIDL_CHECK(is_floating(slot->dtype()), type_name(), ": parameter '", name, "' must be float, got ",
                 slot->meta_str());
    *slot = slot->detach();  // a parameter is a leaf, whatever computed its initial value
    slot->requires_grad_(true);
  }
  params_.emplace_back(std::move(name), slot);
}

void Module::register_buffer(std::string name, Tensor* slot) {
  check_name(type_name(), name);
  check_unique(type_name(), name, params_, buffers_, children_);
  MINIDL_CHECK(slot != nullptr, type_name(), ": buffer '", name, "' has a null slot");
  buffers_.emplace_back(std::move(name), slot);
}

namespace {
// Bumped by every registration: a cached scope path older than this may have been renamed.
std::atomic<uint64_t> g_registrations{0};
}  // namespace

void Module::register_module(std::string name, Module* child) {
  check_name(type_name(), name);
  check_unique(type_name(), name, params_, buffers_, children_);
  MINIDL_CHECK(child != nullptr, type_name(), ": child module '", name, "' is null");
  child->parent_ = this;
  child->name_in_parent_ = name;
  g_registrations.fetch_add(1, std::memory_order_relaxed);
  children_.emplace_back(std::move(name), child);
}

std::string Module::path() const {
  std::string out;
  for (const Module* m = this; m->parent_; m = m->parent_)
    out = out.empty() ? m->name_in_parent_ : m->name_in_parent_ + "." + out;
  return out;
}

const std::string* Module::scope_path() const {
  const uint64_t now = g_registrations.load(std::memory_order_relaxed);
  if (cached_generation_ != now) {
    cached_path_ = intern_path(path());
    cached_generation_ = now;
  }
  return cached_path_;
}

void Module::collect(const std::string& prefix, bool params, bool buffers, NamedTensors& out) const {
  if (params)
    for (const auto& [n, t] : params_)
      if (t->defined()) out.emplace_back(prefix + n, *t);
  if (buffers)
    for (const auto& [n, t] : buffers_)
      if (t->defined()) out.emplace_back(prefix + n, *t);
  for (const auto& [n, m] : children_) m->collect(prefix + n + ".", params, buffers, out);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", true, false, out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters()) out.push_back(t);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect("", false, true, out);
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_children() const { return children_; }

NamedTensors Module::state_dict() const {
  NamedTensors out;
  collect("", true, true, out);
  return out;
}

void Module::load_state_dict(const NamedTensors& state, bool strict) {
  // Every registered slot by its dotted name.
  std::vector<std::pair<std::string, Tensor*>> slots;
  std::vector<const Module*> todo{this};
  std::vector<std::string> prefixes{""};
  for (size_t i = 0; i < todo.size(); ++i) {
    for (const auto& [n, t] : todo[i]->params_)
      if (t->defined()) slots.emplace_back(prefixes[i] + n, t);
    for (const auto& [n, t] : todo[i]->buffers_)
      if (t->defined()) slots.emplace_back(prefixes[i] + n, t);
    for (const auto& [n, m] : todo[i]->children_) {
      todo.push_back(m);
      prefixes.push_back(prefixes[i] + n + ".");
    }
  }
  std::map<std::string, const Tensor*> given;
  for (const auto& [n, t] : state) given[n] = &t;

  // Check everything first, so a bad checkpoint changes nothing.
  std::vector<std::string> missing, unexpected, misshaped;
  std::map<std::string, Tensor*> by_name;
  for (const auto& [n, slot] : slots) {
    by_name[n] = slot;
    auto it = given.find(n);
    if (it == given.end())
      missing.push_back(n);
    else if (!it->second->defined())
      misshaped.push_back(n + " (checkpoint: an undefined tensor)");
    else if (it->second->shape() != slot->shape())
      misshaped.push_back(n + " (checkpoint " + shape_str(it->second->shape()) + ", model " + shape_str(slot->shape()) +
                          ")");
  }
  for (const auto& [n, t] : given)
    if (!by_name.count(n)) unexpected.push_back(n);
  if ((strict && (!missing.empty() || !unexpected.empty())) || !misshaped.empty()) {
    std::ostringstream os;
    // The counts first: a checkpoint of another model size lists hundreds of names.
    std::string counts;
    for (const auto& [what, n] : {std::pair<const char*, size_t>{"missing", strict ? missing.size() : 0},
                                  {"unexpected", strict ? unexpected.size() : 0},
                                  {"wrong shape", misshaped.size()}})
      if (n > 0) counts += (counts.empty() ? "" : ", ") + std::to_string(n) + " " + what;
    os << "load_state_dict: the state does not fit this " << type_name() << " (" << counts << "):";
    auto list = [&os](const char* what, const std::vector<std::string>& names) {
      if (names.empty()) return;
      os << "\n  " << what << " (" << names.size() << "):";
      for (const auto& n : names) os << " " << n << ";";
    };
    list("missing", strict ? missing : std::vector<std::string>{});
    list("unexpected", strict ? unexpected : std::vector<std::string>{});
    list("wrong shape", misshaped);
    fail(os.str());
  }
  // Moved first, so a failing transfer also leaves the model as it was; then copied in place, as
  // torch does: an optimiser (or a tied module) holding a parameter's handle keeps seeing the loaded values.
  // Copying also means the model never aliases the caller's tensors.
  NoGradGuard no_grad;
  std::vector<std::pair<Tensor*, Tensor>> values;
  for (const auto& [n, t] : state) {
    auto it = by_name.find(n);
    if (it == by_name.end()) continue;
    values.emplace_back(it->second, t.detach().to(it->second->device()));  // copy_ converts the dtype
  }
  for (auto& [slot, value] : values) slot->copy_(value);
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, m] : children_) m->train(on);
}

// A converted parameter is a new leaf; it keeps its requires_grad, so a frozen parameter stays frozen.
void Module::to(Device device) {
  NoGradGuard no_grad;
  for (auto& [n, t] : params_)
    if (t->defined() && t->device() != device) {
      const bool trainable = t->requires_grad();
      *t = t->to(device).detach();
      t->requires_grad_(trainable);
    }
  for (auto& [n, t] : buffers_)
    if (t->defined()) *t = t->to(device);
  for (auto& [n, m] : children_) m->to(device);
}

void Module::to(DType dtype) {
  // Checked here, not half-way through the tree: an integer parameter could not require grad.
  MINIDL_CHECK(is_floating(dtype), type_name(), ".to: parameters are float32 or float64, not ", dtype_name(dtype));
  NoGradGuard no_grad;
  for (auto& [n, t] : params_)
    if (t->defined() && t->dtype() != dtype) {
      const bool trainable = t->requires_grad();
      *t = t->to(dtype).detach();
      t->requires_grad_(trainable);
    }
  for (auto& [n, t] : buffers_)
    if (t->defined() && is_floating(t->dtype())) *t = t->to(dtype);
  for (auto& [n, m] : children_) m->to(dtype);
}

void Module::zero_grad() {
  for (auto& [n, t] : named_parameters()) t.zero_grad();
}

int64_t Module::parameter_count() const {
  int64_t n = 0;
  for (const auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

std::string Module::summary() const {
  std::ostringstream os;
  // Pre-order walk with an explicit stack of (module, name, depth).
  std::vector<std::tuple<const Module*, std::string, int>> stack{{this, "", 0}};
  while (!stack.empty()) {
    auto [m, name, depth] = stack.back();
    stack.pop_back();
    os << std::string(2 * depth, ' ') << (name.empty() ? "" : "(" + name + "): ") << m->describe() << "  ["
       << m->parameter_count() << " parameters]\n";
    for (auto it = m->children_.rbegin(); it != m->children_.rend(); ++it)
      stack.emplace_back(it->second, it->first, depth + 1);
  }
  os << "Total: " << parameter_count() << " parameters";
  return os.str();
}

Sequential& Sequential::add(std::shared_ptr<Unary> layer) {
  MINIDL_CHECK(layer != nullptr, "Sequential: cannot add a null layer");
  layers_.push_back(std::move(layer));
  register_module(std::to_string(layers_.size() - 1), layers_.back().get());
  return *this;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (auto& layer : layers_) y = (*layer)(y);
  return y;
}

void save(const Module& module, const std::string& path) {
  save_safetensors(path, module.state_dict(), {{"format", "pt"}, {"producer", "minidl"}});
}

void load(Module& module, const std::string& path, bool strict) {
  module.load_state_dict(load_safetensors(path), strict);
}

}  // namespace minidl::nn
