// Anomaly detection: find the op that made the first NaN or Inf.
//
//   DetectAnomalyGuard on;     // for this scope, in the whole process
//   Tensor loss = model(x); loss.backward();   // throws at the first non-finite value, naming its op
//
// While it is on, the outputs of every op that records a node (every op of a training forward that
// depends on a parameter) are checked as the op records, and so is every gradient a backward rule
// returns, before the engine passes it on. The first non-finite tensor throws a minidl::Error that
// names the op, the module whose forward recorded it, whether it was the forward or the backward, the
// shapes, how many NaN and Inf it holds, and whether the op's own inputs (or incoming gradients) were
// still finite, so the op that made the value is told apart from one that passed it on. A backward error
// also names the forward that recorded the node: its op, module, and the op scopes open at the time
// (as PyTorch's detect_anomaly reports the forward's stack).
//
// Ops that record nothing (under NoGradGuard, or on tensors that need no gradient) are not checked.
// Each check reads a maximum back from the device, so on a GPU every op waits for it: a debugging mode,
// slower than a normal step (its cost: docs/perf.md). The trainer turns it on with the
// detect_anomaly setting (apps/train --detect-anomaly).
#pragma once

#include <vector>

#include "autograd/tensor.h"

namespace minidl {

class Node;

class DetectAnomalyGuard {
 public:
  explicit DetectAnomalyGuard(bool on = true);
  ~DetectAnomalyGuard();
  DetectAnomalyGuard(const DetectAnomalyGuard&) = delete;
  DetectAnomalyGuard& operator=(const DetectAnomalyGuard&) = delete;

 private:
  bool on_;
};

bool anomaly_detection_enabled();

namespace anomaly {
// record(): the op's outputs, just computed (node is its new node, inputs the op's inputs).
void check_forward(Node& node, const std::vector<Tensor*>& outputs, const std::vector<Tensor>& inputs);
// The engine: the gradients `grads` (one per input edge) that node's rule returned for `grad_outputs`.
void check_backward(const Node& node, const std::vector<Tensor>& grad_outputs, const std::vector<Tensor>& grads);
// Whether every element of a float tensor is finite (other dtypes: true).
bool all_finite(const Tensor& t);
}  // namespace anomaly

}  // namespace minidl
