// Edge cases found in review: aliasing in-place writes, masked rows in CCC, scalar comparisons on
// integer tensors, saturating conversions, huge or empty shapes, exact int64 printing, out-of-bounds views.
#include <gtest/gtest.h>

#include <climits>
#include <cmath>

#include "autograd/minidl.h"

using namespace minidl;

TEST(EdgeCases, CopyFromAnOverlappingViewReadsTheOldValues) {
  Tensor x = from_vector({1, 2, 3, 4}, {2, 2});
  x.copy_(x.t());
  EXPECT_EQ(x.values<float>(), (std::vector<float>{1, 3, 2, 4}));
  Tensor y = from_vector({1, 2, 3, 4, 5, 6});
  y.narrow(0, 1, 5).copy_(y.narrow(0, 0, 5));  // a shift by one: a forward copy would smear y[0]
  EXPECT_EQ(y.values<float>(), (std::vector<float>{1, 1, 2, 3, 4, 5}));
  Tensor z = from_vector({1, 2, 3});
  z.copy_(z);
  EXPECT_EQ(z.values<float>(), (std::vector<float>{1, 2, 3}));
}

TEST(EdgeCases, AddFromAnOverlappingViewReadsTheOldValues) {
  Tensor x = from_vector({1, 2, 3, 4}, {2, 2});
  x.add_(x.t());
  EXPECT_EQ(x.values<float>(), (std::vector<float>{2, 5, 5, 8}));
  Tensor y = from_vector({1, 2});
  y.add_(y, 2.0);  // the same view is fine: each element is read before it is written
  EXPECT_EQ(y.values<float>(), (std::vector<float>{3, 6}));
}

TEST(EdgeCases, FillOfAnExpandedTensorWritesItsStorage) {
  Tensor base = zeros({3, 1});
  Tensor e = base.expand({3, 40000});  // large enough for the parallel path
  e.fill_(2.0);
  EXPECT_EQ(base.values<float>(), (std::vector<float>{2, 2, 2}));
}

TEST(EdgeCases, CccGradientOfAMaskedRowIsZeroEvenWhenItHoldsNaN) {
  Tensor pred = from_vector({0.1, 0.5, 0.9, 0.3}, {4, 1});
  pred.requires_grad_();
  const Tensor target = from_vector({0.2, 0.4, 1.0, NAN}, {4, 1});
  const Tensor mask = from_vector(std::vector<bool>{true, true, true, false}, {}, {.dtype = kBool});
  ccc_loss(pred, target, mask).backward();
  const auto g = pred.grad().values<float>();
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(std::isfinite(g[i])) << i;
  EXPECT_EQ(g[3], 0.0f);
}

TEST(EdgeCases, ScalarComparisonsOnIntegerTensorsKeepTheFraction) {
  const Tensor i = from_vector(std::vector<int64_t>{-1, 0, 1}, {}, {.dtype = kInt64});
  EXPECT_EQ(lt(i, 0.5).values<bool>(), (std::vector<bool>{true, true, false}));
  EXPECT_EQ(gt(i, -0.5).values<bool>(), (std::vector<bool>{false, true, true}));
}

TEST(EdgeCases, FloatToInt64Saturates) {
  const Tensor x = from_vector({NAN, 1e20, -1e20, 2.7, -2.7}, {}, {.dtype = kFloat64});
  EXPECT_EQ(x.to(kInt64).values<int64_t>(), (std::vector<int64_t>{0, INT64_MAX, INT64_MIN, 2, -2}));
}

TEST(EdgeCases, HugeStepsAndEmptyShapesDoNotOverflow) {
  const Tensor x = arange(10);
  EXPECT_EQ(x.slice(0, 0, 10, INT64_MAX).values<float>(), (std::vector<float>{0}));
  EXPECT_THROW(split(x, std::vector<int64_t>{INT64_MAX, INT64_MAX, 2}), Error);
  const Tensor e = zeros({0, int64_t{1} << 40, int64_t{1} << 40});
  EXPECT_EQ(e.numel(), 0);
  EXPECT_TRUE(e.is_contiguous());
  EXPECT_TRUE(zeros({3, 0}).is_contiguous()) << "an empty tensor is contiguous";
}

TEST(EdgeCases, Int64PrintsExactly) {
  const int64_t big = (int64_t{1} << 53) + 1;  // not representable as a double
  const std::string s = from_vector(std::vector<int64_t>{big}, {}, {.dtype = kInt64}).str();
  EXPECT_NE(s.find("9007199254740993"), std::string::npos) << s;
}

TEST(EdgeCases, LinearWithNoInputFeaturesIsTheBias) {
  const Tensor x = zeros({4, 0});
  const Tensor w = zeros({3, 0});
  const Tensor b = from_vector({1, 2, 3});
  const Tensor y = linear(x, w, b);
  EXPECT_EQ(y.shape(), (Shape{4, 3}));
  EXPECT_EQ(y.values<float>()[5], 3.0f);
}

TEST(EdgeCases, MaskedFillMaskMustNotGrowTheInput) {
  const Tensor x = zeros({3});
  const Tensor mask = from_vector(std::vector<bool>(6, true), {2, 3}, {.dtype = kBool});
  EXPECT_THROW(masked_fill(x, mask, 1.0), Error);
  EXPECT_EQ(masked_fill(zeros({2, 3}), gt(from_vector({1, -1, 1}), 0.0), 5.0).values<float>(),
            (std::vector<float>{5, 0, 5, 5, 0, 5}));
}

TEST(EdgeCases, ViewsOutsideTheStorageAreRefused) {
  const Tensor x = zeros({4});
  EXPECT_THROW(make_view(x, {5}, {1}, 0), Error);
  EXPECT_THROW(make_view(x, {2}, {1}, 3), Error);
  EXPECT_THROW(make_view(x, {2}, {-1}, 0), Error);
  EXPECT_NO_THROW(make_view(x, {2}, {-1}, 1));
  EXPECT_NO_THROW(make_view(x, {0}, {1}, 100)) << "an empty view reaches nothing";
}

TEST(EdgeCases, SetGradStoresNoHistory) {
  Tensor w = zeros({2});
  w.requires_grad_();
  Tensor g = w * 2.0;  // has a grad_fn that reaches w
  w.set_grad(g);
  EXPECT_EQ(w.grad().grad_fn(), nullptr);
  EXPECT_FALSE(w.grad().requires_grad());
}
