// Pooling layers, torch.nn's MaxPool{1,2,3}d, AvgPool{1,2,3}d and AdaptiveAvgPool{1,2,3}d (no parameters).
// The ops are max_pool, avg_pool and adaptive_avg_pool (autograd/ops.h); N is the number of pooled spatial
// dims, the trailing N of x [B, C, *spatial].
//
//   MaxPool2d pool(3, 2, 1);                      // ResNet's stem pool: 3x3, stride 2, padding 1
//   AdaptiveAvgPool3d gap({1, 1, 1});             // global average pool of a video backbone
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

#include "autograd/tensor.h"
#include "layers/conv.h"
#include "layers/module.h"

namespace minidl::nn {

// The largest value of each window; padding counts as -inf. stride defaults to the kernel.
template <int N>
class MaxPool final : public Unary {
 public:
  explicit MaxPool(const Dims& kernel, const Dims& stride = {}, const Dims& padding = 0);
  // MaxPool3d({1, 3, 3}) would otherwise be ambiguous with a copy from MaxPool3d(1, 3, 3).
  explicit MaxPool(std::initializer_list<int64_t> kernel, const Dims& stride = {}, const Dims& padding = 0)
      : MaxPool(Dims(kernel), stride, padding) {}
  std::string type_name() const override { return "MaxPool" + std::to_string(N) + "d"; }
  std::string describe() const override;  // "MaxPool2d(kernel_size=3, stride=2, padding=1)", as torch
  Tensor forward(const Tensor& x) override;

 private:
  Dims kernel_, stride_, padding_;
};

// The mean of each window; padding counts as zeros, and in the divisor when count_include_pad.
template <int N>
class AvgPool final : public Unary {
 public:
  explicit AvgPool(const Dims& kernel, const Dims& stride = {}, const Dims& padding = 0, bool count_include_pad = true);
  explicit AvgPool(std::initializer_list<int64_t> kernel, const Dims& stride = {}, const Dims& padding = 0,
                   bool count_include_pad = true)
      : AvgPool(Dims(kernel), stride, padding, count_include_pad) {}
  std::string type_name() const override { return "AvgPool" + std::to_string(N) + "d"; }
  // "AvgPool2d(kernel_size=2, stride=2, padding=0)", with ", count_include_pad=False" when off.
  std::string describe() const override;
  Tensor forward(const Tensor& x) override;

 private:
  Dims kernel_, stride_, padding_;
  bool count_include_pad_;
};

// Each spatial dim averaged into exactly output_size cells (torch's cell edges).
template <int N>
class AdaptiveAvgPool final : public Unary {
 public:
  explicit AdaptiveAvgPool(const Dims& output_size);
  std::string type_name() const override { return "AdaptiveAvgPool" + std::to_string(N) + "d"; }
  std::string describe() const override;  // "AdaptiveAvgPool2d(output_size=(1, 1))"
  Tensor forward(const Tensor& x) override;

 private:
  Dims output_size_;
};

using MaxPool1d = MaxPool<1>;
using MaxPool2d = MaxPool<2>;
using MaxPool3d = MaxPool<3>;
using AvgPool1d = AvgPool<1>;
using AvgPool2d = AvgPool<2>;
using AvgPool3d = AvgPool<3>;
using AdaptiveAvgPool1d = AdaptiveAvgPool<1>;
using AdaptiveAvgPool2d = AdaptiveAvgPool<2>;
using AdaptiveAvgPool3d = AdaptiveAvgPool<3>;

extern template class MaxPool<1>;
extern template class MaxPool<2>;
extern template class MaxPool<3>;
extern template class AvgPool<1>;
extern template class AvgPool<2>;
extern template class AvgPool<3>;
extern template class AdaptiveAvgPool<1>;
extern template class AdaptiveAvgPool<2>;
extern template class AdaptiveAvgPool<3>;

}  // namespace minidl::nn
