// Gradcheck of reductions, matmul, linear, softmax / log_softmax and ccc / ccc_loss.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "autograd/minidl.h"
#include "tests/autograd/gradcheck_helpers.h"

namespace minidl {
namespace {

using namespace gradcheck_test;

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

}  // namespace
}  // namespace minidl
