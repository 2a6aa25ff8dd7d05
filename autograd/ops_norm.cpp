// Front ends of batch_norm and layer_norm, each one fused op: one kernel computes the statistics and the
// normalised output, one kernel computes every gradient. Kernels and the derivation of the backward
// formulas: cpu/norm.cpp (declared in cpu/norm.h); CUDA kernels: cuda/norm.cu.
//
// Both ops save the mean and 1/sqrt(var + eps) they normalised with (float64, one per channel or row), so
// backward neither recomputes the statistics nor depends on buffers that may change after the forward
// pass: batch norm's running statistics are updated in place by every training step, and in evaluation
// mode the saved copies are what the (affine) backward reads.
#include <cmath>

#include "autograd/dispatch.h"
#include "autograd/error.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "cpu/norm.h"
#include "cuda/kernels.h"

namespace minidl {
namespace {

// A per-channel (or per-normalized-shape) tensor of batch_norm / layer_norm: x's dtype and device, the
// expected shape. `what` names it in the message ("weight", "running_var").
void check_param(const char* op, const Tensor& x, const Tensor& t, const char* what, const Shape& expected,
                 const char* why) {
  MINIDL_CHECK(t.dtype() == x.dtype() && t.device() == x.device(), op, ": ", what, " ", t.meta_str(),
               " must have the input's dtype and device (input ", x.meta_str(), ")");
  MINIDL_CHECK(t.shape() == expected, op, ": ", what, " has shape ", shape_str(t.shape()), " but the input ",
               shape_str(x.shape()), " needs ", shape_str(expected), " (", why, ")");
}

// Running statistics are state, not parameters: training writes them in place, so autograd cannot track
// them, and no gradient flows into them in either mode (torch treats them the same way).
void check_running(const char* op, const Tensor& x, const Tensor& t, const char* what, int64_t C, bool training) {
  check_param(op, x, t, what, {C}, "one value per channel, dim 1 of the input");
  MINIDL_CHECK(!t.requires_grad(), op, ": ", what, " ", t.meta_str(),
               " requires grad, but running statistics are buffers that no gradient flows into; pass a tensor "
               "that does not require grad (detach() it)");
  MINIDL_CHECK(!training || !t.has_overlap(), op, ": ", what, " ", t.meta_str(),
               " is an expanded view (several channels share one element), so it cannot be updated in place; "
               "clone() it first");
}

}  // namespace

Tensor batch_norm(const Tensor& x_in, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, bool training, double momentum, double eps) {
  const char* op = "batch_norm";
  OpScope scope(op, x_in, weight, bias);
  check_float(op, x_in);
  MINIDL_CHECK(x_in.dim() >= 2, op, ": the input must be [B, C, *] (at least 2 dims: batch and channels), got ",
               x_in.meta_str());
  const int64_t B = x_in.size(0), C = x_in.size(1);
  const int64_t S = numel_of(Shape(x_in.shape().begin() + 2, x_in.shape().end()));
  const int64_t N = checked_mul(op, B, S);  // values per channel
  const char* per_channel = "one value per channel, dim 1 of the input";
  if (weight.defined()) check_param(op, x_in, weight, "weight", {C}, per_channel);
  if (bias.defined()) check_param(op, x_in, bias, "bias", {C}, per_channel);
  MINIDL_CHECK(running_mean.defined() == running_var.defined(), op, ": running_mean (",
               running_mean.defined() ? running_mean.meta_str() : "undefined", ") and running_var (",
               running_var.defined() ? running_var.meta_str() : "undefined",
               ") must be given together, or both left undefined (no running statistics)");
  const bool has_running = running_mean.defined();
  if (has_running) {
    check_running(op, x_in, running_mean, "running_mean", C, training);
    check_running(op, x_in, running_var, "running_var", C, training);
  }
  MINIDL_CHECK(training || has_running, op,
               ": evaluation mode (training = false) normalises with the running "
               "statistics, but running_mean and running_var are undefined (input ",
               x_in.meta_str(), "); pass them, or use training mode to normalise with the batch's own statistics");
  // torch's words, so a search for the message finds the explanation: the variance of one value is 0, so
  // the output would be the bias alone and the unbiased running variance would divide by zero.
  MINIDL_CHECK(!training || N > 1, op, ": Expected more than 1 value per channel when training, got input ",
               x_in.meta_str(), " (", N, " value", N == 1 ? "" : "s",
               " per channel); use a batch of at least 2, or evaluation mode");
  MINIDL_CHECK(std::isfinite(eps) && eps >= 0, op, ": eps must be a finite number >= 0, got ", eps);
  MINIDL_CHECK(!training || !has_running || (momentum >= 0 && momentum <= 1), op,
               ": momentum must lie in [0, 1] (the weight of the batch in the running statistics), got ", momentum);

  // The kernel reads x as [B, C, S]: a view when the spatial dims merge (any permutation of B and C too),
  // otherwise a copy. Detached: the recorded node below is the only history the output gets.
  const Tensor x = x_in.detach().reshape({B, C, S});
  const Device dev = x.device();
  Tensor out = Tensor::empty({B, C, S}, x.dtype(), dev);
  Tensor save_mean = Tensor::empty({C}, kFloat64, dev), save_invstd = Tensor::empty({C}, kFloat64, dev);
  switch (dev.type) {
    case DeviceType::CPU:
      cpu::batch_norm_forward(x, weight, bias, running_mean, running_var, training, momentum, eps, out, save_mean,
                              save_invstd);
      break;
    case DeviceType::CUDA:
      cuda::batch_norm_forward(x, weight, bias, running_mean, running_var, training, momentum, eps, out, save_mean,
                               save_invstd);
      break;
  }
  scope.work(0, bytes_of(x) + bytes_of(out));
  if (training && has_running) {  // written in place by the kernel; not recorded by autograd
    running_mean.impl()->storage->bump_version();
    running_var.impl()->storage->bump_version();
  }
  out = out.reshape(x_in.shape());

  if (needs_grad(x_in, weight, bias)) {
    const bool rx = x_in.requires_grad(), rw = weight.defined() && weight.requires_grad(),
               rb = bias.defined() && bias.requires_grad();
    // x is read for dweight and, in training mode, for dx; the weight only for dx.
    const SavedTensor sx(rw || (rx && training) ? x : Tensor()), sw(rx ? weight : Tensor());
    const SavedTensor smean(save_mean), sinv(save_invstd);
    const Shape shape = x_in.shape();
    record(out, op, {x_in, weight, bias}, [=](const Tensor& g_in) {
      const Tensor g = g_in.reshape({B, C, S});
      const Device d = g.device();
      Tensor gx = rx ? Tensor::empty({B, C, S}, g.dtype(), d) : Tensor();
      Tensor gw = rw ? Tensor::empty({C}, g.dtype(), d) : Tensor();
      Tensor gb = rb ? Tensor::empty({C}, g.dtype(), d) : Tensor();
      switch (d.type) {
        case DeviceType::CPU:
          cpu::batch_norm_backward(sx.get(op), g, sw.get(op), smean.get(op), sinv.get(op), training, gx, gw, gb);
          break;
        case DeviceType::CUDA:
          cuda::batch_norm_backward(sx.get(op), g, sw.get(op), smean.get(op), sinv.get(op), training, gx, gw, gb);
          break;
      }
      count_work(0, 2 * bytes_of(g) + bytes_of(gx));
      return std::vector<Tensor>{rx ? gx.reshape(shape) : Tensor(), gw, gb};
    });
  }
  return out;
}

Tensor layer_norm(const Tensor& x_in, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps) {
  const char* op = "layer_norm";
  OpScope scope(op, x_in, weight, bias);
  check_float(op, x_in);
  const int64_t k = static_cast<int64_t>(normalized_shape.size());
  MINIDL_CHECK(k >= 1, op, ": normalized_shape must name at least one trailing dim of the input ", x_in.meta_str(),
               ", got []");
  check_shape(op, normalized_shape);
  const Shape& xs = x_in.shape();
  MINIDL_CHECK(x_in.dim() >= k && Shape(xs.end() - k, xs.end()) == normalized_shape, op, ": normalized_shape ",
               shape_str(normalized_shape), " must equal the trailing dims of the input ", x_in.meta_str(),
               " (an input of shape [*, ", shape_str(normalized_shape).substr(1), " is expected)");
  const char* why = "one value per element of normalized_shape";
  if (weight.defined()) check_param(op, x_in, weight, "weight", normalized_shape, why);
  if (bias.defined()) check_param(op, x_in, bias, "bias", normalized_shape, why);
  MINIDL_CHECK(std::isfinite(eps) && eps >= 0, op, ": eps must be a finite number >= 0, got ", eps);

  const int64_t N = numel_of(normalized_shape), M = numel_of(Shape(xs.begin(), xs.end() - k));
  const Tensor x = x_in.detach().reshape({M, N});
  const Tensor w = weight.defined() ? weight.detach().reshape({N}) : Tensor();
  const Tensor b = bias.defined() ? bias.detach().reshape({N}) : Tensor();
  const Device dev = x.device();
  Tensor out = Tensor::empty({M, N}, x.dtype(), dev);
  Tensor save_mean = Tensor::empty({M}, kFloat64, dev), save_invstd = Tensor::empty({M}, kFloat64, dev);
  switch (dev.type) {
    case DeviceType::CPU: cpu::layer_norm_forward(x, w, b, eps, out, save_mean, save_invstd); break;
    case DeviceType::CUDA: cuda::layer_norm_forward(x, w, b, eps, out, save_mean, save_invstd); break;
  }
  scope.work(0, bytes_of(x) + bytes_of(out));
  out = out.reshape(xs);

  if (needs_grad(x_in, weight, bias)) {
    const bool rx = x_in.requires_grad(), rw = weight.defined() && weight.requires_grad(),
               rb = bias.defined() && bias.requires_grad();
    const SavedTensor sx(rx || rw ? x : Tensor()), sw(rx ? w : Tensor());
    const SavedTensor smean(save_mean), sinv(save_invstd);
    const Shape shape = xs, wshape = normalized_shape;
    record(out, op, {x_in, weight, bias}, [=](const Tensor& g_in) {
      const Tensor g = g_in.reshape({M, N});
      const Device d = g.device();
      Tensor gx = rx ? Tensor::empty({M, N}, g.dtype(), d) : Tensor();
      Tensor gw = rw ? Tensor::empty({N}, g.dtype(), d) : Tensor();
      Tensor gb = rb ? Tensor::empty({N}, g.dtype(), d) : Tensor();
      switch (d.type) {
        case DeviceType::CPU:
          cpu::layer_norm_backward(sx.get(op), g, sw.get(op), smean.get(op), sinv.get(op), gx, gw, gb);
          break;
        case DeviceType::CUDA:
          cuda::layer_norm_backward(sx.get(op), g, sw.get(op), smean.get(op), sinv.get(op), gx, gw, gb);
          break;
      }
      count_work(0, 2 * bytes_of(g) + bytes_of(gx));
      return std::vector<Tensor>{rx ? gx.reshape(shape) : Tensor(), rw ? gw.reshape(wshape) : Tensor(),
                                 rb ? gb.reshape(wshape) : Tensor()};
    });
  }
  return out;
}

}  // namespace minidl
