// Anomaly detection (autograd/anomaly.h): the checks record() and the engine call while it is on.
#include "autograd/anomaly.h"

#include <cmath>
#include <sstream>

#include "autograd/error.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "autograd/scope.h"

namespace minidl {

DetectAnomalyGuard::DetectAnomalyGuard(bool on) : on_(on) {
  if (on_) instrument::acquire(instrument::kAnomaly);
}

DetectAnomalyGuard::~DetectAnomalyGuard() {
  if (on_) instrument::release(instrument::kAnomaly);
}

bool anomaly_detection_enabled() {
  return (instrument::g_flags.load(std::memory_order_relaxed) & instrument::kAnomaly) != 0;
}

namespace anomaly {
namespace {

// "2 NaN and 1 Inf among the 6 elements of float32[2,3] on cpu (the first at flat index 4)"; called only
// once a check has failed, so it may copy the tensor to the host.
std::string census(const Tensor& t) {
  const std::vector<double> v = t.values<double>();
  int64_t nan = 0, inf = 0, first = -1;
  for (size_t i = 0; i < v.size(); ++i) {
    if (std::isnan(v[i])) ++nan;
    if (std::isinf(v[i])) ++inf;
    if (first < 0 && !std::isfinite(v[i])) first = static_cast<int64_t>(i);
  }
  std::ostringstream os;
  os << nan << " NaN and " << inf << " Inf among the " << v.size() << " elements of " << t.meta_str()
     << " (the first at flat index " << first << ")";
  return os.str();
}

std::string module_of(const Node& node) { return node.module ? "module " + *node.module : "outside any module"; }

}  // namespace

bool all_finite(const Tensor& t) {
  if (!t.defined() || !is_floating(t.dtype()) || t.numel() == 0) return true;
  const instrument::Suppress quiet;  // the check's own ops are neither profiled nor checked
  const NoGradGuard no_grad;
  // max propagates NaN (as torch.max does) and |Inf| is Inf, so one number answers for the whole tensor.
  return std::isfinite(max(abs(t.detach())).item());
}

void check_forward(Node& node, const std::vector<Tensor*>& outputs, const std::vector<Tensor>& inputs) {
  // Where this node came from, for a backward error later: its op, module and the op scopes around it.
  const std::string ops = open_ops();
  node.forward_trace = "'" + node.name() + "' (" + module_of(node) + (ops.empty() ? "" : ", inside " + ops) + ")";
  for (size_t k = 0; k < outputs.size(); ++k) {
    if (all_finite(*outputs[k])) continue;
    std::ostringstream os;
    os << "anomaly detection: the forward of '" << node.name() << "' (" << module_of(node)
       << (ops.empty() ? "" : ", inside " + ops) << ") made a non-finite output";
    if (outputs.size() > 1) os << " (output " << k << ")";
    os << ": " << census(outputs[k]->detach()) << ".";
    bool inputs_finite = true;
    for (size_t i = 0; i < inputs.size(); ++i)
      if (!all_finite(inputs[i])) {
        inputs_finite = false;
        os << " Its input " << i << " (" << inputs[i].meta_str()
           << ") was already non-finite, so the value came from before this op: from data or a tensor made outside "
              "the recorded graph.";
      }
    if (inputs_finite) {
      os << " Its inputs were finite:";
      for (const Tensor& in : inputs) os << " " << (in.defined() ? in.meta_str() : std::string("(none)")) << ";";
      os << " this op made the value.";
    }
    fail(os.str());
  }
}

void check_backward(const Node& node, const std::vector<Tensor>& grad_outputs, const std::vector<Tensor>& grads) {
  for (size_t i = 0; i < grads.size(); ++i) {
    if (all_finite(grads[i])) continue;
    std::ostringstream os;
    os << "anomaly detection: the backward of '" << node.name() << "' (" << module_of(node)
       << ") made a non-finite gradient for its input " << i << ": " << census(grads[i].detach()) << ".";
    bool incoming_finite = true;
    for (const Tensor& g : grad_outputs) incoming_finite = incoming_finite && all_finite(g);
    os << (incoming_finite ? " The gradients it received were finite: this rule made the value."
                           : " A gradient it received was already non-finite (a sum of gradients overflowed, or "
                             "the seed was).");
    os << " The node was recorded in the forward by "
       << (node.forward_trace.empty() ? "'" + node.name() + "' before anomaly detection was on" : node.forward_trace)
       << ", with inputs";
    for (const Node::Edge& e : node.edges)
      os << " " << (e.defined ? TensorMeta{e.shape, e.dtype, e.device}.str() : std::string("(none)")) << ";";
    fail(os.str());
  }
}

}  // namespace anomaly
}  // namespace minidl
