#include "layers/activation.h"

#include <sstream>

#include "autograd/ops.h"

namespace minidl::nn {

Tensor ReLU::forward(const Tensor& x) { return relu(x); }

std::string LeakyReLU::describe() const {
  std::ostringstream os;
  os << "LeakyReLU(negative_slope=" << slope_ << ")";
  return os.str();
}

Tensor LeakyReLU::forward(const Tensor& x) { return leaky_relu(x, slope_); }

Tensor Tanh::forward(const Tensor& x) { return tanh(x); }

Tensor Sigmoid::forward(const Tensor& x) { return sigmoid(x); }

}  // namespace minidl::nn
