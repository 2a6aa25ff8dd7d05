// Front ends of max_pool, avg_pool and adaptive_avg_pool over the trailing 1-3 dims of x [B, C, *spatial].
// Kernels: cpu/pool.cpp (declared in cpu/conv.h) and cuda/pool.cu.
//
// The front end turns the arguments into a table of clipped input windows per spatial dim (PoolDim);
// the three ops then differ only in what they do with a window. Backward rules:
//   max_pool:           the gradient of each output goes to the first maximum of its window, whose position
//                       the forward saved (int64 indices); x itself is not kept
//   avg_pool, adaptive: each output's gradient, divided by its divisor, spread over its window; nothing saved
//                       but the geometry
#include <string>

#include "autograd/dispatch.h"
#include "autograd/error.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "cpu/conv.h"
#include "cuda/kernels.h"

namespace minidl {
namespace {

struct PoolPlan {
  PoolShape s;
  Shape out_shape;
};

// x is a float tensor [B, C, *spatial] with `rank` non-empty spatial dims; `what` names the argument that
// fixed the rank (the kernel or the output size).
void check_input(const char* op, const Tensor& x, const char* what, const std::vector<int64_t>& v) {
  check_float(op, x);
  const int64_t rank = static_cast<int64_t>(v.size());
  MINIDL_CHECK(rank >= 1 && rank <= 3, op, ": ", what, " ", shape_str(v),
               " must have 1 to 3 values, one per pooled spatial dim (input ", shape_str(x.shape()), ")");
  MINIDL_CHECK(x.dim() == rank + 2, op, ": input ", x.meta_str(), " must be [batch, channels, *spatial] with ", rank,
               " spatial dims to match ", what, " ", shape_str(v));
  for (int64_t d = 2; d < x.dim(); ++d)
    MINIDL_CHECK(x.size(d) >= 1, op, ": input ", shape_str(x.shape()), " has an empty spatial dim");
}

std::vector<int64_t> per_dim(const char* op, const Tensor& x, const char* what, const std::vector<int64_t>& v,
                             int64_t rank) {
  MINIDL_CHECK(v.size() == 1 || static_cast<int64_t>(v.size()) == rank, op, ": input ", shape_str(x.shape()), ": ",
               what, " ", shape_str(v), " needs 1 or ", rank, " values (one per pooled spatial dim)");
  return v.size() == 1 ? std::vector<int64_t>(static_cast<size_t>(rank), v[0]) : v;
}

PoolPlan window_plan(const char* op, const Tensor& x, const std::vector<int64_t>& kernel,
                     const std::vector<int64_t>& stride_in, const std::vector<int64_t>& padding_in) {
  check_input(op, x, "kernel", kernel);
  const int64_t rank = static_cast<int64_t>(kernel.size());
  const std::vector<int64_t> stride = stride_in.empty() ? kernel : per_dim(op, x, "stride", stride_in, rank);
  const std::vector<int64_t> padding = per_dim(op, x, "padding", padding_in, rank);
  const std::string where = std::string(op) + ": input " + shape_str(x.shape()) + ", kernel " + shape_str(kernel);
  PoolPlan p;
  p.s.planes = x.size(0) * x.size(1);
  p.out_shape = {x.size(0), x.size(1)};
  for (int64_t d = 0; d < rank; ++d) {
    const int64_t in = x.size(d + 2), k = kernel[d], st = stride[d], pad = padding[d];
    MINIDL_CHECK(k >= 1, where, ": kernel sizes must be at least 1");
    MINIDL_CHECK(st >= 1, where, ": stride ", shape_str(stride), " must be at least 1 in every dim");
    // Keeps every window overlapping the input, so no output is made of padding alone (torch's rule).
    MINIDL_CHECK(pad >= 0 && pad <= k / 2, where, ": padding ", shape_str(padding),
                 " must be between 0 and half the kernel in every dim");
    int64_t room = 0;
    MINIDL_CHECK(!__builtin_add_overflow(in, 2 * pad, &room), where, ": padding ", shape_str(padding), " is too large");
    const int64_t numer = room - k;
    const int64_t out = numer / st - (numer < 0 && numer % st != 0 ? 1 : 0) + 1;  // floor division
    MINIDL_CHECK(out >= 1, where, ", stride ", shape_str(stride), ", padding ", shape_str(padding), ": spatial dim ", d,
                 " has output size ", out, " (", in, " + 2*", pad, " - ", k, ") / ", st,
                 " + 1 < 1: the kernel is larger than the padded input");
    p.s.dims[3 - rank + d] = pool_windows(in, k, st, pad, out);
    p.out_shape.push_back(out);
  }
  return p;
}

PoolPlan adaptive_plan(const char* op, const Tensor& x, const std::vector<int64_t>& output_size) {
  check_input(op, x, "output_size", output_size);
  const int64_t rank = static_cast<int64_t>(output_size.size());
  PoolPlan p;
  p.s.planes = x.size(0) * x.size(1);
  p.out_shape = {x.size(0), x.size(1)};
  for (int64_t d = 0; d < rank; ++d) {
    const int64_t out = output_size[d];
    MINIDL_CHECK(out >= 1, op, ": input ", shape_str(x.shape()), ": output_size ", shape_str(output_size),
                 " must be at least 1 in every dim");
    p.out_shape.push_back(out);
  }
  check_shape(op, p.out_shape, static_cast<int64_t>(dtype_size(x.dtype())));
  for (int64_t d = 0; d < rank; ++d) {
    // The cell edges compute (o + 1) in.
    checked_mul(op, output_size[d] + 1, x.size(d + 2));
    p.s.dims[3 - rank + d] = adaptive_pool_windows(x.size(d + 2), output_size[d]);
  }
  return p;
}

// The average of each window, divided by `divisor` (0: the window's size): avg_pool and adaptive_avg_pool.
Tensor average(const char* op, const Tensor& x, const PoolPlan& p, int64_t divisor) {
  const Tensor xc = x.detach().contiguous();
  Tensor out = Tensor::empty(p.out_shape, x.dtype(), x.device());
  switch (x.device().type) {
    case DeviceType::CPU: cpu::avg_pool_forward(xc, p.s, divisor, out); break;
    case DeviceType::CUDA: cuda::avg_pool_forward(xc, p.s, divisor, out); break;
  }
  count_work(0, bytes_of(xc) + bytes_of(out));
  if (needs_grad(x)) {
    const PoolShape s = p.s;
    const Shape in_shape = x.shape();
    record(out, op, {x}, [s, in_shape, divisor, op](const Tensor& g) {
      const Tensor gc = g.contiguous();
      Tensor gx = Tensor::empty(in_shape, gc.dtype(), gc.device());
      switch (gc.device().type) {
        case DeviceType::CPU: cpu::avg_pool_backward(gc, s, divisor, gx); break;
        case DeviceType::CUDA: cuda::avg_pool_backward(gc, s, divisor, gx); break;
      }
      count_work(0, bytes_of(gc) + bytes_of(gx));
      return std::vector<Tensor>{gx};
    });
  }
  return out;
}

}  // namespace

Tensor max_pool(const Tensor& x, const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
                const std::vector<int64_t>& padding) {
  OpScope scope("max_pool", x);
  const PoolPlan p = window_plan("max_pool", x, kernel, stride, padding);
  const Tensor xc = x.detach().contiguous();
  Tensor out = Tensor::empty(p.out_shape, x.dtype(), x.device());
  const Tensor indices = Tensor::empty(p.out_shape, kInt64, x.device());
  switch (x.device().type) {
    case DeviceType::CPU: cpu::max_pool_forward(xc, p.s, out, indices); break;
    case DeviceType::CUDA: cuda::max_pool_forward(xc, p.s, out, indices); break;
  }
  scope.work(0, bytes_of(xc) + bytes_of(out) + bytes_of(indices));
  if (needs_grad(x)) {
    const SavedTensor si(indices);
    const PoolShape s = p.s;
    const Shape in_shape = x.shape();
    record(out, "max_pool", {x}, [si, s, in_shape](const Tensor& g) {
      const Tensor gc = g.contiguous();
      Tensor gx = Tensor::empty(in_shape, gc.dtype(), gc.device());
      switch (gc.device().type) {
        case DeviceType::CPU: cpu::max_pool_backward(gc, si.get("max_pool"), s, gx); break;
        case DeviceType::CUDA: cuda::max_pool_backward(gc, si.get("max_pool"), s, gx); break;
      }
      count_work(0, 2 * bytes_of(gc) + bytes_of(gx));
      return std::vector<Tensor>{gx};
    });
  }
  return out;
}

Tensor avg_pool(const Tensor& x, const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
                const std::vector<int64_t>& padding, bool count_include_pad) {
  const OpScope scope("avg_pool", x);
  const PoolPlan p = window_plan("avg_pool", x, kernel, stride, padding);
  int64_t window = 1;
  for (int64_t k : kernel) window = checked_mul("avg_pool", window, k);
  // Without ceil mode a window never reaches past the padding, so counting the padding means dividing by
  // the full kernel size; otherwise by the clipped window's size (divisor 0).
  return average("avg_pool", x, p, count_include_pad ? window : 0);
}

Tensor adaptive_avg_pool(const Tensor& x, const std::vector<int64_t>& output_size) {
  const OpScope scope("adaptive_avg_pool", x);
  return average("adaptive_avg_pool", x, adaptive_plan("adaptive_avg_pool", x, output_size), 0);
}

}  // namespace minidl
