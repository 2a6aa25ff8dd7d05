// The backward engine, the graph's nodes and grad mode.
//
// backward() runs in two passes over the graph reachable from the root's grad_fn, both with explicit
// stacks (a 10,000-op chain is 10,000 nodes deep; recursion would overflow the stack):
//   1. count, for every node, how many edges lead into it;
//   2. start from the root with the seed gradient; a node runs once all of its consumers have run and
//      their gradients for it have been summed (Kahn's algorithm on the reversed graph). It hands one
//      gradient per input to the nodes behind its edges.
// Every gradient a rule returns is checked against the shape, dtype and device of the input it is for,
// so a wrong backward rule fails loudly at the op that has it.
#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "autograd/anomaly.h"
#include "autograd/error.h"
#include "autograd/factories.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "autograd/profiler.h"
#include "autograd/scope.h"

namespace minidl {

// ---- grad mode ----------------------------------------------------------------------------------
namespace {
thread_local bool g_grad_enabled = true;
}
bool grad_enabled() { return g_grad_enabled; }
void set_grad_enabled(bool on) { g_grad_enabled = on; }

// ---- nodes --------------------------------------------------------------------------------------
Node::~Node() {
  // Dropping the last reference to a long chain would otherwise destroy it recursively, one stack
  // frame per node. Instead, take over the edges of every node that is about to die here and let it go
  // with no edges left.
  std::vector<std::shared_ptr<Node>> pending;
  for (Edge& e : edges)
    if (e.node) pending.push_back(std::move(e.node));
  while (!pending.empty()) {
    std::shared_ptr<Node> n = std::move(pending.back());
    pending.pop_back();
    if (n.use_count() == 1)
      for (Edge& e : n->edges)
        if (e.node) pending.push_back(std::move(e.node));
  }
}

int64_t TensorMeta::bytes() const { return numel_of(shape) * static_cast<int64_t>(dtype_size(dtype)); }
std::string TensorMeta::str() const {
  return std::string(dtype_name(dtype)) + shape_str(shape) + " on " + device.str();
}

namespace {
// The SavedTensors made on this thread since the last record(): that record's Node::saved.
thread_local std::vector<TensorMeta> t_pending_saved;

void check_not_released(bool released, const std::string& name) {
  MINIDL_CHECK(!released, name,
               ": backward reached this op a second time, but its saved tensors were freed after the first "
               "backward. Pass retain_graph=true to the first backward() to backpropagate through a graph twice");
}
}  // namespace

std::vector<Tensor> BackwardFunction::apply(const std::vector<Tensor>& grad_outputs) {
  check_not_released(rule_ == nullptr, name());
  return rule_(grad_outputs[0]);
}

std::vector<Tensor> MultiBackwardFunction::apply(const std::vector<Tensor>& grad_outputs) {
  check_not_released(rule_ == nullptr, name());
  return rule_(grad_outputs);
}

std::vector<Tensor> AccumulateGrad::apply(const std::vector<Tensor>& grad_outputs) {
  const Tensor& grad_output = grad_outputs[0];
  Tensor leaf(leaf_);
  Tensor current = leaf.grad();
  if (!current.defined()) {
    // Keep the incoming gradient itself only when nothing else can see or change it; otherwise own a copy
    // (add's backward, for one, hands the same tensor to both of its inputs).
    const bool sole_owner = grad_output.impl_ptr().use_count() == 1 && grad_output.impl()->storage.use_count() == 1 &&
                            grad_output.is_contiguous() && grad_output.offset() == 0;
    leaf_->grad = (sole_owner ? grad_output.detach() : grad_output.detach().clone()).impl_ptr();
  } else {
    current.add_(grad_output);
  }
  return {};
}

SavedTensor::SavedTensor(const Tensor& t) {
  if (!t.defined()) return;
  data_ = t.detach();
  version_ = t.impl()->storage->version();
  t_pending_saved.push_back(TensorMeta::of(t));
}

Tensor SavedTensor::get(const char* op) const {
  if (!data_.defined()) return data_;
  const uint64_t now = data_.impl()->storage->version();
  MINIDL_CHECK(now == version_, op, ": a tensor this op saved for backward (", data_.meta_str(),
               ") was modified in place after the forward pass (version ", version_, " -> ", now,
               "); run the forward again after the in-place update, or clone() the tensor before modifying it");
  return data_;
}

std::shared_ptr<Node> grad_accumulator(const Tensor& leaf) {
  TensorImpl* impl = leaf.impl();
  std::shared_ptr<Node> node = impl->grad_accumulator.lock();
  if (!node) {
    node = std::make_shared<AccumulateGrad>(leaf.impl_ptr());
    node->outputs = {TensorMeta::of(leaf)};
    node->module = current_module();  // the module that first used the leaf: its owner, for a parameter
    impl->grad_accumulator = node;
  }
  return node;
}

namespace {

// One edge per input: toward the node that produced it (and which of its outputs it was), or toward the
// leaf's accumulator.
void connect(Node& node, const std::vector<Tensor>& inputs) {
  node.edges.reserve(inputs.size());
  for (const Tensor& in : inputs) {
    Node::Edge e;
    if (in.defined()) {
      e.defined = true;
      if (in.requires_grad()) {
        e.node = in.grad_fn() ? in.grad_fn() : grad_accumulator(in);
        e.output_nr = in.grad_fn() ? in.impl()->output_nr : 0;
      }
      e.shape = in.shape();
      e.dtype = in.dtype();
      e.device = in.device();
    }
    node.edges.push_back(std::move(e));
  }
}

// What a node says of itself (node.h), and, in anomaly mode, the check of the outputs just computed.
void describe(Node& node, const std::vector<Tensor*>& outputs, const std::vector<Tensor>& inputs) {
  for (const Tensor* o : outputs) node.outputs.push_back(TensorMeta::of(*o));
  node.saved = std::move(t_pending_saved);
  t_pending_saved.clear();
  node.module = current_module();
  if (anomaly_detection_enabled()) anomaly::check_forward(node, outputs, inputs);
}

}  // namespace

void record(Tensor& out, const char* name, const std::vector<Tensor>& inputs, BackwardRule rule) {
  auto node = std::make_shared<BackwardFunction>(name, std::move(rule));
  connect(*node, inputs);
  describe(*node, {&out}, inputs);
  TensorImpl* o = out.impl();
  o->requires_grad = true;
  o->grad_fn = std::move(node);
  o->output_nr = 0;
}

void record_multi(const std::vector<Tensor*>& outputs, const char* name, const std::vector<Tensor>& inputs,
                  MultiBackwardRule rule) {
  auto node = std::make_shared<MultiBackwardFunction>(name, static_cast<int>(outputs.size()), std::move(rule));
  connect(*node, inputs);
  describe(*node, outputs, inputs);
  for (size_t k = 0; k < outputs.size(); ++k) {
    TensorImpl* o = outputs[k]->impl();
    o->requires_grad = true;
    o->grad_fn = node;
    o->output_nr = static_cast<int32_t>(k);
  }
}

// ---- the engine ---------------------------------------------------------------------------------
void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph) {
  check_defined("backward", root, "tensor");
  MINIDL_CHECK(root.requires_grad(), "backward: the tensor ", root.meta_str(),
               " does not require grad and was not computed from a tensor that does; call requires_grad_() on "
               "the inputs (parameters) before the forward pass");
  Tensor seed = grad;
  if (!seed.defined()) {
    MINIDL_CHECK(root.numel() == 1,
                 "backward: a gradient can only be implied for a one-element output (a loss); "
                 "this tensor is ",
                 root.meta_str(), ", so pass backward(grad) with a gradient of its shape");
    seed = ones_like(root);
  } else {
    MINIDL_CHECK(seed.shape() == root.shape() && seed.dtype() == root.dtype() && seed.device() == root.device(),
                 "backward: the gradient ", seed.meta_str(), " does not match the output ", root.meta_str());
  }
  NoGradGuard no_grad;                            // backward rules call ops; they must not record a graph of their own
  const profiler::detail::BackwardPass profiled;  // the profiler's module spans of this pass

  std::shared_ptr<Node> start = root.grad_fn() ? root.grad_fn() : grad_accumulator(root);

  // Pass 1: how many edges lead into each node.
  std::unordered_map<Node*, int> dependencies;
  {
    std::vector<Node*> stack{start.get()};
    std::unordered_set<Node*> seen{start.get()};
    while (!stack.empty()) {
      Node* n = stack.back();
      stack.pop_back();
      for (const Node::Edge& e : n->edges) {
        if (!e.node) continue;
        ++dependencies[e.node.get()];
        if (seen.insert(e.node.get()).second) stack.push_back(e.node.get());
      }
    }
  }

  // Pass 2: run each node once all gradients for it have arrived, summed per output. A node that
  // received no gradient at all (every consumer returned an undefined one) is still visited, so that its
  // inputs are counted down.
  std::unordered_map<Node*, std::vector<Tensor>> pending;
  pending[start.get()].resize(start->num_outputs());
  pending[start.get()][root.grad_fn() ? root.impl()->output_nr : 0] = seed;
  std::vector<Node*> ready{start.get()};
  while (!ready.empty()) {
    Node* n = ready.back();
    ready.pop_back();
    std::vector<Tensor> g;
    if (auto it = pending.find(n); it != pending.end()) {
      g = std::move(it->second);
      pending.erase(it);
    }
    std::vector<Tensor> grads;
    const bool any = std::any_of(g.begin(), g.end(), [](const Tensor& t) { return t.defined(); });
    if (any) {
      if (instrument::on()) [[unlikely]]
        profiler::detail::backward_module(n->module);
      const OpScope scope(*n, g);  // nothing, unless a tool is on
      grads = n->apply(g);
      if (anomaly_detection_enabled()) anomaly::check_backward(*n, g, grads);
    }
    if (!retain_graph) {
      n->release();
      n->saved_freed = true;
    }
    MINIDL_CHECK(grads.empty() || grads.size() == n->edges.size(), "backward: internal error: '", n->name(),
                 "' returned ", grads.size(), " gradients for ", n->edges.size(), " inputs");
    for (size_t i = 0; i < n->edges.size(); ++i) {
      const Node::Edge& e = n->edges[i];
      if (!e.node) continue;
      if (!grads.empty() && grads[i].defined()) {
        const Tensor& gi = grads[i];
        MINIDL_CHECK(gi.shape() == e.shape && gi.dtype() == e.dtype && gi.device() == e.device,
                     "backward: internal error: the backward of '", n->name(), "' returned a gradient ", gi.meta_str(),
                     " for its input ", i, ", which is ", dtype_name(e.dtype), shape_str(e.shape), " on ",
                     e.device.str());
        std::vector<Tensor>& slots = pending[e.node.get()];
        if (slots.empty()) slots.resize(e.node->num_outputs());
        if (!slots[e.output_nr].defined()) {
          slots[e.output_nr] = gi;
        } else {
          // Sum in place when nothing else can see the pending tensor (a fresh gradient of the same
          // shape); otherwise out of place, since it may be shared (add's backward hands one tensor
          // to both inputs).
          Tensor& acc = slots[e.output_nr];
          const bool owned = acc.impl_ptr().use_count() == 1 && acc.impl()->storage.use_count() == 1 &&
                             acc.is_contiguous() && acc.shape() == gi.shape();
          if (owned)
            acc.add_(gi);
          else
            acc = add(acc, gi);
        }
      }
      if (--dependencies[e.node.get()] == 0) ready.push_back(e.node.get());
    }
  }
}

}  // namespace minidl
