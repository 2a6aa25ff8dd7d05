// Linear: y = x W^T + b, torch.nn.Linear with its parameter names, layout and default initialisation, so
// a state_dict moves between the two unchanged.
#pragma once

#include <cstdint>
#include <string>

#include "autograd/random.h"
#include "autograd/tensor.h"
#include "layers/module.h"

namespace minidl::nn {

class Linear : public Unary {
 public:
  // weight [out, in] ~ kaiming_uniform_(a = sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)); bias [out] ~ the same
  // range (torch's reset_parameters). Draws from `gen`, or the global generator.
  Linear(int64_t in, int64_t out, bool bias = true, Generator* gen = nullptr);

  std::string type_name() const override { return "Linear"; }
  std::string describe() const override;  // "Linear(in=512, out=128, bias=true)"
  // x [..., in] -> [..., out].
  Tensor forward(const Tensor& x) override;

  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }

  Tensor weight;
  Tensor bias;  // undefined when built without a bias

 private:
  int64_t in_, out_;
};

}  // namespace minidl::nn
