// CPU kernels of convolution (cpu/conv.cpp) and pooling (cpu/pool.cpp): the reference the CUDA kernels are
// tested against. Front ends: autograd/ops_conv.cpp and autograd/ops_pool.cpp.
//
// Both families always work on 3 spatial dims: a 1-D or 2-D problem is the 3-D one with leading spatial
// sizes of 1 (and kernel 1, stride 1, padding 0, dilation 1 there), so one loop nest serves every rank.
//
// Contract, narrower than kernels.h's: every tensor argument is contiguous (the front ends make the inputs
// contiguous and allocate fresh outputs), because im2col and the window loops address whole planes. Floating
// kernels accept float32 and float64. Deterministic: each output and gradient element is summed in an order
// that depends only on the shapes, so results are bitwise identical with any number of OpenMP threads.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "autograd/tensor.h"

namespace minidl::cpu {

using Dims3 = std::array<int64_t, 3>;

// ---- conv.cpp -----------------------------------------------------------------------------------
// The geometry of one convolution, checked by the front end: x [batch, in_channels, *in], weight
// [out_channels, in_channels / groups, *kernel], y [batch, out_channels, *out] with
// out = floor((in + 2 padding - dilation (kernel - 1) - 1) / stride) + 1 >= 1 in each dim.
struct ConvShape {
  int64_t batch = 0, in_channels = 0, out_channels = 0, groups = 1;
  Dims3 in{1, 1, 1}, kernel{1, 1, 1}, out{1, 1, 1};
  Dims3 stride{1, 1, 1}, padding{0, 0, 0}, dilation{1, 1, 1};
};

// y = conv(x, w) + bias; bias [out_channels] may be undefined (no bias). Per batch item and group,
// y_g [C_out/G, P] = w_g [C_out/G, K] · col [K, P] with K = C_in/G prod(kernel), P = prod(out), col built by
// im2col a cache-sized chunk of columns at a time, each chunk one GEMM.
void conv_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const ConvShape& s, const Tensor& y);

// From gy = dL/dy: gx = col2im(w_g^T · gy_g) (reads w), gw = sum over the batch of gy_g · col^T (reads x),
// gb = sum of gy over the batch and space. Each gradient may be undefined (not wanted); so may the input
// that only an unwanted gradient reads (x when gw is undefined, w when gx is).
void conv_backward(const Tensor& x, const Tensor& w, const Tensor& gy, const ConvShape& s, const Tensor& gx,
                   const Tensor& gw, const Tensor& gb);

// ---- pool.cpp -----------------------------------------------------------------------------------
// The windows along one spatial dim: output cell o reads input positions [lo[o], hi[o]), already clipped to
// [0, in) (padding is whatever the window lost to the clipping). The default is an unused leading dim.
struct PoolDim {
  int64_t in = 1;
  std::vector<int64_t> lo{0}, hi{1};
  int64_t out() const { return static_cast<int64_t>(lo.size()); }
};

// x [planes, *in] pooled to y [planes, *out], planes = batch * channels.
struct PoolShape {
  int64_t planes = 0;
  std::array<PoolDim, 3> dims;
  int64_t in_plane() const { return dims[0].in * dims[1].in * dims[2].in; }
  int64_t out_plane() const { return dims[0].out() * dims[1].out() * dims[2].out(); }
};

// Sliding windows: cell o covers [o stride - padding, o stride - padding + kernel), out as for conv.
PoolDim pool_windows(int64_t in, int64_t kernel, int64_t stride, int64_t padding, int64_t out);
// torch's adaptive cells: [floor(o in / out), ceil((o + 1) in / out)).
PoolDim adaptive_pool_windows(int64_t in, int64_t out);

// y = the largest value of each window; indices (int64, y's shape) = its position in the input plane,
// d * H * W + h * W + w, the first one in row-major order on ties. NaN counts as larger than any number.
void max_pool_forward(const Tensor& x, const PoolShape& s, const Tensor& y, const Tensor& indices);
// gx = 0, then gx[plane, indices] += gy, outputs visited in order.
void max_pool_backward(const Tensor& gy, const Tensor& indices, const PoolShape& s, const Tensor& gx);

// y = the window's sum / divisor; divisor 0 means the number of elements in the (clipped) window.
void avg_pool_forward(const Tensor& x, const PoolShape& s, int64_t divisor, const Tensor& y);
// gx = each window's gy / divisor spread over the window, outputs visited in order.
void avg_pool_backward(const Tensor& gy, const PoolShape& s, int64_t divisor, const Tensor& gx);

}  // namespace minidl::cpu
