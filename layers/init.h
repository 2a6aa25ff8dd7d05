// Parameter initialisers, with PyTorch's definitions (torch.nn.init), drawing from the Philox stream of
// `gen` (default: the global generator). They write in place without recording autograd.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "autograd/random.h"
#include "autograd/tensor.h"

namespace minidl::nn::init {

// (fan_in, fan_out) of a weight [out, in, *kernel]: in * prod(kernel) and out * prod(kernel).
std::pair<int64_t, int64_t> fans(const Tensor& weight);

void zeros_(Tensor& t);
void constant_(Tensor& t, double value);
void uniform_(Tensor& t, double lo, double hi, Generator* gen = nullptr);
void normal_(Tensor& t, double mean, double std, Generator* gen = nullptr);
// U(-a, a) with a = gain sqrt(6 / (fan_in + fan_out)); N(0, gain^2 2 / (fan_in + fan_out)).
void xavier_uniform_(Tensor& t, double gain = 1.0, Generator* gen = nullptr);
void xavier_normal_(Tensor& t, double gain = 1.0, Generator* gen = nullptr);
// He initialisation for a leaky ReLU of slope a (a = 0: ReLU): std = gain / sqrt(fan), gain = sqrt(2 / (1 + a^2));
// mode "fan_in" or "fan_out". torch's default for Linear and Conv is kaiming_uniform_ with a = sqrt(5).
void kaiming_uniform_(Tensor& t, double a = 0.0, const std::string& mode = "fan_in", Generator* gen = nullptr);
void kaiming_normal_(Tensor& t, double a = 0.0, const std::string& mode = "fan_in", Generator* gen = nullptr);

}  // namespace minidl::nn::init
