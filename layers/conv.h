// Conv1d, Conv2d, Conv3d: torch.nn.Conv{1,2,3}d with their parameter names, layouts and default
// initialisation, so a state_dict moves between the two unchanged. The op itself is conv (autograd/ops.h).
//
//   Conv2d stem(1, 64, 7, 2, 3, 1, 1, false);           // ResNet-18 audio stem: 7x7, stride 2, padding 3
//   Conv3d spatial(3, 45, {1, 7, 7}, {1, 2, 2}, {0, 3, 3});   // R(2+1)D: 1x7x7 over (time, height, width)
//   Conv1d tcn(512, 512, 5, 1, 0, 4, 1, true, nullptr, true); // causal, dilation 4
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "autograd/random.h"
#include "autograd/tensor.h"
#include "layers/module.h"

namespace minidl::nn {

// A size for each spatial dim, given as one value for all of them (3) or one per dim ({1, 3, 3}), as the
// conv and pooling layers take their kernel, stride, padding and dilation.
class Dims {
 public:
  Dims() = default;           // no value: "the default" where a layer has one (a pooling stride is its kernel)
  Dims(int64_t v) : v_{v} {}  // NOLINT: implicit on purpose, so a plain number works
  Dims(std::initializer_list<int64_t> v) : v_(v) {}
  Dims(std::vector<int64_t> v) : v_(std::move(v)) {}  // NOLINT

  bool empty() const { return v_.empty(); }
  const std::vector<int64_t>& values() const { return v_; }
  // One value per dim for a layer of `rank` spatial dims; any other count is a minidl::Error naming the
  // layer and the argument.
  std::vector<int64_t> expand(const std::string& layer, const char* what, int64_t rank) const;
  // As torch prints a layer argument: "3" for one value, "(1, 3, 3)" for several.
  std::string str() const;

 private:
  std::vector<int64_t> v_;
};

// "(7, 7)", or "(3,)" for one value: a Python tuple, as torch's repr prints a conv's sizes.
std::string tuple_str(const std::vector<int64_t>& v);

// The convolution layer of any rank; Conv1d, Conv2d and Conv3d fix the rank and name it.
class ConvNd : public Unary {
 public:
  std::string type_name() const override { return "Conv" + std::to_string(rank_) + "d"; }
  // torch's repr: "Conv2d(1, 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3), bias=False)"; padding,
  // dilation, groups and bias appear only when not the default, causal only when on.
  std::string describe() const override;
  // x [B, in, *spatial] -> [B, out, *spatial_out].
  Tensor forward(const Tensor& x) override;

  int64_t rank() const { return rank_; }
  int64_t in_channels() const { return in_; }
  int64_t out_channels() const { return out_; }
  int64_t groups() const { return groups_; }
  bool causal() const { return causal_; }
  const std::vector<int64_t>& kernel_size() const { return kernel_; }
  const std::vector<int64_t>& stride() const { return stride_; }
  const std::vector<int64_t>& padding() const { return padding_; }
  const std::vector<int64_t>& dilation() const { return dilation_; }

  Tensor weight;  // [out, in / groups, *kernel] ~ kaiming_uniform_(a = sqrt(5)) = U(-1/sqrt(fan_in), +)
  Tensor bias;    // [out] ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)); undefined when built without a bias

 protected:
  // fan_in = (in / groups) prod(kernel). Draws the weight, then the bias, from `gen` (or the global
  // generator), as torch's reset_parameters does.
  ConvNd(int64_t rank, int64_t in, int64_t out, const Dims& kernel, const Dims& stride, const Dims& padding,
         const Dims& dilation, int64_t groups, bool bias, Generator* gen, bool causal);

 private:
  int64_t rank_, in_, out_, groups_;
  bool causal_;
  std::vector<int64_t> kernel_, stride_, padding_, dilation_;
};

// x [B, in, T]. causal: the input is padded with (kernel - 1) dilation zeros on the left only, so output
// step t sees inputs up to t and the output keeps the input's length at stride 1 - the TCN's "pad both
// sides, then chomp the right" in one step. padding must then be 0.
class Conv1d final : public ConvNd {
 public:
  Conv1d(int64_t in, int64_t out, const Dims& kernel, const Dims& stride = 1, const Dims& padding = 0,
         const Dims& dilation = 1, int64_t groups = 1, bool bias = true, Generator* gen = nullptr, bool causal = false)
      : ConvNd(1, in, out, kernel, stride, padding, dilation, groups, bias, gen, causal) {}
};

// x [B, in, H, W].
class Conv2d final : public ConvNd {
 public:
  Conv2d(int64_t in, int64_t out, const Dims& kernel, const Dims& stride = 1, const Dims& padding = 0,
         const Dims& dilation = 1, int64_t groups = 1, bool bias = true, Generator* gen = nullptr)
      : ConvNd(2, in, out, kernel, stride, padding, dilation, groups, bias, gen, false) {}
};

// x [B, in, T, H, W].
class Conv3d final : public ConvNd {
 public:
  Conv3d(int64_t in, int64_t out, const Dims& kernel, const Dims& stride = 1, const Dims& padding = 0,
         const Dims& dilation = 1, int64_t groups = 1, bool bias = true, Generator* gen = nullptr)
      : ConvNd(3, in, out, kernel, stride, padding, dilation, groups, bias, gen, false) {}
};

}  // namespace minidl::nn
