// The per-clip feature extractors (MODEL.md §2), with torchvision's module layout and parameter names so
// torchvision weights load by name:
//   R2Plus1D    video clip [N, 3, T, H, W] -> [N, widths.back()]: torchvision's r2plus1d_18 (stem of a
//               1x7x7 and a 3x1x1 conv, stages of (2+1)D basic blocks, stages 2-4 halving time and space,
//               global average pool), with configurable stage widths and blocks per stage;
//   AudioResNet log-mel image [N, 1, M, F] -> [N, widths.back()]: torchvision's resnet18 with a 1-channel
//               7x7 stride-2 stem and max pool, stages of basic blocks, global average pool, no fc.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "autograd/random.h"
#include "layers/module.h"

namespace minidl::models {

class R2Plus1D : public nn::Unary {
 public:
  // widths: the four stage widths (torchvision: 64, 128, 256, 512); blocks: basic blocks per stage (2);
  // stem_width: the stem's middle width (torchvision: 45).
  R2Plus1D(const std::vector<int64_t>& widths, int64_t blocks, int64_t stem_width, Generator* gen = nullptr);
  std::string type_name() const override { return "R2Plus1D"; }
  std::string describe() const override;
  Tensor forward(const Tensor& x) override;
  int64_t out_features() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

class AudioResNet : public nn::Unary {
 public:
  AudioResNet(const std::vector<int64_t>& widths, int64_t blocks, Generator* gen = nullptr);
  std::string type_name() const override { return "AudioResNet"; }
  std::string describe() const override;
  Tensor forward(const Tensor& x) override;
  int64_t out_features() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace minidl::models
