// Front ends of dropout and channel_dropout. The keep mask comes from the Philox stream with bernoulli's
// rule (autograd/random.h), so a seed gives the same mask on the CPU and on a GPU; a kept element is
// scaled by 1 / (1 - p), and the gradient is dL/dx = dL/dy * mask / (1 - p). The mask is data, not
// history: it never requires grad.
//
// Element i is kept when the float32 uniform of stream value i is below 1 - p, so a draw of n elements
// advances the generator by n values (channel_dropout: one per (batch, channel) pair).
//   dropout: one kernel (cpu/random.cpp, cuda/random.cu) draws, scales and applies the mask in one pass
//     over x, keeping the scaled mask for the backward, where a bernoulli fill, a scaling and a product
//     would take three passes over a tensor the size of x;
//   channel_dropout: the mask is [B, C, 1, ...], small, so it is drawn with bernoulli, scaled, and
//     broadcast into x by mul, whose backward gives the gradient.
// Like torch:
//   - evaluation mode, p == 0 and an empty x return x itself (the same tensor, no draw);
//   - p == 1 multiplies by 0 (no draw, no division by 1 - p = 0); as with torch, a NaN or inf in x
//     stays NaN there, since the op is a product;
//   - the expected value of every element is preserved: E[mask / (1 - p)] = 1.
#include "autograd/dispatch.h"
#include "autograd/error.h"
#include "autograd/factories.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "autograd/random.h"
#include "cpu/kernels.h"
#include "cuda/kernels.h"

namespace minidl {
namespace {

void check_dropout(const char* op, const Tensor& x, double p) {
  check_float(op, x);
  // Written so that NaN fails too.
  MINIDL_CHECK(p >= 0 && p <= 1, op, ": p (the probability of zeroing an element) must lie in [0, 1], got ", p,
               " for input ", x.meta_str());
}

// The scaled keep mask of the given shape (which broadcasts against x), x's dtype and device.
Tensor keep_mask(const Tensor& x, const Shape& shape, double p, Generator* gen) {
  const TensorOptions o{.dtype = x.dtype(), .device = x.device()};
  if (p == 1) return zeros(shape, o);
  Tensor mask = bernoulli(shape, 1.0 - p, o, gen);
  // In place: the mask is a fresh tensor nobody else sees. 1 * float(1 / (1 - p)) is exact, so a kept
  // element is x * float(1 / (1 - p)), rounded once, whatever the mask's dtype.
  mask.mul_(1.0 / (1.0 - p));
  return mask;
}

}  // namespace

Tensor dropout(const Tensor& x, double p, bool training, Generator* gen) {
  OpScope scope("dropout", x);
  check_dropout("dropout", x, p);
  if (!training || p == 0 || x.numel() == 0) return x;
  if (p == 1) return mul(x, keep_mask(x, x.shape(), p, gen));
  const Tensor xc = x.detach().contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  const Tensor mask = Tensor::empty(x.shape(), x.dtype(), x.device());
  Generator& g = gen ? *gen : default_generator();
  const auto [seed, offset] = g.reserve(static_cast<uint64_t>(x.numel()));
  switch (x.device().type) {
    case DeviceType::CPU: cpu::dropout(xc, seed, offset, 1.0 - p, y, mask); break;
    case DeviceType::CUDA: cuda::dropout(xc, seed, offset, 1.0 - p, y, mask); break;
  }
  scope.work(static_cast<double>(y.numel()), bytes_of(xc) + bytes_of(y) + bytes_of(mask));
  if (needs_grad(x)) {
    const SavedTensor saved_mask(mask);
    record(y, "dropout", {x},
           [saved_mask](const Tensor& gy) { return std::vector<Tensor>{mul(gy, saved_mask.get("dropout"))}; });
  }
  return y;
}

Tensor channel_dropout(const Tensor& x, double p, bool training, Generator* gen) {
  const OpScope scope("channel_dropout", x);
  check_dropout("channel_dropout", x, p);
  MINIDL_CHECK(x.dim() >= 2, "channel_dropout: the input must be [B, C, *] (at least 2 dims: batch and channels), got ",
               x.meta_str());
  if (!training || p == 0 || x.numel() == 0) return x;
  // One draw per (batch, channel): the mask [B, C, 1, ...] broadcasts over the remaining dims.
  Shape mask_shape(static_cast<size_t>(x.dim()), 1);
  mask_shape[0] = x.size(0);
  mask_shape[1] = x.size(1);
  return mul(x, keep_mask(x, mask_shape, p, gen));
}

}  // namespace minidl
