// Activation functions as modules (no parameters), for Sequential; the functions themselves are ops in
// autograd/ops.h (relu, leaky_relu, tanh, sigmoid).
#pragma once

#include <string>

#include "autograd/tensor.h"
#include "layers/module.h"

namespace minidl::nn {

class ReLU : public Unary {
 public:
  std::string type_name() const override { return "ReLU"; }
  Tensor forward(const Tensor& x) override;
};

// x for x >= 0, negative_slope * x below.
class LeakyReLU : public Unary {
 public:
  explicit LeakyReLU(double negative_slope = 0.01) : slope_(negative_slope) {}
  std::string type_name() const override { return "LeakyReLU"; }
  std::string describe() const override;  // "LeakyReLU(negative_slope=0.01)"
  Tensor forward(const Tensor& x) override;
  double negative_slope() const { return slope_; }

 private:
  double slope_;
};

class Tanh : public Unary {
 public:
  std::string type_name() const override { return "Tanh"; }
  Tensor forward(const Tensor& x) override;
};

class Sigmoid : public Unary {
 public:
  std::string type_name() const override { return "Sigmoid"; }
  Tensor forward(const Tensor& x) override;
};

}  // namespace minidl::nn
