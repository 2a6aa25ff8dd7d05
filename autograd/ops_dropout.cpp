// Front ends of dropout and channel_dropout. They are compositions, not kernels of their own: a keep
// mask drawn with bernoulli (autograd/random.h: Philox, so a seed gives the same mask on the CPU and on a
// GPU), scaled by 1 / (1 - p), and multiplied into x with mul, whose backward rule gives the gradient
// dL/dx = dL/dy * mask / (1 - p). The mask is data, not history: it never requires grad.
//
// Element i is kept when the float32 uniform of stream value i is below 1 - p, so a draw of n elements
// advances the generator by n values (channel_dropout: one per (batch, channel) pair). Like torch:
//   - evaluation mode, p == 0 and an empty x return x itself (the same tensor, no draw);
//   - p == 1 multiplies by 0 (no draw, no division by 1 - p = 0); as with torch, a NaN or inf in x
//     stays NaN there, since the op is a product;
//   - the expected value of every element is preserved: E[mask / (1 - p)] = 1.
#include "autograd/dispatch.h"
#include "autograd/error.h"
#include "autograd/factories.h"
#include "autograd/ops.h"

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
  check_dropout("dropout", x, p);
  if (!training || p == 0 || x.numel() == 0) return x;
  return mul(x, keep_mask(x, x.shape(), p, gen));
}

Tensor channel_dropout(const Tensor& x, double p, bool training, Generator* gen) {
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
