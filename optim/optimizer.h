// Optimisers: SGD (momentum, Nesterov), Adam and AdamW, with PyTorch's update rules (torch.optim), and
// clipping by global norm. An optimiser holds the model's named parameters; its state (moments, step
// count, learning rate) is a list of named tensors, so it goes into a checkpoint beside the weights and a
// resumed run continues exactly.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.h"

namespace minidl::optim {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Optimizer {
 public:
  // params: a model's named_parameters() (the names key the state). lr > 0.
  Optimizer(NamedTensors params, double lr);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  virtual std::string type_name() const = 0;
  // One update of every parameter from its .grad, without recording autograd; parameters whose grad is
  // undefined are left alone (as torch skips p.grad is None).
  virtual void step() = 0;
  void zero_grad();

  double lr() const { return lr_; }
  void set_lr(double lr);  // >= 0: a warm-up starts at 0, a cosine may end there
  int64_t steps() const { return steps_; }
  const NamedTensors& params() const { return params_; }

  // "<param>.<moment>" per parameter and moment, plus "step" and "lr" (0-d float64). load checks that
  // every name and shape matches this optimiser's parameters, naming what does not.
  // Besides the moments, every parameter has "<param>.step", the number of updates it has had (torch keeps
  // a step per parameter: a parameter without a gradient in some steps falls behind, and its bias
  // correction or first-gradient momentum must not assume otherwise). A moment not created yet is saved
  // as zeros; its "<param>.step" of 0 says so, so the state always has every entry and load can require
  // every one. state_dict returns copies: later steps do not change a saved state.
  virtual NamedTensors state_dict() const;
  virtual void load_state_dict(const NamedTensors& state);

 protected:
  // The moment tensors of this optimiser, by name ("momentum_buffer", "exp_avg", ...), one per parameter,
  // created lazily as zeros; subclasses list theirs so state_dict/load_state_dict can handle them.
  Tensor& moment(const std::string& kind, size_t param);
  virtual std::vector<std::string> moment_kinds() const = 0;
  // Addition: the number of updates parameter `param` has had ("<param>.step" in the state).
  int64_t& param_step(size_t param) { return param_steps_.at(param); }

  NamedTensors params_;
  double lr_;
  int64_t steps_ = 0;

 private:
  std::vector<std::pair<std::string, std::vector<Tensor>>> moments_;
  std::vector<int64_t> param_steps_;
};

struct SgdOptions {
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;  // L2: added to the gradient
  bool nesterov = false;      // needs momentum > 0 and dampening == 0
};

class SGD final : public Optimizer {
 public:
  SGD(NamedTensors params, double lr, const SgdOptions& options = {});
  std::string type_name() const override { return "SGD"; }
  void step() override;

 private:
  std::vector<std::string> moment_kinds() const override;  // none without momentum
  SgdOptions options_;
};

struct AdamOptions {
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool decoupled_weight_decay = false;  // AdamW: p -= lr wd p, instead of adding wd p to the gradient
};

class Adam : public Optimizer {
 public:
  Adam(NamedTensors params, double lr = 1e-3, const AdamOptions& options = {});
  std::string type_name() const override { return options_.decoupled_weight_decay ? "AdamW" : "Adam"; }
  void step() override;

 private:
  std::vector<std::string> moment_kinds() const override { return {"exp_avg", "exp_avg_sq"}; }
  AdamOptions options_;
};

// torch.optim.AdamW: decoupled weight decay, 0.01 by default.
class AdamW final : public Adam {
 public:
  AdamW(NamedTensors params, double lr = 1e-3, AdamOptions options = {.weight_decay = 0.01});
};

// Scales every gradient by max_norm / total when the global L2 norm `total` of all gradients exceeds
// max_norm (as torch.nn.utils.clip_grad_norm_, with its 1e-6 guard); returns `total`. The norm is summed in
// double in parameter order, so it is the same on any number of threads.
// A non-finite total (an inf or NaN gradient) is returned and the gradients are left as they are (torch
// would scale them into NaNs), so the caller can see it and skip the step.
double clip_grad_norm(const NamedTensors& params, double max_norm);

}  // namespace minidl::optim
