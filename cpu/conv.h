// CPU kernels of convolution (cpu/conv.cpp) and pooling (cpu/pool.cpp): the reference the CUDA kernels are
// tested against. Front ends: autograd/ops_conv.cpp and autograd/ops_pool.cpp.
//
// The geometry structs (ConvShape, PoolShape) are in autograd/conv_geometry.h, shared with the CUDA kernels.
//
// Contract, narrower than kernels.h's: every tensor argument is contiguous (the front ends make the inputs
// contiguous and allocate fresh outputs), because im2col and the window loops address whole planes. Floating
// kernels accept float32 and float64. Deterministic: each output and gradient element is summed in an order
// that depends only on the shapes, so results are bitwise identical with any number of OpenMP threads.
#pragma once

#include <cstdint>
#include <vector>

#include "autograd/conv_geometry.h"
#include "autograd/tensor.h"

namespace minidl::cpu {

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
