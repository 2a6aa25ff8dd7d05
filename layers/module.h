// Module: the unit a model is built from. A module owns named parameters (tensors that are trained),
// named buffers (state that is not trained, such as BatchNorm's running statistics) and named child
// modules, and gives them PyTorch's dotted state_dict names ("visual.layer1.0.conv1.weight"), so weights
// move between minidl and PyTorch by name.
//
// A layer registers pointers to its own members in its constructor:
//   class Linear : public Unary {
//     Tensor weight, bias;
//     Linear(...) { register_parameter("weight", &weight); register_parameter("bias", &bias); }
//   };
// so a module is neither copyable nor movable (the pointers would dangle); hold it by value as a member or
// by shared_ptr.
//
// Calling a module through its call operator (module(x), not module.forward(x)) opens a ModuleScope
// (autograd/scope.h) with its dotted path, so the ops of its forward are attributed to it: the graph
// export clusters them, the profiler sums their time per module, anomaly errors name it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/device.h"
#include "autograd/dtype.h"
#include "autograd/scope.h"
#include "autograd/tensor.h"

namespace minidl::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // "Conv2d", "LSTM", ... and the same with its settings ("Conv2d(3, 64, kernel=[7,7], stride=[2,2])"),
  // for summary() and error messages.
  virtual std::string type_name() const = 0;
  virtual std::string describe() const { return type_name(); }

  // Dotted names, in registration order, own entries before the children's (as torch's named_parameters).
  NamedTensors named_parameters() const;
  std::vector<Tensor> parameters() const;
  NamedTensors named_buffers() const;
  std::vector<std::pair<std::string, Module*>> named_children() const;
  // Parameters and buffers, module by module (own parameters, own buffers, then each child), as torch's
  // state_dict orders them. Undefined tensors (a layer built without a bias) are left out.
  NamedTensors state_dict() const;
  // Copies values into the registered tensors (converted to each tensor's dtype and device). Every name,
  // shape and (strict) presence must match; otherwise nothing is changed and the error lists every missing,
  // unexpected and mis-shaped name.
  void load_state_dict(const NamedTensors& state, bool strict = true);

  void train(bool on = true);  // this module and every descendant
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Moves / converts every parameter and buffer; parameters stay leaves that require grad.
  void to(Device device);
  void to(DType dtype);
  void zero_grad();
  int64_t parameter_count() const;
  // An indented tree: each module's describe() and its number of parameters, then the total.
  std::string summary() const;

  // "visual.layer2.0.conv1": the names from the outermost module down to this one, as in the state_dict
  // ("" for a module registered in no other). A module registered in two parents takes the later name.
  std::string path() const;
  // The same, interned (autograd/scope.h intern_path), for the scope of a call; null for the root.
  const std::string* scope_path() const;

 protected:
  // The slot must outlive the module (a member does). A parameter is made a leaf that requires grad; an
  // undefined slot (an optional bias that is off) is allowed and skipped everywhere.
  void register_parameter(std::string name, Tensor* slot);
  void register_buffer(std::string name, Tensor* slot);
  void register_module(std::string name, Module* child);

 private:
  void collect(const std::string& prefix, bool params, bool buffers, NamedTensors& out) const;
  std::vector<std::pair<std::string, Tensor*>> params_, buffers_;
  std::vector<std::pair<std::string, Module*>> children_;
  bool training_ = true;
  const Module* parent_ = nullptr;  // the module this one was last registered in, and under what name
  std::string name_in_parent_;
  // scope_path() cached; valid while no module anywhere has been registered since (a registration can
  // rename a whole subtree).
  mutable const std::string* cached_path_ = nullptr;
  mutable uint64_t cached_generation_ = ~uint64_t{0};
};

// A module with one tensor in and one tensor out, which is what Sequential chains.
class Unary : public Module {
 public:
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) {
    const ModuleScope scope(scope_path());
    return forward(x);
  }
};

// Children named "0", "1", ... applied in order.
class Sequential : public Unary {
 public:
  Sequential() = default;
  Sequential& add(std::shared_ptr<Unary> layer);
  std::string type_name() const override { return "Sequential"; }
  Tensor forward(const Tensor& x) override;
  size_t size() const { return layers_.size(); }
  Unary& operator[](size_t i) { return *layers_.at(i); }

 private:
  std::vector<std::shared_ptr<Unary>> layers_;
};

// Checkpoints of a module's state_dict in the safetensors format (autograd/safetensors.h). save writes
// atomically; load follows load_state_dict's rules.
void save(const Module& module, const std::string& path);
void load(Module& module, const std::string& path, bool strict = true);

}  // namespace minidl::nn
