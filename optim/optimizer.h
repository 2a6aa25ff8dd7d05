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
  void set_lr(double lr);
  int64_t steps() const { return steps_; }
  const NamedTensors& params() const { return params_; }

  // "<param>.<moment>" per parameter and moment, plus "step" and "lr" (0-d float64). load checks that
  // every name and shape matches this optimiser's parameters, naming what does not.
  virtual NamedTensors state_dict() const;
  virtual void load_state_dict(const NamedTensors& state);

 protected:
  // The moment tensors of this optimiser, by name ("momentum_buffer", "exp_avg", ...), one per parameter,
  // created lazily as zeros; subclasses list theirs so state_dict/load_state_dict can handle them.
  Tensor& moment(const std::string& kind, size_t param);
  virtual std::vector<std::string> moment_kinds() const = 0;

  NamedTensors params_;
  double lr_;
  int64_t steps_ = 0;

 private:
  std::vector<std::pair<std::string, std::vector<Tensor>>> moments_;
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
  std::vector<std::string> moment_kinds() const override { return {"momentum_buffer"}; }
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
double clip_grad_norm(const NamedTensors& params, double max_norm);

}  // namespace minidl::optim
