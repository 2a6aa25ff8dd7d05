// Front end of conv: convolution (cross-correlation, as in torch) over 1, 2 or 3 spatial dims, with stride,
// zero padding, dilation and groups. Kernel: cpu/conv.cpp (declared in cpu/conv.h), and cuda/conv.cu.
//
// Backward, for y = conv(x, w) + b:
//   dx = conv_transpose(dy, w)   (col2im of w^T dy)   reads w
//   dw = dy (*) x                (dy col(x)^T)        reads x
//   db = sum of dy over the batch and space
// so x is saved only when w requires grad, w only when x does, and nothing for b. One fused backward
// kernel computes whichever of the three are wanted, sharing one im2col per batch item between them.
#include <string>

#include "autograd/dispatch.h"
#include "autograd/error.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "cpu/conv.h"
#include "cuda/kernels.h"

namespace minidl {
namespace {

// "conv: input [2,3,8,8], weight [16,3,3,3]" - the start of every geometry error.
std::string describe(const Tensor& x, const Tensor& w) {
  return "conv: input " + shape_str(x.shape()) + ", weight " + shape_str(w.shape());
}

// One value per spatial dim from a list of one (for all dims) or `rank` values.
std::vector<int64_t> per_dim(const Tensor& x, const Tensor& w, const char* what, const std::vector<int64_t>& v,
                             int64_t rank) {
  MINIDL_CHECK(v.size() == 1 || static_cast<int64_t>(v.size()) == rank, describe(x, w), ": ", what, " ", shape_str(v),
               " needs 1 or ", rank, " values (one per spatial dim)");
  return v.size() == 1 ? std::vector<int64_t>(static_cast<size_t>(rank), v[0]) : v;
}

// Checks everything and fills the kernel's geometry.
ConvShape plan(const Tensor& x, const Tensor& w, const Tensor& bias, const std::vector<int64_t>& stride_in,
               const std::vector<int64_t>& padding_in, const std::vector<int64_t>& dilation_in, int64_t groups) {
  check_float("conv", x);
  check_defined("conv", w, "weight");
  check_same("conv", x, w);
  MINIDL_CHECK(x.dim() >= 3 && x.dim() <= 5, "conv: input ", x.meta_str(),
               " must be [batch, channels, *spatial] with 1 to 3 spatial dims (3 to 5 dims in all)");
  const int64_t rank = x.dim() - 2;
  MINIDL_CHECK(w.dim() == x.dim(), describe(x, w), ": a ", rank, "-D convolution needs a weight with ", x.dim(),
               " dims [out_channels, in_channels / groups, *kernel], got ", w.dim());
  const std::vector<int64_t> stride = per_dim(x, w, "stride", stride_in, rank);
  const std::vector<int64_t> padding = per_dim(x, w, "padding", padding_in, rank);
  const std::vector<int64_t> dilation = per_dim(x, w, "dilation", dilation_in, rank);
  MINIDL_CHECK(groups >= 1, describe(x, w), ": groups must be at least 1, got ", groups);
  const int64_t cin = x.size(1), cout = w.size(0);
  MINIDL_CHECK(cin >= 1 && cout >= 1, describe(x, w), ": needs at least one input and one output channel");
  MINIDL_CHECK(cin % groups == 0 && cout % groups == 0, describe(x, w), ": groups ", groups, " must divide both the ",
               cin, " input channels and the ", cout, " output channels");
  MINIDL_CHECK(w.size(1) * groups == cin, "conv: input ", shape_str(x.shape()), " has ", cin, " channels but weight ",
               shape_str(w.shape()), " expects ", w.size(1) * groups, " (groups ", groups, ")");
  if (bias.defined()) {
    check_same("conv", x, bias);
    MINIDL_CHECK(bias.dim() == 1 && bias.size(0) == cout, describe(x, w), ": bias must be [", cout, "], got ",
                 bias.meta_str());
  }

  ConvShape s;
  s.batch = x.size(0);
  s.in_channels = cin;
  s.out_channels = cout;
  s.groups = groups;
  const int64_t lead = 3 - rank;  // lower ranks fill the trailing spatial dims of the 3-D geometry
  for (int64_t d = 0; d < rank; ++d) {
    const int64_t in = x.size(d + 2), k = w.size(d + 2), st = stride[d], pad = padding[d], dil = dilation[d];
    MINIDL_CHECK(in >= 1, describe(x, w), ": spatial dim ", d, " of the input is empty");
    MINIDL_CHECK(k >= 1, describe(x, w), ": kernel size ", k, " in spatial dim ", d, " must be at least 1");
    MINIDL_CHECK(st >= 1, describe(x, w), ": stride ", shape_str(stride), " must be at least 1 in every dim");
    MINIDL_CHECK(dil >= 1, describe(x, w), ": dilation ", shape_str(dilation), " must be at least 1 in every dim");
    MINIDL_CHECK(pad >= 0, describe(x, w), ": padding ", shape_str(padding), " must not be negative");
    // in + 2 pad - dil (k - 1) - 1, without overflow for absurd arguments.
    int64_t reach = 0, span = 0, room = 0;
    MINIDL_CHECK(!__builtin_mul_overflow(dil, k - 1, &reach) && !__builtin_mul_overflow(pad, 2, &span) &&
                     !__builtin_add_overflow(in, span, &room),
                 describe(x, w), ": padding ", shape_str(padding), " or dilation ", shape_str(dilation),
                 " is too large");
    const int64_t numer = room - reach - 1;
    const int64_t out = numer / st - (numer < 0 && numer % st != 0 ? 1 : 0) + 1;  // floor division
    MINIDL_CHECK(out >= 1, describe(x, w), " with stride ", shape_str(stride), ", padding ", shape_str(padding),
                 ", dilation ", shape_str(dilation), ": spatial dim ", d, " has output size ", out, " (", in, " + 2*",
                 pad, " - ", dil, "*(", k, "-1) - 1) / ", st,
                 " + 1 < 1: the dilated kernel is larger than the padded input");
    s.in[lead + d] = in;
    s.kernel[lead + d] = k;
    s.out[lead + d] = out;
    s.stride[lead + d] = st;
    s.padding[lead + d] = pad;
    s.dilation[lead + d] = dil;
  }
  // The column buffer holds (C_in / groups) prod(kernel) x prod(out) elements per thread.
  const int64_t taps = checked_mul("conv", w.size(1), s.kernel[0] * s.kernel[1] * s.kernel[2]);
  check_shape("conv", {taps, s.out[0], s.out[1], s.out[2]}, static_cast<int64_t>(dtype_size(x.dtype())));
  return s;
}

// Multiply-adds of one pass over the whole batch: every output element sums over its group's input
// channels and the kernel. The forward, the data gradient and the weight gradient each do this many.
double multiply_adds(const ConvShape& s) {
  double per_output = static_cast<double>(s.in_channels / s.groups);
  for (int d = 0; d < 3; ++d) per_output *= static_cast<double>(s.kernel[d]);
  return static_cast<double>(s.batch * s.out_channels) * static_cast<double>(s.out[0] * s.out[1] * s.out[2]) *
         per_output;
}

Shape output_shape(const ConvShape& s, int64_t rank) {
  Shape out{s.batch, s.out_channels};
  for (int64_t d = 3 - rank; d < 3; ++d) out.push_back(s.out[d]);
  return out;
}

}  // namespace

Tensor conv(const Tensor& x, const Tensor& weight, const Tensor& bias, const std::vector<int64_t>& stride,
            const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation, int64_t groups) {
  OpScope scope("conv", x, weight, bias);
  const ConvShape s = plan(x, weight, bias, stride, padding, dilation, groups);
  const int64_t rank = x.dim() - 2;
  const Shape out_shape = output_shape(s, rank);
  check_shape("conv", out_shape, static_cast<int64_t>(dtype_size(x.dtype())));
  // The kernels address whole planes: contiguous copies where needed, taken outside the graph (the node
  // below is recorded against the caller's tensors).
  const Tensor xc = x.detach().contiguous(), wc = weight.detach().contiguous();
  const Tensor bc = bias.defined() ? bias.detach().contiguous() : Tensor();
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  switch (x.device().type) {
    case DeviceType::CPU: cpu::conv_forward(xc, wc, bc, s, out); break;
    case DeviceType::CUDA: cuda::conv_forward(xc, wc, bc, s, out); break;
  }
  // Two operations per multiply-add, and one add per output element for the bias.
  scope.work(2 * multiply_adds(s) + (bias.defined() ? static_cast<double>(out.numel()) : 0.0),
             bytes_of(xc) + bytes_of(wc) + bytes_of(bc) + bytes_of(out));
  if (needs_grad(x, weight, bias)) {
    const bool rx = x.requires_grad(), rw = weight.requires_grad(), rb = bias.defined() && bias.requires_grad();
    const SavedTensor sx(rw ? xc : Tensor()), sw(rx ? wc : Tensor());
    const Shape x_shape = xc.shape(), w_shape = wc.shape();
    std::vector<Tensor> inputs{x, weight};
    if (bias.defined()) inputs.push_back(bias);
    const bool has_bias = bias.defined();
    record(out, "conv", inputs, [sx, sw, s, rx, rw, rb, has_bias, x_shape, w_shape](const Tensor& g) {
      const Tensor gc = g.contiguous();
      const Tensor xs = rw ? sx.get("conv") : Tensor(), ws = rx ? sw.get("conv") : Tensor();
      const Tensor gx = rx ? Tensor::empty(x_shape, gc.dtype(), gc.device()) : Tensor();
      const Tensor gw = rw ? Tensor::empty(w_shape, gc.dtype(), gc.device()) : Tensor();
      const Tensor gb = rb ? Tensor::empty({s.out_channels}, gc.dtype(), gc.device()) : Tensor();
      switch (gc.device().type) {
        case DeviceType::CPU: cpu::conv_backward(xs, ws, gc, s, gx, gw, gb); break;
        case DeviceType::CUDA: cuda::conv_backward(xs, ws, gc, s, gx, gw, gb); break;
      }
      count_work((rx ? 2 * multiply_adds(s) : 0.0) + (rw ? 2 * multiply_adds(s) : 0.0) +
                     (rb ? static_cast<double>(gc.numel()) : 0.0),
                 bytes_of(gc) + bytes_of(xs) + bytes_of(ws) + bytes_of(gx) + bytes_of(gw) + bytes_of(gb));
      std::vector<Tensor> grads{gx, gw};
      if (has_bias) grads.push_back(gb);
      return grads;
    });
  }
  return out;
}

}  // namespace minidl
