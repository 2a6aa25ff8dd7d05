// Dropout layers with torch.nn's names and behaviour: Dropout zeroes single elements, Dropout1d / 2d / 3d
// zero whole channels. The ops are dropout and channel_dropout in autograd/ops.h (autograd/ops_dropout.cpp).
//
// Each layer draws its masks from a Philox Generator: the one given to its constructor (not owned; it
// must outlive the layer), else the global default generator (seeded by manual_seed). A layer in
// evaluation mode (eval()) returns its input unchanged and draws nothing.
#pragma once

#include <string>

#include "autograd/random.h"
#include "autograd/tensor.h"
#include "layers/module.h"

namespace minidl::nn {

// Training: each element is zeroed with probability p, the others scaled by 1 / (1 - p). Any input shape.
class Dropout final : public Unary {
 public:
  explicit Dropout(double p = 0.5, Generator* gen = nullptr);
  std::string type_name() const override { return "Dropout"; }
  std::string describe() const override;
  Tensor forward(const Tensor& x) override;

  double p() const { return p_; }
  Generator* generator() const { return gen_; }
  void set_generator(Generator* gen) { gen_ = gen; }

 private:
  double p_;
  Generator* gen_;
};

// Training: each channel (all of x[b, c]) is zeroed with probability p, the others scaled by 1 / (1 - p).
// One implementation for the three ranks; a batched input [B, C, *spatial] or an unbatched one [C, *spatial]
// (treated as a batch of one), with 1, 2 or 3 spatial dims.
class ChannelDropout : public Unary {
 public:
  // "Dropout1d", "Dropout2d" or "Dropout3d" (here, because the base constructor may name itself in an error).
  std::string type_name() const override;
  std::string describe() const override;
  Tensor forward(const Tensor& x) override;

  double p() const { return p_; }
  Generator* generator() const { return gen_; }
  void set_generator(Generator* gen) { gen_ = gen; }

 protected:
  ChannelDropout(int spatial_dims, double p, Generator* gen);

 private:
  int spatial_dims_;
  double p_;
  Generator* gen_;
};

// Input [B, C, L] or [C, L].
class Dropout1d final : public ChannelDropout {
 public:
  explicit Dropout1d(double p = 0.5, Generator* gen = nullptr) : ChannelDropout(1, p, gen) {}
};

// Input [B, C, H, W] or [C, H, W]. (torch 2.x still treats a 3-D input to Dropout2d as a batch [N, C, L],
// with a warning; here a 3-D input is one unbatched sample, as torch's documentation describes.)
class Dropout2d final : public ChannelDropout {
 public:
  explicit Dropout2d(double p = 0.5, Generator* gen = nullptr) : ChannelDropout(2, p, gen) {}
};

// Input [B, C, D, H, W] or [C, D, H, W].
class Dropout3d final : public ChannelDropout {
 public:
  explicit Dropout3d(double p = 0.5, Generator* gen = nullptr) : ChannelDropout(3, p, gen) {}
};

}  // namespace minidl::nn
