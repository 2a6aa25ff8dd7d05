// CPU kernels of the fused LSTM layer: forward over a whole sequence, and backpropagation through time.
//
// Forward, for one layer and one direction (gate order i, f, g, o as in torch):
//   P = x W_ih^T                     one GEMM for all B*T rows: [B*T, I] x [I, 4H] -> gates [B, T, 4H]
//   per step t (in processing order):
//     P_t += h_prev W_hh^T           one GEMM [B, H] x [H, 4H], accumulated into gates[:, t]
//     i, f, o = sigmoid(P_t + b)     one fused pass per step: activations, cell and hidden state
//     g = tanh(P_t + b)
//     c_t = f c_prev + i g,  h_t = o tanh(c_t)
// The pass overwrites the pre-activations with the activations, which is what the backward reads.
//
// What is saved and what is recomputed: the gate activations (4H per row) and the cell states (H per row)
// are kept, because every gate gradient needs its activation and recomputing them would repeat the
// forward's recurrent GEMMs, which is most of its time. tanh(c_t) is recomputed in the backward instead of
// stored: it is one tanh per element, and it saves a fifth of the saved memory. The hidden states are the
// layer's output, which the backward reads for dW_hh.
//
// Backward (steps in reverse processing order):
//   dh = g_out[:, t] + dh_next,  dc = dc_next + dh o (1 - tanh(c)^2)
//   dP = [dc g i(1-i), dc c_prev f(1-f), dc i (1-g^2), dh tanh(c) o(1-o)]   (pre-activation gradients)
//   dh_prev = dP W_hh                one GEMM per step,  dc_prev = dc f
// and after the loop, as single GEMMs over all B*T rows (the rows are independent once dP is known):
//   dW_hh = dP^T H_prev,  dW_ih = dP^T x,  dx = dP W_ih,  db = column sums of dP.
// dW_hh is one GEMM over a gathered copy of the previous hidden states rather than T rank-B updates: the
// same sum, with K = B*T instead of B, so the packed GEMM runs at full speed, and the summation order is
// still fixed by the shapes alone.
//
// Threads: the GEMMs parallelise internally; the pointwise passes split rows over OpenMP threads (each
// element is computed by one thread from the same inputs); the bias gradient gives each thread a block of
// columns and sums the rows in order. Nothing depends on the thread count, so results are bitwise equal
// with any number of threads.
#include "cpu/lstm.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "autograd/functors.h"
#include "cpu/dtype_dispatch.h"
#include "cpu/kernels.h"

namespace minidl::cpu {
namespace {

// Cells below this many (B*H per step) run on one thread: each costs ~50 ns (three exps, two tanhs), so
// 1024 of them outweigh a parallel region's start-up several times over.
constexpr int64_t kCellGrain = 1024;

bool parallel_cells(int64_t n) { return n >= kCellGrain && !omp_in_parallel(); }

// Geometry shared by the two kernels.
struct Dims {
  int64_t B, T, I, H, G;  // G = 4H, the width of a gates row
};

// The state that step s reads: h0 / c0 for the first step, else the output / cell of the previous time
// index in processing order. `rs` is the row stride (between batch entries) of that state.
template <class T>
struct Prev {
  const T* h;
  const T* c;
  int64_t rs;
};

template <class T>
Prev<T> previous(const Dims& d, int64_t s, bool reverse, const T* h0, const T* c0, const T* out, const T* cells) {
  if (s == 0) return {h0, c0, d.H};
  const int64_t tp = reverse ? d.T - s : s - 1;  // the time index processed at step s - 1
  return {out + tp * d.H, cells + tp * d.H, d.T * d.H};
}

// w [R, C] (any strides) as a contiguous [C, R] buffer.
template <class T>
std::vector<T> transposed(const Tensor& w) {
  const int64_t R = w.size(0), C = w.size(1), rs = w.stride(0), cs = w.stride(1);
  const T* src = w.data<T>();
  std::vector<T> out(static_cast<size_t>(R * C));
  // In 32 x 32 tiles: a plain double loop writes with a stride of R elements, a power of two here
  // (4H), which maps every write of a column onto the same few cache sets.
  constexpr int64_t kTile = 32;
  for (int64_t r0 = 0; r0 < R; r0 += kTile)
    for (int64_t c0 = 0; c0 < C; c0 += kTile)
      for (int64_t c = c0; c < std::min(C, c0 + kTile); ++c)
        for (int64_t r = r0; r < std::min(R, r0 + kTile); ++r) out[c * R + r] = src[r * rs + c * cs];
  return out;
}

template <class T>
void forward_typed(const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh,
                   const Tensor& b_ih, const Tensor& b_hh, bool reverse, const Tensor& output, const Tensor& h,
                   const Tensor& c, const Tensor& gates, const Tensor& cells) {
  const Dims d{x.size(0), x.size(1), x.size(2), w_hh.size(1), 4 * w_hh.size(1)};
  const int64_t B = d.B, Tn = d.T, H = d.H, G = d.G;
  T* gp = gates.data<T>();
  T* op = output.data<T>();
  T* cp = cells.data<T>();
  const T* h0p = h0.data<T>();
  const T* c0p = c0.data<T>();
  // W_ih^T [I, 4H] and W_hh^T [H, 4H] copied contiguous once per call: the GEMM packs its B operand on
  // every call (T times for W_hh), and from unit-stride rows that packing is a memcpy instead of a gather.
  const std::vector<T> wih_t = transposed<T>(w_ih), whh_t = transposed<T>(w_hh);
  const T* whh = whh_t.data();

  // Input projections of every step at once.
  gemm<T>(B * Tn, G, d.I, x.data<T>(), d.I, 1, wih_t.data(), G, 1, gp, G, 1, false);

  // Both biases enter every step as one sum, added in the pointwise pass (no separate pass over gates).
  std::vector<T> bias(static_cast<size_t>(G), T(0));
  for (const Tensor* b : {&b_ih, &b_hh})
    if (b->defined()) {
      const T* bp = b->data<T>();
      for (int64_t n = 0; n < G; ++n) bias[n] += bp[n * b->stride(0)];
    }
  const T* bs = bias.data();

  for (int64_t s = 0; s < Tn; ++s) {
    const int64_t t = reverse ? Tn - 1 - s : s;
    const Prev<T> prev = previous<T>(d, s, reverse, h0p, c0p, op, cp);
    T* gt = gp + t * G;  // gates[:, t], rows T*G apart
    gemm<T>(B, G, H, prev.h, prev.rs, 1, whh, G, 1, gt, Tn * G, 1, true);
#pragma omp parallel for collapse(2) schedule(static) if (parallel_cells(B * H))
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < H; ++j) {
        T* a = gt + b * Tn * G;
        const T gi = SigmoidF{}(a[j] + bs[j]);
        const T gf = SigmoidF{}(a[H + j] + bs[H + j]);
        const T gg = TanhF{}(a[2 * H + j] + bs[2 * H + j]);
        const T go = SigmoidF{}(a[3 * H + j] + bs[3 * H + j]);
        const T cn = gf * prev.c[b * prev.rs + j] + gi * gg;
        a[j] = gi;
        a[H + j] = gf;
        a[2 * H + j] = gg;
        a[3 * H + j] = go;
        cp[(b * Tn + t) * H + j] = cn;
        op[(b * Tn + t) * H + j] = go * TanhF{}(cn);
      }
  }

  // The final state: the last step's (or the initial state for an empty sequence).
  const Prev<T> last = previous<T>(d, Tn, reverse, h0p, c0p, op, cp);
  T* hp = h.data<T>();
  T* cq = c.data<T>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < H; ++j) {
      hp[b * H + j] = last.h[b * last.rs + j];
      cq[b * H + j] = last.c[b * last.rs + j];
    }
}

template <class T>
void backward_typed(const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh,
                    const Tensor& output, const Tensor& gates, const Tensor& cells, bool reverse,
                    const Tensor& g_output, const Tensor& g_h, const Tensor& g_c, const Tensor& gx, const Tensor& gh0,
                    const Tensor& gc0, const Tensor& gw_ih, const Tensor& gw_hh, const Tensor& gb) {
  const int64_t I = x.defined() ? x.size(2) : (w_ih.defined() ? w_ih.size(1) : 0);
  const Dims d{gates.size(0), gates.size(1), I, w_hh.size(1), 4 * w_hh.size(1)};
  const int64_t B = d.B, Tn = d.T, H = d.H, G = d.G;
  const T* ap = gates.data<T>();
  const T* cp = cells.data<T>();
  const T* op = output.data<T>();
  const T* h0p = h0.data<T>();
  const T* c0p = c0.data<T>();
  const T* whh = w_hh.data<T>();
  const T* gout = g_output.defined() ? g_output.data<T>() : nullptr;

  // dP: the pre-activation gradients of every step, [B, T, 4H]; dh, dc: the running state gradients.
  std::vector<T> dp(static_cast<size_t>(B * Tn * G));
  std::vector<T> dh(static_cast<size_t>(B * H), T(0)), dc(static_cast<size_t>(B * H), T(0));
  if (g_h.defined()) std::copy_n(g_h.data<T>(), B * H, dh.data());
  if (g_c.defined()) std::copy_n(g_c.data<T>(), B * H, dc.data());
  T* dpp = dp.data();
  T* dhp = dh.data();
  T* dcp = dc.data();

  for (int64_t s = Tn - 1; s >= 0; --s) {
    const int64_t t = reverse ? Tn - 1 - s : s;
    const Prev<T> prev = previous<T>(d, s, reverse, h0p, c0p, op, cp);
#pragma omp parallel for collapse(2) schedule(static) if (parallel_cells(B * H))
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < H; ++j) {
        const int64_t row = b * Tn + t;
        const T* a = ap + row * G;
        const T gi = a[j], gf = a[H + j], gg = a[2 * H + j], go = a[3 * H + j];
        const T tc = TanhF{}(cp[row * H + j]);
        const T dht = dhp[b * H + j] + (gout ? gout[row * H + j] : T(0));
        const T dct = dcp[b * H + j] + dht * go * (T(1) - tc * tc);
        T* g = dpp + row * G;
        g[j] = dct * gg * gi * (T(1) - gi);
        g[H + j] = dct * prev.c[b * prev.rs + j] * gf * (T(1) - gf);
        g[2 * H + j] = dct * gi * (T(1) - gg * gg);
        g[3 * H + j] = dht * tc * go * (T(1) - go);
        dcp[b * H + j] = dct * gf;
      }
    // dh_prev = dP_t W_hh. The first step's is dh0, wanted only when h0 needs a gradient.
    if (s > 0 || gh0.defined())
      gemm<T>(B, H, G, dpp + t * G, Tn * G, 1, whh, w_hh.stride(0), w_hh.stride(1), dhp, H, 1, false);
  }
  if (gh0.defined()) std::copy_n(dhp, B * H, gh0.data<T>());
  if (gc0.defined()) std::copy_n(dcp, B * H, gc0.data<T>());

  if (gw_hh.defined()) {
    // H_prev[b, t]: the hidden state that step t read, gathered so that one GEMM covers every step.
    std::vector<T> hprev(static_cast<size_t>(B * Tn * H));
    for (int64_t s = 0; s < Tn; ++s) {
      const int64_t t = reverse ? Tn - 1 - s : s;
      const Prev<T> prev = previous<T>(d, s, reverse, h0p, c0p, op, cp);
      for (int64_t b = 0; b < B; ++b) std::copy_n(prev.h + b * prev.rs, H, hprev.data() + (b * Tn + t) * H);
    }
    // dW_hh [4H, H] = dP^T [4H, B*T] x H_prev [B*T, H]: dP read transposed through its strides.
    gemm<T>(G, H, B * Tn, dpp, 1, G, hprev.data(), H, 1, gw_hh.data<T>(), H, 1, false);
  }
  if (gw_ih.defined()) gemm<T>(G, I, B * Tn, dpp, 1, G, x.data<T>(), I, 1, gw_ih.data<T>(), I, 1, false);
  if (gx.defined())
    gemm<T>(B * Tn, I, G, dpp, G, 1, w_ih.data<T>(), w_ih.stride(0), w_ih.stride(1), gx.data<T>(), I, 1, false);

  if (gb.defined()) {
    // Column sums of dP in double, rows in order. Each thread owns a block of columns and walks the rows
    // over it, so the reads stay unit-stride and every column's order is fixed.
    constexpr int64_t kCols = 64;
    const int64_t rows = B * Tn, blocks = (G + kCols - 1) / kCols;
    T* gbp = gb.data<T>();
    const int64_t gbs = gb.stride(0);
#pragma omp parallel for schedule(static) if (rows * G >= 32768 && !omp_in_parallel())
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t n0 = blk * kCols, n1 = std::min(G, n0 + kCols);
      double acc[kCols] = {};
      for (int64_t r = 0; r < rows; ++r) {
        const T* src = dpp + r * G;
        for (int64_t n = n0; n < n1; ++n) acc[n - n0] += static_cast<double>(src[n]);
      }
      for (int64_t n = n0; n < n1; ++n) gbp[n * gbs] = static_cast<T>(acc[n - n0]);
    }
  }
}

}  // namespace

void lstm_forward(const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh,
                  const Tensor& b_ih, const Tensor& b_hh, bool reverse, const Tensor& output, const Tensor& h,
                  const Tensor& c, const Tensor& gates, const Tensor& cells) {
  float_dispatch("lstm_layer", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    forward_typed<T>(x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse, output, h, c, gates, cells);
  });
}

void lstm_backward(const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh,
                   const Tensor& output, const Tensor& gates, const Tensor& cells, bool reverse, const Tensor& g_output,
                   const Tensor& g_h, const Tensor& g_c, const Tensor& gx, const Tensor& gh0, const Tensor& gc0,
                   const Tensor& gw_ih, const Tensor& gw_hh, const Tensor& gb) {
  float_dispatch("lstm_layer", gates.dtype(), [&](auto tag) {
    using T = decltype(tag);
    backward_typed<T>(x, h0, c0, w_ih, w_hh, output, gates, cells, reverse, g_output, g_h, g_c, gx, gh0, gc0, gw_ih,
                      gw_hh, gb);
  });
}

}  // namespace minidl::cpu
