// BatchNorm1d / 2d / 3d and LayerNorm (layers/norm.h): option checks, input ranks, the running-statistics
// bookkeeping and torch-style descriptions. The math is in the ops batch_norm and layer_norm.
#include "layers/norm.h"

#include <charconv>
#include <cmath>
#include <sstream>

#include "autograd/error.h"
#include "autograd/factories.h"
#include "autograd/grad_mode.h"
#include "autograd/ops.h"

namespace minidl::nn {

std::string detail::py_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  // Python's repr: the shortest digits that read back as v, in scientific notation when the decimal
  // exponent is below -4 or at least 16, else in fixed notation with at least one decimal.
  char buf[64];
  const auto sci = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  const std::string s(buf, sci.ptr);
  const int exponent = std::stoi(s.substr(s.find('e') + 1));
  if (exponent < -4 || exponent >= 16) return s;  // to_chars writes "1e-05", as Python does
  const auto fix = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  std::string f(buf, fix.ptr);
  if (f.find('.') == std::string::npos) f += ".0";
  return f;
}

namespace {

const char* py_bool(bool b) { return b ? "True" : "False"; }

}  // namespace

// ---- BatchNorm ----------------------------------------------------------------------------------------

BatchNorm::BatchNorm(int spatial_dims, int64_t num_features, double eps, std::optional<double> momentum, bool affine,
                     bool track_running_stats)
    : spatial_dims_(spatial_dims),
      num_features_(num_features),
      eps_(eps),
      momentum_(momentum),
      affine_(affine),
      track_running_stats_(track_running_stats) {
  MINIDL_CHECK(num_features > 0, type_name(), ": num_features (the number of channels) must be positive, got ",
               num_features);
  MINIDL_CHECK(std::isfinite(eps) && eps >= 0, type_name(), ": eps must be a finite number >= 0, got ", eps);
  MINIDL_CHECK(!momentum || (*momentum >= 0 && *momentum <= 1), type_name(),
               ": momentum must lie in [0, 1] (or be std::nullopt for a cumulative average), got ",
               momentum.value_or(0.0));
  if (affine) {
    weight = ones({num_features});
    bias = zeros({num_features});
  }
  if (track_running_stats) {
    running_mean = zeros({num_features});
    running_var = ones({num_features});
    num_batches_tracked = zeros({}, {.dtype = kInt64});  // 0-d, as torch stores it
  }
  // Registered even when undefined (affine = false, no tracking): the slots are skipped everywhere, and
  // the order is torch's, so state_dicts list the same names in the same order.
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
  register_buffer("running_mean", &running_mean);
  register_buffer("running_var", &running_var);
  register_buffer("num_batches_tracked", &num_batches_tracked);
}

std::string BatchNorm::type_name() const { return "BatchNorm" + std::to_string(spatial_dims_) + "d"; }

std::string BatchNorm::describe() const {
  std::ostringstream os;
  os << type_name() << "(" << num_features_ << ", eps=" << detail::py_float(eps_)
     << ", momentum=" << (momentum_ ? detail::py_float(*momentum_) : "None") << ", affine=" << py_bool(affine_)
     << ", track_running_stats=" << py_bool(track_running_stats_) << ")";
  return os.str();
}

void BatchNorm::reset_running_stats() {
  if (!running_mean.defined()) return;
  NoGradGuard no_grad;
  running_mean.zero_();
  running_var.fill_(1.0);
  num_batches_tracked.zero_();
}

void BatchNorm::reset_parameters() {
  reset_running_stats();
  if (!weight.defined()) return;
  NoGradGuard no_grad;  // in-place writes into parameters, which require grad
  weight.fill_(1.0);
  bias.zero_();
}

Tensor BatchNorm::forward(const Tensor& x) {
  check_defined(type_name().c_str(), x);
  const bool rank_ok = spatial_dims_ == 1 ? (x.dim() == 2 || x.dim() == 3) : x.dim() == spatial_dims_ + 2;
  const char* expected = spatial_dims_ == 1   ? "a 2-D input [B, C] or a 3-D input [B, C, L]"
                         : spatial_dims_ == 2 ? "a 4-D input [B, C, H, W]"
                                              : "a 5-D input [B, C, D, H, W]";
  MINIDL_CHECK(rank_ok, describe(), ": expected ", expected, ", got ", x.meta_str());
  MINIDL_CHECK(x.size(1) == num_features_, describe(), ": the input ", x.meta_str(), " has ", x.size(1),
               " channels (dim 1) but the layer was built for ", num_features_);
  const bool track = running_mean.defined();
  // Without running statistics there is nothing else to normalise with, so even evaluation uses the
  // batch's statistics (torch does the same).
  const bool use_batch_stats = is_training() || !track;
  const bool update = is_training() && track;
  const int64_t count = update ? batches_tracked() : 0;
  const double factor = !update ? 0.0 : momentum_ ? *momentum_ : 1.0 / (count + 1.0);  // cumulative: 1/count
  Tensor y = batch_norm(x, weight, bias, track ? running_mean : Tensor(), track ? running_var : Tensor(),
                        use_batch_stats, factor, eps_);
  if (update) {  // counted after the op succeeded, so a rejected batch does not count
    NoGradGuard no_grad;
    num_batches_tracked.fill_(static_cast<double>(count + 1));
    count_seen_ = count + 1;
    count_version_ = num_batches_tracked.impl()->storage->version();
  }
  return y;
}

int64_t BatchNorm::batches_tracked() {
  const std::shared_ptr<Storage>& storage = num_batches_tracked.impl()->storage;
  if (storage != count_storage_.lock() || storage->version() != count_version_) {
    count_seen_ = static_cast<int64_t>(num_batches_tracked.item());
    count_storage_ = storage;
    count_version_ = storage->version();
  }
  return count_seen_;
}

// ---- LayerNorm ----------------------------------------------------------------------------------------

LayerNorm::LayerNorm(Shape normalized_shape, double eps, bool elementwise_affine, bool use_bias)
    : normalized_shape_(std::move(normalized_shape)), eps_(eps), elementwise_affine_(elementwise_affine) {
  MINIDL_CHECK(!normalized_shape_.empty(), "LayerNorm: normalized_shape must name at least one dim, got []");
  for (int64_t s : normalized_shape_)
    MINIDL_CHECK(s > 0, "LayerNorm: normalized_shape ", shape_str(normalized_shape_), " must have positive sizes");
  MINIDL_CHECK(std::isfinite(eps) && eps >= 0, "LayerNorm: eps must be a finite number >= 0, got ", eps);
  if (elementwise_affine) {
    weight = ones(normalized_shape_);
    if (use_bias) bias = zeros(normalized_shape_);
  }
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

std::string LayerNorm::describe() const {
  // torch prints normalized_shape as a Python tuple: (64,) or (4, 8).
  std::ostringstream os;
  os << "LayerNorm((";
  for (size_t i = 0; i < normalized_shape_.size(); ++i) os << (i ? ", " : "") << normalized_shape_[i];
  os << (normalized_shape_.size() == 1 ? ",)" : ")") << ", eps=" << detail::py_float(eps_)
     << ", elementwise_affine=" << py_bool(elementwise_affine_) << ")";
  return os.str();
}

void LayerNorm::reset_parameters() {
  NoGradGuard no_grad;
  if (weight.defined()) weight.fill_(1.0);
  if (bias.defined()) bias.zero_();
}

Tensor LayerNorm::forward(const Tensor& x) { return layer_norm(x, normalized_shape_, weight, bias, eps_); }

}  // namespace minidl::nn
