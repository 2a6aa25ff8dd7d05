// CUDA LSTM layer (one layer, one direction, a whole sequence) and its backward, with the algorithm and
// the saved tensors of cpu/lstm.cpp (read its header for the derivation):
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
// Everything is on the tensors' stream, in order, so one step's kernel sees the previous step's GEMM.
// Nothing here uses atomics: results are the same bits on every run.
#include "autograd/functors.h"
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace minidl::cuda {
namespace {

constexpr int kThreads = 256;

struct Step {
  int64_t B, T, H, t;   // sizes and the time index being processed
  const float* prev_c;  // c0, or cells[:, previous t]
  int64_t prev_rs;      // its row stride
};

// gates[:, t] holds x W_ih^T; adds hproj and the biases, applies the activations (stored back into
// gates[:, t] for the backward), and writes the cell and hidden state of step t.
__global__ void lstm_cell_forward(Step s, float* gates, const float* hproj, const float* b_ih, int64_t bis,
                                  const float* b_hh, int64_t bhs, float* cells, float* output) {
  const int64_t n = s.B * s.H, G = 4 * s.H;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += stride) {
    const int64_t b = e / s.H, j = e % s.H, row = b * s.T + s.t;
    float* a = gates + row * G;
    const float* hp = hproj + b * G;
    float pre[4];
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int64_t k = q * s.H + j;
      // Added in the CPU's order: (x W_ih^T + h W_hh^T) + (b_ih + b_hh).
      const float bias = (b_ih ? b_ih[k * bis] : 0.0f) + (b_hh ? b_hh[k * bhs] : 0.0f);
      pre[q] = (a[k] + hp[k]) + bias;
    }
    const float gi = SigmoidF{}(pre[0]), gf = SigmoidF{}(pre[1]), gg = TanhF{}(pre[2]), go = SigmoidF{}(pre[3]);
    const float cn = gf * s.prev_c[b * s.prev_rs + j] + gi * gg;
    a[j] = gi;
    a[s.H + j] = gf;
    a[2 * s.H + j] = gg;
    a[3 * s.H + j] = go;
    cells[row * s.H + j] = cn;
    output[row * s.H + j] = go * TanhF{}(cn);
  }
}

// The pre-activation gradients of step t into dp[:, t]; dh holds the gradient reaching h_t from the
// later steps (g_output is added here), dc that reaching c_t, replaced by the one reaching c_{t-1}.
__global__ void lstm_cell_backward(Step s, const float* gates, const float* cells, const float* g_output,
                                   const float* dh, float* dc, float* dp) {
  const int64_t n = s.B * s.H, G = 4 * s.H;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += stride) {
    const int64_t b = e / s.H, j = e % s.H, row = b * s.T + s.t;
    const float* a = gates + row * G;
    const float gi = a[j], gf = a[s.H + j], gg = a[2 * s.H + j], go = a[3 * s.H + j];
    const float tc = TanhF{}(cells[row * s.H + j]);
    const float dht = dh[e] + (g_output ? g_output[row * s.H + j] : 0.0f);
    const float dct = dc[e] + dht * go * (1.0f - tc * tc);
    float* g = dp + row * G;
    g[j] = dct * gg * gi * (1.0f - gi);
    g[s.H + j] = dct * s.prev_c[b * s.prev_rs + j] * gf * (1.0f - gf);
    g[2 * s.H + j] = dct * gi * (1.0f - gg * gg);
    g[3 * s.H + j] = dht * tc * go * (1.0f - go);
    dc[e] = dct * gf;
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

}  // namespace

void lstm_forward(const Tensor& x_in, const Tensor& h0, const Tensor& c0, const Tensor& w_ih_in, const Tensor& w_hh_in,
                  const Tensor& b_ih, const Tensor& b_hh, bool reverse, const Tensor& output, const Tensor& h,
                  const Tensor& c, const Tensor& gates, const Tensor& cells) {
  check(x_in, "input");
  const Tensor x = plain(x_in), w_ih = plain(w_ih_in), w_hh = plain(w_hh_in);
  const int64_t B = x.size(0), T = x.size(1), I = x.size(2), H = w_hh.size(1), G = 4 * H;
  const int device = x.device().index;
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  if (B == 0 || H == 0) return;
  if (T == 0) {  // no step: the final state is the initial one
    copy(h0, h);
    copy(c0, c);
    return;
  }
  // Input projections of every step at once: gates [B*T, 4H] = x [B*T, I] W_ih^T.
  matmul(x.view({B * T, I}), w_ih.t(), gates.view({B * T, G}));
  const Tensor hproj = Tensor::empty({B, G}, kFloat32, x.device());
  const unsigned blocks = grid_for(B * H, kThreads, device);
  for (int64_t s = 0; s < T; ++s) {
    const int64_t t = reverse ? T - 1 - s : s;
    const int64_t tp = previous_time(s, T, reverse);
    const Tensor prev_h = s == 0 ? h0 : at_time(output, tp), prev_c = s == 0 ? c0 : at_time(cells, tp);
    matmul(prev_h, w_hh.t(), hproj);
    const Step st{B, T, H, t, device_data<float>(prev_c), prev_c.stride(0)};
    lstm_cell_forward<<<blocks, kThreads, 0, stream_of(device)>>>(
        st, device_data<float>(gates), device_data<float>(hproj), b_ih.defined() ? device_data<float>(b_ih) : nullptr,
        b_ih.defined() ? b_ih.stride(0) : 0, b_hh.defined() ? device_data<float>(b_hh) : nullptr,
        b_hh.defined() ? b_hh.stride(0) : 0, device_data<float>(cells), device_data<float>(output));
    MINIDL_CUDA_CHECK_LAUNCH("lstm_layer");
  }
  const int64_t last = reverse ? 0 : T - 1;
  copy(at_time(output, last), h);
  copy(at_time(cells, last), c);
}

void lstm_backward(const Tensor& x_in, const Tensor& h0, const Tensor& c0, const Tensor& w_ih_in, const Tensor& w_hh_in,
                   const Tensor& output, const Tensor& gates, const Tensor& cells, bool reverse, const Tensor& g_output,
                   const Tensor& g_h, const Tensor& g_c, const Tensor& gx, const Tensor& gh0, const Tensor& gc0,
                   const Tensor& gw_ih, const Tensor& gw_hh, const Tensor& gb) {
  check(gates, "saved gates");
  const Tensor x = plain(x_in), w_ih = plain(w_ih_in), w_hh = plain(w_hh_in);
  const int64_t B = gates.size(0), T = gates.size(1), H = w_hh.size(1), G = 4 * H;
  const int64_t I = x.defined() ? x.size(2) : (w_ih.defined() ? w_ih.size(1) : 0);
  const Device dev = gates.device();
  const int device = dev.index;
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  // dP: the pre-activation gradients of every step, [B, T, 4H]; dh, dc: the running state gradients.
  const Tensor dp = Tensor::empty({B, T, G}, kFloat32, dev);
  const Tensor dh = Tensor::empty({B, H}, kFloat32, dev), dc = Tensor::empty({B, H}, kFloat32, dev);
  if (g_h.defined())
    copy(g_h, dh);
  else
    fill(dh, 0.0);
  if (g_c.defined())
    copy(g_c, dc);
  else
    fill(dc, 0.0);
  const unsigned blocks = grid_for(B * H, kThreads, device);
  for (int64_t s = T - 1; s >= 0; --s) {
    const int64_t t = reverse ? T - 1 - s : s;
    const Tensor prev_c = s == 0 ? c0 : at_time(cells, previous_time(s, T, reverse));
    const Step st{B, T, H, t, device_data<float>(prev_c), prev_c.stride(0)};
    lstm_cell_backward<<<blocks, kThreads, 0, stream_of(device)>>>(
        st, device_data<float>(gates), device_data<float>(cells),
        g_output.defined() ? device_data<float>(g_output) : nullptr, device_data<float>(dh), device_data<float>(dc),
        device_data<float>(dp));
    MINIDL_CUDA_CHECK_LAUNCH("lstm_layer backward");
    // dh_prev = dP_t W_hh. The first step's is dh0, wanted only when h0 needs a gradient.
    if (s > 0 || gh0.defined()) matmul(at_time(dp, t), w_hh, dh);
  }
  if (gh0.defined()) copy(dh, gh0);
  if (gc0.defined()) copy(dc, gc0);
  const Tensor dp2 = dp.view({B * T, G});
  if (gw_hh.defined()) {
    // H_prev[:, t]: the hidden state step t read (h0 for the first step processed), gathered so that one
    // GEMM over all B*T rows gives dW_hh = dP^T H_prev.
    const Tensor hprev = Tensor::empty({B, T, H}, kFloat32, dev);
    if (T > 1) {
      if (reverse)
        copy(output.narrow(1, 1, T - 1), hprev.narrow(1, 0, T - 1));
      else
        copy(output.narrow(1, 0, T - 1), hprev.narrow(1, 1, T - 1));
    }
    if (T > 0) copy(h0, at_time(hprev, reverse ? T - 1 : 0));  // an empty sequence has no step to hold h0
    matmul(dp2.t(), hprev.view({B * T, H}), gw_hh);
  }
  if (gw_ih.defined()) matmul(dp2.t(), x.view({B * T, I}), gw_ih);
  if (gx.defined()) matmul(dp2, w_ih, gx.view({B * T, I}));
  if (gb.defined()) reduce(ReduceOp::Sum, dp2, {0}, gb);
}

}  // namespace minidl::cuda
