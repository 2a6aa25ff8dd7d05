// CPU softmax and log-softmax along one dim, and their backward. Each row (all elements along `dim` for
// one position of the other dims) is handled by one thread: max, then the sum of exp(x - max) in double.
#include <cmath>

#include "autograd/error.h"
#include "cpu/dtype_dispatch.h"
#include "cpu/kernels.h"
#include "cpu/strided_loop.h"

namespace minidl::cpu {
namespace {

// Offsets of the first element of each row: every position of the dims other than `dim`.
std::vector<int64_t> row_offsets(const Tensor& t, int64_t dim) {
  std::vector<int64_t> shape, strides;
  for (int64_t d = 0; d < t.dim(); ++d)
    if (d != dim) {
      shape.push_back(t.size(d));
      strides.push_back(t.stride(d));
    }
  const int64_t rows = numel_of(shape);
  std::vector<int64_t> off(rows);
  for (int64_t r = 0; r < rows; ++r) {
    int64_t n = r, o = 0;
    for (size_t d = shape.size(); d-- > 0;) {
      o += (n % shape[d]) * strides[d];
      n /= shape[d];
    }
    off[r] = o;
  }
  return off;
}

template <class T>
void softmax_typed(const Tensor& x, int64_t dim, bool log, const Tensor& out) {
  const auto xo = row_offsets(x, dim), oo = row_offsets(out, dim);
  const int64_t n = x.size(dim), xs = x.stride(dim), os = out.stride(dim);
  const T* xb = x.data<T>();
  T* ob = out.data<T>();
#pragma omp parallel for schedule(static) if (x.numel() >= kParallelGrain && !omp_in_parallel())
  for (int64_t r = 0; r < static_cast<int64_t>(xo.size()); ++r) {
    const T* xr = xb + xo[r];
    T* orow = ob + oo[r];
    T m = -INFINITY;
    for (int64_t i = 0; i < n; ++i) m = std::max(m, xr[i * xs]);
    // A row of -inf has no finite shift; with m = 0 it comes out NaN (0 / 0) like torch's, instead of
    // tripping on (-inf) - (-inf) first.
    if (std::isinf(m) && m < 0) m = 0;
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += std::exp(static_cast<double>(xr[i * xs] - m));
    if (log) {
      const T lse = static_cast<T>(std::log(s)) + m;
      for (int64_t i = 0; i < n; ++i) orow[i * os] = xr[i * xs] - lse;
    } else {
      const double inv = 1.0 / s;
      for (int64_t i = 0; i < n; ++i)
        orow[i * os] = static_cast<T>(std::exp(static_cast<double>(xr[i * xs] - m)) * inv);
    }
  }
}

template <class T>
void softmax_backward_typed(const Tensor& y, const Tensor& g, int64_t dim, bool log, const Tensor& gx) {
  const auto yo = row_offsets(y, dim), go = row_offsets(g, dim), xo = row_offsets(gx, dim);
  const int64_t n = y.size(dim), ys = y.stride(dim), gs = g.stride(dim), xs = gx.stride(dim);
  const T* yb = y.data<T>();
  const T* gb = g.data<T>();
  T* xb = gx.data<T>();
#pragma omp parallel for schedule(static) if (y.numel() >= kParallelGrain && !omp_in_parallel())
  for (int64_t r = 0; r < static_cast<int64_t>(yo.size()); ++r) {
    const T* yr = yb + yo[r];
    const T* gr = gb + go[r];
    T* xr = xb + xo[r];
    double dot = 0;
    if (log) {
      for (int64_t i = 0; i < n; ++i) dot += gr[i * gs];
      for (int64_t i = 0; i < n; ++i)
        xr[i * xs] = static_cast<T>(gr[i * gs] - std::exp(static_cast<double>(yr[i * ys])) * dot);
    } else {
      for (int64_t i = 0; i < n; ++i) dot += static_cast<double>(gr[i * gs]) * yr[i * ys];
      for (int64_t i = 0; i < n; ++i) xr[i * xs] = static_cast<T>(yr[i * ys] * (gr[i * gs] - dot));
    }
  }
}

}  // namespace

void softmax(const Tensor& x, int64_t dim, bool log, const Tensor& out) {
  float_dispatch("softmax", x.dtype(), [&](auto tag) { softmax_typed<decltype(tag)>(x, dim, log, out); });
}

void softmax_backward(const Tensor& y, const Tensor& g, int64_t dim, bool log, const Tensor& gx) {
  float_dispatch("softmax", y.dtype(), [&](auto tag) { softmax_backward_typed<decltype(tag)>(y, g, dim, log, gx); });
}

}  // namespace minidl::cpu
