// Gradcheck of views, conversions, cat / stack / split / pad, index_select / gather, edge cases, large tensors, an MLP.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "autograd/minidl.h"
#include "tests/autograd/gradcheck_helpers.h"

namespace minidl {
namespace {

using namespace gradcheck_test;

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
