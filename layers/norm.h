// Normalisation layers with torch.nn's names, options, parameter and buffer names, so a state_dict moves
// between minidl and PyTorch unchanged: BatchNorm1d / 2d / 3d and LayerNorm. The ops they call are
// batch_norm and layer_norm in autograd/ops.h (autograd/ops_norm.cpp, cpu/norm.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "autograd/tensor.h"
#include "layers/module.h"

namespace minidl::nn {

// One implementation for the three ranks; the subclasses only name themselves and their accepted input.
//   parameters  weight [C] = 1, bias [C] = 0                   (when affine)
//   buffers     running_mean [C] = 0, running_var [C] = 1,      (when track_running_stats)
//               num_batches_tracked (int64, 0-d) = 0
// Training normalises with the batch's statistics and, when tracking, updates the running ones with
// weight `momentum` (or, with momentum = std::nullopt, as a cumulative average: 1 / num_batches_tracked)
// and counts the batch. Evaluation normalises with the running statistics, or with the batch's own when
// the module does not track them (as torch does).
class BatchNorm : public Unary {
 public:
  Tensor weight, bias;
  Tensor running_mean, running_var, num_batches_tracked;

  // "BatchNorm1d", "BatchNorm2d" or "BatchNorm3d". Defined here, not in the subclasses, because the base
  // constructor registers the tensors and names itself in any error while doing so.
  std::string type_name() const override;
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;

  int64_t num_features() const { return num_features_; }
  double eps() const { return eps_; }
  std::optional<double> momentum() const { return momentum_; }
  bool affine() const { return affine_; }
  bool track_running_stats() const { return track_running_stats_; }

  void reset_running_stats();  // running_mean 0, running_var 1, num_batches_tracked 0
  void reset_parameters();     // the running statistics, and weight 1, bias 0

 protected:
  // spatial_dims: 1, 2 or 3. The accepted input ranks follow from it (see the subclasses).
  BatchNorm(int spatial_dims, int64_t num_features, double eps, std::optional<double> momentum, bool affine,
            bool track_running_stats);

 private:
  int spatial_dims_;
  int64_t num_features_;
  double eps_;
  std::optional<double> momentum_;
  bool affine_, track_running_stats_;
  // num_batches_tracked as last seen, with the storage and version it was seen in: reading a device
  // tensor waits for the GPU, so the count is kept here and re-read only when the buffer changed under
  // it (load_state_dict, to(), a write by the user).
  int64_t count_seen_ = 0;
  std::weak_ptr<Storage> count_storage_;  // weak: a new buffer at a freed one's address is not mistaken for it
  uint64_t count_version_ = 0;
  int64_t batches_tracked();
};

// Input [B, C] or [B, C, L].
class BatchNorm1d final : public BatchNorm {
 public:
  explicit BatchNorm1d(int64_t num_features, double eps = 1e-5, std::optional<double> momentum = 0.1,
                       bool affine = true, bool track_running_stats = true)
      : BatchNorm(1, num_features, eps, momentum, affine, track_running_stats) {}
};

// Input [B, C, H, W].
class BatchNorm2d final : public BatchNorm {
 public:
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5, std::optional<double> momentum = 0.1,
                       bool affine = true, bool track_running_stats = true)
      : BatchNorm(2, num_features, eps, momentum, affine, track_running_stats) {}
};

// Input [B, C, D, H, W].
class BatchNorm3d final : public BatchNorm {
 public:
  explicit BatchNorm3d(int64_t num_features, double eps = 1e-5, std::optional<double> momentum = 0.1,
                       bool affine = true, bool track_running_stats = true)
      : BatchNorm(3, num_features, eps, momentum, affine, track_running_stats) {}
};

// Normalises over the trailing dims given by normalized_shape; weight (1) and bias (0) of that shape when
// elementwise_affine (the bias only if use_bias too: torch >= 2.1's `bias` option).
class LayerNorm final : public Unary {
 public:
  Tensor weight, bias;

  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true, bool use_bias = true);
  std::string type_name() const override { return "LayerNorm"; }
  std::string describe() const override;
  Tensor forward(const Tensor& x) override;

  const Shape& normalized_shape() const { return normalized_shape_; }
  double eps() const { return eps_; }
  bool elementwise_affine() const { return elementwise_affine_; }
  void reset_parameters();  // weight 1, bias 0

 private:
  Shape normalized_shape_;
  double eps_;
  bool elementwise_affine_;
};

namespace detail {
// A float as Python's repr writes it (0.1, 1e-05, 1.0), so describe() reads like torch's module repr.
std::string py_float(double v);
}  // namespace detail

}  // namespace minidl::nn
