// CUDA softmax and log-softmax along one dim, and their backward.
//
// A row is every element along `dim` for one position of the other dims. A group of threads takes a
// row: a warp, or a block of 256 for rows longer than 1024, when the row is contiguous; one thread when
// it is not (then neighbouring threads take neighbouring rows, which are the contiguous ones). Forward
// reads the row once for its maximum and normaliser together (online: when the running maximum grows,
// the running sum is rescaled by exp(old - new)), merges the threads' pairs with warp shuffles in a
// fixed order (group_fold of cuda/common.cuh), and reads it again to write. The sums are in double, as
// on the CPU.
#include <cmath>

#include "cuda/common.cuh"
#include "cuda/indexing.cuh"
#include "cuda/kernels.h"

namespace minidl::cuda {
namespace {

constexpr int kThreads = 256;

struct MaxSum {
  float m;   // running maximum
  double s;  // sum of exp(x - m)
};

__device__ __forceinline__ double scaled(double s, float from, float to) {
  return from == -INFINITY ? 0.0 : s * exp(static_cast<double>(from) - to);  // -inf - -inf would be NaN
}

__device__ __forceinline__ void push(MaxSum& a, float x) {
  if (x > a.m) {
    a.s = scaled(a.s, a.m, x);
    a.m = x;
  }
  a.s += x == -INFINITY ? 0.0 : exp(static_cast<double>(x) - a.m);
}

__device__ __forceinline__ void merge(MaxSum& a, const MaxSum& b) {
  const float m = b.m > a.m ? b.m : a.m;
  a.s = scaled(a.s, a.m, m) + scaled(b.s, b.m, m);
  a.m = m;
}

__global__ void softmax_rows(Geometry<2> rows, int64_t n, int64_t xs, int64_t os, int group, bool log) {
  __shared__ MaxSum per_warp[kThreads / kWarp];
  const int lane = threadIdx.x % group;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / group) + threadIdx.x / group;
  const bool active = row < rows.numel;
  int64_t off[2] = {0, 0};
  if (active) rows.offsets(row, off);
  const float* x = reinterpret_cast<const float*>(rows.base[1]) + off[1];
  float* out = reinterpret_cast<float*>(rows.base[0]) + off[0];
  MaxSum a{-INFINITY, 0.0};
  if (active)
    for (int64_t i = lane; i < n; i += group) push(a, x[i * xs]);
  a = group_fold(a, group, per_warp, [](MaxSum& p, const MaxSum& q) { merge(p, q); });
  if (!active) return;
  // A row of -inf has no finite shift; with m = 0 it comes out NaN (0 / 0) like torch's.
  const float m = a.m == -INFINITY ? 0.0f : a.m;
  if (log) {
    const float lse = static_cast<float>(::log(a.s)) + m;
    for (int64_t i = lane; i < n; i += group) out[i * os] = x[i * xs] - lse;
  } else {
    const double inv = 1.0 / a.s;
    for (int64_t i = lane; i < n; i += group)
      out[i * os] = static_cast<float>(exp(static_cast<double>(x[i * xs] - m)) * inv);
  }
}

// gx from y and g: softmax gx = y (g - sum(g y)); log_softmax gx = g - e^y sum(g).
__global__ void softmax_backward_rows(Geometry<3> rows, int64_t n, int64_t ys, int64_t gs, int64_t xs, int group,
                                      bool log) {
  __shared__ double per_warp[kThreads / kWarp];
  const int lane = threadIdx.x % group;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / group) + threadIdx.x / group;
  const bool active = row < rows.numel;
  int64_t off[3] = {0, 0, 0};
  if (active) rows.offsets(row, off);
  float* gx = reinterpret_cast<float*>(rows.base[0]) + off[0];
  const float* y = reinterpret_cast<const float*>(rows.base[1]) + off[1];
  const float* g = reinterpret_cast<const float*>(rows.base[2]) + off[2];
  double dot = 0;
  if (active)
    for (int64_t i = lane; i < n; i += group) dot += log ? g[i * gs] : static_cast<double>(g[i * gs]) * y[i * ys];
  dot = group_fold(dot, group, per_warp, [](double& p, const double& q) { p += q; });
  if (!active) return;
  for (int64_t i = lane; i < n; i += group)
    gx[i * xs] = log ? static_cast<float>(g[i * gs] - exp(static_cast<double>(y[i * ys])) * dot)
                     : static_cast<float>(y[i * ys] * (g[i * gs] - dot));
}

// Threads per row: a block for long contiguous rows, a warp for short ones, one thread for strided ones.
int group_for(int64_t n, int64_t stride) {
  if (stride != 1) return 1;
  return n > 1024 ? kThreads : kWarp;
}

// The first element of every row, as a view without `dim` (no autograd is recorded).
Tensor row_starts(const Tensor& t, int64_t dim) {
  Shape shape = t.shape();
  Strides strides = t.strides();
  shape.erase(shape.begin() + dim);
  strides.erase(strides.begin() + dim);
  return make_view(t, shape, strides, t.offset());
}

unsigned blocks_for(int64_t rows, int group) {
  const int64_t per_block = kThreads / group;
  return static_cast<unsigned>((rows + per_block - 1) / per_block);
}

void check_float32(const Tensor& t) {
  MINIDL_CHECK(t.dtype() == kFloat32, "softmax: the CUDA kernels compute in float32, got ", t.meta_str(),
               " (float64 is for CPU gradchecks)");
}

}  // namespace

void softmax(const Tensor& x, int64_t dim, bool log, const Tensor& out) {
  check_float32(x);
  if (x.numel() == 0) return;
  if (x.dim() == 0) {  // one element: softmax 1, log_softmax 0
    fill(out, log ? 0.0 : 1.0);
    return;
  }
  const int64_t n = x.size(dim);
  const Tensor xr = row_starts(x, dim), orow = row_starts(out, dim);
  const Geometry<2> rows = device_geometry<2>("softmax", orow, {&xr});
  const int group = group_for(n, x.stride(dim));
  const int device = x.device().index;
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  softmax_rows<<<blocks_for(rows.numel, group), kThreads, 0, stream_of(device)>>>(rows, n, x.stride(dim),
                                                                                  out.stride(dim), group, log);
  MINIDL_CUDA_CHECK_LAUNCH("softmax");
}

void softmax_backward(const Tensor& y, const Tensor& g, int64_t dim, bool log, const Tensor& gx) {
  check_float32(y);
  if (y.numel() == 0) return;
  if (y.dim() == 0) {  // d softmax / dx = 0 for one element; log_softmax passes g - e^0 g = 0 too
    fill(gx, 0.0);
    return;
  }
  const int64_t n = y.size(dim);
  const Tensor yr = row_starts(y, dim), gr = row_starts(g, dim), xr = row_starts(gx, dim);
  const Geometry<3> rows = device_geometry<3>("softmax backward", xr, {&yr, &gr});
  const int group = group_for(n, y.stride(dim));
  const int device = y.device().index;
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  softmax_backward_rows<<<blocks_for(rows.numel, group), kThreads, 0, stream_of(device)>>>(
      rows, n, y.stride(dim), g.stride(dim), gx.stride(dim), group, log);
  MINIDL_CUDA_CHECK_LAUNCH("softmax backward");
}

}  // namespace minidl::cuda
