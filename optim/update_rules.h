// The per-element update rules of the optimisers, written once for both backends: optim/optimizer.cpp
// applies them in a CPU loop, cuda/optim.cu in one fused grid-stride kernel per parameter (each element:
// read the gradient and the moments, write the parameter and the moments, nothing in between).
#pragma once

#include "autograd/functors.h"  // MINIDL_HD, fmath

namespace minidl::optim {

// torch _single_tensor_sgd:
//   d = g + wd p;  buf = d (first update) or buf * momentum + (1 - dampening) d;
//   d = nesterov ? d + momentum buf : buf;  p = p - lr d.
template <class T>
struct SgdF {
  T neg_lr, weight_decay, momentum, one_minus_dampening;
  bool use_momentum, nesterov, first;
  MINIDL_HD void operator()(T& p, T g, T* buf) const {
    T d = g;
    if (weight_decay != T(0)) d = d + weight_decay * p;
    if (use_momentum) {
      const T b = first ? d : *buf * momentum + one_minus_dampening * d;
      *buf = b;
      d = nesterov ? d + momentum * b : b;
    }
    p = p + neg_lr * d;
  }
};

// torch _single_tensor_adam / _single_tensor_adamw (amsgrad off), with step t counted per parameter from 1:
//   AdamW: p = p (1 - lr wd);  Adam: g = g + wd p;
//   m = m beta1 + (1 - beta1) g;  v = v beta2 + (1 - beta2) g g;
//   p = p + (-lr / (1 - beta1^t)) m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
// eps is added after the corrected square root, as torch does (not inside it).
template <class T>
struct AdamF {
  T decay_factor;  // 1 - lr wd (AdamW), else 1
  T l2;            // wd (Adam), else 0
  T beta1, one_minus_beta1, beta2, one_minus_beta2;
  T bias_correction2_sqrt, eps, neg_step_size;
  MINIDL_HD void operator()(T& p, T g, T& m, T& v) const {
    if (decay_factor != T(1)) p = p * decay_factor;
    if (l2 != T(0)) g = g + l2 * p;
    m = m * beta1 + one_minus_beta1 * g;
    v = v * beta2 + (one_minus_beta2 * g) * g;  // addcmul_: value * g * g, left to right
    const T denom = fmath::sqrt(v) / bias_correction2_sqrt + eps;
    p = p + (neg_step_size * m) / denom;  // addcdiv_: value * m / denom, left to right
  }
};

}  // namespace minidl::optim
