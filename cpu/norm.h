// CPU kernels of the normalisation ops: batch norm and layer norm, forward and backward (cpu/norm.cpp).
// Front ends: autograd/ops_norm.cpp. The derivations of the backward formulas are at the top of norm.cpp.
//
// Conventions of cpu/kernels.h: the front end has checked shapes, dtypes and devices and allocated every
// output; data tensors are float32 or float64 and may be any strided view; weight and bias are optional
// (undefined means 1 and 0). One deviation, on purpose: the per-channel / per-row statistics that backward
// reads (save_mean, save_invstd) are float64 tensors whatever the data's dtype. They are computed in
// double, there are only C (or M) of them, and keeping them in double means backward normalises x with
// exactly the numbers forward used, instead of numbers rounded to float32 in between.
//
// Determinism: every sum runs over one channel (row, column) in an order fixed by the shape; threads
// split the channels (rows, columns) among themselves and never share a sum, so results are bitwise
// identical for any OpenMP thread count.
#pragma once

#include "autograd/tensor.h"

namespace minidl::cpu {

// ---- batch norm: x viewed as [B, C, S], S the product of the spatial dims (1 for [B, C]) ----------------
// Each channel c is normalised over its N = B * S values.
//   training:  mean and biased variance of the batch. When running_mean and running_var ([C], x's dtype)
//              are defined they are updated in place, running = (1 - momentum) running + momentum stat,
//              with the unbiased variance (needs N > 1, checked by the front end). The caller bumps their
//              storage versions.
//   otherwise: mean and variance are read from running_mean and running_var (both defined).
// Writes out [B, C, S] = (x - mean) invstd weight + bias with invstd = 1 / sqrt(var + eps), and the
// mean and invstd it used into save_mean, save_invstd (float64 [C]).
void batch_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                        const Tensor& running_var, bool training, double momentum, double eps, const Tensor& out,
                        const Tensor& save_mean, const Tensor& save_invstd);

// g = dL/dout [B, C, S]. Writes whichever of gx [B, C, S], gweight [C], gbias [C] is defined. training
// selects the full rule (the batch statistics depend on x) over the affine one (eval: running statistics
// are constants). x is read only for gweight or a training-mode gx; otherwise it may be undefined.
void batch_norm_backward(const Tensor& x, const Tensor& g, const Tensor& weight, const Tensor& save_mean,
                         const Tensor& save_invstd, bool training, const Tensor& gx, const Tensor& gweight,
                         const Tensor& gbias);

// ---- layer norm: x viewed as [M, N], each of the M rows normalised over its N values ----------------------
// weight and bias [N] (the normalized shape flattened). Writes out [M, N] and save_mean, save_invstd
// (float64 [M]); the variance is the biased one, like torch.
void layer_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& out,
                        const Tensor& save_mean, const Tensor& save_invstd);

// g = dL/dout [M, N]. Writes whichever of gx [M, N], gweight [N], gbias [N] is defined; x is read only
// for gx or gweight.
void layer_norm_backward(const Tensor& x, const Tensor& g, const Tensor& weight, const Tensor& save_mean,
                         const Tensor& save_invstd, const Tensor& gx, const Tensor& gweight, const Tensor& gbias);

}  // namespace minidl::cpu
