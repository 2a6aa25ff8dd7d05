// Initialisers (torch.nn.init): fans of Linear- and Conv-shaped weights, the bounds of the uniform ones,
// the spread of the normal ones, determinism under a seeded Generator, in-place writes into parameters
// and views, and errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "autograd/minidl.h"
#include "layers/init.h"
#include "layers/linear.h"
#include "tests/autograd/expect_error.h"

using namespace minidl;
namespace init = minidl::nn::init;

namespace {

struct Stats {
  double min, max, mean, std;
};

Stats stats(const Tensor& t) {
  const std::vector<double> v = t.values<double>();
  Stats s{v[0], v[0], 0, 0};
  for (double x : v) {
    s.min = std::min(s.min, x);
    s.max = std::max(s.max, x);
    s.mean += x;
  }
  s.mean /= static_cast<double>(v.size());
  for (double x : v) s.std += (x - s.mean) * (x - s.mean);
  s.std = std::sqrt(s.std / static_cast<double>(v.size()));
  return s;
}

// All values in [-bound, bound], and the extremes within 1% of the bound: with n >= 10^4 uniform draws the
// chance that none falls in the outer 1% at one end is (0.995)^n < 10^-21.
void expect_uniform_within(const Tensor& t, double bound) {
  const Stats s = stats(t);
  EXPECT_GE(s.min, -bound);
  EXPECT_LE(s.max, bound);
  EXPECT_LT(s.min, -0.99 * bound);
  EXPECT_GT(s.max, 0.99 * bound);
  EXPECT_NEAR(s.mean, 0.0, 0.02 * bound);
}

// Sample mean within 6 standard errors (std / sqrt(n)) and sample std within 2% (its standard error is
// about std / sqrt(2 n): 0.3% for n = 10^5, so 2% is a margin of over 6 of them).
void expect_normal(const Tensor& t, double mean, double std) {
  const Stats s = stats(t);
  const double n = static_cast<double>(t.numel());
  EXPECT_NEAR(s.mean, mean, 6.0 * std / std::sqrt(n));
  EXPECT_NEAR(s.std, std, 0.02 * std);
}

}  // namespace

TEST(Init, FansOfLinearAndConvWeights) {
  EXPECT_EQ(init::fans(zeros({3, 5})), std::make_pair(int64_t{5}, int64_t{3}));               // Linear(5, 3)
  EXPECT_EQ(init::fans(zeros({16, 3, 5, 7})), std::make_pair(int64_t{105}, int64_t{560}));    // as torch gives
  EXPECT_EQ(init::fans(zeros({8, 4, 3, 3, 3})), std::make_pair(int64_t{108}, int64_t{216}));  // Conv3d
  EXPECT_EQ(init::fans(zeros({6, 2, 5})), std::make_pair(int64_t{10}, int64_t{30}));          // Conv1d
  EXPECT_ERROR(init::fans(zeros({5})), "init.fans", "at least 2 dims", "[5]");
  EXPECT_ERROR(init::fans(scalar_tensor(1.0)), "init.fans", "[]");
}

TEST(Init, UniformStaysInItsRange) {
  Generator gen(1);
  Tensor t = zeros({200, 300});
  init::uniform_(t, -0.3, 0.7, &gen);
  const Stats s = stats(t);
  EXPECT_GE(s.min, -0.3);
  EXPECT_LT(s.max, 0.7);
  EXPECT_LT(s.min, -0.29);
  EXPECT_GT(s.max, 0.69);
  EXPECT_NEAR(s.mean, 0.2, 0.01);
}

TEST(Init, KaimingUniformBounds) {
  Generator gen(2);
  Tensor w = zeros({256, 512});
  init::kaiming_uniform_(w, 0.0, "fan_in", &gen);  // ReLU gain sqrt(2): bound sqrt(6 / fan_in)
  expect_uniform_within(w, std::sqrt(6.0 / 512));
  init::kaiming_uniform_(w, 0.0, "fan_out", &gen);
  expect_uniform_within(w, std::sqrt(6.0 / 256));
  Tensor conv = zeros({64, 32, 3, 3});                // fan_in 288
  init::kaiming_uniform_(conv, 1.0, "fan_in", &gen);  // gain sqrt(2 / 2) = 1: bound sqrt(3 / 288)
  expect_uniform_within(conv, std::sqrt(3.0 / 288));
}

TEST(Init, LinearDefaultIsTorchs) {
  // kaiming_uniform_(a = sqrt(5)): gain sqrt(1/3), bound sqrt(3) gain / sqrt(fan_in) = 1 / sqrt(fan_in);
  // the bias draws from the same range.
  Generator gen(3);
  nn::Linear lin(400, 300, true, &gen);
  expect_uniform_within(lin.weight, 1.0 / std::sqrt(400.0));
  const Stats b = stats(lin.bias);
  EXPECT_GE(b.min, -0.05);
  EXPECT_LE(b.max, 0.05);
  EXPECT_GT(b.max - b.min, 0.09);  // 300 draws spread over most of [-0.05, 0.05]
}

TEST(Init, XavierBounds) {
  Generator gen(4);
  Tensor w = zeros({300, 200});
  init::xavier_uniform_(w, 2.0, &gen);
  expect_uniform_within(w, 2.0 * std::sqrt(6.0 / 500));
  Tensor conv = zeros({32, 16, 5, 5});  // fans 400 and 800
  init::xavier_uniform_(conv, 1.0, &gen);
  expect_uniform_within(conv, std::sqrt(6.0 / 1200));
}

TEST(Init, NormalSpreads) {
  Generator gen(5);
  Tensor t = zeros({100000});
  init::normal_(t, 1.5, 0.2, &gen);
  expect_normal(t, 1.5, 0.2);
  Tensor w = zeros({512, 256});
  init::kaiming_normal_(w, 0.0, "fan_in", &gen);
  expect_normal(w, 0.0, std::sqrt(2.0 / 256));
  init::kaiming_normal_(w, 0.5, "fan_out", &gen);
  expect_normal(w, 0.0, std::sqrt(2.0 / 1.25) / std::sqrt(512.0));
  Tensor x = zeros({400, 600}, {.dtype = kFloat64});
  init::xavier_normal_(x, 1.0, &gen);
  EXPECT_EQ(x.dtype(), kFloat64);
  expect_normal(x, 0.0, std::sqrt(2.0 / 1000));
}

TEST(Init, SeededGeneratorIsDeterministic) {
  Tensor a = zeros({7, 9}), b = zeros({7, 9}), c = zeros({7, 9});
  Generator g1(11), g2(11), g3(12);
  init::kaiming_uniform_(a, 0.0, "fan_in", &g1);
  init::kaiming_uniform_(b, 0.0, "fan_in", &g2);
  init::kaiming_uniform_(c, 0.0, "fan_in", &g3);
  EXPECT_EQ(a.values<float>(), b.values<float>());
  EXPECT_NE(a.values<float>(), c.values<float>());
  // The stream advances: a second draw differs from the first.
  init::kaiming_uniform_(b, 0.0, "fan_in", &g2);
  EXPECT_NE(a.values<float>(), b.values<float>());
  // The global generator is reproducible through manual_seed.
  manual_seed(99);
  init::normal_(a, 0.0, 1.0);
  manual_seed(99);
  init::normal_(b, 0.0, 1.0);
  EXPECT_EQ(a.values<float>(), b.values<float>());
}

TEST(Init, WritesInPlaceIntoParametersAndViews) {
  // A leaf that requires grad, with grad mode on, as a module's parameter is.
  Tensor p = zeros({4, 6});
  p.requires_grad_();
  const Tensor alias = p;
  init::xavier_uniform_(p);
  EXPECT_TRUE(alias.is_same(p));
  EXPECT_TRUE(p.requires_grad());
  EXPECT_TRUE(p.is_leaf());
  EXPECT_NE(stats(p).max, 0.0);
  init::constant_(p, 0.5);
  EXPECT_EQ(p.values<float>(), std::vector<float>(24, 0.5f));
  init::zeros_(p);
  EXPECT_EQ(p.values<float>(), std::vector<float>(24, 0.0f));

  // Through a view: only the viewed rows change.
  Tensor base = zeros({4, 6});
  Tensor rows = base.narrow(0, 1, 2);
  init::uniform_(rows, 1.0, 2.0);
  const std::vector<float> v = base.values<float>();
  for (int i = 0; i < 24; ++i) {
    if (i >= 6 && i < 18)
      EXPECT_GE(v[i], 1.0f) << i;
    else
      EXPECT_EQ(v[i], 0.0f) << i;
  }
  // A transposed (non-contiguous) target.
  Tensor t = zeros({5, 3}).t();
  init::normal_(t, 3.0, 0.0);
  EXPECT_EQ(t.values<float>(), std::vector<float>(15, 3.0f));
}

TEST(Init, EmptyTensorsAreANoOp) {
  Tensor e = zeros({0, 5});
  init::kaiming_uniform_(e);
  init::xavier_normal_(e);
  init::uniform_(e, 0.0, 1.0);
  EXPECT_EQ(e.shape(), (Shape{0, 5}));
}

TEST(Init, Errors) {
  Tensor w = zeros({3, 4});
  EXPECT_ERROR(init::kaiming_uniform_(w, 0.0, "fan_avg"), "init.kaiming_uniform_", "\"fan_avg\"");
  EXPECT_ERROR(init::kaiming_normal_(w, 0.0, "in"), "init.kaiming_normal_", "\"in\"");
  Tensor v = zeros({5});
  EXPECT_ERROR(init::kaiming_uniform_(v), "init.kaiming_uniform_", "at least 2 dims", "[5]");
  EXPECT_ERROR(init::xavier_normal_(v), "init.xavier_normal_", "at least 2 dims", "[5]");
  Tensor i = zeros({3, 4}, {.dtype = kInt64});
  EXPECT_ERROR(init::uniform_(i, 0.0, 1.0), "init.uniform_", "int64[3,4]");
  EXPECT_ERROR(init::constant_(i, 1.0), "init.constant_", "int64");
  Tensor undefined;
  EXPECT_ERROR(init::normal_(undefined, 0.0, 1.0), "init.normal_", "undefined");
  EXPECT_ERROR(init::uniform_(w, 1.0, 0.0), "init.uniform_", "[1, 0)");
  EXPECT_ERROR(init::normal_(w, 0.0, -1.0), "init.normal_", "std", "-1");
  Tensor expanded = zeros({1, 4}).expand({3, 4});
  EXPECT_ERROR(init::uniform_(expanded, 0.0, 1.0), "init.uniform_", "expanded", "[3,4]");
}
