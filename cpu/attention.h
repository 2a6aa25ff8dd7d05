// CPU kernels of the joint cross-attention block (the front end and its backward rule are in
// autograd/ops_attention.cpp, the loops in cpu/attention.cpp).
//
// Layouts. xa, xv, out_a, out_v and the incoming gradients [B, L, d]: contiguous (the front end makes
// them so). Each branch's weights, contiguous: affine [L, L], w [k, L], w_c [k, 2d], w_h [L, k]. Every
// result tensor may be undefined when it is not wanted.
//
// Results do not depend on the number of OpenMP threads: each sequence is worked on by one thread, every
// product sums in an order fixed by the shapes, and the weight gradients are summed over the sequences
// in sequence order.
#pragma once

#include "autograd/tensor.h"

namespace minidl {
struct JcaWeights;  // autograd/ops.h
}

namespace minidl::cpu {

// keep_c [B, 2, d, 2d] and keep_h [B, 2, d, k] (contiguous; branch 0 the audio's): where the forward
// leaves each sequence and branch's C and H for the backward, or undefined when no backward will run.
void jca_forward(const Tensor& xa, const Tensor& xv, const JcaWeights& audio, const JcaWeights& visual,
                 const Tensor& out_a, const Tensor& out_v, const Tensor& keep_c, const Tensor& keep_h);

// kept_c, kept_h: what the forward kept. ga, gv: the gradients of out_a and out_v (either may be undefined:
// none reached it). Writes gxa, gxv [B, L, d] and each branch's weight gradients in grad_audio /
// grad_visual (shaped as the weights).
void jca_backward(const Tensor& xa, const Tensor& xv, const JcaWeights& audio, const JcaWeights& visual,
                  const Tensor& kept_c, const Tensor& kept_h, const Tensor& ga, const Tensor& gv, const Tensor& gxa,
                  const Tensor& gxv, const JcaWeights& grad_audio, const JcaWeights& grad_visual);

// y = tanh(x) over n contiguous floats, several at a time (cpu/vector_math.cpp: glibc's vector tanhf where
// the C library has one, the scalar tanhf otherwise).
void tanh_contiguous(const float* x, float* y, int64_t n);

}  // namespace minidl::cpu
