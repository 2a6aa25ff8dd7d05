// Front end of the concordance correlation coefficient (MODEL.md §4) and the training loss built on it.
// Kernel and the derivation of the backward: cpu/loss.cpp (and cuda/loss.cu).
#include "autograd/dispatch.h"
#include "autograd/error.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "cpu/kernels.h"
#include "cuda/kernels.h"

namespace minidl {

Tensor ccc(const Tensor& pred, const Tensor& target, const Tensor& mask, double eps) {
  OpScope scope("ccc", pred, target, mask);
  check_float("ccc", pred, "prediction");
  check_same("ccc", pred, target);
  MINIDL_CHECK(pred.dim() >= 1 && pred.shape() == target.shape(), "ccc: prediction ", shape_str(pred.shape()),
               " and target ", shape_str(target.shape()), " must have the same shape, [..., C]");
  MINIDL_CHECK(pred.size(-1) > 0, "ccc: ", pred.meta_str(), " has no columns (its last dim is empty)");
  MINIDL_CHECK(eps >= 0, "ccc: eps must be non-negative, got ", eps);
  const Shape rows_shape(pred.shape().begin(), pred.shape().end() - 1);
  const int64_t C = pred.size(-1), R = numel_of(rows_shape);
  Tensor m;
  if (mask.defined()) {
    MINIDL_CHECK(mask.dtype() == kBool && mask.shape() == rows_shape && mask.device() == pred.device(),
                 "ccc: the mask must be a bool tensor of shape ", shape_str(rows_shape), " on ", pred.device().str(),
                 " (the prediction's shape without its last dim), got ", mask.meta_str());
    m = mask.contiguous().reshape({R});
  }
  const Tensor p2 = pred.detach().contiguous().reshape({R, C}), t2 = target.detach().contiguous().reshape({R, C});
  Tensor out = Tensor::empty({C}, pred.dtype(), pred.device());
  Tensor stats = Tensor::empty({C, 4}, pred.dtype(), pred.device());
  switch (pred.device().type) {
    case DeviceType::CPU: cpu::ccc_forward(p2, t2, m, eps, out, stats); break;
    case DeviceType::CUDA: cuda::ccc_forward(p2, t2, m, eps, out, stats); break;
  }
  scope.work(0, bytes_of(p2) + bytes_of(t2) + bytes_of(m));
  MINIDL_CHECK(stats.select(1, 3).values<double>()[0] > 0, "ccc: the mask keeps no rows of ", pred.meta_str(),
               "; the CCC of an empty set is undefined");
  if (needs_grad(pred, target)) {
    const bool rp = pred.requires_grad(), rt = target.requires_grad();
    const SavedTensor sp(p2), st(t2), sm(m), sc(out), ss(stats);
    const Shape shape = pred.shape();
    record(out, "ccc", {pred, target}, [=](const Tensor& g) {
      const Tensor pv = sp.get("ccc"), tv = st.get("ccc");
      Tensor gp = rp ? Tensor::empty(pv.shape(), pv.dtype(), pv.device()) : Tensor();
      Tensor gt = rt ? Tensor::empty(pv.shape(), pv.dtype(), pv.device()) : Tensor();
      switch (pv.device().type) {
        case DeviceType::CPU:
          cpu::ccc_backward(pv, tv, sm.get("ccc"), sc.get("ccc"), ss.get("ccc"), g.contiguous(), gp, gt);
          break;
        case DeviceType::CUDA:
          cuda::ccc_backward(pv, tv, sm.get("ccc"), sc.get("ccc"), ss.get("ccc"), g.contiguous(), gp, gt);
          break;
      }
      count_work(0, bytes_of(pv) + bytes_of(tv) + bytes_of(gp) + bytes_of(gt));
      return std::vector<Tensor>{rp ? gp.reshape(shape) : Tensor(), rt ? gt.reshape(shape) : Tensor()};
    });
  }
  return out;
}

Tensor ccc_loss(const Tensor& pred, const Tensor& target, const Tensor& mask, double eps) {
  const OpScope scope("ccc_loss", pred, target, mask);
  return sum(sub(1.0, ccc(pred, target, mask, eps)));
}

}  // namespace minidl
