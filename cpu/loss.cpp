// CPU concordance correlation coefficient (MODEL.md §4), per column, over the rows the mask keeps.
//
// With N valid rows, means mx, my, population variances vx, vy and covariance cov:
//   D = vx + vy + (mx - my)^2 + eps,  ccc = 2 cov / D.
// Differentiating (d cov/dx_i = (y_i - my)/N, d vx/dx_i = 2 (x_i - mx)/N, d (mx - my)^2/dx_i = 2 (mx - my)/N)
// and collecting terms gives the compact form the backward uses:
//   dccc/dx_i = 2 / (N D) * ((y_i - my) - ccc (x_i - my)),   dccc/dy_i = 2 / (N D) * ((x_i - mx) - ccc (y_i - mx)).
// Moments are accumulated in double with two passes (means first), so float32 inputs lose nothing to
// cancellation.
#include "autograd/error.h"
#include "cpu/dtype_dispatch.h"
#include "cpu/kernels.h"

namespace minidl::cpu {
namespace {

template <class T>
void ccc_forward_typed(const Tensor& pred, const Tensor& target, const Tensor& mask, double eps, const Tensor& ccc,
                       const Tensor& stats) {
  const int64_t R = pred.size(0), C = pred.size(1);
  const T* x = pred.data<T>();
  const T* y = target.data<T>();
  const bool* m = mask.defined() ? mask.data<bool>() : nullptr;
  T* out = ccc.data<T>();
  T* st = stats.data<T>();
  for (int64_t c = 0; c < C; ++c) {
    double n = 0, sx = 0, sy = 0;
    for (int64_t r = 0; r < R; ++r)
      if (!m || m[r]) {
        n += 1;
        sx += x[r * C + c];
        sy += y[r * C + c];
      }
    const double mx = sx / n, my = sy / n;
    double vx = 0, vy = 0, cov = 0;
    for (int64_t r = 0; r < R; ++r)
      if (!m || m[r]) {
        const double dx = x[r * C + c] - mx, dy = y[r * C + c] - my;
        vx += dx * dx;
        vy += dy * dy;
        cov += dx * dy;
      }
    const double D = vx / n + vy / n + (mx - my) * (mx - my) + eps;
    out[c] = static_cast<T>(2.0 * (cov / n) / D);
    st[c * 4 + 0] = static_cast<T>(mx);
    st[c * 4 + 1] = static_cast<T>(my);
    st[c * 4 + 2] = static_cast<T>(D);
    st[c * 4 + 3] = static_cast<T>(n);
  }
}

template <class T>
void ccc_backward_typed(const Tensor& pred, const Tensor& target, const Tensor& mask, const Tensor& ccc,
                        const Tensor& stats, const Tensor& g, const Tensor& gpred, const Tensor& gtarget) {
  const int64_t R = pred.size(0), C = pred.size(1);
  const T* x = pred.data<T>();
  const T* y = target.data<T>();
  const bool* m = mask.defined() ? mask.data<bool>() : nullptr;
  const T* cc = ccc.data<T>();
  const T* st = stats.data<T>();
  const T* gc = g.data<T>();
  T* gx = gpred.defined() ? gpred.data<T>() : nullptr;
  T* gy = gtarget.defined() ? gtarget.data<T>() : nullptr;
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c) {
      const int64_t i = r * C + c;
      if (m && !m[r]) {  // a masked row gets exactly 0, even if it holds NaN or inf
        if (gx) gx[i] = T(0);
        if (gy) gy[i] = T(0);
        continue;
      }
      const double mx = st[c * 4], my = st[c * 4 + 1], D = st[c * 4 + 2], n = st[c * 4 + 3];
      const double k = gc[c] * 2.0 / (n * D);
      if (gx) gx[i] = static_cast<T>(k * ((y[i] - my) - cc[c] * (x[i] - my)));
      if (gy) gy[i] = static_cast<T>(k * ((x[i] - mx) - cc[c] * (y[i] - mx)));
    }
}

}  // namespace

void ccc_forward(const Tensor& pred, const Tensor& target, const Tensor& mask, double eps, const Tensor& ccc,
                 const Tensor& stats) {
  float_dispatch("ccc", pred.dtype(),
                 [&](auto tag) { ccc_forward_typed<decltype(tag)>(pred, target, mask, eps, ccc, stats); });
}

void ccc_backward(const Tensor& pred, const Tensor& target, const Tensor& mask, const Tensor& ccc, const Tensor& stats,
                  const Tensor& g, const Tensor& gpred, const Tensor& gtarget) {
  float_dispatch("ccc", pred.dtype(), [&](auto tag) {
    ccc_backward_typed<decltype(tag)>(pred, target, mask, ccc, stats, g, gpred, gtarget);
  });
}

}  // namespace minidl::cpu
