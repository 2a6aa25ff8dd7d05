// The autograd graph: a Node per recorded op, edges toward the nodes of its inputs.
//
// Ops record their backward rule as a lambda (BackwardFunction) that captures only what it reads, as
// SavedTensors. Leaves that require grad get an AccumulateGrad node that adds into their .grad. The
// engine (engine.cpp) runs the nodes in reverse topological order. Most ops produce one tensor; a fused
// op that produces several (an LSTM layer: its outputs and its final state) records one node with one
// gradient slot per output (record_multi), and each output remembers its slot (TensorImpl::output_nr).
//
// A node also describes itself, for the study tools (autograd/graph_dot.h, autograd/anomaly.h): the
// shapes of its outputs, the tensors its rule saved, and the module whose forward recorded it. Those
// cost a few small copies per op, so any graph can be drawn after the fact.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autograd/grad_mode.h"
#include "autograd/tensor.h"

namespace minidl {

// What a graph drawing or an error message needs of a tensor, without holding its data.
struct TensorMeta {
  Shape shape;
  DType dtype = DType::Float32;
  Device device;
  static TensorMeta of(const Tensor& t) { return {t.shape(), t.dtype(), t.device()}; }
  int64_t bytes() const;
  std::string str() const;  // "float32[8,4] on cpu"
};

class Node {
 public:
  explicit Node(std::string name) : name_(std::move(name)) {}
  // Releases the edges iteratively: a chain of 100,000 nodes must not overflow the stack when dropped.
  virtual ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  const std::string& name() const { return name_; }
  int num_outputs() const { return num_outputs_; }

  // dL/d(outputs) -> dL/d(input i) for every input i (undefined where no gradient flows). grad_outputs has
  // num_outputs() entries; an entry is undefined when no gradient reached that output (at least one has).
  virtual std::vector<Tensor> apply(const std::vector<Tensor>& grad_outputs) = 0;
  // Frees the saved tensors after a backward that did not ask to retain the graph.
  virtual void release() {}

  // One edge per input of the op, in order; `node` is empty where that input needs no gradient. The
  // shape, dtype and device let the engine check every gradient a backward rule returns.
  struct Edge {
    bool defined = false;  // false for an absent optional input (a layer without bias)
    std::shared_ptr<Node> node;
    int output_nr = 0;  // which output of `node` the input was
    Shape shape;
    DType dtype = DType::Float32;
    Device device;
  };
  std::vector<Edge> edges;

  // Filled by record(): the outputs (one per gradient slot), the tensors the rule saved (in the order it
  // made its SavedTensors), the module whose forward recorded it (an interned path, autograd/scope.h;
  // null outside any module), and, in anomaly mode only, the op scopes that were open (autograd/anomaly.h).
  std::vector<TensorMeta> outputs;
  std::vector<TensorMeta> saved;
  const std::string* module = nullptr;
  std::string forward_trace;
  bool saved_freed = false;  // set once a backward without retain_graph has released the saved tensors

 protected:
  int num_outputs_ = 1;

 private:
  std::string name_;
};

using BackwardRule = std::function<std::vector<Tensor>(const Tensor& grad_output)>;

class BackwardFunction final : public Node {
 public:
  BackwardFunction(std::string name, BackwardRule rule) : Node(std::move(name)), rule_(std::move(rule)) {}
  std::vector<Tensor> apply(const std::vector<Tensor>& grad_outputs) override;
  void release() override { rule_ = nullptr; }

 private:
  BackwardRule rule_;
};

// The rule of an op with several outputs: one gradient per output (undefined where none arrived).
using MultiBackwardRule = std::function<std::vector<Tensor>(const std::vector<Tensor>& grad_outputs)>;

class MultiBackwardFunction final : public Node {
 public:
  MultiBackwardFunction(std::string name, int outputs, MultiBackwardRule rule)
      : Node(std::move(name)), rule_(std::move(rule)) {
    num_outputs_ = outputs;
  }
  std::vector<Tensor> apply(const std::vector<Tensor>& grad_outputs) override;
  void release() override { rule_ = nullptr; }

 private:
  MultiBackwardRule rule_;
};

class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(std::shared_ptr<TensorImpl> leaf) : Node("AccumulateGrad"), leaf_(std::move(leaf)) {}
  std::vector<Tensor> apply(const std::vector<Tensor>& grad_outputs) override;
  const std::shared_ptr<TensorImpl>& leaf() const { return leaf_; }

 private:
  std::shared_ptr<TensorImpl> leaf_;
};

// A tensor kept for backward: a detached alias of the data (no history, so saved tensors never keep
// the graph alive or form cycles) and the storage version at the time it was saved. Making one also
// notes its shape for the next record() on this thread (Node::saved), so an op makes its SavedTensors
// right before it records, with no other op recorded in between, as every op here does.
class SavedTensor {
 public:
  SavedTensor() = default;
  explicit SavedTensor(const Tensor& t);
  // The saved data; throws if it was modified in place since it was saved. `op` names the reader.
  Tensor get(const char* op) const;
  bool defined() const { return data_.defined(); }

 private:
  Tensor data_;
  uint64_t version_ = 0;
};

// True when grad mode is on and any of the (defined) tensors requires grad: the op must record a node.
template <class... Ts>
bool needs_grad(const Ts&... inputs) {
  return grad_enabled() && (... || (inputs.defined() && inputs.requires_grad()));
}

// Records `out` as the result of op `name` applied to `inputs`, with backward rule `rule` returning one
// gradient per input. Call only when needs_grad(inputs) is true.
void record(Tensor& out, const char* name, const std::vector<Tensor>& inputs, BackwardRule rule);

// The same for an op with several outputs (all defined, none of them an input): the rule receives one
// gradient per output, in the order of `outputs`.
void record_multi(const std::vector<Tensor*>& outputs, const char* name, const std::vector<Tensor>& inputs,
                  MultiBackwardRule rule);

// The node that accumulates into a leaf's .grad, created on first use and shared afterwards.
std::shared_ptr<Node> grad_accumulator(const Tensor& leaf);

// Runs backward from `root` with seed gradient `grad` (see Tensor::backward).
void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph);

}  // namespace minidl
