// A program outside the project, built against an installed minidl: the core and the layers, as
// README's examples use them.
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "autograd/minidl.h"
#include "layers/conv.h"
#include "layers/lstm.h"

int main() {
  using namespace minidl;
  Tensor x = scalar_tensor(3.0, {.dtype = kFloat64, .requires_grad = true});
  Tensor y = x * x;  // dy/dx = 2x = 6
  y.backward();
  std::cout << "grad " << x.grad().item() << "\n";

  nn::Conv2d stem(1, 8, 7, 2, 3);
  nn::LSTM lstm(16, 4, {.num_layers = 2, .bidirectional = true, .batch_first = true});
  auto [out, h_n, c_n] = lstm(rand({2, 5, 16}));
  const auto path = std::filesystem::temp_directory_path() / "minidl_consumer_lstm.safetensors";
  nn::save(lstm, path.string());
  nn::load(lstm, path.string());
  std::filesystem::remove(path);
  std::cout << "conv " << shape_str(stem(rand({1, 1, 16, 16})).shape()) << " lstm " << shape_str(out.shape()) << "\n";
  return x.grad().item() == 6.0 && out.shape() == Shape{2, 5, 8} ? 0 : 1;
}
