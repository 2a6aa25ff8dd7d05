// Front end of lstm_layer and lstm_bidirectional: one LSTM layer in one direction (or both) over a whole
// sequence, as one fused op with three outputs per direction (every hidden state, the final h, the final
// c). Kernels: cpu/lstm.cpp (the forward and backpropagation through time; the header cpu/lstm.h explains
// the layouts) and cuda/lstm.cu, which runs both directions' steps together.
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

// A contiguous copy (or the tensor itself when already contiguous) that records no autograd history: the
// op records its own node, with the caller's tensors as inputs.
Tensor plain(const Tensor& t) { return t.detach().contiguous(); }

std::string shapes_of(const Tensor& x, const Tensor& w_ih, const Tensor& w_hh) {
  return detail::concat(" (x ", shape_str(x.shape()), ", w_ih ", shape_str(w_ih.shape()), ", w_hh ",
                        shape_str(w_hh.shape()), ")");
}

// Checks one direction's arguments; `op` names the op (and the direction) in the messages. Returns the
// hidden size H.
int64_t check_args(const char* op, const Tensor& x, const LstmDirection& d) {
  check_float(op, x, "input x");
  check_defined(op, d.w_ih, "weight w_ih");
  check_defined(op, d.w_hh, "weight w_hh");
  check_same(op, x, d.w_ih);
  check_same(op, x, d.w_hh);
  MINIDL_CHECK(x.dim() == 3, op, ": input x must be [B, T, I] (batch first), got ", x.meta_str());
  MINIDL_CHECK(d.w_hh.dim() == 2 && d.w_hh.size(1) > 0 && d.w_hh.size(0) == 4 * d.w_hh.size(1), op,
               ": w_hh must be [4H, H] with H > 0 (gates i, f, g, o stacked), got ", d.w_hh.meta_str());
  const int64_t H = d.w_hh.size(1), I = x.size(2);
  MINIDL_CHECK(d.w_ih.dim() == 2 && d.w_ih.size(0) == 4 * H && d.w_ih.size(1) == I, op, ": w_ih must be [4H, I] = [",
               4 * H, ", ", I, "]", shapes_of(x, d.w_ih, d.w_hh));
  for (const auto& [b, name] : {std::pair{&d.b_ih, "b_ih"}, std::pair{&d.b_hh, "b_hh"}}) {
    if (!b->defined()) continue;
    check_same(op, x, *b);
    MINIDL_CHECK(b->dim() == 1 && b->size(0) == 4 * H, op, ": bias ", name, " must be [4H] = [", 4 * H, "], got ",
                 b->meta_str(), shapes_of(x, d.w_ih, d.w_hh));
  }
  const Shape state{x.size(0), H};
  for (const auto& [s, name] : {std::pair{&d.h0, "h0"}, std::pair{&d.c0, "c0"}}) {
    if (!s->defined()) continue;
    check_same(op, x, *s);
    MINIDL_CHECK(s->shape() == state, op, ": initial state ", name, " must be [B, H] = ", shape_str(state), ", got ",
                 s->meta_str(), shapes_of(x, d.w_ih, d.w_hh));
  }
  return H;
}

// One direction as the op runs it: the caller's tensors, the contiguous initial state, the results and
// what the backward reads.
struct Lane {
  LstmDirection in;
  bool reverse;
  Tensor h0, c0;  // contiguous; zeros where the caller gave none
  LstmResult r;
  Tensor gates, cells;
};

// What the backward keeps of a lane, and which of its inputs want a gradient.
struct SavedLane {
  SavedTensor w_ih, w_hh, h0, c0, output, gates, cells;  // w_ih only when x wants a gradient
  bool reverse, rh0, rc0, rwi, rwh, rbi, rbh;
};

bool wants(const Tensor& t) { return t.defined() && t.requires_grad(); }

// Multiply-adds of one lane's products over all T steps: x W_ih^T (in = I) or h W_hh^T (in = H), each
// B x 4H outputs of `in` terms per step. The profiler counts the products only: the gates' pointwise
// math is a few operations per element of B x T x 4H, under 1% of the products at the model's sizes.
double lane_products(int64_t B, int64_t T, int64_t H, int64_t in) {
  return static_cast<double>(B) * static_cast<double>(T) * 4.0 * static_cast<double>(H) * static_cast<double>(in);
}

// Runs the directions over x (one or two: each its own sequence, sharing only x) and records one node
// whose inputs are x and then each direction's h0, c0, w_ih, w_hh, b_ih, b_hh, and whose outputs are each
// direction's output, h and c.
std::vector<LstmResult> run_lanes(const char* op, const Tensor& x, std::vector<Lane> lanes) {
  const int64_t B = x.size(0), T = x.size(1);
  const TensorOptions like{.dtype = x.dtype(), .device = x.device()};
  const Tensor xc = plain(x);
  for (Lane& l : lanes) {
    const int64_t H = l.in.w_hh.size(1);
    l.h0 = l.in.h0.defined() ? plain(l.in.h0) : zeros({B, H}, like);
    l.c0 = l.in.c0.defined() ? plain(l.in.c0) : zeros({B, H}, like);
    l.r.output = Tensor::empty({B, T, H}, x.dtype(), x.device());
    l.r.h = Tensor::empty({B, H}, x.dtype(), x.device());
    l.r.c = Tensor::empty({B, H}, x.dtype(), x.device());
    // Workspace of the forward and, when a gradient is needed, what the backward reads.
    l.gates = Tensor::empty({B, T, 4 * H}, x.dtype(), x.device());
    l.cells = Tensor::empty({B, T, H}, x.dtype(), x.device());
  }
  switch (x.device().type) {
    case DeviceType::CPU:
      for (const Lane& l : lanes)
        cpu::lstm_forward(xc, l.h0, l.c0, l.in.w_ih, l.in.w_hh, l.in.b_ih, l.in.b_hh, l.reverse, l.r.output, l.r.h,
                          l.r.c, l.gates, l.cells);
      break;
    case DeviceType::CUDA: {
      std::vector<cuda::LstmForwardDirection> dirs;
      for (const Lane& l : lanes)
        dirs.push_back({l.h0, l.c0, l.in.w_ih, l.in.w_hh, l.in.b_ih, l.in.b_hh, l.reverse, l.r.output, l.r.h, l.r.c,
                        l.gates, l.cells});
      cuda::lstm_forward(xc, dirs);
      break;
    }
  }
  {
    double flops = 0, bytes = bytes_of(xc);
    for (const Lane& l : lanes) {
      const int64_t H = l.in.w_hh.size(1);
      flops += 2 * (lane_products(B, T, H, x.size(2)) + lane_products(B, T, H, H));
      bytes += bytes_of(l.in.w_ih) + bytes_of(l.in.w_hh) + bytes_of(l.r.output) + bytes_of(l.gates) + bytes_of(l.cells);
    }
    count_work(flops, bytes);
  }

  std::vector<Tensor> inputs{x};
  std::vector<Tensor*> outputs;
  bool any_grad = wants(x), any_wi = false;
  for (Lane& l : lanes) {
    for (const Tensor* t : {&l.in.h0, &l.in.c0, &l.in.w_ih, &l.in.w_hh, &l.in.b_ih, &l.in.b_hh}) {
      inputs.push_back(*t);
      any_grad = any_grad || wants(*t);
    }
    any_wi = any_wi || wants(l.in.w_ih);
    outputs.insert(outputs.end(), {&l.r.output, &l.r.h, &l.r.c});
  }
  if (any_grad && grad_enabled()) {
    const bool rx = wants(x);
    // x is read only for dW_ih and W_ih only for dx; the rest every backward reads.
    const SavedTensor sx(any_wi ? xc : Tensor());
    std::vector<SavedLane> saved;
    for (const Lane& l : lanes)
      saved.push_back({SavedTensor(rx ? l.in.w_ih : Tensor()), SavedTensor(l.in.w_hh), SavedTensor(l.h0),
                       SavedTensor(l.c0), SavedTensor(l.r.output), SavedTensor(l.gates), SavedTensor(l.cells),
                       l.reverse, wants(l.in.h0), wants(l.in.c0), wants(l.in.w_ih), wants(l.in.w_hh), wants(l.in.b_ih),
                       wants(l.in.b_hh)});
    const Shape x_shape = x.shape();
    record_multi(outputs, op, inputs, [=](const std::vector<Tensor>& g) {
      const Tensor xs = sx.defined() ? sx.get(op) : Tensor();
      const Tensor& gates0 = saved[0].gates.get(op);
      const DType dt = gates0.dtype();
      const Device dev = gates0.device();
      auto grad_if = [&](bool want, const Shape& s) { return want ? Tensor::empty(s, dt, dev) : Tensor(); };
      auto incoming = [](const Tensor& t) { return t.defined() ? t.contiguous() : Tensor(); };
      std::vector<cuda::LstmBackwardDirection> dirs;  // the arguments of both devices' kernels
      for (size_t k = 0; k < saved.size(); ++k) {
        const SavedLane& s = saved[k];
        const Tensor wh = s.w_hh.get(op);
        const int64_t Bn = gates0.size(0), Hn = wh.size(1);
        dirs.push_back({s.h0.get(op), s.c0.get(op), s.w_ih.defined() ? s.w_ih.get(op) : Tensor(), wh, s.output.get(op),
                        s.gates.get(op), s.cells.get(op), s.reverse, incoming(g[3 * k]), incoming(g[3 * k + 1]),
                        incoming(g[3 * k + 2]), grad_if(rx, x_shape), grad_if(s.rh0, {Bn, Hn}),
                        grad_if(s.rc0, {Bn, Hn}), grad_if(s.rwi, {4 * Hn, x_shape[2]}), grad_if(s.rwh, {4 * Hn, Hn}),
                        grad_if(s.rbi || s.rbh, {4 * Hn})});
      }
      switch (dev.type) {
        case DeviceType::CPU:
          for (const cuda::LstmBackwardDirection& d : dirs)
            cpu::lstm_backward(xs, d.h0, d.c0, d.w_ih, d.w_hh, d.output, d.gates, d.cells, d.reverse, d.g_output, d.g_h,
                               d.g_c, d.gx, d.gh0, d.gc0, d.gw_ih, d.gw_hh, d.gb);
          break;
        case DeviceType::CUDA: cuda::lstm_backward(xs, dirs); break;
      }
      // Per lane: the gradient through time (dh W_hh) always; dx, dW_ih and dW_hh as wanted.
      double flops = 0, bytes = bytes_of(xs);
      for (const cuda::LstmBackwardDirection& d : dirs) {
        const int64_t Hn = d.w_hh.size(1), In = x_shape[2], Tn = x_shape[1], Bn = x_shape[0];
        flops += 2 * lane_products(Bn, Tn, Hn, Hn);
        if (d.gx.defined()) flops += 2 * lane_products(Bn, Tn, Hn, In);
        if (d.gw_ih.defined()) flops += 2 * lane_products(Bn, Tn, Hn, In);
        if (d.gw_hh.defined()) flops += 2 * lane_products(Bn, Tn, Hn, Hn);
        bytes += bytes_of(d.gates) + bytes_of(d.cells) + bytes_of(d.output) + bytes_of(d.w_hh) + bytes_of(d.w_ih) +
                 bytes_of(d.g_output) + bytes_of(d.gx) + bytes_of(d.gw_ih) + bytes_of(d.gw_hh);
      }
      count_work(flops, bytes);
      // x feeds every direction: its gradient is their sum (in the order the engine would add them).
      Tensor gx = dirs[0].gx;
      if (rx)
        for (size_t k = 1; k < dirs.size(); ++k) gx = gx + dirs[k].gx;
      std::vector<Tensor> grads{gx};
      for (size_t k = 0; k < dirs.size(); ++k) {
        const SavedLane& s = saved[k];
        const Tensor& gb = dirs[k].gb;
        // Both biases get the same gradient; each leaf gets its own tensor.
        grads.insert(grads.end(), {dirs[k].gh0, dirs[k].gc0, dirs[k].gw_ih, dirs[k].gw_hh, s.rbi ? gb : Tensor(),
                                   s.rbh ? (s.rbi ? gb.clone() : gb) : Tensor()});
      }
      return grads;
    });
  }
  std::vector<LstmResult> results;
  for (const Lane& l : lanes) results.push_back(l.r);
  return results;
}

}  // namespace

LstmResult lstm_layer(const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh,
                      const Tensor& b_ih, const Tensor& b_hh, bool reverse) {
  const OpScope scope("lstm_layer", x, w_ih, w_hh);
  const LstmDirection d{h0, c0, w_ih, w_hh, b_ih, b_hh};
  check_args("lstm_layer", x, d);
  return run_lanes("lstm_layer", x, {Lane{d, reverse, {}, {}, {}, {}, {}}})[0];
}

std::array<LstmResult, 2> lstm_bidirectional(const Tensor& x, const LstmDirection& forward,
                                             const LstmDirection& backward) {
  const OpScope scope("lstm_bidirectional", x, forward.w_ih, forward.w_hh);
  const int64_t H = check_args("lstm_bidirectional (forward direction)", x, forward);
  const int64_t Hr = check_args("lstm_bidirectional (backward direction)", x, backward);
  MINIDL_CHECK(H == Hr, "lstm_bidirectional: the directions' hidden sizes differ (w_hh ", forward.w_hh.meta_str(),
               " and ", backward.w_hh.meta_str(), ")");
  const std::vector<LstmResult> r = run_lanes(
      "lstm_bidirectional", x, {Lane{forward, false, {}, {}, {}, {}, {}}, Lane{backward, true, {}, {}, {}, {}, {}}});
  return {r[0], r[1]};
}

}  // namespace minidl
