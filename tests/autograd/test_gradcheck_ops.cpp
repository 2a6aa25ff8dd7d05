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
// through small leaves; see "kernel paths of larger tensors" below. The whole program runs in well under a
// second on an idle 2-core machine.
//
// All checks use the default GradcheckOptions (eps 1e-6, atol 1e-6, rtol 1e-4) except the float32 round
// trip (see ToDtypeRoundTrip).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "autograd/minidl.h"

namespace minidl {
namespace {

using Inputs = std::vector<Tensor>;
const TensorOptions kF64{.dtype = kFloat64};

void expect_gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs, const GradcheckOptions& options = {}) {
  const GradcheckResult r = gradcheck(f, inputs, options);
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_GT(r.entries, 0) << r.message;
}

Tensor leaf(Tensor t) {
  t.requires_grad_();
  return t;
}

// Standard normal leaf.
Tensor randn_leaf(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return leaf(randn(shape, kF64, &gen));
}

// Uniform leaf on [lo, hi).
Tensor rand_leaf(const Shape& shape, uint64_t seed, double lo, double hi) {
  Generator gen(seed);
  return leaf(rand(shape, kF64, &gen, lo, hi));
}

// Magnitudes uniform on [lo, hi) with random signs: every element is at least lo away from 0.
Tensor signed_leaf(const Shape& shape, uint64_t seed, double lo = 0.1, double hi = 1.5) {
  Generator gen(seed);
  std::vector<double> v = rand(shape, kF64, &gen, -1.0, 1.0).values<double>();
  for (double& x : v) x = (x < 0 ? -1.0 : 1.0) * (lo + std::fabs(x) * (hi - lo));
  return leaf(from_vector(v, shape, kF64));
}

// numel values (k - (n-1)/2) * gap + shift in a seeded random order: all distinct and at least `gap`
// apart, so no max/min ever sits on a tie.
std::vector<double> distinct_values(int64_t n, uint64_t seed, double gap = 0.1, double shift = 0.013) {
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

Tensor distinct_leaf(const Shape& shape, uint64_t seed, double gap = 0.1, double shift = 0.013) {
  return leaf(from_vector(distinct_values(numel_of(shape), seed, gap, shift), shape, kF64));
}

// A leaf of shape [rows, cols] that is the transpose of a contiguous [cols, rows] tensor.
Tensor transposed_leaf(int64_t rows, int64_t cols, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  Generator gen(seed);
  Tensor base = rand({cols, rows}, kF64, &gen, lo, hi);
  Tensor x = base.t();
  x.requires_grad_();
  return x;
}

// A leaf of shape `shape` that reads every second element of the last dim of a larger base tensor
// (step-2 slice starting at 1), so its last stride is 2 and its offset non-zero.
Tensor strided_leaf(const Shape& shape, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  Shape base_shape = shape;
  base_shape.back() = 2 * shape.back() + 1;
  Generator gen(seed);
  Tensor base = rand(base_shape, kF64, &gen, lo, hi);
  Tensor x = base.slice(-1, 1, base_shape.back(), 2);
  x.requires_grad_();
  return x;
}

Tensor index_tensor(const std::vector<int64_t>& v, const Shape& shape) {
  return from_vector(v, shape, {.dtype = kInt64});
}

Tensor bool_tensor(const std::vector<bool>& v, const Shape& shape) { return from_vector(v, shape, {.dtype = kBool}); }

// ================================ binary arithmetic ================================

TEST(Gradcheck, Add) {
  expect_gradcheck([](const Inputs& in) { return add(in[0], in[1]); }, {randn_leaf({3, 4}, 1), randn_leaf({3, 4}, 2)});
}

TEST(Gradcheck, AddBroadcast) {
  expect_gradcheck([](const Inputs& in) { return add(in[0], in[1]); }, {randn_leaf({3, 1}, 3), randn_leaf({1, 4}, 4)});
  expect_gradcheck([](const Inputs& in) { return add(in[0], in[1]); }, {randn_leaf({2, 3, 4}, 5), randn_leaf({4}, 6)});
  expect_gradcheck([](const Inputs& in) { return add(in[0], in[1]); }, {randn_leaf({}, 7), randn_leaf({2, 3}, 8)});
}

TEST(Gradcheck, AddNonContiguous) {
  Tensor a = transposed_leaf(3, 4, 9), b = strided_leaf({3, 4}, 10);
  ASSERT_FALSE(a.is_contiguous());
  ASSERT_FALSE(b.is_contiguous());
  expect_gradcheck([](const Inputs& in) { return add(in[0], in[1]); }, {a, b});
}

TEST(Gradcheck, AddExpandedInF) {
  // gradcheck rejects expanded inputs, so the expand (a stride-0 view) happens inside f.
  expect_gradcheck(
      [](const Inputs& in) {
        return add(in[0].expand({3, 4}), in[1]);
      },
      {randn_leaf({1, 4}, 11), randn_leaf({3, 4}, 12)});
}

TEST(Gradcheck, AddOnlyOneRequiresGrad) {
  Generator gen(13);
  const Tensor constant = randn({3, 4}, kF64, &gen);
  expect_gradcheck([](const Inputs& in) { return add(in[0], in[1]); }, {constant, randn_leaf({3, 4}, 14)});
  expect_gradcheck([](const Inputs& in) { return add(in[0], in[1]); }, {randn_leaf({4}, 15), constant});
}

TEST(Gradcheck, Sub) {
  expect_gradcheck([](const Inputs& in) { return sub(in[0], in[1]); },
                   {randn_leaf({2, 5}, 16), randn_leaf({2, 5}, 17)});
}

TEST(Gradcheck, SubBroadcast) {
  expect_gradcheck([](const Inputs& in) { return sub(in[0], in[1]); },
                   {randn_leaf({4, 1, 3}, 18), randn_leaf({2, 1}, 19)});
}

TEST(Gradcheck, SubNonContiguous) {
  expect_gradcheck([](const Inputs& in) { return sub(in[0], in[1]); },
                   {strided_leaf({2, 3}, 20), transposed_leaf(2, 3, 21)});
}

TEST(Gradcheck, Mul) {
  expect_gradcheck([](const Inputs& in) { return mul(in[0], in[1]); },
                   {randn_leaf({3, 4}, 22), randn_leaf({3, 4}, 23)});
}

TEST(Gradcheck, MulBroadcast) {
  expect_gradcheck([](const Inputs& in) { return mul(in[0], in[1]); },
                   {randn_leaf({2, 1, 4}, 24), randn_leaf({3, 1}, 25)});
  expect_gradcheck([](const Inputs& in) { return mul(in[0], in[1]); }, {randn_leaf({7}, 26), randn_leaf({}, 27)});
}

TEST(Gradcheck, MulNonContiguous) {
  expect_gradcheck([](const Inputs& in) { return mul(in[0], in[1]); },
                   {transposed_leaf(4, 3, 28), strided_leaf({4, 3}, 29)});
}

TEST(Gradcheck, MulSameInputTwice) {
  // x * x: both operands are the same leaf, so its gradient is the sum of the two paths (2x).
  expect_gradcheck([](const Inputs& in) { return mul(in[0], in[0]); }, {randn_leaf({5}, 30)});
}

TEST(Gradcheck, Div) {
  expect_gradcheck([](const Inputs& in) { return div(in[0], in[1]); },
                   {randn_leaf({3, 4}, 31), signed_leaf({3, 4}, 32, 0.5, 2.0)});
}

TEST(Gradcheck, DivBroadcast) {
  expect_gradcheck([](const Inputs& in) { return div(in[0], in[1]); },
                   {randn_leaf({3, 1}, 33), signed_leaf({2, 1, 4}, 34, 0.5, 2.0)});
}

TEST(Gradcheck, DivNonContiguous) {
  expect_gradcheck([](const Inputs& in) { return div(in[0], in[1]); },
                   {strided_leaf({3, 2}, 35), transposed_leaf(3, 2, 36, 0.5, 2.0)});
}

TEST(Gradcheck, Neg) {
  expect_gradcheck([](const Inputs& in) { return neg(in[0]); }, {randn_leaf({2, 3}, 37)});
  expect_gradcheck([](const Inputs& in) { return neg(in[0]); }, {transposed_leaf(3, 2, 38)});
}

TEST(Gradcheck, PowTensorTensor) {
  // d/db uses log(a): the base stays positive.
  expect_gradcheck([](const Inputs& in) { return pow(in[0], in[1]); },
                   {rand_leaf({3, 4}, 39, 0.5, 2.0), randn_leaf({3, 4}, 40)});
}

TEST(Gradcheck, PowTensorTensorBroadcast) {
  expect_gradcheck([](const Inputs& in) { return pow(in[0], in[1]); },
                   {rand_leaf({3, 1}, 41, 0.5, 2.0), randn_leaf({4}, 42)});
}

TEST(Gradcheck, PowTensorTensorNonContiguous) {
  expect_gradcheck([](const Inputs& in) { return pow(in[0], in[1]); },
                   {transposed_leaf(2, 3, 43, 0.5, 2.0), strided_leaf({2, 3}, 44)});
}

TEST(Gradcheck, PowTensorScalar) {
  for (double e : {2.0, 3.0, -1.0}) {
    SCOPED_TRACE("exponent " + std::to_string(e));
    expect_gradcheck([e](const Inputs& in) { return pow(in[0], e); }, {signed_leaf({2, 3}, 45, 0.3, 1.5)});
  }
  for (double e : {0.5, -1.5, 2.7}) {  // non-integer exponents: positive base
    SCOPED_TRACE("exponent " + std::to_string(e));
    expect_gradcheck([e](const Inputs& in) { return pow(in[0], e); }, {rand_leaf({2, 3}, 46, 0.3, 2.0)});
  }
}

TEST(Gradcheck, PowScalarTensor) {
  for (double base : {2.5, 0.5, 1.0}) {
    SCOPED_TRACE("base " + std::to_string(base));
    expect_gradcheck([base](const Inputs& in) { return pow(base, in[0]); }, {randn_leaf({2, 3}, 47)});
  }
}

// ================================ scalar forms and operators ================================

TEST(Gradcheck, AddScalar) {
  expect_gradcheck([](const Inputs& in) { return add(in[0], 2.5); }, {randn_leaf({2, 3}, 48)});
}

TEST(Gradcheck, SubScalar) {
  expect_gradcheck([](const Inputs& in) { return sub(in[0], 1.5); }, {randn_leaf({2, 3}, 49)});
}

TEST(Gradcheck, ScalarSub) {
  expect_gradcheck([](const Inputs& in) { return sub(1.5, in[0]); }, {randn_leaf({2, 3}, 50)});
}

TEST(Gradcheck, MulScalar) {
  expect_gradcheck([](const Inputs& in) { return mul(in[0], -3.0); }, {randn_leaf({2, 3}, 51)});
}

TEST(Gradcheck, DivScalar) {
  expect_gradcheck([](const Inputs& in) { return div(in[0], 4.0); }, {randn_leaf({2, 3}, 52)});
}

TEST(Gradcheck, ScalarDiv) {
  expect_gradcheck([](const Inputs& in) { return div(2.0, in[0]); }, {signed_leaf({2, 3}, 53, 0.5, 2.0)});
}

TEST(Gradcheck, OperatorsTensorTensor) {
  const Inputs ab = {randn_leaf({3, 4}, 54), signed_leaf({4}, 55, 0.5, 2.0)};
  expect_gradcheck([](const Inputs& in) { return in[0] + in[1]; }, ab);
  expect_gradcheck([](const Inputs& in) { return in[0] - in[1]; }, ab);
  expect_gradcheck([](const Inputs& in) { return in[0] * in[1]; }, ab);
  expect_gradcheck([](const Inputs& in) { return in[0] / in[1]; }, ab);
  expect_gradcheck([](const Inputs& in) { return -in[0]; }, ab);
}

TEST(Gradcheck, OperatorsScalar) {
  const Inputs x = {signed_leaf({2, 3}, 56, 0.5, 2.0)};
  expect_gradcheck([](const Inputs& in) { return in[0] + 2.0; }, x);
  expect_gradcheck([](const Inputs& in) { return 2.0 + in[0]; }, x);
  expect_gradcheck([](const Inputs& in) { return in[0] - 2.0; }, x);
  expect_gradcheck([](const Inputs& in) { return 2.0 - in[0]; }, x);
  expect_gradcheck([](const Inputs& in) { return in[0] * 2.0; }, x);
  expect_gradcheck([](const Inputs& in) { return 2.0 * in[0]; }, x);
  expect_gradcheck([](const Inputs& in) { return in[0] / 2.0; }, x);
  expect_gradcheck([](const Inputs& in) { return 2.0 / in[0]; }, x);
}

TEST(Gradcheck, ArithmeticChain) {
  // A small expression that reuses its inputs: (a * b - a / c + 1.5) * a.
  expect_gradcheck([](const Inputs& in) { return (in[0] * in[1] - in[0] / in[2] + 1.5) * in[0]; },
                   {randn_leaf({2, 3}, 57), randn_leaf({3}, 58), signed_leaf({2, 1}, 59, 0.5, 2.0)});
}

// ================================ unary ================================

TEST(Gradcheck, Exp) {
  expect_gradcheck([](const Inputs& in) { return exp(in[0]); }, {randn_leaf({3, 4}, 60)});
}

TEST(Gradcheck, ExpNonContiguous) {
  expect_gradcheck([](const Inputs& in) { return exp(in[0]); }, {transposed_leaf(4, 3, 61)});
  expect_gradcheck([](const Inputs& in) { return exp(in[0]); }, {strided_leaf({2, 3}, 62)});
}

TEST(Gradcheck, ExpOddSizes) {
  expect_gradcheck([](const Inputs& in) { return exp(in[0]); }, {randn_leaf({33}, 63)});
  expect_gradcheck([](const Inputs& in) { return exp(in[0]); }, {randn_leaf({1, 7, 1}, 64)});
}

TEST(Gradcheck, Log) {
  expect_gradcheck([](const Inputs& in) { return log(in[0]); }, {rand_leaf({3, 4}, 65, 0.2, 3.0)});
  expect_gradcheck([](const Inputs& in) { return log(in[0]); }, {transposed_leaf(2, 3, 66, 0.2, 3.0)});
}

TEST(Gradcheck, Sqrt) {
  expect_gradcheck([](const Inputs& in) { return sqrt(in[0]); }, {rand_leaf({3, 4}, 67, 0.2, 3.0)});
  expect_gradcheck([](const Inputs& in) { return sqrt(in[0]); }, {strided_leaf({3, 2}, 68, 0.2, 3.0)});
}

TEST(Gradcheck, Abs) {
  // Every element at least 0.1 from the kink at 0.
  expect_gradcheck([](const Inputs& in) { return abs(in[0]); }, {signed_leaf({3, 5}, 69)});
}

TEST(Gradcheck, Tanh) {
  expect_gradcheck([](const Inputs& in) { return tanh(in[0]); }, {randn_leaf({3, 4}, 70)});
  expect_gradcheck([](const Inputs& in) { return tanh(in[0]); }, {transposed_leaf(3, 2, 71)});
}

TEST(Gradcheck, Sigmoid) {
  expect_gradcheck([](const Inputs& in) { return sigmoid(in[0]); }, {randn_leaf({3, 4}, 72)});
  expect_gradcheck([](const Inputs& in) { return sigmoid(in[0]); }, {strided_leaf({2, 3}, 73)});
}

TEST(Gradcheck, Relu) {
  expect_gradcheck([](const Inputs& in) { return relu(in[0]); }, {signed_leaf({3, 5}, 74)});
  expect_gradcheck([](const Inputs& in) { return relu(in[0]); }, {signed_leaf({33}, 75)});
}

TEST(Gradcheck, LeakyRelu) {
  expect_gradcheck([](const Inputs& in) { return leaky_relu(in[0]); }, {signed_leaf({3, 5}, 76)});
  expect_gradcheck([](const Inputs& in) { return leaky_relu(in[0], 0.2); }, {signed_leaf({3, 5}, 77)});
}

TEST(Gradcheck, Clamp) {
  // Below, inside and above [-0.5, 0.8], each at least 0.05 from a bound.
  const std::vector<double> v = {-1.3, -0.7, -0.45, -0.1, 0.2, 0.6, 0.75, 0.85, 1.1, 2.0, -0.2, 0.4};
  expect_gradcheck([](const Inputs& in) { return clamp(in[0], -0.5, 0.8); }, {leaf(from_vector(v, {3, 4}, kF64))});
}

TEST(Gradcheck, UnaryChain) {
  expect_gradcheck([](const Inputs& in) { return sigmoid(tanh(exp(in[0]) * 0.5)) + sqrt(exp(in[0])); },
                   {randn_leaf({2, 3}, 78)});
}

// ================================ where, masked_fill ================================

TEST(Gradcheck, Where) {
  const Tensor cond =
      bool_tensor({true, false, false, true, true, false, true, false, true, true, false, false}, {3, 4});
  expect_gradcheck([cond](const Inputs& in) { return where(cond, in[0], in[1]); },
                   {randn_leaf({3, 4}, 79), randn_leaf({3, 4}, 80)});
}

TEST(Gradcheck, WhereBroadcast) {
  // cond [3, 1], a [3, 4], b [4]: all three broadcast to [3, 4].
  const Tensor cond = bool_tensor({true, false, true}, {3, 1});
  expect_gradcheck([cond](const Inputs& in) { return where(cond, in[0], in[1]); },
                   {randn_leaf({3, 4}, 81), randn_leaf({4}, 82)});
  // cond [2, 3, 4] larger than both values.
  Generator gen(83);
  const Tensor big = gt(randn({2, 3, 4}, kF64, &gen), 0.0);
  expect_gradcheck([big](const Inputs& in) { return where(big, in[0], in[1]); },
                   {randn_leaf({3, 1}, 84), randn_leaf({1, 4}, 85)});
}

TEST(Gradcheck, WhereNonContiguous) {
  const Tensor cond = bool_tensor({true, false, false, true, true, false}, {2, 3});
  expect_gradcheck([cond](const Inputs& in) { return where(cond, in[0], in[1]); },
                   {transposed_leaf(2, 3, 86), strided_leaf({2, 3}, 87)});
}

TEST(Gradcheck, MaskedFill) {
  const Tensor mask =
      bool_tensor({false, true, false, false, true, true, false, true, false, false, false, true}, {3, 4});
  expect_gradcheck([mask](const Inputs& in) { return masked_fill(in[0], mask, -2.5); }, {randn_leaf({3, 4}, 88)});
}

TEST(Gradcheck, MaskedFillBroadcast) {
  const Tensor mask = bool_tensor({false, true, true, false}, {4});
  expect_gradcheck([mask](const Inputs& in) { return masked_fill(in[0], mask, 0.0); }, {randn_leaf({3, 4}, 89)});
  expect_gradcheck([mask](const Inputs& in) { return masked_fill(in[0], mask, 1.0); }, {transposed_leaf(3, 4, 90)});
}

// ================================ reductions ================================

TEST(Gradcheck, SumAll) {
  expect_gradcheck([](const Inputs& in) { return sum(in[0]); }, {randn_leaf({2, 3, 4}, 91)});
  expect_gradcheck([](const Inputs& in) { return sum(in[0], {}, true); }, {randn_leaf({2, 3, 4}, 92)});
  expect_gradcheck([](const Inputs& in) { return sum(in[0]); }, {randn_leaf({33}, 93)});
}

TEST(Gradcheck, SumSingleDim) {
  for (int64_t d : {0, 1, 2, -1, -3})
    for (bool keep : {false, true}) {
      SCOPED_TRACE("dim " + std::to_string(d) + " keepdim " + std::to_string(keep));
      expect_gradcheck([d, keep](const Inputs& in) { return sum(in[0], {d}, keep); }, {randn_leaf({2, 3, 4}, 94)});
    }
}

TEST(Gradcheck, SumSeveralDims) {
  for (bool keep : {false, true}) {
    SCOPED_TRACE("keepdim " + std::to_string(keep));
    expect_gradcheck([keep](const Inputs& in) { return sum(in[0], {0, 2}, keep); }, {randn_leaf({2, 3, 4}, 95)});
    expect_gradcheck([keep](const Inputs& in) { return sum(in[0], {-1, -2}, keep); }, {randn_leaf({2, 3, 4}, 96)});
    expect_gradcheck([keep](const Inputs& in) { return sum(in[0], {0, 1, 2}, keep); }, {randn_leaf({2, 3, 4}, 97)});
  }
}

TEST(Gradcheck, SumNonContiguous) {
  expect_gradcheck([](const Inputs& in) { return sum(in[0], {0}); }, {transposed_leaf(4, 3, 98)});
  expect_gradcheck([](const Inputs& in) { return sum(in[0], {-1}, true); }, {strided_leaf({3, 4}, 99)});
  expect_gradcheck([](const Inputs& in) { return sum(in[0].expand({3, 4}), {0}); }, {randn_leaf({1, 4}, 100)});
}

TEST(Gradcheck, SumOddSizes) {
  expect_gradcheck([](const Inputs& in) { return sum(in[0], {1}); }, {randn_leaf({1, 33}, 101)});
  expect_gradcheck([](const Inputs& in) { return sum(in[0], {0, 2}); }, {randn_leaf({7, 1, 3}, 102)});
}

TEST(Gradcheck, MeanAll) {
  expect_gradcheck([](const Inputs& in) { return mean(in[0]); }, {randn_leaf({2, 3, 4}, 103)});
  expect_gradcheck([](const Inputs& in) { return mean(in[0], {}, true); }, {randn_leaf({7}, 104)});
}

TEST(Gradcheck, MeanSingleDim) {
  for (int64_t d : {0, 1, 2, -1})
    for (bool keep : {false, true}) {
      SCOPED_TRACE("dim " + std::to_string(d) + " keepdim " + std::to_string(keep));
      expect_gradcheck([d, keep](const Inputs& in) { return mean(in[0], {d}, keep); }, {randn_leaf({2, 3, 4}, 105)});
    }
}

TEST(Gradcheck, MeanSeveralDims) {
  for (bool keep : {false, true}) {
    SCOPED_TRACE("keepdim " + std::to_string(keep));
    expect_gradcheck([keep](const Inputs& in) { return mean(in[0], {0, -1}, keep); }, {randn_leaf({2, 3, 4}, 106)});
    expect_gradcheck([keep](const Inputs& in) { return mean(in[0], {1, 2}, keep); }, {strided_leaf({2, 3, 4}, 107)});
  }
}

TEST(Gradcheck, MeanNonContiguous) {
  expect_gradcheck([](const Inputs& in) { return mean(in[0], {1}); }, {transposed_leaf(3, 5, 108)});
  expect_gradcheck([](const Inputs& in) { return mean(in[0], {0}); }, {strided_leaf({3, 4}, 109)});
}

TEST(Gradcheck, VarAll) {
  for (int64_t ddof : {0, 1}) {
    SCOPED_TRACE("ddof " + std::to_string(ddof));
    expect_gradcheck([ddof](const Inputs& in) { return var(in[0], {}, ddof); }, {randn_leaf({2, 3, 4}, 110)});
    expect_gradcheck([ddof](const Inputs& in) { return var(in[0], {}, ddof, true); }, {randn_leaf({33}, 111)});
  }
}

TEST(Gradcheck, VarSingleDim) {
  for (int64_t ddof : {0, 1})
    for (int64_t d : {0, 1, 2, -1})
      for (bool keep : {false, true}) {
        SCOPED_TRACE("ddof " + std::to_string(ddof) + " dim " + std::to_string(d) + " keepdim " + std::to_string(keep));
        expect_gradcheck([ddof, d, keep](const Inputs& in) { return var(in[0], {d}, ddof, keep); },
                         {randn_leaf({2, 3, 4}, 112)});
      }
}

TEST(Gradcheck, VarSeveralDims) {
  for (int64_t ddof : {0, 1})
    for (bool keep : {false, true}) {
      SCOPED_TRACE("ddof " + std::to_string(ddof) + " keepdim " + std::to_string(keep));
      expect_gradcheck(
          [ddof, keep](const Inputs& in) {
            return var(in[0], {0, 2}, ddof, keep);
          },
          {randn_leaf({2, 3, 4}, 113)});
      expect_gradcheck(
          [ddof, keep](const Inputs& in) {
            return var(in[0], {-2, -1}, ddof, keep);
          },
          {randn_leaf({2, 3, 4}, 114)});
    }
}

TEST(Gradcheck, VarNonContiguous) {
  for (int64_t ddof : {0, 1}) {
    SCOPED_TRACE("ddof " + std::to_string(ddof));
    expect_gradcheck([ddof](const Inputs& in) { return var(in[0], {0}, ddof); }, {transposed_leaf(4, 3, 115)});
    expect_gradcheck([ddof](const Inputs& in) { return var(in[0], {1}, ddof); }, {strided_leaf({3, 5}, 116)});
  }
}

TEST(Gradcheck, MaxAll) {
  expect_gradcheck([](const Inputs& in) { return max(in[0]); }, {distinct_leaf({2, 3, 4}, 117)});
  expect_gradcheck([](const Inputs& in) { return max(in[0], {}, true); }, {distinct_leaf({33}, 118)});
}

TEST(Gradcheck, MaxSingleDim) {
  for (int64_t d : {0, 1, 2, -1})
    for (bool keep : {false, true}) {
      SCOPED_TRACE("dim " + std::to_string(d) + " keepdim " + std::to_string(keep));
      expect_gradcheck([d, keep](const Inputs& in) { return max(in[0], {d}, keep); }, {distinct_leaf({2, 3, 4}, 119)});
    }
}

TEST(Gradcheck, MaxSeveralDims) {
  for (bool keep : {false, true}) {
    SCOPED_TRACE("keepdim " + std::to_string(keep));
    expect_gradcheck([keep](const Inputs& in) { return max(in[0], {0, 2}, keep); }, {distinct_leaf({2, 3, 4}, 120)});
    expect_gradcheck([keep](const Inputs& in) { return max(in[0], {-1, -3}, keep); }, {distinct_leaf({2, 3, 4}, 121)});
  }
}

TEST(Gradcheck, MaxNonContiguous) {
  // A transposed view of distinct values.
  Tensor base = from_vector(distinct_values(12, 122), {3, 4}, kF64);
  Tensor x = base.t();
  x.requires_grad_();
  expect_gradcheck([](const Inputs& in) { return max(in[0], {1}); }, {x});
}

TEST(Gradcheck, MaxTwoWayTieSharesGradient) {
  // Documented rule: tied maxima share the gradient equally. For a two-way tie the central difference
  // is also 1/2 ((m + eps) - m over 2 eps), so the shared rule is checkable at exactly this point.
  const std::vector<double> v = {0.3, 1.2, -0.4, 1.2, 0.1, -0.9};
  expect_gradcheck([](const Inputs& in) { return max(in[0]); }, {leaf(from_vector(v, {6}, kF64))});
  expect_gradcheck([](const Inputs& in) { return min(in[0], {1}); },
                   {leaf(from_vector(std::vector<double>{0.5, -0.2, -0.2, 0.7, 0.1, 0.3}, {2, 3}, kF64))});
}

TEST(Gradcheck, MinAll) {
  expect_gradcheck([](const Inputs& in) { return min(in[0]); }, {distinct_leaf({2, 3, 4}, 123)});
  expect_gradcheck([](const Inputs& in) { return min(in[0], {}, true); }, {distinct_leaf({7}, 124)});
}

TEST(Gradcheck, MinSingleDim) {
  for (int64_t d : {0, 1, 2, -1})
    for (bool keep : {false, true}) {
      SCOPED_TRACE("dim " + std::to_string(d) + " keepdim " + std::to_string(keep));
      expect_gradcheck([d, keep](const Inputs& in) { return min(in[0], {d}, keep); }, {distinct_leaf({2, 3, 4}, 125)});
    }
}

TEST(Gradcheck, MinSeveralDims) {
  for (bool keep : {false, true}) {
    SCOPED_TRACE("keepdim " + std::to_string(keep));
    expect_gradcheck([keep](const Inputs& in) { return min(in[0], {1, 2}, keep); }, {distinct_leaf({2, 3, 4}, 126)});
    expect_gradcheck([keep](const Inputs& in) { return min(in[0], {0, -2}, keep); }, {distinct_leaf({2, 3, 4}, 127)});
  }
}

TEST(Gradcheck, MinNonContiguous) {
  Tensor base = from_vector(distinct_values(14, 128), {2, 7}, kF64);
  Tensor x = base.slice(1, 0, 7, 2);  // [2, 4], last stride 2
  x.requires_grad_();
  expect_gradcheck([](const Inputs& in) { return min(in[0], {0}); }, {x});
}

// ================================ matmul, linear ================================

TEST(Gradcheck, Matmul2D) {
  expect_gradcheck([](const Inputs& in) { return matmul(in[0], in[1]); },
                   {randn_leaf({3, 4}, 130), randn_leaf({4, 5}, 131)});
}

TEST(Gradcheck, Matmul1D2D) {
  expect_gradcheck([](const Inputs& in) { return matmul(in[0], in[1]); },
                   {randn_leaf({4}, 132), randn_leaf({4, 3}, 133)});
}

TEST(Gradcheck, Matmul2D1D) {
  expect_gradcheck([](const Inputs& in) { return matmul(in[0], in[1]); },
                   {randn_leaf({3, 4}, 134), randn_leaf({4}, 135)});
}

TEST(Gradcheck, Matmul1D1D) {
  expect_gradcheck([](const Inputs& in) { return matmul(in[0], in[1]); }, {randn_leaf({5}, 136), randn_leaf({5}, 137)});
}

TEST(Gradcheck, MatmulBatched3D) {
  expect_gradcheck([](const Inputs& in) { return matmul(in[0], in[1]); },
                   {randn_leaf({2, 3, 4}, 138), randn_leaf({2, 4, 2}, 139)});
}

TEST(Gradcheck, MatmulBatchedBroadcast) {
  // [2, 1, 3, 4] @ [5, 4, 2] -> [2, 5, 3, 2]: the batch dims broadcast to [2, 5].
  expect_gradcheck([](const Inputs& in) { return matmul(in[0], in[1]); },
                   {randn_leaf({2, 1, 3, 4}, 140), randn_leaf({5, 4, 2}, 141)});
}

TEST(Gradcheck, MatmulBatchedWithMatrix) {
  expect_gradcheck([](const Inputs& in) { return matmul(in[0], in[1]); },
                   {randn_leaf({2, 3, 4}, 142), randn_leaf({4, 2}, 143)});
  expect_gradcheck([](const Inputs& in) { return matmul(in[0], in[1]); },
                   {randn_leaf({3, 4}, 144), randn_leaf({2, 4, 2}, 145)});
}

TEST(Gradcheck, MatmulBatchedWithVector) {
  expect_gradcheck([](const Inputs& in) { return matmul(in[0], in[1]); },
                   {randn_leaf({2, 3, 4}, 146), randn_leaf({4}, 147)});
  expect_gradcheck([](const Inputs& in) { return matmul(in[0], in[1]); },
                   {randn_leaf({3}, 148), randn_leaf({2, 3, 4}, 149)});
}

TEST(Gradcheck, MatmulNonContiguous) {
  expect_gradcheck([](const Inputs& in) { return matmul(in[0], in[1]); },
                   {transposed_leaf(3, 4, 150), transposed_leaf(4, 2, 151)});
  expect_gradcheck([](const Inputs& in) { return matmul(in[0], in[1]); },
                   {strided_leaf({3, 4}, 152), strided_leaf({4, 3}, 153)});
  // An operand expanded inside f along a batch dim.
  expect_gradcheck(
      [](const Inputs& in) {
        return matmul(in[0].expand({3, 2, 4}), in[1]);
      },
      {randn_leaf({1, 2, 4}, 154), randn_leaf({3, 4, 2}, 155)});
}

TEST(Gradcheck, MatmulOddSizes) {
  expect_gradcheck([](const Inputs& in) { return matmul(in[0], in[1]); },
                   {randn_leaf({7, 33}, 156), randn_leaf({33, 1}, 157)});
  expect_gradcheck([](const Inputs& in) { return matmul(in[0], in[1]); },
                   {randn_leaf({1, 1}, 158), randn_leaf({1, 7}, 159)});
}

TEST(Gradcheck, LinearNoBias) {
  expect_gradcheck([](const Inputs& in) { return linear(in[0], in[1]); },
                   {randn_leaf({4, 3}, 160), randn_leaf({5, 3}, 161)});
}

TEST(Gradcheck, LinearBias) {
  expect_gradcheck([](const Inputs& in) { return linear(in[0], in[1], in[2]); },
                   {randn_leaf({4, 3}, 162), randn_leaf({5, 3}, 163), randn_leaf({5}, 164)});
}

TEST(Gradcheck, Linear3DInput) {
  expect_gradcheck([](const Inputs& in) { return linear(in[0], in[1], in[2]); },
                   {randn_leaf({2, 3, 4}, 165), randn_leaf({2, 4}, 166), randn_leaf({2}, 167)});
  expect_gradcheck([](const Inputs& in) { return linear(in[0], in[1]); },
                   {randn_leaf({2, 3, 4}, 168), randn_leaf({2, 4}, 169)});
}

TEST(Gradcheck, Linear1DInput) {
  expect_gradcheck([](const Inputs& in) { return linear(in[0], in[1], in[2]); },
                   {randn_leaf({4}, 170), randn_leaf({3, 4}, 171), randn_leaf({3}, 172)});
}

TEST(Gradcheck, LinearNonContiguous) {
  // A transposed input (reshape inside linear must copy) and a weight that is itself a transposed view.
  expect_gradcheck([](const Inputs& in) { return linear(in[0], in[1], in[2]); },
                   {transposed_leaf(4, 3, 173), transposed_leaf(5, 3, 174), strided_leaf({5}, 175)});
}

// ================================ cat, stack, split, pad ================================

TEST(Gradcheck, Cat) {
  for (int64_t d : {0, 1, -1}) {
    SCOPED_TRACE("dim " + std::to_string(d));
    Shape s0 = {2, 3}, s1 = {2, 3}, s2 = {2, 3};
    const int64_t w = d < 0 ? d + 2 : d;
    s0[w] = 1;
    s1[w] = 3;
    s2[w] = 2;
    expect_gradcheck(
        [d](const Inputs& in) {
          return cat({in[0], in[1], in[2]}, d);
        },
        {randn_leaf(s0, 176), randn_leaf(s1, 177), randn_leaf(s2, 178)});
  }
}

TEST(Gradcheck, CatNonContiguous) {
  Generator gen(179);
  const Tensor constant = randn({3, 2}, kF64, &gen);
  expect_gradcheck(
      [](const Inputs& in) {
        return cat({in[0], in[1], in[2]}, 1);
      },
      {transposed_leaf(3, 2, 180), constant, strided_leaf({3, 4}, 181)});
}

TEST(Gradcheck, Stack) {
  for (int64_t d : {0, 1, 2, -1}) {
    SCOPED_TRACE("dim " + std::to_string(d));
    expect_gradcheck(
        [d](const Inputs& in) {
          return stack({in[0], in[1], in[2]}, d);
        },
        {randn_leaf({2, 3}, 182), transposed_leaf(2, 3, 183), strided_leaf({2, 3}, 184)});
  }
}

TEST(Gradcheck, SplitBySize) {
  // Size 7 along dim 1 in pieces of 3: 3, 3, 1. Each piece is checked on its own, and all of them
  // joined back with different weights.
  for (int64_t k = 0; k < 3; ++k) {
    SCOPED_TRACE("piece " + std::to_string(k));
    expect_gradcheck([k](const Inputs& in) { return split(in[0], 3, 1)[k]; }, {randn_leaf({2, 7}, 185)});
  }
  expect_gradcheck(
      [](const Inputs& in) {
        const std::vector<Tensor> p = split(in[0], 3, -1);
        EXPECT_EQ(p.size(), 3u);
        return cat({p[0] * 2.0, exp(p[1]), p[2] * p[2]}, 1);
      },
      {randn_leaf({2, 7}, 186)});
  expect_gradcheck([](const Inputs& in) { return split(in[0], 2, 0)[1]; }, {transposed_leaf(5, 3, 187)});
}

TEST(Gradcheck, SplitBySizes) {
  const std::vector<int64_t> sizes = {2, 4, 1};
  for (int64_t k = 0; k < 3; ++k) {
    SCOPED_TRACE("piece " + std::to_string(k));
    expect_gradcheck([&sizes, k](const Inputs& in) { return split(in[0], sizes, 1)[k]; }, {randn_leaf({3, 7}, 188)});
  }
  expect_gradcheck(
      [](const Inputs& in) {
        const std::vector<Tensor> p = split(in[0], std::vector<int64_t>{1, 2}, 0);
        return p[0] * 3.0 + sum(p[1], {0}, true);
      },
      {strided_leaf({3, 2}, 189)});
}

TEST(Gradcheck, PadPositive) {
  expect_gradcheck([](const Inputs& in) { return pad(in[0], {1, 2}); }, {randn_leaf({2, 3}, 190)});
  expect_gradcheck([](const Inputs& in) { return pad(in[0], {0, 1, 2, 0}, 1.5); }, {randn_leaf({2, 3}, 191)});
}

TEST(Gradcheck, PadNegative) {
  // Negative amounts crop.
  expect_gradcheck([](const Inputs& in) { return pad(in[0], {-1, -2}); }, {randn_leaf({2, 5}, 192)});
  expect_gradcheck([](const Inputs& in) { return pad(in[0], {-1, 0, 0, -1}); }, {randn_leaf({3, 4}, 193)});
}

TEST(Gradcheck, PadMixedSeveralDims) {
  // Padding one side and cropping the other, across all three dims.
  expect_gradcheck([](const Inputs& in) { return pad(in[0], {1, -1, -1, 2, 1, 0}); }, {randn_leaf({2, 3, 4}, 194)});
  expect_gradcheck([](const Inputs& in) { return pad(in[0], {2, -1, 1, 1}); }, {transposed_leaf(3, 4, 195)});
}

// ================================ index_select, gather ================================

TEST(Gradcheck, IndexSelect) {
  expect_gradcheck(
      [](const Inputs& in) {
        return index_select(in[0], 0, index_tensor({2, 0, 3}, {3}));
      },
      {randn_leaf({4, 3}, 196)});
  expect_gradcheck(
      [](const Inputs& in) {
        return index_select(in[0], -1, index_tensor({1, 1, 0, 2, 1}, {5}));
      },
      {randn_leaf({2, 3}, 197)});
}

TEST(Gradcheck, IndexSelectRepeated) {
  // Repeated indices accumulate their gradients.
  expect_gradcheck(
      [](const Inputs& in) {
        return index_select(in[0], 1, index_tensor({3, 0, 3, 3, 1}, {5}));
      },
      {randn_leaf({2, 4, 2}, 198)});
}

TEST(Gradcheck, IndexSelectNonContiguous) {
  expect_gradcheck(
      [](const Inputs& in) {
        return index_select(in[0], 0, index_tensor({1, 0, 1}, {3}));
      },
      {transposed_leaf(2, 5, 199)});
  expect_gradcheck(
      [](const Inputs& in) {
        return index_select(in[0], 1, index_tensor({2, 0}, {2}));
      },
      {strided_leaf({3, 4}, 200)});
}

TEST(Gradcheck, Gather) {
  // dim 0: out[i][j] = x[index[i][j]][j]
  expect_gradcheck(
      [](const Inputs& in) {
        return gather(in[0], 0, index_tensor({2, 0, 1, 1, 2, 0, 0, 0, 2}, {3, 3}));
      },
      {randn_leaf({3, 3}, 201)});
  // dim 1, index smaller than x in dim 0, larger in dim 1, with repeats.
  expect_gradcheck(
      [](const Inputs& in) {
        return gather(in[0], 1, index_tensor({3, 3, 0, 1, 2, 0, 0, 3, 1, 1}, {2, 5}));
      },
      {randn_leaf({3, 4}, 202)});
}

TEST(Gradcheck, GatherNegativeDim3D) {
  expect_gradcheck(
      [](const Inputs& in) {
        return gather(in[0], -1, index_tensor({1, 0, 2, 2, 0, 0, 1, 1, 2, 0, 1, 2}, {2, 2, 3}));
      },
      {randn_leaf({2, 3, 3}, 203)});
}

TEST(Gradcheck, GatherNonContiguous) {
  expect_gradcheck(
      [](const Inputs& in) {
        return gather(in[0], 1, index_tensor({1, 0, 0, 0, 2, 2}, {3, 2}));
      },
      {transposed_leaf(3, 3, 204)});
}

// ================================ softmax, log_softmax ================================

TEST(Gradcheck, Softmax) {
  for (int64_t d : {0, 1, 2, -1}) {
    SCOPED_TRACE("dim " + std::to_string(d));
    expect_gradcheck([d](const Inputs& in) { return softmax(in[0], d); }, {randn_leaf({2, 3, 4}, 205)});
  }
}

TEST(Gradcheck, SoftmaxNonContiguous) {
  for (int64_t d : {0, 1, -1}) {
    SCOPED_TRACE("dim " + std::to_string(d));
    expect_gradcheck([d](const Inputs& in) { return softmax(in[0], d); }, {transposed_leaf(3, 4, 206)});
    expect_gradcheck([d](const Inputs& in) { return softmax(in[0], d); }, {strided_leaf({3, 4}, 207)});
  }
}

TEST(Gradcheck, SoftmaxOddSizes) {
  expect_gradcheck([](const Inputs& in) { return softmax(in[0]); }, {randn_leaf({33}, 208)});
  expect_gradcheck([](const Inputs& in) { return softmax(in[0], 0); }, {randn_leaf({1, 7}, 209)});
  // Large logits: the row max is subtracted first, so nothing overflows.
  expect_gradcheck([](const Inputs& in) { return softmax(in[0] * 40.0, 1); }, {randn_leaf({2, 7}, 210)});
}

TEST(Gradcheck, LogSoftmax) {
  for (int64_t d : {0, 1, 2, -1}) {
    SCOPED_TRACE("dim " + std::to_string(d));
    expect_gradcheck([d](const Inputs& in) { return log_softmax(in[0], d); }, {randn_leaf({2, 3, 4}, 211)});
  }
}

TEST(Gradcheck, LogSoftmaxNonContiguous) {
  for (int64_t d : {0, 1, -1}) {
    SCOPED_TRACE("dim " + std::to_string(d));
    expect_gradcheck([d](const Inputs& in) { return log_softmax(in[0], d); }, {transposed_leaf(4, 3, 212)});
    expect_gradcheck([d](const Inputs& in) { return log_softmax(in[0], d); }, {strided_leaf({3, 4}, 213)});
  }
}

TEST(Gradcheck, LogSoftmaxOddSizes) {
  expect_gradcheck([](const Inputs& in) { return log_softmax(in[0]); }, {randn_leaf({33}, 214)});
  expect_gradcheck([](const Inputs& in) { return log_softmax(in[0], 1); }, {randn_leaf({7, 1}, 215)});
}

// ================================ ccc, ccc_loss ================================

TEST(Gradcheck, Ccc) {
  // Gradient with respect to both the prediction and the target.
  expect_gradcheck([](const Inputs& in) { return ccc(in[0], in[1]); },
                   {randn_leaf({7, 2}, 216), randn_leaf({7, 2}, 217)});
  expect_gradcheck([](const Inputs& in) { return ccc(in[0], in[1]); },
                   {randn_leaf({2, 5, 2}, 218), randn_leaf({2, 5, 2}, 219)});
}

TEST(Gradcheck, CccOneSideOnly) {
  Generator gen(220);
  const Tensor target = randn({6, 2}, kF64, &gen);
  expect_gradcheck([](const Inputs& in) { return ccc(in[0], in[1]); }, {randn_leaf({6, 2}, 221), target});
  expect_gradcheck([](const Inputs& in) { return ccc(in[0], in[1]); }, {target, randn_leaf({6, 2}, 222)});
}

TEST(Gradcheck, CccMask) {
  const Tensor mask = bool_tensor({true, true, false, true, true, false, true, true, true, false}, {2, 5});
  expect_gradcheck([mask](const Inputs& in) { return ccc(in[0], in[1], mask); },
                   {randn_leaf({2, 5, 2}, 223), randn_leaf({2, 5, 2}, 224)});
}

TEST(Gradcheck, CccNonContiguous) {
  expect_gradcheck([](const Inputs& in) { return ccc(in[0], in[1]); },
                   {transposed_leaf(6, 2, 225), strided_leaf({6, 2}, 226)});
}

TEST(Gradcheck, CccOddSizes) {
  expect_gradcheck([](const Inputs& in) { return ccc(in[0], in[1]); },
                   {randn_leaf({33, 1}, 227), randn_leaf({33, 1}, 228)});
}

TEST(Gradcheck, CccLoss) {
  expect_gradcheck([](const Inputs& in) { return ccc_loss(in[0], in[1]); },
                   {randn_leaf({7, 2}, 229), randn_leaf({7, 2}, 230)});
  expect_gradcheck([](const Inputs& in) { return ccc_loss(in[0], in[1]); },
                   {randn_leaf({2, 4, 2}, 231), strided_leaf({2, 4, 2}, 232)});
}

TEST(Gradcheck, CccLossMask) {
  const Tensor mask = bool_tensor({false, true, true, true, false, true, true}, {7});
  expect_gradcheck([mask](const Inputs& in) { return ccc_loss(in[0], in[1], mask); },
                   {randn_leaf({7, 2}, 233), randn_leaf({7, 2}, 234)});
}

// ================================ conversions, copies ================================

TEST(Gradcheck, ToDtypeRoundTrip) {
  // float64 -> float32 -> float64 is the identity up to float32 rounding (relative 6e-8). With the
  // default eps 1e-6 that rounding swamps the difference quotient (about 0.06 relative error), so this
  // check uses eps 1e-2: the function is piecewise linear with slope 1, the quotient's error is then at
  // most ~1.2e-7 / 2e-2 = 6e-6, well inside atol + rtol * 1 = 1.01e-4.
  const GradcheckOptions coarse{.eps = 1e-2};
  expect_gradcheck([](const Inputs& in) { return in[0].to(kFloat32).to(kFloat64); }, {randn_leaf({2, 3}, 235)}, coarse);
  expect_gradcheck([](const Inputs& in) { return (in[0].to(kFloat32) * 2.0f).to(kFloat64); },
                   {transposed_leaf(3, 2, 236)}, coarse);
  // to(the same dtype) returns the tensor itself; a no-op inside a chain.
  expect_gradcheck([](const Inputs& in) { return exp(in[0].to(kFloat64)); }, {randn_leaf({4}, 237)});
}

TEST(Gradcheck, Clone) {
  expect_gradcheck([](const Inputs& in) { return in[0].clone(); }, {randn_leaf({2, 3}, 238)});
  expect_gradcheck([](const Inputs& in) { return in[0].clone(); }, {transposed_leaf(3, 2, 239)});
}

TEST(Gradcheck, Contiguous) {
  expect_gradcheck([](const Inputs& in) { return in[0].contiguous(); }, {transposed_leaf(3, 4, 240)});
  expect_gradcheck([](const Inputs& in) { return in[0].contiguous(); }, {strided_leaf({2, 3}, 241)});
  expect_gradcheck(
      [](const Inputs& in) {
        return in[0].permute({2, 0, 1}).contiguous() * 2.0;
      },
      {randn_leaf({2, 3, 4}, 242)});
  expect_gradcheck([](const Inputs& in) { return in[0].expand({3, 4}).contiguous(); }, {randn_leaf({3, 1}, 243)});
}

// ================================ views ================================

TEST(Gradcheck, Reshape) {
  expect_gradcheck([](const Inputs& in) { return in[0].reshape({4, 3}) * 2.0; }, {randn_leaf({2, 6}, 244)});
  expect_gradcheck([](const Inputs& in) { return in[0].reshape({-1}); }, {randn_leaf({2, 3, 2}, 245)});
  // A permuted input cannot be viewed as [12]: reshape copies, and the gradient goes through the copy.
  expect_gradcheck([](const Inputs& in) { return in[0].reshape({12}); }, {transposed_leaf(3, 4, 246)});
  expect_gradcheck([](const Inputs& in) { return in[0].reshape({2, -1, 2}); }, {strided_leaf({2, 4}, 247)});
}

TEST(Gradcheck, View) {
  expect_gradcheck([](const Inputs& in) { return in[0].view({3, 4}); }, {randn_leaf({2, 6}, 248)});
  expect_gradcheck([](const Inputs& in) { return in[0].view({2, 2, 3}); }, {randn_leaf({4, 3}, 249)});
  // A transposed [3, 4] (strides 1, 3) can be viewed as [3, 2, 2] by splitting its second dim.
  expect_gradcheck([](const Inputs& in) { return in[0].view({3, 2, 2}); }, {transposed_leaf(3, 4, 250)});
}

TEST(Gradcheck, Permute) {
  expect_gradcheck([](const Inputs& in) { return in[0].permute({2, 0, 1}); }, {randn_leaf({2, 3, 4}, 251)});
  expect_gradcheck([](const Inputs& in) { return in[0].permute({-1, 1, 0}) * 1.5; }, {randn_leaf({2, 3, 4}, 252)});
  expect_gradcheck([](const Inputs& in) { return in[0].permute({1, 0}); }, {strided_leaf({2, 3}, 253)});
}

TEST(Gradcheck, Transpose) {
  expect_gradcheck([](const Inputs& in) { return in[0].transpose(0, 2); }, {randn_leaf({2, 3, 4}, 254)});
  expect_gradcheck([](const Inputs& in) { return in[0].transpose(-1, -2); }, {randn_leaf({2, 3, 4}, 255)});
}

TEST(Gradcheck, T) {
  expect_gradcheck([](const Inputs& in) { return in[0].t(); }, {randn_leaf({3, 4}, 256)});
  expect_gradcheck([](const Inputs& in) { return in[0].t() * 2.0; }, {transposed_leaf(3, 4, 257)});
  expect_gradcheck([](const Inputs& in) { return in[0].t() * 2.0; }, {randn_leaf({5}, 258)});  // 1-D: identity
}

TEST(Gradcheck, Narrow) {
  expect_gradcheck([](const Inputs& in) { return in[0].narrow(1, 1, 2); }, {randn_leaf({3, 4}, 259)});
  expect_gradcheck([](const Inputs& in) { return in[0].narrow(-1, 0, 3); }, {randn_leaf({2, 7}, 260)});
  expect_gradcheck([](const Inputs& in) { return in[0].narrow(0, 2, 1); }, {transposed_leaf(4, 3, 261)});
}

TEST(Gradcheck, Slice) {
  expect_gradcheck([](const Inputs& in) { return in[0].slice(1, 1, 7, 2); }, {randn_leaf({2, 7}, 262)});
  expect_gradcheck([](const Inputs& in) { return in[0].slice(0, 0, 7, 3); }, {randn_leaf({7, 2}, 263)});
  // Negative and out-of-range positions follow Python's rules.
  expect_gradcheck([](const Inputs& in) { return in[0].slice(-1, -5, 100, 2); }, {randn_leaf({2, 7}, 264)});
  expect_gradcheck([](const Inputs& in) { return in[0].slice(0, 1, 4, 2); }, {transposed_leaf(4, 3, 265)});
  expect_gradcheck([](const Inputs& in) { return in[0].slice(1, 0, 4, 3); }, {strided_leaf({2, 4}, 266)});
  expect_gradcheck([](const Inputs& in) { return in[0].slice(0, 2, 33, 5); }, {randn_leaf({33}, 267)});
}

TEST(Gradcheck, Select) {
  expect_gradcheck([](const Inputs& in) { return in[0].select(0, 1); }, {randn_leaf({3, 4}, 268)});
  expect_gradcheck([](const Inputs& in) { return in[0].select(-1, -1); }, {randn_leaf({2, 3, 4}, 269)});
  expect_gradcheck([](const Inputs& in) { return in[0].select(1, 2); }, {transposed_leaf(4, 3, 270)});
  expect_gradcheck([](const Inputs& in) { return in[0].select(0, 3) * 2.0; }, {randn_leaf({7}, 271)});  // 0-d result
}

TEST(Gradcheck, Expand) {
  // gradcheck rejects expanded inputs; the expand happens inside f.
  expect_gradcheck([](const Inputs& in) { return in[0].expand({3, 4}); }, {randn_leaf({3, 1}, 272)});
  expect_gradcheck([](const Inputs& in) { return in[0].expand({2, 3, 4}) * 1.5; }, {randn_leaf({1, 4}, 273)});
  expect_gradcheck([](const Inputs& in) { return in[0].expand({2, -1, 3}); }, {randn_leaf({4, 1}, 274)});
  expect_gradcheck([](const Inputs& in) { return in[0].expand({5}) * 2.0; }, {randn_leaf({}, 275)});
}

TEST(Gradcheck, Squeeze) {
  expect_gradcheck([](const Inputs& in) { return in[0].squeeze(); }, {randn_leaf({1, 3, 1, 2}, 276)});
  expect_gradcheck([](const Inputs& in) { return in[0].squeeze(2); }, {randn_leaf({1, 3, 1, 2}, 277)});
  expect_gradcheck([](const Inputs& in) { return in[0].squeeze(-4) * 2.0; }, {randn_leaf({1, 3, 1, 2}, 278)});
}

TEST(Gradcheck, Unsqueeze) {
  for (int64_t d : {0, 1, 2, -1}) {
    SCOPED_TRACE("dim " + std::to_string(d));
    expect_gradcheck([d](const Inputs& in) { return in[0].unsqueeze(d); }, {randn_leaf({2, 3}, 279)});
    expect_gradcheck([d](const Inputs& in) { return in[0].unsqueeze(d) * 2.0; }, {transposed_leaf(2, 3, 280)});
  }
}

TEST(Gradcheck, Flatten) {
  expect_gradcheck([](const Inputs& in) { return in[0].flatten(); }, {randn_leaf({2, 3, 2}, 281)});
  expect_gradcheck([](const Inputs& in) { return in[0].flatten(1); }, {randn_leaf({2, 3, 2}, 282)});
  expect_gradcheck([](const Inputs& in) { return in[0].flatten(0, 1); }, {randn_leaf({2, 3, 2}, 283)});
  expect_gradcheck([](const Inputs& in) { return in[0].flatten(); }, {transposed_leaf(3, 4, 284)});  // copies
}

TEST(Gradcheck, ViewChain) {
  // Several views stacked on each other over a non-contiguous leaf, then an op that reads them.
  expect_gradcheck(
      [](const Inputs& in) {
        return exp(in[0].unsqueeze(0).expand({2, 4, 3}).transpose(1, 2).slice(2, 0, 4, 2).select(0, 1)) *
               in[0].narrow(0, 0, 3).t().narrow(1, 0, 2);
      },
      {transposed_leaf(4, 3, 285)});
}

// ================================ edge cases ================================

TEST(Gradcheck, ZeroDimInputs) {
  // 0-d tensors through reductions, softmax, views and broadcasting.
  expect_gradcheck([](const Inputs& in) { return sum(in[0]) * 2.0; }, {randn_leaf({}, 340)});
  expect_gradcheck([](const Inputs& in) { return mean(in[0], {}, true) * 2.0; }, {randn_leaf({}, 341)});
  expect_gradcheck([](const Inputs& in) { return softmax(in[0]) + in[0]; }, {randn_leaf({}, 342)});
  expect_gradcheck([](const Inputs& in) { return log_softmax(in[0], 0) + in[0]; }, {randn_leaf({}, 343)});
  expect_gradcheck([](const Inputs& in) { return in[0].flatten() * 2.0; }, {randn_leaf({}, 344)});
  expect_gradcheck([](const Inputs& in) { return in[0].unsqueeze(0).expand({3}) * in[1]; },
                   {randn_leaf({}, 345), randn_leaf({3}, 346)});
}

TEST(Gradcheck, ViewsOfExpanded) {
  // Reshapes of a stride-0 tensor: [3, 4] from [1, 4] can be viewed as [3, 2, 2] (keeping stride 0);
  // [12] needs a copy. Either way the gradient sums back over the broadcast dim.
  expect_gradcheck(
      [](const Inputs& in) {
        return in[0].expand({3, 4}).reshape({3, 2, 2}) * 1.5;
      },
      {randn_leaf({1, 4}, 347)});
  expect_gradcheck(
      [](const Inputs& in) {
        return in[0].expand({3, 4}).reshape({12}) * 1.5;
      },
      {randn_leaf({3, 1}, 348)});
  expect_gradcheck(
      [](const Inputs& in) {
        return in[0].expand({2, 3, 4}).flatten(0, 1) * 1.5;
      },
      {randn_leaf({3, 1}, 349)});
  expect_gradcheck(
      [](const Inputs& in) {
        return in[0].expand({3, 4}).t().slice(0, 1, 4, 2) * 1.5;
      },
      {randn_leaf({3, 1}, 350)});
}

TEST(Gradcheck, ViewsToAndFromSizeOne) {
  expect_gradcheck([](const Inputs& in) { return in[0].squeeze() * 2.0; }, {randn_leaf({1, 1}, 351)});  // to 0-d
  expect_gradcheck([](const Inputs& in) { return in[0].narrow(-1, -3, 2); }, {randn_leaf({2, 5}, 352)});
  expect_gradcheck([](const Inputs& in) { return in[0].slice(1, 3, 100) + in[1]; },
                   {randn_leaf({2, 4}, 353), randn_leaf({2, 1}, 354)});
}

TEST(Gradcheck, CatWithEmptyPiece) {
  expect_gradcheck(
      [](const Inputs& in) {
        return cat({in[0], in[1], in[2]}, 1);
      },
      {randn_leaf({2, 2}, 355), randn_leaf({2, 0}, 356), randn_leaf({2, 1}, 357)});
  expect_gradcheck([](const Inputs& in) { return cat({in[0]}, 0) * 2.0; }, {randn_leaf({3}, 358)});
}

TEST(Gradcheck, WhereOneSideConstant) {
  const Tensor cond = bool_tensor({true, false, true, false, false, true}, {2, 3});
  Generator gen(359);
  const Tensor constant = randn({2, 3}, kF64, &gen);
  expect_gradcheck([cond](const Inputs& in) { return where(cond, in[0], in[1]); }, {randn_leaf({3}, 360), constant});
  expect_gradcheck([cond](const Inputs& in) { return where(cond, in[0], in[1]); }, {constant, randn_leaf({2, 1}, 361)});
}

// ================================ kernel paths of larger tensors ================================
// The CPU kernels switch to other loops for larger problems: GEMM blocks (MR x NR tiles, KC = 256 deep,
// MC rows) and a multi-threaded GEMM from 2^18 multiply-adds; multi-threaded elementwise, reduction and
// softmax loops from 32768 elements; block partial sums in a full reduction from 8192 elements. A full
// Jacobian of that size would be slow, so these tests keep the leaf small and reach the large tensor
// through a fixed constant (C * x broadcast), or contract a large output with fixed random weights to
// one number (a random projection: a wrong gradient entry still changes the contraction).

// sum(y * w) for a fixed random w of y's shape.
Tensor project(const Tensor& y, const Tensor& w) { return sum(mul(y, w)); }

Tensor constant_randn(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return randn(shape, kF64, &gen);
}

TEST(Gradcheck, MatmulAcrossGemmBlocks) {
  // K = 260 > KC: two K panels.
  expect_gradcheck([](const Inputs& in) { return matmul(in[0], in[1]); },
                   {randn_leaf({3, 260}, 300), randn_leaf({260, 2}, 301)});
  // M = 9 > MR, N = 17 > NR (16 doubles with AVX-512): partial tiles at the bottom and right edges.
  expect_gradcheck([](const Inputs& in) { return matmul(in[0], in[1]); },
                   {randn_leaf({9, 5}, 302), randn_leaf({5, 17}, 303)});
  // M = 200 > MC (rows per packed block).
  expect_gradcheck([](const Inputs& in) { return matmul(in[0], in[1]); },
                   {randn_leaf({200, 3}, 304), randn_leaf({3, 2}, 305)});
}

TEST(Gradcheck, MatmulMultiThreaded) {
  // 512 x 32 x 16 = 2^18 multiply-adds: the parallel GEMM, forward and in both backward products.
  const Tensor a = constant_randn({512, 32}, 390), b = constant_randn({32, 512}, 391);
  const Tensor w1 = constant_randn({512, 16}, 306), w2 = constant_randn({16, 512}, 307);
  // Each finite difference runs one parallel GEMM, and a parallel region is slow when the other core is
  // busy (ctest -j), so the leaves are one column / row, expanded inside f to the operand's full size.
  expect_gradcheck(
      [a, w1](const Inputs& in) {
        return project(matmul(a, in[0].expand({32, 16})), w1);
      },
      {randn_leaf({32, 1}, 308)});
  expect_gradcheck(
      [b, w2](const Inputs& in) {
        return project(matmul(in[0].expand({16, 32}), b), w2);
      },
      {randn_leaf({1, 32}, 309)});
}

TEST(Gradcheck, ElementwiseMultiThreaded) {
  // [4100, 8] = 32800 elements through a leaf of 8.
  const Tensor c = constant_randn({4100, 8}, 310);
  expect_gradcheck([c](const Inputs& in) { return sum(tanh(c * in[0]), {0}); }, {randn_leaf({8}, 311)});
  expect_gradcheck([c](const Inputs& in) { return sum(sigmoid(c / in[0] + in[0]), {0}); },
                   {signed_leaf({8}, 312, 0.5, 2.0)});
}

TEST(Gradcheck, ReductionsMultiThreaded) {
  const Tensor c = constant_randn({4100, 8}, 313);
  // Full reductions: 32800 elements in 8192-element partial sums.
  expect_gradcheck([c](const Inputs& in) { return sum(exp(c * in[0] * 0.1)); }, {randn_leaf({8}, 314)});
  expect_gradcheck([c](const Inputs& in) { return mean(c * in[0]); }, {randn_leaf({8}, 315)});
  expect_gradcheck([c](const Inputs& in) { return var(c * in[0], {}, 1); }, {randn_leaf({8}, 316)});
  // Over the rows of [4100, 8] (the bias-gradient layout) and over the columns.
  expect_gradcheck([c](const Inputs& in) { return var(c * in[0], {0}, 0); }, {randn_leaf({8}, 317)});
  expect_gradcheck([c](const Inputs& in) { return mean(c * in[0], {1}).slice(0, 0, 4100, 500); },
                   {randn_leaf({8}, 318)});
  // max/min over 4100 normal draws per column: the top two are far apart compared with eps * |c|.
  expect_gradcheck([c](const Inputs& in) { return max(c * in[0], {0}); }, {rand_leaf({8}, 319, 0.5, 1.5)});
  expect_gradcheck([c](const Inputs& in) { return min(c * in[0], {0}); }, {rand_leaf({8}, 320, 0.5, 1.5)});
}

TEST(Gradcheck, SoftmaxMultiThreaded) {
  const Tensor c = constant_randn({4100, 8}, 321), w = constant_randn({4100, 8}, 322);
  expect_gradcheck([c, w](const Inputs& in) { return project(softmax(c * in[0], 1), w); }, {randn_leaf({8}, 323)});
  expect_gradcheck([c, w](const Inputs& in) { return project(log_softmax(c * in[0], -1), w); }, {randn_leaf({8}, 324)});
  expect_gradcheck([c, w](const Inputs& in) { return project(softmax(c * in[0], 0), w); }, {randn_leaf({8}, 325)});
}

TEST(Gradcheck, IndexMultiThreaded) {
  // 32800-element index_select / gather outputs from a small leaf.
  std::vector<int64_t> rows(4100), cols(4100 * 8);
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<int64_t>((i * 7) % 5);
  for (size_t i = 0; i < cols.size(); ++i) cols[i] = static_cast<int64_t>((i * 5) % 3);
  const Tensor ri = index_tensor(rows, {4100}), ci = index_tensor(cols, {4100, 8});
  const Tensor w = constant_randn({4100, 8}, 326);
  expect_gradcheck(
      [ri, w](const Inputs& in) {
        return project(index_select(in[0].expand({5, 8}), 0, ri), w);
      },
      {randn_leaf({5, 1}, 327)});
  expect_gradcheck(
      [ci, w](const Inputs& in) {
        return project(gather(in[0].expand({4100, 3}), 1, ci), w);
      },
      {randn_leaf({1, 3}, 328)});
}

TEST(Gradcheck, CccLarge) {
  // 4100 rows: the moments accumulate over many rows.
  const Tensor c = constant_randn({4100, 2}, 329), t = constant_randn({4100, 2}, 330);
  expect_gradcheck([c, t](const Inputs& in) { return ccc(tanh(c * in[0]), t + c * in[1]); },
                   {randn_leaf({2}, 331), randn_leaf({2}, 332)});
}

// ================================ composite ================================

TEST(Gradcheck, CompositeMlp) {
  // linear -> tanh -> linear -> log_softmax -> gather -> mean: the shape of a classifier's loss.
  const Tensor labels = index_tensor({2, 0, 1, 2}, {4, 1});
  expect_gradcheck(
      [labels](const Inputs& in) {
        const Tensor h = tanh(linear(in[0], in[1], in[2]));
        return neg(mean(gather(log_softmax(linear(h, in[3]), -1), 1, labels)));
      },
      {randn_leaf({4, 3}, 286), randn_leaf({5, 3}, 287), randn_leaf({5}, 288), randn_leaf({3, 5}, 289)});
}

}  // namespace
}  // namespace minidl
