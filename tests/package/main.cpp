#include <iostream>

#include "autograd/minidl.h"

int main() {
  using namespace minidl;
  Tensor x = scalar_tensor(3.0, {.dtype = kFloat64, .requires_grad = true});
  Tensor y = x * x;  // dy/dx = 2x = 6
  y.backward();
  std::cout << "grad " << x.grad().item() << "\n";
  return x.grad().item() == 6.0 ? 0 : 1;
}
