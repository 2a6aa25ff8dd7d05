#include "layers/linear.h"

#include <cmath>

#include "autograd/error.h"
#include "autograd/ops.h"
#include "layers/init.h"

namespace minidl::nn {

Linear::Linear(int64_t in, int64_t out, bool with_bias, Generator* gen) : in_(in), out_(out) {
  MINIDL_CHECK(in >= 0 && out >= 0, "Linear: sizes must be non-negative, got in=", in, ", out=", out);
  weight = Tensor::empty({out, in});
  init::kaiming_uniform_(weight, std::sqrt(5.0), "fan_in", gen);
  if (with_bias) {
    bias = Tensor::empty({out});
    // torch: bound 1/sqrt(fan_in), or 0 for a layer with no inputs.
    const double bound = in > 0 ? 1.0 / std::sqrt(static_cast<double>(in)) : 0.0;
    init::uniform_(bias, -bound, bound, gen);
  }
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

std::string Linear::describe() const {
  return "Linear(in=" + std::to_string(in_) + ", out=" + std::to_string(out_) +
         ", bias=" + (bias.defined() ? "true" : "false") + ")";
}

Tensor Linear::forward(const Tensor& x) {
  check_defined("Linear", x);
  MINIDL_CHECK(x.dim() >= 1 && x.size(-1) == in_, describe(), ": input ", x.meta_str(), " must end in a dim of ", in_);
  return linear(x, weight, bias);
}

}  // namespace minidl::nn
