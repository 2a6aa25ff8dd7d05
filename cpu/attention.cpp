// CPU kernels of the joint cross-attention block (cpu/attention.h; the math is MODEL.md §1, in the
// time-in-rows layout of models/fusion.cpp).
//
// Per sequence b and branch (X = X_a or X_v [L, d], with that branch's weights), s = sqrt(2d):
//   G = W_j J                       [L, 2d]  J = [X_a, X_v]: one product per branch, shared by all rows
//   P = X^T G / s,  C = tanh(P)     [d, 2d]  row i of C needs only column i of X (feature i over time)
//   Z = C W_c^T + X^T W^T           [d, k]   row i of Z needs only row i of C
//   H = relu(Z),  X_att = (H W_h^T)^T + X    column i of X_att needs only row i of H
// so the rows of X^T are independent once G is known. The forward takes them in blocks of rows, each
// block's C and H used by the next product while they are still in cache. Without a backward to come
// they live in per-thread scratch and no [B, d, 2d] tensor is made; in training the forward writes them
// where the backward will read them (cpu/attention.h), which spares the backward recomputing them.
//
// Backward, for a row block with dO the gradient of X_att, reading C and H as the forward kept them
// (G is recomputed: L L 2d multiply-adds per sequence):
//   dH = dO^T W_h,  dZ = dH [Z > 0]         dW_h += dO H,   dW_c += dZ^T C,   dW += dZ^T X^T
//   dC = dZ W_c,    dP = dC (1 - C^2) / s   dX^T += dZ W + dP G^T (and dX += dO, the residual)
//   dG += X dP      and once the rows are done: dW_j += dG J^T,  dJ = W_j^T dG -> dX_a, dX_v
// Both branches of a sequence are one task (both write its dX_a and dX_v); each task writes its own
// weight-gradient partials, summed over the sequences in order at the end, so nothing depends on the
// number of threads. The products are cpu::gemm calls, which run on the calling thread inside the
// parallel region.
#include "cpu/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "autograd/ops.h"
#include "cpu/dtype_dispatch.h"
#include "cpu/kernels.h"

namespace minidl::cpu {
namespace {

// Rows of X^T per block: as many as keep a block's C (rows x 2d floats) near 128 KiB, where the second
// level of cache holds it between the products that write and read it; more rows make each product a
// longer GEMM (timings: docs/perf.md).
int64_t rows_per_block(int64_t d) { return std::min(d, std::max<int64_t>(16, 32768 / (2 * d))); }

struct Sizes {
  int64_t B, L, d, k;
  int64_t d2() const { return 2 * d; }
};

Sizes sizes_of(const Tensor& xa, const JcaWeights& w) { return {xa.size(0), xa.size(1), xa.size(2), w.w.size(0)}; }

template <class T>
void tanh_rows(const T* x, T* y, int64_t n) {
  if constexpr (std::is_same_v<T, float>)
    tanh_contiguous(x, y, n);
  else
    for (int64_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
}

template <class T>
const T* ptr(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

// One branch's weights as raw pointers.
template <class T>
struct Weights {
  const T *affine, *w, *w_c, *w_h;
  explicit Weights(const JcaWeights& j)
      : affine(ptr<T>(j.affine)), w(ptr<T>(j.w)), w_c(ptr<T>(j.w_c)), w_h(ptr<T>(j.w_h)) {}
};

// G = W_j J for sequence b: [L, 2d], the audio half of J's columns first.
template <class T>
void joint_product(const Sizes& s, const T* affine, const T* xa, const T* xv, T* g) {
  gemm<T>(s.L, s.d, s.L, affine, s.L, 1, xa, s.d, 1, g, s.d2(), 1, false);
  gemm<T>(s.L, s.d, s.L, affine, s.L, 1, xv, s.d, 1, g + s.d, s.d2(), 1, false);
}

// Rows r0 .. r0 + n of one branch: C [n, 2d], Z [n, k] (before the ReLU) and H [n, k]; xw [n, k] is
// scratch. x is the branch's X [L, d]; row i of X^T is column r0 + i of x (stride d along time).
template <class T>
void rows_forward(const Sizes& s, const Weights<T>& w, const T* x, const T* g, int64_t r0, int64_t n, T scale, T* c,
                  T* z, T* h, T* xw) {
  gemm<T>(n, s.d2(), s.L, x + r0, 1, s.d, g, s.d2(), 1, c, s.d2(), 1, false);  // X^T G
  for (int64_t i = 0; i < n * s.d2(); ++i) c[i] /= scale;  // divided, as the authors' torch.div rounds
  tanh_rows(c, c, n * s.d2());
  gemm<T>(n, s.k, s.d2(), c, s.d2(), 1, w.w_c, 1, s.d2(), z, s.k, 1, false);  // C W_c^T
  gemm<T>(n, s.k, s.L, x + r0, 1, s.d, w.w, 1, s.L, xw, s.k, 1, false);       // X^T W^T
  for (int64_t i = 0; i < n * s.k; ++i) {
    z[i] += xw[i];
    h[i] = z[i] > T(0) ? z[i] : T(0);
  }
}

// Where a (b, branch)'s C [d, 2d] and H [d, k] go when the forward keeps them for the backward.
template <class T>
T* kept(const Tensor& t, int64_t b, int64_t branch, int64_t per_row, int64_t d) {
  return t.defined() ? t.data<T>() + ((b * 2 + branch) * d) * per_row : nullptr;
}

template <class T>
void forward_typed(const Tensor& xa_t, const Tensor& xv_t, const JcaWeights& wa, const JcaWeights& wv,
                   const Tensor& out_a, const Tensor& out_v, const Tensor& keep_c, const Tensor& keep_h) {
  const Sizes s = sizes_of(xa_t, wa);
  const T* xa = xa_t.data<T>();
  const T* xv = xv_t.data<T>();
  const Weights<T> weights[2] = {Weights<T>(wa), Weights<T>(wv)};
  T* outs[2] = {out_a.data<T>(), out_v.data<T>()};
  const T scale = static_cast<T>(std::sqrt(static_cast<double>(s.d2())));
  const int64_t rows = rows_per_block(s.d), seq = s.L * s.d;
#pragma omp parallel
  {
    std::vector<T> g(static_cast<size_t>(s.L * s.d2())), c(static_cast<size_t>(rows * s.d2()));
    std::vector<T> z(static_cast<size_t>(rows * s.k)), h(z.size()), xw(z.size()), o(static_cast<size_t>(s.L * rows));
#pragma omp for schedule(static)
    for (int64_t task = 0; task < 2 * s.B; ++task) {
      const int64_t b = task / 2, branch = task % 2;
      const Weights<T>& w = weights[branch];
      const T* x = (branch == 0 ? xa : xv) + b * seq;
      T* out = outs[branch] + b * seq;
      T* kc = kept<T>(keep_c, b, branch, s.d2(), s.d);
      T* kh = kept<T>(keep_h, b, branch, s.k, s.d);
      joint_product(s, w.affine, xa + b * seq, xv + b * seq, g.data());
      for (int64_t r0 = 0; r0 < s.d; r0 += rows) {
        const int64_t n = std::min(rows, s.d - r0);
        T* cb = kc ? kc + r0 * s.d2() : c.data();
        T* hb = kh ? kh + r0 * s.k : h.data();
        rows_forward(s, w, x, g.data(), r0, n, scale, cb, z.data(), hb, xw.data());
        gemm<T>(s.L, n, s.k, w.w_h, s.k, 1, hb, 1, s.k, o.data(), n, 1, false);  // W_h H^T: [L, n]
        for (int64_t l = 0; l < s.L; ++l)
          for (int64_t i = 0; i < n; ++i) out[l * s.d + r0 + i] = o[l * n + i] + x[l * s.d + r0 + i];
      }
    }
  }
}

// Each sequence's weight-gradient partials, both branches: w_h, w_c, w, affine each. Left uninitialised:
// every partial is written (not added to) by its sequence's first product, or filled with zeros.
template <class T>
struct Partials {
  Sizes s;
  std::unique_ptr<T[]> data;
  explicit Partials(const Sizes& sz) : s(sz), data(new T[static_cast<size_t>(s.B * 2 * per_branch())]) {}
  int64_t per_branch() const { return s.L * s.k + s.k * s.d2() + s.k * s.L + s.L * s.L; }
  T* w_h(int64_t b, int br) { return data.get() + (b * 2 + br) * per_branch(); }
  T* w_c(int64_t b, int br) { return w_h(b, br) + s.L * s.k; }
  T* w(int64_t b, int br) { return w_c(b, br) + s.k * s.d2(); }
  T* affine(int64_t b, int br) { return w(b, br) + s.k * s.L; }
};

template <class T>
void backward_typed(const Tensor& xa_t, const Tensor& xv_t, const JcaWeights& wa, const JcaWeights& wv,
                    const Tensor& kept_c, const Tensor& kept_h, const Tensor& ga_t, const Tensor& gv_t,
                    const Tensor& gxa_t, const Tensor& gxv_t, const JcaWeights& grad_a, const JcaWeights& grad_v) {
  const Sizes s = sizes_of(xa_t, wa);
  const T* xa = xa_t.data<T>();
  const T* xv = xv_t.data<T>();
  const Weights<T> weights[2] = {Weights<T>(wa), Weights<T>(wv)};
  const T* grads_in[2] = {ptr<T>(ga_t), ptr<T>(gv_t)};
  T* gx_out[2] = {gxa_t.defined() ? gxa_t.data<T>() : nullptr, gxv_t.defined() ? gxv_t.data<T>() : nullptr};
  const T scale = static_cast<T>(std::sqrt(static_cast<double>(s.d2())));
  const int64_t rows = rows_per_block(s.d), seq = s.L * s.d, d2 = s.d2();
  Partials<T> part(s);
#pragma omp parallel
  {
    std::vector<T> g(static_cast<size_t>(s.L * d2)), dg(g.size()), dj(g.size());
    std::vector<T> dp(static_cast<size_t>(rows * d2)), dz(static_cast<size_t>(rows * s.k));
    std::vector<T> dxt(static_cast<size_t>(rows * s.L));
    std::vector<T> gx[2] = {std::vector<T>(static_cast<size_t>(seq)), std::vector<T>(static_cast<size_t>(seq))};
#pragma omp for schedule(static)
    for (int64_t b = 0; b < s.B; ++b) {
      std::fill(dj.begin(), dj.end(), T(0));
      for (int branch = 0; branch < 2; ++branch) {
        const Weights<T>& w = weights[branch];
        const T* x = (branch == 0 ? xa : xv) + b * seq;
        const T* go = grads_in[branch] ? grads_in[branch] + b * seq : nullptr;
        std::vector<T>& gxb = gx[branch];
        // The residual's gradient first; the rows add theirs.
        for (int64_t i = 0; i < seq; ++i) gxb[i] = go ? go[i] : T(0);
        std::fill(dg.begin(), dg.end(), T(0));
        if (go) {
          joint_product(s, w.affine, xa + b * seq, xv + b * seq, g.data());
          for (int64_t r0 = 0; r0 < s.d; r0 += rows) {
            const int64_t n = std::min(rows, s.d - r0);
            const T* c = kept<T>(kept_c, b, branch, d2, s.d) + r0 * d2;
            const T* h = kept<T>(kept_h, b, branch, s.k, s.d) + r0 * s.k;
            // dH = dO^T W_h, then through the ReLU (Z > 0 exactly where H > 0).
            gemm<T>(n, s.k, s.L, go + r0, 1, s.d, w.w_h, s.k, 1, dz.data(), s.k, 1, false);
            for (int64_t i = 0; i < n * s.k; ++i)
              if (!(h[i] > T(0))) dz[i] = T(0);
            gemm<T>(s.L, s.k, n, go + r0, s.d, 1, h, s.k, 1, part.w_h(b, branch), s.k, 1, r0 > 0);       // dO H
            gemm<T>(s.k, d2, n, dz.data(), 1, s.k, c, d2, 1, part.w_c(b, branch), d2, 1, r0 > 0);        // dZ^T C
            gemm<T>(s.k, s.L, n, dz.data(), 1, s.k, x + r0, 1, s.d, part.w(b, branch), s.L, 1, r0 > 0);  // dZ^T X^T
            // dP = (dZ W_c) (1 - C^2) / s, then dX^T = dZ W + dP G^T for these rows.
            gemm<T>(n, d2, s.k, dz.data(), s.k, 1, w.w_c, d2, 1, dp.data(), d2, 1, false);
            for (int64_t i = 0; i < n * d2; ++i) dp[i] = dp[i] * (T(1) - c[i] * c[i]) / scale;
            gemm<T>(n, s.L, s.k, dz.data(), s.k, 1, w.w, s.L, 1, dxt.data(), s.L, 1, false);
            gemm<T>(n, s.L, d2, dp.data(), d2, 1, g.data(), 1, d2, dxt.data(), s.L, 1, true);
            for (int64_t i = 0; i < n; ++i)
              for (int64_t l = 0; l < s.L; ++l) gxb[l * s.d + r0 + i] += dxt[i * s.L + l];
            gemm<T>(s.L, d2, n, x + r0, s.d, 1, dp.data(), d2, 1, dg.data(), d2, 1, true);  // dG += X dP
          }
        } else {
          std::fill(part.w_h(b, branch), part.w_h(b, branch) + s.L * s.k, T(0));
          std::fill(part.w_c(b, branch), part.w_c(b, branch) + s.k * d2, T(0));
          std::fill(part.w(b, branch), part.w(b, branch) + s.k * s.L, T(0));
        }
        // dW_j = dG J^T (J^T's rows: X_a's columns, then X_v's), dJ += W_j^T dG.
        gemm<T>(s.L, s.L, s.d, dg.data(), d2, 1, xa + b * seq, 1, s.d, part.affine(b, branch), s.L, 1, false);
        gemm<T>(s.L, s.L, s.d, dg.data() + s.d, d2, 1, xv + b * seq, 1, s.d, part.affine(b, branch), s.L, 1, true);
        gemm<T>(s.L, d2, s.L, w.affine, 1, s.L, dg.data(), d2, 1, dj.data(), d2, 1, true);
      }
      // Both branches' dJ: its first d columns are X_a's, the rest X_v's.
      for (int branch = 0; branch < 2; ++branch) {
        if (!gx_out[branch]) continue;
        T* dst = gx_out[branch] + b * seq;
        for (int64_t l = 0; l < s.L; ++l)
          for (int64_t i = 0; i < s.d; ++i) dst[l * s.d + i] = gx[branch][l * s.d + i] + dj[l * d2 + branch * s.d + i];
      }
    }
  }
  // The weight gradients: the sequences' partials summed in sequence order, element by element (the
  // elements split over the threads; each one's sum runs over the sequences in order).
  const JcaWeights* out[2] = {&grad_a, &grad_v};
  for (int branch = 0; branch < 2; ++branch) {
    auto sum_into = [&](const Tensor& dst, T* (Partials<T>::*field)(int64_t, int)) {
      if (!dst.defined()) return;
      T* o = dst.data<T>();
      const int64_t n = dst.numel();
      std::vector<const T*> src;
      for (int64_t b = 0; b < s.B; ++b) src.push_back((part.*field)(b, branch));
#pragma omp parallel for schedule(static) if (n * s.B > (1 << 16))
      for (int64_t i = 0; i < n; ++i) {
        T acc = T(0);
        for (const T* p : src) acc += p[i];
        o[i] = acc;
      }
    };
    sum_into(out[branch]->w_h, &Partials<T>::w_h);
    sum_into(out[branch]->w_c, &Partials<T>::w_c);
    sum_into(out[branch]->w, &Partials<T>::w);
    sum_into(out[branch]->affine, &Partials<T>::affine);
  }
}

}  // namespace

void jca_forward(const Tensor& xa, const Tensor& xv, const JcaWeights& audio, const JcaWeights& visual,
                 const Tensor& out_a, const Tensor& out_v, const Tensor& keep_c, const Tensor& keep_h) {
  float_dispatch("joint_cross_attention", xa.dtype(), [&](auto zero) {
    forward_typed<decltype(zero)>(xa, xv, audio, visual, out_a, out_v, keep_c, keep_h);
  });
}

void jca_backward(const Tensor& xa, const Tensor& xv, const JcaWeights& audio, const JcaWeights& visual,
                  const Tensor& kept_c, const Tensor& kept_h, const Tensor& ga, const Tensor& gv, const Tensor& gxa,
                  const Tensor& gxv, const JcaWeights& grad_audio, const JcaWeights& grad_visual) {
  float_dispatch("joint_cross_attention", xa.dtype(), [&](auto zero) {
    backward_typed<decltype(zero)>(xa, xv, audio, visual, kept_c, kept_h, ga, gv, gxa, gxv, grad_audio, grad_visual);
  });
}

}  // namespace minidl::cpu
