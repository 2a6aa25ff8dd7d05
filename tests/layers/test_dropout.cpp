// dropout and channel_dropout (autograd/ops_dropout.cpp) and the layers Dropout, Dropout1d/2d/3d
// (layers/dropout.cpp): the share of zeros, the scaling of the kept values, reproducible masks, evaluation
// mode, the exact gradient, whole-channel masks, and the error messages.
//
// Statistical tolerance. With n independent draws the number of zeros is Binomial(n, p), standard
// deviation sigma = sqrt(n p (1 - p)); the checks accept |zeros - n p| <= 5 sigma. A correct
// implementation fails that with probability below 6e-7 for an arbitrary seed; with the fixed seeds here
// the outcome is deterministic, so the check can only fail by a change of the mask rule.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "autograd/minidl.h"
#include "layers/dropout.h"
#include "tests/autograd/expect_error.h"
#include "tests/autograd/gradcheck_helpers.h"

namespace minidl {
namespace {

using namespace gradcheck_test;

// Values in [1, 2): never 0, so a 0 in the output was dropped.
Tensor positive(const Shape& shape, uint64_t seed, DType dtype = kFloat32) {
  Generator gen(seed);
  return rand(shape, {.dtype = dtype}, &gen, 1.0, 2.0);
}

void expect_zero_share(int64_t zeros_count, int64_t n, double p) {
  const double sigma = std::sqrt(n * p * (1 - p));
  EXPECT_LE(std::fabs(static_cast<double>(zeros_count) - n * p), 5 * sigma)
      << zeros_count << " zeros out of " << n << " for p = " << p;
}

TEST(DropoutOp, ShareOfZerosIsNearP) {
  const int64_t n = 200000;
  for (const double p : {0.1, 0.5, 0.8}) {
    Generator gen(1);
    const std::vector<float> y = dropout(positive({n}, 2), p, true, &gen).values<float>();
    int64_t z = 0;
    for (float v : y) z += v == 0.0f;
    expect_zero_share(z, n, p);
  }
}

TEST(DropoutOp, KeptValuesAreScaledExactly) {
  // A kept element is x * float(1 / (1 - p)), one rounding: compared bit for bit in both dtypes.
  for (const DType dt : {kFloat32, kFloat64}) {
    const double p = 0.3;
    const Tensor x = positive({1000}, 3, dt);
    Generator gen(4);
    const std::vector<double> xv = x.values<double>(), yv = dropout(x, p, true, &gen).values<double>();
    int64_t kept = 0;
    for (size_t i = 0; i < xv.size(); ++i) {
      if (yv[i] == 0) continue;
      ++kept;
      if (dt == kFloat32)
        ASSERT_EQ(static_cast<float>(yv[i]), static_cast<float>(xv[i]) * static_cast<float>(1.0 / (1.0 - p))) << i;
      else
        ASSERT_EQ(yv[i], xv[i] * (1.0 / (1.0 - p))) << i;
    }
    EXPECT_GT(kept, 0);
  }
}

TEST(DropoutOp, MaskIsTheBernoulliStreamOfTheGenerator) {
  // Element i is kept when bernoulli(1 - p) of the same stream gives 1: the rule documented in
  // autograd/random.h, which the CUDA side shares. The draw advances the generator by one value per element.
  const double p = 0.4;
  const Tensor x = positive({7, 9}, 5);
  Generator a(6), b(6);
  const std::vector<float> y = dropout(x, p, true, &a).values<float>();
  const std::vector<float> keep = bernoulli({7, 9}, 1 - p, {}, &b).values<float>();
  for (size_t i = 0; i < y.size(); ++i) EXPECT_EQ(y[i] != 0.0f, keep[i] == 1.0f) << i;
  EXPECT_EQ(a.offset(), b.offset());
  EXPECT_EQ(a.offset(), (63u + 3) / 4);
  // A view draws in its own row-major order, as if it were contiguous.
  const Tensor xt = x.t();
  const std::vector<float> yt = dropout(xt, p, true, &a).values<float>(), xv = xt.values<float>();
  const std::vector<float> keep_t = bernoulli({9, 7}, 1 - p, {}, &b).values<float>();
  for (size_t i = 0; i < yt.size(); ++i)
    EXPECT_EQ(yt[i], keep_t[i] == 1.0f ? xv[i] * static_cast<float>(1.0 / (1.0 - p)) : 0.0f) << i;
}

TEST(DropoutOp, SameSeedSameMask) {
  const Tensor x = positive({64, 33}, 7);
  Generator a(8), b(8), c(9);
  const std::vector<float> ya = dropout(x, 0.5, true, &a).values<float>();
  EXPECT_EQ(ya, dropout(x, 0.5, true, &b).values<float>());
  EXPECT_NE(ya, dropout(x, 0.5, true, &c).values<float>());
  EXPECT_NE(ya, dropout(x, 0.5, true, &a).values<float>());  // the next draw of a stream is a new mask
  // The default generator, re-seeded, repeats itself too.
  manual_seed(10);
  const std::vector<float> d1 = dropout(x, 0.5, true).values<float>();
  manual_seed(10);
  EXPECT_EQ(d1, dropout(x, 0.5, true).values<float>());
}

TEST(DropoutOp, EvalAndZeroPReturnTheInputItself) {
  const Tensor x = positive({5, 6}, 11);
  Generator gen(12);
  EXPECT_TRUE(dropout(x, 0.5, false, &gen).is_same(x));
  EXPECT_TRUE(dropout(x, 0.0, true, &gen).is_same(x));
  EXPECT_TRUE(channel_dropout(x, 0.5, false, &gen).is_same(x));
  EXPECT_TRUE(channel_dropout(x, 0.0, true, &gen).is_same(x));
  EXPECT_EQ(gen.offset(), 0u);  // nothing drawn
}

TEST(DropoutOp, GradientIsTheScaledMask) {
  // dL/dx = dL/dy * mask / (1 - p), exactly: the mask is rebuilt from the same stream here.
  for (const double p : {0.2, 0.75}) {
    Tensor x = positive({40, 25}, 13).requires_grad_();
    Generator gen(14), again(14);
    const Tensor y = dropout(x, p, true, &gen);
    Generator gg(15);
    const Tensor g = randn(y.shape(), {}, &gg);
    y.backward(g);
    const std::vector<float> keep = bernoulli(x.shape(), 1 - p, {}, &again).values<float>();
    const std::vector<float> gv = g.values<float>(), gx = x.grad().values<float>();
    const float scale = static_cast<float>(1.0 / (1.0 - p));
    for (size_t i = 0; i < gx.size(); ++i) ASSERT_EQ(gx[i], gv[i] * (keep[i] * scale)) << i;
  }
}

TEST(DropoutOp, GradcheckWithAFixedMask) {
  // A fresh generator with the same seed in every call: f is then a fixed linear map, which gradcheck can
  // differentiate numerically.
  expect_gradcheck(
      [](const Inputs& in) {
        Generator gen(16);
        return dropout(in[0], 0.4, true, &gen);
      },
      {randn_leaf({4, 5}, 17)});
  expect_gradcheck(
      [](const Inputs& in) {
        Generator gen(18);
        return channel_dropout(in[0], 0.5, true, &gen);
      },
      {randn_leaf({3, 4, 2}, 19)});
}

TEST(DropoutOp, POneZeroesEverything) {
  Tensor x = positive({6, 7}, 20).requires_grad_();
  Generator gen(21);
  const Tensor y = dropout(x, 1.0, true, &gen);
  EXPECT_EQ(y.values<float>(), std::vector<float>(42, 0.0f));
  sum(y).backward();
  EXPECT_EQ(x.grad().values<float>(), std::vector<float>(42, 0.0f));  // no 0 * inf = NaN from 1 / (1 - p)
  EXPECT_EQ(channel_dropout(x.detach(), 1.0, true, &gen).values<float>(), std::vector<float>(42, 0.0f));
  EXPECT_EQ(gen.offset(), 0u);
}

TEST(ChannelDropoutOp, ZeroesWholeChannels) {
  const int64_t B = 50, C = 40, S = 6;
  const double p = 0.3;
  Tensor x = positive({B, C, 2, 3}, 22).requires_grad_();
  Generator gen(23);
  const Tensor y = channel_dropout(x, p, true, &gen);
  EXPECT_EQ(gen.offset(), static_cast<uint64_t>((B * C + 3) / 4));  // one draw per (batch, channel)
  sum(y).backward();
  const std::vector<float> xv = x.values<float>(), yv = y.values<float>(), gx = x.grad().values<float>();
  const float scale = static_cast<float>(1.0 / (1.0 - p));
  int64_t dropped = 0;
  for (int64_t k = 0; k < B * C; ++k) {
    const bool zero = yv[k * S] == 0.0f;
    dropped += zero;
    for (int64_t s = 0; s < S; ++s) {
      const int64_t i = k * S + s;
      ASSERT_EQ(yv[i], zero ? 0.0f : xv[i] * scale) << "channel " << k << " element " << s;
      ASSERT_EQ(gx[i], zero ? 0.0f : scale) << "channel " << k << " element " << s;
    }
  }
  expect_zero_share(dropped, B * C, p);
}

TEST(ChannelDropoutOp, TwoDimensionalInputDropsSingleFeatures) {
  // [B, C] has one element per channel: the mask is per element, drawn from the same stream as dropout.
  const Tensor x = positive({8, 5}, 24);
  Generator a(25), b(25);
  EXPECT_EQ(channel_dropout(x, 0.5, true, &a).values<float>(), dropout(x, 0.5, true, &b).values<float>());
}

// ---- layers -------------------------------------------------------------------------------------------

TEST(DropoutModule, TrainEvalAndGenerator) {
  Generator gen(30), ref(30);
  nn::Dropout drop(0.25, &gen);
  EXPECT_EQ(drop.describe(), "Dropout(p=0.25, inplace=False)");
  EXPECT_EQ(drop.parameter_count(), 0);
  const Tensor x = positive({10, 10}, 31);
  EXPECT_EQ(drop(x).values<float>(), dropout(x, 0.25, true, &ref).values<float>());
  drop.eval();
  EXPECT_TRUE(drop(x).is_same(x));
  drop.train();
  EXPECT_FALSE(drop(x).is_same(x));
  EXPECT_EQ(nn::Dropout().describe(), "Dropout(p=0.5, inplace=False)");
}

TEST(DropoutModule, ChannelDropoutLayers) {
  Generator gen(32), ref(32);
  nn::Dropout2d d2(0.5, &gen);
  EXPECT_EQ(d2.describe(), "Dropout2d(p=0.5, inplace=False)");
  const Tensor x = positive({3, 4, 5, 5}, 33);
  EXPECT_EQ(d2(x).values<float>(), channel_dropout(x, 0.5, true, &ref).values<float>());
  // An unbatched sample [C, H, W] is a batch of one.
  const Tensor u = positive({4, 5, 5}, 34);
  const Tensor yu = d2(u);
  EXPECT_EQ(yu.shape(), u.shape());
  EXPECT_EQ(yu.values<float>(), channel_dropout(u.unsqueeze(0), 0.5, true, &ref).values<float>());
  d2.eval();
  EXPECT_TRUE(d2(u).is_same(u));
  nn::Dropout1d d1(0.1);
  nn::Dropout3d d3(0.1);
  EXPECT_EQ(d1.type_name(), "Dropout1d");
  EXPECT_EQ(d3(positive({2, 2, 2, 2, 2}, 35)).shape(), (Shape{2, 2, 2, 2, 2}));
  EXPECT_EQ(d1(positive({2, 3, 4}, 36)).shape(), (Shape{2, 3, 4}));
}

// ---- errors -------------------------------------------------------------------------------------------

TEST(DropoutErrors, MessagesNameOpAndShapes) {
  const Tensor x = ones({2, 3});
  EXPECT_ERROR(dropout(x, -0.1, true), "dropout:", "p", "[0, 1]", "-0.1", "[2,3]");
  EXPECT_ERROR(dropout(x, 1.5, false), "dropout:", "1.5");  // checked in evaluation mode too
  EXPECT_ERROR(dropout(x, std::nan(""), true), "dropout:", "nan");
  EXPECT_ERROR(channel_dropout(x, 2.0, true), "channel_dropout:", "2", "[2,3]");
  EXPECT_ERROR(channel_dropout(ones({5}), 0.5, true), "channel_dropout:", "[5]", "at least 2 dims");
  EXPECT_ERROR(dropout(ones({3}, {.dtype = kInt64}), 0.5, true), "dropout:", "int64");
  EXPECT_ERROR(nn::Dropout(1.2), "Dropout:", "1.2");
  EXPECT_ERROR(nn::Dropout2d(-1), "Dropout2d:", "-1");
  nn::Dropout2d d2(0.5);
  EXPECT_ERROR(d2(ones({2, 3})), "Dropout2d(p=0.5", "4-D", "[2,3]");
  nn::Dropout1d d1(0.5);
  EXPECT_ERROR(d1(ones({2, 3, 4, 5})), "Dropout1d(p=0.5", "3-D", "[2,3,4,5]");
}

}  // namespace
}  // namespace minidl
