// Conv1d / Conv2d / Conv3d (layers/conv.h): argument checks, torch's initialisation and repr, and the causal
// left padding of the TCN's Conv1d. The arithmetic is the conv op (autograd/ops_conv.cpp).
#include "layers/conv.h"

#include <cmath>

#include "autograd/error.h"
#include "autograd/ops.h"
#include "layers/init.h"

namespace minidl::nn {

std::vector<int64_t> Dims::expand(const std::string& layer, const char* what, int64_t rank) const {
  MINIDL_CHECK(v_.size() == 1 || static_cast<int64_t>(v_.size()) == rank, layer, ": ", what, " ", shape_str(v_),
               rank == 1 ? " needs 1 value" : " needs 1 or " + std::to_string(rank) + " values (one per spatial dim)");
  return v_.size() == 1 ? std::vector<int64_t>(static_cast<size_t>(rank), v_[0]) : v_;
}

std::string Dims::str() const { return v_.size() == 1 ? std::to_string(v_[0]) : tuple_str(v_); }

std::string tuple_str(const std::vector<int64_t>& v) {
  std::string s = "(";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + (v.size() == 1 ? ",)" : ")");
}

ConvNd::ConvNd(int64_t rank, int64_t in, int64_t out, const Dims& kernel, const Dims& stride, const Dims& padding,
               const Dims& dilation, int64_t groups, bool with_bias, Generator* gen, bool causal)
    : rank_(rank), in_(in), out_(out), groups_(groups), causal_(causal) {
  const std::string name = type_name();
  kernel_ = kernel.expand(name, "kernel_size", rank);
  stride_ = stride.expand(name, "stride", rank);
  padding_ = padding.expand(name, "padding", rank);
  dilation_ = dilation.expand(name, "dilation", rank);
  MINIDL_CHECK(in >= 1 && out >= 1, name, ": needs at least one input and one output channel, got in=", in,
               ", out=", out);
  MINIDL_CHECK(groups >= 1 && in % groups == 0 && out % groups == 0, name, ": groups ", groups,
               " must be at least 1 and divide both in=", in, " and out=", out);
  for (int64_t d = 0; d < rank; ++d) {
    MINIDL_CHECK(kernel_[d] >= 1, name, ": kernel_size ", tuple_str(kernel_), " must be at least 1 in every dim");
    MINIDL_CHECK(stride_[d] >= 1, name, ": stride ", tuple_str(stride_), " must be at least 1 in every dim");
    MINIDL_CHECK(dilation_[d] >= 1, name, ": dilation ", tuple_str(dilation_), " must be at least 1 in every dim");
    MINIDL_CHECK(padding_[d] >= 0, name, ": padding ", tuple_str(padding_), " must not be negative");
  }
  MINIDL_CHECK(!causal || rank == 1, name, ": only Conv1d can be causal");
  MINIDL_CHECK(!causal || padding_[0] == 0, name, ": a causal convolution pads (kernel_size - 1) * dilation on the ",
               "left by itself; padding must be 0, got ", padding_[0]);
  if (causal) checked_mul(name.c_str(), kernel_[0] - 1, dilation_[0]);  // the left padding
  Shape wshape{out, in / groups};
  wshape.insert(wshape.end(), kernel_.begin(), kernel_.end());
  check_shape(name.c_str(), wshape, 4);
  weight = Tensor::empty(wshape);
  init::kaiming_uniform_(weight, std::sqrt(5.0), "fan_in", gen);
  if (with_bias) {
    bias = Tensor::empty({out});
    const double bound = 1.0 / std::sqrt(static_cast<double>(init::fans(weight).first));
    init::uniform_(bias, -bound, bound, gen);
  }
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

std::string ConvNd::describe() const {
  std::string s = type_name() + "(" + std::to_string(in_) + ", " + std::to_string(out_) +
                  ", kernel_size=" + tuple_str(kernel_) + ", stride=" + tuple_str(stride_);
  auto all = [](const std::vector<int64_t>& v, int64_t value) {
    for (int64_t x : v)
      if (x != value) return false;
    return true;
  };
  if (!all(padding_, 0)) s += ", padding=" + tuple_str(padding_);
  if (!all(dilation_, 1)) s += ", dilation=" + tuple_str(dilation_);
  if (groups_ != 1) s += ", groups=" + std::to_string(groups_);
  if (!bias.defined()) s += ", bias=False";
  if (causal_) s += ", causal=True";
  return s + ")";
}

Tensor ConvNd::forward(const Tensor& x) {
  if (!causal_) return conv(x, weight, bias, stride_, padding_, dilation_, groups_);
  check_defined(type_name().c_str(), x);
  MINIDL_CHECK(x.dim() == 3, describe(), ": a causal Conv1d takes x [batch, channels, time], got ", x.meta_str());
  // Zeros on the left only: output t then reads inputs t - (k-1) d ... t, never a later one.
  const Tensor padded = pad(x, {(kernel_[0] - 1) * dilation_[0], 0});
  return conv(padded, weight, bias, stride_, {0}, dilation_, groups_);
}

}  // namespace minidl::nn
