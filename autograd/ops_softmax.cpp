// Front ends of softmax and log_softmax along one dim. Kernel: cpu/softmax.cpp (and cuda/softmax.cu).
// Both backward rules read only the forward output y:
//   softmax:      dx = y * (g - sum(g * y))
//   log_softmax:  dx = g - exp(y) * sum(g)
#include "autograd/dispatch.h"
#include "autograd/error.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "cpu/kernels.h"
#include "cuda/kernels.h"

namespace minidl {
namespace {

Tensor softmax_impl(const char* name, bool log, const Tensor& x_in, int64_t dim_in) {
  OpScope scope(name, x_in);
  check_float(name, x_in);
  const int64_t dim = wrap_dim(name, dim_in, x_in.shape(), /*scalar_ok=*/true);
  const Tensor x = x_in.dim() == 0 ? make_view(x_in, {1}, {1}, x_in.offset()) : x_in;
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  switch (x.device().type) {
    case DeviceType::CPU: cpu::softmax(x, dim, log, out); break;
    case DeviceType::CUDA: cuda::softmax(x, dim, log, out); break;
  }
  scope.work(0, bytes_of(x) + bytes_of(out));
  if (x_in.dim() == 0) out = make_view(out, {}, {}, 0);
  if (needs_grad(x_in)) {
    const SavedTensor sy(out);
    record(out, name, {x_in}, [sy, dim, log, name](const Tensor& g) {
      const Tensor y = sy.get(name);
      const Tensor y1 = y.dim() == 0 ? y.reshape({1}) : y, g1 = g.dim() == 0 ? g.reshape({1}) : g;
      Tensor gx = Tensor::empty(y1.shape(), y1.dtype(), y1.device());
      switch (y.device().type) {
        case DeviceType::CPU: cpu::softmax_backward(y1, g1, dim, log, gx); break;
        case DeviceType::CUDA: cuda::softmax_backward(y1, g1, dim, log, gx); break;
      }
      count_work(0, bytes_of(y1) + bytes_of(g1) + bytes_of(gx));
      return std::vector<Tensor>{gx.reshape(y.shape())};
    });
  }
  return out;
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl("softmax", false, x, dim); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl("log_softmax", true, x, dim); }

}  // namespace minidl
