// Dropout layers (layers/dropout.h): option checks, input ranks, torch-style descriptions. The masks and
// the gradient come from the ops in autograd/ops_dropout.cpp.
#include "layers/dropout.h"

#include "autograd/error.h"
#include "autograd/ops.h"
#include "layers/norm.h"  // detail::py_float

namespace minidl::nn {
namespace {

void check_p(const std::string& layer, double p) {
  // Written so that NaN fails too.
  MINIDL_CHECK(p >= 0 && p <= 1, layer, ": p (the probability of zeroing an element) must lie in [0, 1], got ", p);
}

// torch prints an `inplace` option that minidl does not have; it is always False here, and printing it
// keeps describe() equal to torch's repr.
std::string describe_p(const std::string& name, double p) {
  return name + "(p=" + detail::py_float(p) + ", inplace=False)";
}

}  // namespace

Dropout::Dropout(double p, Generator* gen) : p_(p), gen_(gen) { check_p(type_name(), p); }

std::string Dropout::describe() const { return describe_p(type_name(), p_); }

Tensor Dropout::forward(const Tensor& x) { return dropout(x, p_, is_training(), gen_); }

ChannelDropout::ChannelDropout(int spatial_dims, double p, Generator* gen)
    : spatial_dims_(spatial_dims), p_(p), gen_(gen) {
  check_p(type_name(), p);
}

std::string ChannelDropout::type_name() const { return "Dropout" + std::to_string(spatial_dims_) + "d"; }

std::string ChannelDropout::describe() const { return describe_p(type_name(), p_); }

Tensor ChannelDropout::forward(const Tensor& x) {
  const std::string name = type_name();
  check_defined(name.c_str(), x);
  const int64_t batched = spatial_dims_ + 2;
  MINIDL_CHECK(x.dim() == batched || x.dim() == batched - 1, describe(), ": expected a ", batched,
               "-D input [B, C, *spatial] or a ", batched - 1, "-D unbatched input [C, *spatial] (", spatial_dims_,
               " spatial dim", spatial_dims_ == 1 ? "" : "s", "), got ", x.meta_str());
  if (x.dim() == batched) return channel_dropout(x, p_, is_training(), gen_);
  if (!is_training() || p_ == 0) return x;  // what channel_dropout returns, without the views around it
  // An unbatched sample is a batch of one; the result takes the input's rank back.
  return channel_dropout(x.unsqueeze(0), p_, true, gen_).squeeze(0);
}

}  // namespace minidl::nn
