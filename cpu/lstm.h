// CPU kernels of the fused LSTM layer (one layer, one direction, a whole sequence); the front end and the
// backward rule are in autograd/ops_lstm.cpp, the loops in cpu/lstm.cpp.
//
// Layouts. x [B, T, I], output [B, T, H], gates [B, T, 4H], cells [B, T, H], h0 / c0 / h / c [B, H]: all
// contiguous (the front end makes them so). The weights w_ih [4H, I] and w_hh [4H, H] and the biases [4H]
// may have any strides: the GEMM reads them through their strides, so transposes cost nothing. Gate order
// is torch's: rows [0, H) input, [H, 2H) forget, [2H, 3H) cell, [3H, 4H) output.
//
// Processing order: step s = 0 .. T-1 reads time index t = s (forward) or t = T-1-s (reverse); output[:, t]
// is the hidden state right after time index t was processed, h and c the state after the last step.
//
// Results do not depend on the number of OpenMP threads: the GEMMs sum every output element in an order
// fixed by the shapes, the pointwise passes are independent per element, and the bias gradient is summed
// per column in row order.
#pragma once

#include "autograd/tensor.h"

namespace minidl::cpu {

// Runs the layer. b_ih / b_hh may be undefined (no bias). Writes output, h, c and, for the backward:
//   gates: the gate activations of every step (sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)),
//   cells: the cell state after every step.
void lstm_forward(const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh,
                  const Tensor& b_ih, const Tensor& b_hh, bool reverse, const Tensor& output, const Tensor& h,
                  const Tensor& c, const Tensor& gates, const Tensor& cells);

// Backpropagation through time. g_output [B, T, H], g_h and g_c [B, H] are the incoming gradients; any of
// them may be undefined (no gradient reached that output). Each result (gx [B, T, I], gh0 and gc0 [B, H],
// gw_ih [4H, I], gw_hh [4H, H], gb [4H], all contiguous) may be undefined when it is not wanted. gb is the
// gradient of b_ih and of b_hh alike (both enter as a plain sum).
void lstm_backward(const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh,
                   const Tensor& output, const Tensor& gates, const Tensor& cells, bool reverse, const Tensor& g_output,
                   const Tensor& g_h, const Tensor& g_c, const Tensor& gx, const Tensor& gh0, const Tensor& gc0,
                   const Tensor& gw_ih, const Tensor& gw_hh, const Tensor& gb);

}  // namespace minidl::cpu
