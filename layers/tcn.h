// Temporal convolutional network (Bai, Kolter & Koltun 2018, the locuslab TemporalConvNet) as the authors'
// CVPRW code uses it for the visual stream (PAPER-NOTES.md §2.2, MODEL.md §2): a stack of residual blocks of
// causal dilated 1-D convolutions over x [B, C, T], level i with dilation 2^i.
//
//   nn::TCN tcn(512, {512, 512, 512, 512}, /*kernel=*/5, /*dropout=*/0.1);   // dilations 1, 2, 4, 8
//   Tensor y = tcn(x);                                                      // [B, 512, T] -> [B, 512, T]
//
// One block:
//   x -> conv1 (causal, dilated) -> LeakyReLU -> Dropout -> conv2 (causal, dilated) -> LeakyReLU -> Dropout
//     + residual: x, or downsample(x) (a 1x1 Conv1d) where in != out
//   -> LeakyReLU of the sum.
// "Causal" is torch's "pad (k-1) d on both sides, then chomp the right (k-1) d", done as a left-only pad
// inside Conv1d(causal = true): output step t reads inputs t - (k-1) d .. t and the length is kept.
//
// Names match the torch model's state_dict (without weight_norm): network.{i}.conv1.weight / .bias,
// network.{i}.conv2.*, network.{i}.downsample.*. Initialisation as locuslab's init_weights: conv weights
// N(0, 0.01); biases keep torch's Conv1d default.
//
// Differences from the authors' code, on purpose: their convolutions are weight-normalised (weight_g /
// weight_v; ours hold a plain weight), and their dropout is Dropout2d, which on [B, C, T] drops whole channels
// - set channel_dropout to get that (Dropout1d here); the default drops single elements (torch's Dropout).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "autograd/random.h"
#include "autograd/tensor.h"
#include "layers/activation.h"
#include "layers/conv.h"
#include "layers/module.h"

namespace minidl::nn {

struct TCNOptions {
  double negative_slope = 0.01;  // of every LeakyReLU
  bool channel_dropout = false;  // drop whole channels (the authors' Dropout2d) instead of single elements
};

class TemporalBlock final : public Unary {
 public:
  // `gen` draws the initial weights and, kept (not owned; it must outlive the block), the dropout masks.
  TemporalBlock(int64_t in, int64_t out, int64_t kernel, int64_t dilation, double dropout,
                const TCNOptions& options = {}, Generator* gen = nullptr);

  std::string type_name() const override { return "TemporalBlock"; }
  std::string describe() const override;
  // x [B, in, T] -> [B, out, T].
  Tensor forward(const Tensor& x) override;

  int64_t in_channels() const { return in_; }
  int64_t out_channels() const { return out_; }
  bool has_downsample() const { return downsample != nullptr; }

  Conv1d conv1, conv2;
  std::unique_ptr<Conv1d> downsample;  // null where in == out: the residual is x itself

 private:
  int64_t in_, out_;
  LeakyReLU relu1_, relu2_, relu_;
  std::unique_ptr<Unary> dropout1_, dropout2_;
};

class TCN final : public Unary {
 public:
  // One block per entry of `channels` (its output width), level i with dilation 2^i.
  TCN(int64_t in, const std::vector<int64_t>& channels, int64_t kernel = 5, double dropout = 0.1,
      const TCNOptions& options = {}, Generator* gen = nullptr);

  std::string type_name() const override { return "TCN"; }
  std::string describe() const override;
  // x [B, in, T] -> [B, channels.back(), T].
  Tensor forward(const Tensor& x) override;

  // How many input steps one output step sees: 1 + 2 (kernel - 1) (2^levels - 1).
  int64_t receptive_field() const;
  TemporalBlock& block(size_t i);

  Sequential network;

 private:
  int64_t in_, kernel_;
  std::vector<int64_t> channels_;
  std::vector<std::shared_ptr<TemporalBlock>> blocks_;
};

}  // namespace minidl::nn
