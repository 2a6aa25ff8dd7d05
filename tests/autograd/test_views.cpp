// Views share storage and read the right elements; reshape copies only when it must.
#include <gtest/gtest.h>

#include "autograd/minidl.h"

using namespace minidl;

namespace {
Tensor grid(int64_t rows, int64_t cols) { return arange(rows * cols).reshape({rows, cols}); }
}  // namespace

TEST(Views, ReshapeAndViewShareStorage) {
  const Tensor x = arange(12);
  const Tensor v = x.view({3, 4});
  EXPECT_EQ(v.impl()->storage, x.impl()->storage);
  EXPECT_EQ(v.reshape({2, -1}).shape(), (Shape{2, 6}));
  EXPECT_EQ(x.reshape({2, 2, 3}).values<float>(), x.values<float>());
  const Tensor t = v.t();  // [4, 3] with strides (1, 4): cannot be viewed as [12]
  EXPECT_THROW(t.view({12}), Error);
  const Tensor r = t.reshape({12});
  EXPECT_NE(r.impl()->storage, x.impl()->storage) << "reshape of a transposed tensor must copy";
  EXPECT_EQ(r.values<float>(), (std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
}

TEST(Views, ViewAcrossNonContiguousButCompatibleStrides) {
  // A narrowed tensor [4, 3] out of [4, 6] is not contiguous, but splitting its last dim is still a view.
  const Tensor x = grid(4, 6).narrow(1, 0, 4);
  const Tensor v = x.view({4, 2, 2});
  EXPECT_EQ(v.impl()->storage, x.impl()->storage);
  EXPECT_EQ(v.select(0, 1).values<float>(), (std::vector<float>{6, 7, 8, 9}));
}

TEST(Views, PermuteTransposeAndContiguous) {
  const Tensor x = arange(24).reshape({2, 3, 4});
  const Tensor p = x.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(p.strides(), (Strides{1, 12, 4}));
  EXPECT_DOUBLE_EQ(p.select(0, 3).select(0, 1).select(0, 2).item(), 1 * 12 + 2 * 4 + 3);
  EXPECT_EQ(x.transpose(0, 2).shape(), (Shape{4, 3, 2}));
  EXPECT_EQ(x.transpose(-1, 0).shape(), (Shape{4, 3, 2}));
}

TEST(Views, NarrowSliceSelect) {
  const Tensor x = grid(3, 5);
  EXPECT_EQ(x.narrow(1, 1, 3).values<float>(), (std::vector<float>{1, 2, 3, 6, 7, 8, 11, 12, 13}));
  EXPECT_EQ(x.slice(1, 0, 5, 2).values<float>(), (std::vector<float>{0, 2, 4, 5, 7, 9, 10, 12, 14}));
  EXPECT_EQ(x.slice(1, -2, 100).values<float>(), (std::vector<float>{3, 4, 8, 9, 13, 14}));
  EXPECT_EQ(x.slice(0, 2, 1).numel(), 0) << "an empty range gives an empty slice";
  EXPECT_EQ(x.select(0, -1).values<float>(), (std::vector<float>{10, 11, 12, 13, 14}));
  EXPECT_EQ(x.select(1, 2).shape(), (Shape{3}));
}

TEST(Views, ExpandBroadcastsWithStrideZero) {
  const Tensor x = from_vector(std::vector<double>{1, 2, 3}, {3, 1});
  const Tensor e = x.expand({2, 3, 4});
  EXPECT_EQ(e.strides(), (Strides{0, 1, 0}));
  EXPECT_TRUE(e.has_overlap());
  EXPECT_EQ(e.contiguous().values<float>()[4], 2.0f);
  EXPECT_EQ(x.expand({-1, 2}).shape(), (Shape{3, 2}));
}

TEST(Views, SqueezeUnsqueezeFlatten) {
  const Tensor x = zeros({1, 3, 1, 2});
  EXPECT_EQ(x.squeeze().shape(), (Shape{3, 2}));
  EXPECT_EQ(x.squeeze(2).shape(), (Shape{1, 3, 2}));
  EXPECT_EQ(x.squeeze(1).shape(), x.shape()) << "squeezing a dim that is not 1 changes nothing";
  EXPECT_EQ(x.unsqueeze(-1).shape(), (Shape{1, 3, 1, 2, 1}));
  EXPECT_EQ(x.unsqueeze(0).shape(), (Shape{1, 1, 3, 1, 2}));
  EXPECT_EQ(x.flatten().shape(), (Shape{6}));
  EXPECT_EQ(x.flatten(1, 2).shape(), (Shape{1, 3, 2}));
  EXPECT_EQ(scalar_tensor(1.0).unsqueeze(0).shape(), (Shape{1}));
}

TEST(Views, WritesThroughAViewReachTheBase) {
  Tensor x = zeros({2, 3});
  x.narrow(1, 1, 1).fill_(7.0);
  EXPECT_EQ(x.values<float>(), (std::vector<float>{0, 7, 0, 0, 7, 0}));
  x.t().select(0, 2).copy_(from_vector(std::vector<double>{5, 6}));
  EXPECT_EQ(x.values<float>(), (std::vector<float>{0, 7, 5, 0, 7, 6}));
}

TEST(Views, SplitAndCatRoundTrip) {
  const Tensor x = grid(4, 7);
  const auto parts = split(x, 3, 1);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[2].shape(), (Shape{4, 1}));
  EXPECT_EQ(parts[0].impl()->storage, x.impl()->storage) << "split returns views";
  EXPECT_EQ(cat(parts, 1).values<float>(), x.values<float>());
  const auto uneven = split(x, std::vector<int64_t>{1, 3}, 0);
  EXPECT_EQ(uneven[1].shape(), (Shape{3, 7}));
  EXPECT_EQ(stack({x, x}, 1).shape(), (Shape{4, 2, 7}));
}
