// CUDA LSTM layer (one layer, one or both directions, a whole sequence) and its backward, with the
// algorithm and the saved tensors of cpu/lstm.cpp (read its header for the derivation):
//   forward   one GEMM for the input projections of all B*T rows, then per step one GEMM h_prev W_hh^T
//             and one fused kernel for everything else (bias, the four activations, the cell and hidden
//             state updates, the saved activations);
//   backward  per step (in reverse) one fused kernel for the pre-activation gradients and the cell
//             gradient, and one GEMM dh_prev = dP_t W_hh; then single GEMMs over all B*T rows for dW_hh,
//             dW_ih and dx, and a column reduction for the bias.
// The GEMMs are cuda/gemm.cu's, reading the transposed weights and the strided per-step slices through
// their strides (no copies). The recurrent projection goes into its own [B, 4H] buffer, so no GEMM ever
// has to accumulate into a strided slice, and the fused kernel adds it to the input projection.
//
// The two directions of a bidirectional layer are independent, and one step of one direction is a
// small GEMM (B x 4H, 64 x 1024 for the paper's BiLSTM: 64 blocks on 132 SMs) and a pointwise kernel
// over B x H. Run one after the other, a layer is a chain of 4T launches each leaving half the GPU idle.
// Here both directions take each step together: one grouped GEMM (matmul_group) and one pointwise
// launch whose blockIdx.y is the direction, a chain of 2T launches. Each direction's arithmetic is the
// same as alone, so are its bits.
//
// Everything is on the tensors' stream, in order, so one step's kernel sees the previous step's GEMM.
// Nothing here uses atomics: results are the same bits on every run.
#include "autograd/functors.h"
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace minidl::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxDirections = 2;

// One direction's part of a forward step: gates[:, t] holds x W_ih^T on entry.
struct ForwardLane {
  int64_t t;            // the time index this direction processes
  const float* prev_c;  // c0, or cells[:, previous t]
  int64_t prev_rs;      // its row stride
  float* gates;
  const float* hproj;  // h_prev W_hh^T, [B, 4H]
  const float *b_ih, *b_hh;
  int64_t bis, bhs;  // the biases' strides
  float *cells, *output;
};
struct ForwardStep {
  int64_t B, T, H;
  ForwardLane lane[kMaxDirections];
};

// One direction's part of a backward step.
struct BackwardLane {
  int64_t t;
  const float* prev_c;
  int64_t prev_rs;
  const float *gates, *cells, *g_output, *dh;
  float *dc, *dp;
};
struct BackwardStep {
  int64_t B, T, H;
  BackwardLane lane[kMaxDirections];
};

// Adds hproj and the biases to gates[:, t], applies the activations (stored back into gates[:, t] for
// the backward), and writes the cell and hidden state of step t.
__global__ void lstm_cell_forward(ForwardStep s) {
  const ForwardLane& d = s.lane[blockIdx.y];  // this block's direction
  const int64_t n = s.B * s.H, G = 4 * s.H;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += stride) {
    const int64_t b = e / s.H, j = e % s.H, row = b * s.T + d.t;
    float* a = d.gates + row * G;
    const float* hp = d.hproj + b * G;
    float pre[4];
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int64_t k = q * s.H + j;
      // Added in the CPU's order: (x W_ih^T + h W_hh^T) + (b_ih + b_hh).
      const float bias = (d.b_ih ? d.b_ih[k * d.bis] : 0.0f) + (d.b_hh ? d.b_hh[k * d.bhs] : 0.0f);
      pre[q] = (a[k] + hp[k]) + bias;
    }
    const float gi = SigmoidF{}(pre[0]), gf = SigmoidF{}(pre[1]), gg = TanhF{}(pre[2]), go = SigmoidF{}(pre[3]);
    const float cn = gf * d.prev_c[b * d.prev_rs + j] + gi * gg;
    a[j] = gi;
    a[s.H + j] = gf;
    a[2 * s.H + j] = gg;
    a[3 * s.H + j] = go;
    d.cells[row * s.H + j] = cn;
    d.output[row * s.H + j] = go * TanhF{}(cn);
  }
}

// The pre-activation gradients of step t into dp[:, t]; dh holds the gradient reaching h_t from the
// later steps (g_output is added here), dc that reaching c_t, replaced by the one reaching c_{t-1}.
__global__ void lstm_cell_backward(BackwardStep s) {
  const BackwardLane& d = s.lane[blockIdx.y];
  const int64_t n = s.B * s.H, G = 4 * s.H;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += stride) {
    const int64_t b = e / s.H, j = e % s.H, row = b * s.T + d.t;
    const float* a = d.gates + row * G;
    const float gi = a[j], gf = a[s.H + j], gg = a[2 * s.H + j], go = a[3 * s.H + j];
    const float tc = TanhF{}(d.cells[row * s.H + j]);
    const float dht = d.dh[e] + (d.g_output ? d.g_output[row * s.H + j] : 0.0f);
    const float dct = d.dc[e] + dht * go * (1.0f - tc * tc);
    float* g = d.dp + row * G;
    g[j] = dct * gg * gi * (1.0f - gi);
    g[s.H + j] = dct * d.prev_c[b * d.prev_rs + j] * gf * (1.0f - gf);
    g[2 * s.H + j] = dct * gi * (1.0f - gg * gg);
    g[3 * s.H + j] = dht * tc * go * (1.0f - go);
    d.dc[e] = dct * gf;
  }
}

// [B, T, W] tensor's slice at time t as a [B, W] view (row stride T W).
Tensor at_time(const Tensor& t3, int64_t t) {
  return make_view(t3, {t3.size(0), t3.size(2)}, {t3.stride(0), t3.stride(2)}, t3.offset() + t * t3.stride(1));
}

// The state step s reads: h0 / c0 for the first step, else the output / cell of the time index processed
// before (the CPU's `previous`).
int64_t previous_time(int64_t s, int64_t T, bool reverse) { return reverse ? T - s : s - 1; }

void check(const Tensor& t, const char* what) {
  MINIDL_CHECK(!t.defined() || t.dtype() == kFloat32, "lstm_layer: the CUDA kernels compute in float32; the ", what,
               " is ", t.meta_str(), " (float64 is for CPU gradchecks)");
}

// Views of parameters that require grad would record graph nodes; the kernels work on detached aliases.
Tensor plain(const Tensor& t) { return t.defined() ? t.detach() : t; }

const float* data_or_null(const Tensor& t) { return t.defined() ? device_data<float>(t) : nullptr; }

// The checks both entry points make: every direction on x's device, with the same hidden size.
int64_t hidden_size(const Tensor& x, const std::vector<Tensor>& w_hh) {
  MINIDL_CHECK(!w_hh.empty() && w_hh.size() <= static_cast<size_t>(kMaxDirections),
               "lstm_layer: the CUDA kernels take one or two directions at once, got ", w_hh.size());
  for (const Tensor& w : w_hh)
    MINIDL_CHECK(w.size(1) == w_hh[0].size(1) && w.device() == x.device(),
                 "lstm_layer: the directions run together need one hidden size and x's device, got ", w.meta_str(),
                 " and ", w_hh[0].meta_str(), " for x ", x.meta_str());
  return w_hh[0].size(1);
}

}  // namespace

void lstm_forward(const Tensor& x_in, const std::vector<LstmForwardDirection>& dirs) {
  check(x_in, "input");
  const Tensor x = plain(x_in);
  std::vector<Tensor> w_hh;
  for (const LstmForwardDirection& d : dirs) w_hh.push_back(plain(d.w_hh));
  const int64_t B = x.size(0), T = x.size(1), I = x.size(2), H = hidden_size(x, w_hh), G = 4 * H;
  const int n = static_cast<int>(dirs.size());
  const int device = x.device().index;
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  if (B == 0 || H == 0) return;
  if (T == 0) {  // no step: the final state is the initial one
    for (const LstmForwardDirection& d : dirs) {
      copy(d.h0, d.h);
      copy(d.c0, d.c);
    }
    return;
  }
  // Input projections of every step at once: gates [B*T, 4H] = x [B*T, I] W_ih^T.
  std::vector<Tensor> hproj;
  for (const LstmForwardDirection& d : dirs) {
    matmul(x.view({B * T, I}), plain(d.w_ih).t(), d.gates.view({B * T, G}));
    hproj.push_back(Tensor::empty({B, G}, kFloat32, x.device()));
  }
  const dim3 grid(grid_for(B * H, kThreads, device), static_cast<unsigned>(n));
  for (int64_t s = 0; s < T; ++s) {
    ForwardStep step{B, T, H, {}};
    std::vector<GemmProblem> recurrent;
    for (int k = 0; k < n; ++k) {
      const LstmForwardDirection& d = dirs[k];
      const int64_t tp = previous_time(s, T, d.reverse);
      const Tensor prev_h = s == 0 ? d.h0 : at_time(d.output, tp), prev_c = s == 0 ? d.c0 : at_time(d.cells, tp);
      recurrent.push_back({prev_h, w_hh[k].t(), hproj[k]});
      step.lane[k] = {d.reverse ? T - 1 - s : s,
                      device_data<float>(prev_c),
                      prev_c.stride(0),
                      device_data<float>(d.gates),
                      device_data<float>(hproj[k]),
                      data_or_null(d.b_ih),
                      data_or_null(d.b_hh),
                      d.b_ih.defined() ? d.b_ih.stride(0) : 0,
                      d.b_hh.defined() ? d.b_hh.stride(0) : 0,
                      device_data<float>(d.cells),
                      device_data<float>(d.output)};
    }
    matmul_group(recurrent);
    lstm_cell_forward<<<grid, kThreads, 0, stream_of(device)>>>(step);
    MINIDL_CUDA_CHECK_LAUNCH("lstm_layer");
  }
  for (const LstmForwardDirection& d : dirs) {
    const int64_t last = d.reverse ? 0 : T - 1;
    copy(at_time(d.output, last), d.h);
    copy(at_time(d.cells, last), d.c);
  }
}

void lstm_backward(const Tensor& x_in, const std::vector<LstmBackwardDirection>& dirs) {
  MINIDL_CHECK(!dirs.empty(), "lstm_layer backward: no direction given");
  check(dirs[0].gates, "saved gates");
  const Tensor x = plain(x_in);
  std::vector<Tensor> w_hh;
  for (const LstmBackwardDirection& d : dirs) w_hh.push_back(plain(d.w_hh));
  const Tensor& gates0 = dirs[0].gates;
  const int64_t B = gates0.size(0), T = gates0.size(1), H = hidden_size(gates0, w_hh), G = 4 * H;
  const int n = static_cast<int>(dirs.size());
  const Device dev = gates0.device();
  const int device = dev.index;
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  // Per direction: dP, the pre-activation gradients of every step, [B, T, 4H]; dh, dc: the running
  // state gradients, starting from those reaching the final state.
  std::vector<Tensor> dp, dh, dc;
  for (const LstmBackwardDirection& d : dirs) {
    dp.push_back(Tensor::empty({B, T, G}, kFloat32, dev));
    for (auto [state, incoming] : {std::pair{&dh, &d.g_h}, std::pair{&dc, &d.g_c}}) {
      state->push_back(Tensor::empty({B, H}, kFloat32, dev));
      if (incoming->defined())
        copy(*incoming, state->back());
      else
        fill(state->back(), 0.0);
    }
  }
  const dim3 grid(grid_for(B * H, kThreads, device), static_cast<unsigned>(n));
  for (int64_t s = T - 1; s >= 0; --s) {
    BackwardStep step{B, T, H, {}};
    std::vector<GemmProblem> recurrent;
    for (int k = 0; k < n; ++k) {
      const LstmBackwardDirection& d = dirs[k];
      const int64_t t = d.reverse ? T - 1 - s : s;
      const Tensor prev_c = s == 0 ? d.c0 : at_time(d.cells, previous_time(s, T, d.reverse));
      step.lane[k] = {t,
                      device_data<float>(prev_c),
                      prev_c.stride(0),
                      device_data<float>(d.gates),
                      device_data<float>(d.cells),
                      data_or_null(d.g_output),
                      device_data<float>(dh[k]),
                      device_data<float>(dc[k]),
                      device_data<float>(dp[k])};
      // dh_prev = dP_t W_hh. The first step's is dh0, wanted only when h0 needs a gradient.
      if (s > 0 || d.gh0.defined()) recurrent.push_back({at_time(dp[k], t), w_hh[k], dh[k]});
    }
    lstm_cell_backward<<<grid, kThreads, 0, stream_of(device)>>>(step);
    MINIDL_CUDA_CHECK_LAUNCH("lstm_layer backward");
    matmul_group(recurrent);
  }
  for (int k = 0; k < n; ++k) {
    const LstmBackwardDirection& d = dirs[k];
    if (d.gh0.defined()) copy(dh[k], d.gh0);
    if (d.gc0.defined()) copy(dc[k], d.gc0);
    const Tensor dp2 = dp[k].view({B * T, G});
    if (d.gw_hh.defined()) {
      // H_prev[:, t]: the hidden state step t read (h0 for the first step processed), gathered so that
      // one GEMM over all B*T rows gives dW_hh = dP^T H_prev.
      const Tensor hprev = Tensor::empty({B, T, H}, kFloat32, dev);
      if (T > 1) {
        if (d.reverse)
          copy(d.output.narrow(1, 1, T - 1), hprev.narrow(1, 0, T - 1));
        else
          copy(d.output.narrow(1, 0, T - 1), hprev.narrow(1, 1, T - 1));
      }
      if (T > 0) copy(d.h0, at_time(hprev, d.reverse ? T - 1 : 0));  // an empty sequence has no step to hold h0
      matmul(dp2.t(), hprev.view({B * T, H}), d.gw_hh);
    }
    const int64_t I = d.gw_ih.defined() ? d.gw_ih.size(1) : (d.gx.defined() ? d.gx.size(2) : 0);
    if (d.gw_ih.defined()) matmul(dp2.t(), x.view({B * T, I}), d.gw_ih);
    if (d.gx.defined()) matmul(dp2, plain(d.w_ih), d.gx.view({B * T, I}));
    if (d.gb.defined()) reduce(ReduceOp::Sum, dp2, {0}, d.gb);
  }
}

}  // namespace minidl::cuda
