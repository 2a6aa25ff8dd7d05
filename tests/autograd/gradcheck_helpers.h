// Layer 1 of DESIGN.md "Testing in four layers": finite-difference Jacobians in float64 on the CPU for
// every differentiable op in autograd/ops.h and every view method of Tensor, with broadcasting,
// non-contiguous inputs (permuted, sliced, expanded) and odd sizes (1, 7, 33).
//
// One TEST per op or op variant, so `ctest` lists them per op. Inputs are drawn from fixed seeds. Where an
// op has a kink (abs, relu, leaky_relu, clamp) or a tie (max, min), the inputs are built to stay well away
// from it: the central difference straddles a kink only if an input lies within eps (1e-6) of it, and
// every input here keeps at least 1e-2 away (the one deliberate exception is MaxTwoWayTieSharesGradient).
//
// Larger problems, which the CPU kernels run through other loops (GEMM blocking, OpenMP), are reached
// through small leaves; see "kernel paths of larger tensors" in test_gradcheck_shape.cpp. The whole program
// runs in well under a second on an idle 2-core machine.
//
// All checks use the default GradcheckOptions (eps 1e-6, atol 1e-6, rtol 1e-4) except the float32 round
// trip (see ToDtypeRoundTrip).
//
// This header holds the helpers shared by the test_gradcheck_*.cpp files: leaves drawn from fixed seeds
// and expect_gradcheck. All inline, so several files can include it; they bring it in with
// `using namespace gradcheck_test;` inside namespace minidl.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "autograd/minidl.h"

namespace minidl::gradcheck_test {

using Inputs = std::vector<Tensor>;
inline const TensorOptions kF64{.dtype = kFloat64};

inline void expect_gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                             const GradcheckOptions& options = {}) {
  const GradcheckResult r = gradcheck(f, inputs, options);
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_GT(r.entries, 0) << r.message;
}

inline Tensor leaf(Tensor t) {
  t.requires_grad_();
  return t;
}

// Standard normal leaf.
inline Tensor randn_leaf(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return leaf(randn(shape, kF64, &gen));
}

// Uniform leaf on [lo, hi).
inline Tensor rand_leaf(const Shape& shape, uint64_t seed, double lo, double hi) {
  Generator gen(seed);
  return leaf(rand(shape, kF64, &gen, lo, hi));
}

// Magnitudes uniform on [lo, hi) with random signs: every element is at least lo away from 0.
inline Tensor signed_leaf(const Shape& shape, uint64_t seed, double lo = 0.1, double hi = 1.5) {
  Generator gen(seed);
  std::vector<double> v = rand(shape, kF64, &gen, -1.0, 1.0).values<double>();
  for (double& x : v) x = (x < 0 ? -1.0 : 1.0) * (lo + std::fabs(x) * (hi - lo));
  return leaf(from_vector(v, shape, kF64));
}

// numel values (k - (n-1)/2) * gap + shift in a seeded random order: all distinct and at least `gap`
// apart, so no max/min ever sits on a tie.
inline std::vector<double> distinct_values(int64_t n, uint64_t seed, double gap = 0.1, double shift = 0.013) {
  Generator gen(seed);
  const std::vector<double> keys = rand({n}, kF64, &gen).values<double>();
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return keys[a] < keys[b]; });
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k)
    v[order[k]] = (static_cast<double>(k) - 0.5 * static_cast<double>(n - 1)) * gap + shift;
  return v;
}

inline Tensor distinct_leaf(const Shape& shape, uint64_t seed, double gap = 0.1, double shift = 0.013) {
  return leaf(from_vector(distinct_values(numel_of(shape), seed, gap, shift), shape, kF64));
}

// A leaf of shape [rows, cols] that is the transpose of a contiguous [cols, rows] tensor.
inline Tensor transposed_leaf(int64_t rows, int64_t cols, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  Generator gen(seed);
  Tensor base = rand({cols, rows}, kF64, &gen, lo, hi);
  Tensor x = base.t();
  x.requires_grad_();
  return x;
}

// A leaf of shape `shape` that reads every second element of the last dim of a larger base tensor
// (step-2 slice starting at 1), so its last stride is 2 and its offset non-zero.
inline Tensor strided_leaf(const Shape& shape, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  Shape base_shape = shape;
  base_shape.back() = 2 * shape.back() + 1;
  Generator gen(seed);
  Tensor base = rand(base_shape, kF64, &gen, lo, hi);
  Tensor x = base.slice(-1, 1, base_shape.back(), 2);
  x.requires_grad_();
  return x;
}

inline Tensor index_tensor(const std::vector<int64_t>& v, const Shape& shape) {
  return from_vector(v, shape, {.dtype = kInt64});
}

inline Tensor bool_tensor(const std::vector<bool>& v, const Shape& shape) {
  return from_vector(v, shape, {.dtype = kBool});
}

}  // namespace minidl::gradcheck_test
