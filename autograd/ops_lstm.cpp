// Front end of lstm_layer: one LSTM layer in one direction over a whole sequence, as one fused op with
// three outputs (every hidden state, the final h, the final c). Kernels: cpu/lstm.cpp (the forward and
// backpropagation through time; the header cpu/lstm.h explains the layouts).
//
// Why fused: composed from matmul, sigmoid, tanh, mul and add, one layer of T steps records about 15 T
// nodes and keeps every intermediate alive; fused, it is one node that keeps the gate activations and the
// cell states, does the input projection of all steps as one GEMM, and runs the backward over all steps
// with the weight gradients as single GEMMs.
//
// The backward rule is recorded with record_multi, so a loss on any of output, h and c (or several) flows
// back to x, h0, c0 and the weights. h0 and c0 may be undefined: the state then starts at zero, and no
// gradient is returned for them.
#include "autograd/dispatch.h"
#include "autograd/error.h"
#include "autograd/factories.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "cpu/lstm.h"
#include "cuda/kernels.h"

namespace minidl {
namespace {

constexpr const char* kOp = "lstm_layer";

// A contiguous copy (or the tensor itself when already contiguous) that records no autograd history: the
// op records its own node, with the caller's tensors as inputs.
Tensor plain(const Tensor& t) { return t.detach().contiguous(); }

std::string shapes_of(const Tensor& x, const Tensor& w_ih, const Tensor& w_hh) {
  return detail::concat(" (x ", shape_str(x.shape()), ", w_ih ", shape_str(w_ih.shape()), ", w_hh ",
                        shape_str(w_hh.shape()), ")");
}

// Checks every argument; returns the hidden size H.
int64_t check_args(const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh,
                   const Tensor& b_ih, const Tensor& b_hh) {
  check_float(kOp, x, "input x");
  check_defined(kOp, w_ih, "weight w_ih");
  check_defined(kOp, w_hh, "weight w_hh");
  check_same(kOp, x, w_ih);
  check_same(kOp, x, w_hh);
  MINIDL_CHECK(x.dim() == 3, kOp, ": input x must be [B, T, I] (batch first), got ", x.meta_str());
  MINIDL_CHECK(w_hh.dim() == 2 && w_hh.size(1) > 0 && w_hh.size(0) == 4 * w_hh.size(1), kOp,
               ": w_hh must be [4H, H] with H > 0 (gates i, f, g, o stacked), got ", w_hh.meta_str());
  const int64_t H = w_hh.size(1), I = x.size(2);
  MINIDL_CHECK(w_ih.dim() == 2 && w_ih.size(0) == 4 * H && w_ih.size(1) == I, kOp, ": w_ih must be [4H, I] = [", 4 * H,
               ", ", I, "]", shapes_of(x, w_ih, w_hh));
  for (const auto& [b, name] : {std::pair{&b_ih, "b_ih"}, std::pair{&b_hh, "b_hh"}}) {
    if (!b->defined()) continue;
    check_same(kOp, x, *b);
    MINIDL_CHECK(b->dim() == 1 && b->size(0) == 4 * H, kOp, ": bias ", name, " must be [4H] = [", 4 * H, "], got ",
                 b->meta_str(), shapes_of(x, w_ih, w_hh));
  }
  const Shape state{x.size(0), H};
  for (const auto& [s, name] : {std::pair{&h0, "h0"}, std::pair{&c0, "c0"}}) {
    if (!s->defined()) continue;
    check_same(kOp, x, *s);
    MINIDL_CHECK(s->shape() == state, kOp, ": initial state ", name, " must be [B, H] = ", shape_str(state), ", got ",
                 s->meta_str(), shapes_of(x, w_ih, w_hh));
  }
  return H;
}

}  // namespace

LstmResult lstm_layer(const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh,
                      const Tensor& b_ih, const Tensor& b_hh, bool reverse) {
  const int64_t H = check_args(x, h0, c0, w_ih, w_hh, b_ih, b_hh);
  const int64_t B = x.size(0), T = x.size(1);
  const TensorOptions like{.dtype = x.dtype(), .device = x.device()};
  const Tensor xc = plain(x);
  const Tensor h0c = h0.defined() ? plain(h0) : zeros({B, H}, like);
  const Tensor c0c = c0.defined() ? plain(c0) : zeros({B, H}, like);

  LstmResult r;
  r.output = Tensor::empty({B, T, H}, x.dtype(), x.device());
  r.h = Tensor::empty({B, H}, x.dtype(), x.device());
  r.c = Tensor::empty({B, H}, x.dtype(), x.device());
  // Workspace of the forward and, when a gradient is needed, what the backward reads.
  const Tensor gates = Tensor::empty({B, T, 4 * H}, x.dtype(), x.device());
  const Tensor cells = Tensor::empty({B, T, H}, x.dtype(), x.device());
  switch (x.device().type) {
    case DeviceType::CPU:
      cpu::lstm_forward(xc, h0c, c0c, w_ih, w_hh, b_ih, b_hh, reverse, r.output, r.h, r.c, gates, cells);
      break;
    case DeviceType::CUDA:
      cuda::lstm_forward(xc, h0c, c0c, w_ih, w_hh, b_ih, b_hh, reverse, r.output, r.h, r.c, gates, cells);
      break;
  }

  if (needs_grad(x, h0, c0, w_ih, w_hh, b_ih, b_hh)) {
    auto wants = [](const Tensor& t) { return t.defined() && t.requires_grad(); };
    const bool rx = wants(x), rh0 = wants(h0), rc0 = wants(c0), rwi = wants(w_ih), rwh = wants(w_hh), rbi = wants(b_ih),
               rbh = wants(b_hh);
    // x is read only for dW_ih and W_ih only for dx; the rest every backward reads.
    const SavedTensor sx(rwi ? xc : Tensor()), swi(rx ? w_ih : Tensor()), swh(w_hh), sh0(h0c), sc0(c0c), sout(r.output),
        sgates(gates), scells(cells);
    const Shape x_shape = x.shape();
    record_multi({&r.output, &r.h, &r.c}, kOp, {x, h0, c0, w_ih, w_hh, b_ih, b_hh}, [=](const std::vector<Tensor>& g) {
      const Tensor wh = swh.get(kOp), gt = sgates.get(kOp);
      const int64_t Bn = gt.size(0), Hn = wh.size(1);
      const DType dt = gt.dtype();
      const Device dev = gt.device();
      auto grad_if = [&](bool want, const Shape& s) { return want ? Tensor::empty(s, dt, dev) : Tensor(); };
      const Tensor gx = grad_if(rx, x_shape), gh0 = grad_if(rh0, {Bn, Hn}), gc0 = grad_if(rc0, {Bn, Hn}),
                   gwi = grad_if(rwi, {4 * Hn, x_shape[2]}), gwh = grad_if(rwh, {4 * Hn, Hn}),
                   gb = grad_if(rbi || rbh, {4 * Hn});
      auto incoming = [](const Tensor& t) { return t.defined() ? t.contiguous() : Tensor(); };
      switch (dev.type) {
        case DeviceType::CPU:
          cpu::lstm_backward(sx.defined() ? sx.get(kOp) : Tensor(), sh0.get(kOp), sc0.get(kOp),
                             swi.defined() ? swi.get(kOp) : Tensor(), wh, sout.get(kOp), gt, scells.get(kOp), reverse,
                             incoming(g[0]), incoming(g[1]), incoming(g[2]), gx, gh0, gc0, gwi, gwh, gb);
          break;
        case DeviceType::CUDA:
          cuda::lstm_backward(sx.defined() ? sx.get(kOp) : Tensor(), sh0.get(kOp), sc0.get(kOp),
                              swi.defined() ? swi.get(kOp) : Tensor(), wh, sout.get(kOp), gt, scells.get(kOp), reverse,
                              incoming(g[0]), incoming(g[1]), incoming(g[2]), gx, gh0, gc0, gwi, gwh, gb);
          break;
      }
      // Both biases get the same gradient; each leaf gets its own tensor.
      return std::vector<Tensor>{gx, gh0, gc0, gwi, gwh, rbi ? gb : Tensor(), rbh ? (rbi ? gb.clone() : gb) : Tensor()};
    });
  }
  return r;
}

}  // namespace minidl
