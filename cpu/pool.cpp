// CPU pooling over 1-3 spatial dims: max, average and adaptive average. Declared in cpu/conv.h.
//
// All three are the same loop over windows: the front end turns kernel / stride / padding (or an adaptive
// output size) into a table of clipped input ranges per spatial dim (PoolDim), and the kernels walk
// output cells and their ranges. Padding never needs to be read: max pooling pads with -inf, which never
// wins, and average pooling pads with zeros, which only change the divisor.
//
// Threads split the planes (batch x channel); one plane is always done by one thread. The backward passes
// scatter each output's gradient into its window, outputs in row-major order, so every input element
// receives its terms in the same order whatever the thread count.
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "cpu/conv.h"
#include "cpu/dtype_dispatch.h"
#include "cpu/strided_loop.h"

namespace minidl::cpu {
namespace {

// Runs fn(plane) for every plane, on all threads when there is enough work.
template <class Fn>
void for_planes(const PoolShape& s, Fn&& fn) {
  const bool parallel = !omp_in_parallel() && s.planes > 1 && s.planes * s.in_plane() >= kParallelGrain;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t p = 0; p < s.planes; ++p) fn(p);
}

// Calls fn(o, d0, d1, h0, h1, w0, w1) for every output cell o of a plane in row-major order, with its
// clipped window [d0, d1) x [h0, h1) x [w0, w1).
template <class Fn>
void for_windows(const PoolShape& s, Fn&& fn) {
  const PoolDim &D = s.dims[0], &H = s.dims[1], &W = s.dims[2];
  int64_t o = 0;
  for (int64_t od = 0; od < D.out(); ++od)
    for (int64_t oh = 0; oh < H.out(); ++oh)
      for (int64_t ow = 0; ow < W.out(); ++ow, ++o) fn(o, D.lo(od), D.hi(od), H.lo(oh), H.hi(oh), W.lo(ow), W.hi(ow));
}

int64_t window_divisor(int64_t divisor, int64_t d0, int64_t d1, int64_t h0, int64_t h1, int64_t w0, int64_t w1) {
  return divisor > 0 ? divisor : (d1 - d0) * (h1 - h0) * (w1 - w0);
}

template <class T>
void max_forward_typed(const Tensor& xt, const PoolShape& s, const Tensor& yt, const Tensor& it) {
  const int64_t H = s.dims[1].in, W = s.dims[2].in, in_plane = s.in_plane(), out_plane = s.out_plane();
  const T* x = xt.data<T>();
  T* y = yt.data<T>();
  int64_t* idx = it.data<int64_t>();
  for_planes(s, [&](int64_t p) {
    const T* xp = x + p * in_plane;
    T* yp = y + p * out_plane;
    int64_t* ip = idx + p * out_plane;
    for_windows(s, [&](int64_t o, int64_t d0, int64_t d1, int64_t h0, int64_t h1, int64_t w0, int64_t w1) {
      // Windows are never empty (the front end keeps padding <= kernel / 2): start from the first element.
      int64_t best_at = (d0 * H + h0) * W + w0;
      T best = xp[best_at];
      for (int64_t d = d0; d < d1; ++d)
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) {
            const int64_t at = (d * H + h) * W + w;
            const T v = xp[at];
            // Strictly greater keeps the first maximum; a NaN wins once and then stays (as torch does).
            if (v > best || (std::isnan(v) && !std::isnan(best))) {
              best = v;
              best_at = at;
            }
          }
      yp[o] = best;
      ip[o] = best_at;
    });
  });
}

template <class T>
void max_backward_typed(const Tensor& gyt, const Tensor& it, const PoolShape& s, const Tensor& gxt) {
  const int64_t in_plane = s.in_plane(), out_plane = s.out_plane();
  const T* gy = gyt.data<T>();
  const int64_t* idx = it.data<int64_t>();
  T* gx = gxt.data<T>();
  for_planes(s, [&](int64_t p) {
    T* gp = gx + p * in_plane;
    std::fill(gp, gp + in_plane, T(0));
    const T* gyp = gy + p * out_plane;
    const int64_t* ip = idx + p * out_plane;
    for (int64_t o = 0; o < out_plane; ++o) gp[ip[o]] += gyp[o];
  });
}

template <class T>
void avg_forward_typed(const Tensor& xt, const PoolShape& s, int64_t divisor, const Tensor& yt) {
  const int64_t H = s.dims[1].in, W = s.dims[2].in, in_plane = s.in_plane(), out_plane = s.out_plane();
  const T* x = xt.data<T>();
  T* y = yt.data<T>();
  for_planes(s, [&](int64_t p) {
    const T* xp = x + p * in_plane;
    T* yp = y + p * out_plane;
    for_windows(s, [&](int64_t o, int64_t d0, int64_t d1, int64_t h0, int64_t h1, int64_t w0, int64_t w1) {
      // Sum in double: a global average pool adds thousands of float32 values.
      double sum = 0;
      for (int64_t d = d0; d < d1; ++d)
        for (int64_t h = h0; h < h1; ++h) {
          const T* row = xp + (d * H + h) * W;
          for (int64_t w = w0; w < w1; ++w) sum += row[w];
        }
      yp[o] = static_cast<T>(sum / static_cast<double>(window_divisor(divisor, d0, d1, h0, h1, w0, w1)));
    });
  });
}

template <class T>
void avg_backward_typed(const Tensor& gyt, const PoolShape& s, int64_t divisor, const Tensor& gxt) {
  const int64_t H = s.dims[1].in, W = s.dims[2].in, in_plane = s.in_plane(), out_plane = s.out_plane();
  const T* gy = gyt.data<T>();
  T* gx = gxt.data<T>();
  for_planes(s, [&](int64_t p) {
    T* gp = gx + p * in_plane;
    std::fill(gp, gp + in_plane, T(0));
    const T* gyp = gy + p * out_plane;
    for_windows(s, [&](int64_t o, int64_t d0, int64_t d1, int64_t h0, int64_t h1, int64_t w0, int64_t w1) {
      const T share = static_cast<T>(static_cast<double>(gyp[o]) /
                                     static_cast<double>(window_divisor(divisor, d0, d1, h0, h1, w0, w1)));
      for (int64_t d = d0; d < d1; ++d)
        for (int64_t h = h0; h < h1; ++h) {
          T* row = gp + (d * H + h) * W;
          for (int64_t w = w0; w < w1; ++w) row[w] += share;
        }
    });
  });
}

}  // namespace

void max_pool_forward(const Tensor& x, const PoolShape& s, const Tensor& y, const Tensor& indices) {
  float_dispatch("max_pool", x.dtype(), [&](auto tag) { max_forward_typed<decltype(tag)>(x, s, y, indices); });
}

void max_pool_backward(const Tensor& gy, const Tensor& indices, const PoolShape& s, const Tensor& gx) {
  float_dispatch("max_pool backward", gy.dtype(),
                 [&](auto tag) { max_backward_typed<decltype(tag)>(gy, indices, s, gx); });
}

void avg_pool_forward(const Tensor& x, const PoolShape& s, int64_t divisor, const Tensor& y) {
  float_dispatch("avg_pool", x.dtype(), [&](auto tag) { avg_forward_typed<decltype(tag)>(x, s, divisor, y); });
}

void avg_pool_backward(const Tensor& gy, const PoolShape& s, int64_t divisor, const Tensor& gx) {
  float_dispatch("avg_pool backward", gy.dtype(),
                 [&](auto tag) { avg_backward_typed<decltype(tag)>(gy, s, divisor, gx); });
}

}  // namespace minidl::cpu
