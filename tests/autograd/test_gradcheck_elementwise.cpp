// Gradcheck of the elementwise ops: binary arithmetic, scalar forms and operators, unary ops, where, masked_fill.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "autograd/minidl.h"
#include "tests/autograd/gradcheck_helpers.h"

namespace minidl {
namespace {

using namespace gradcheck_test;

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

}  // namespace
}  // namespace minidl
