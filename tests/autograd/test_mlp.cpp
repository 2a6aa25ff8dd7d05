// End to end on the core alone: a small MLP learns a non-linear regression with a hand-written
// momentum-SGD loop (apps/mlp_regression.h), on the CPU.
#include <gtest/gtest.h>

#include "apps/mlp_regression.h"

using namespace minidl;

TEST(Training, MlpFitsANonLinearRegression) {
  demo::MlpConfig cfg;  // 512 samples, 2-32-32-1 tanh, 1500 full-batch steps, lr 0.05, momentum 0.9
  const std::vector<double> losses = demo::train_mlp(cfg);
  ASSERT_EQ(losses.size(), static_cast<size_t>(cfg.steps));
  // The target's variance is about 0.38: predicting the mean scores that. The fitted net must explain
  // over 98% of it (MSE < 0.005); a net that learned only the linear part stays near 0.05.
  EXPECT_GT(losses.front(), 0.05);
  EXPECT_LT(losses.back(), 0.005) << "first loss " << losses.front();
  EXPECT_LT(losses.back(), losses.front() / 20);
}

TEST(Training, SameSeedSameLossCurve) {
  demo::MlpConfig cfg;
  cfg.steps = 50;
  EXPECT_EQ(demo::train_mlp(cfg), demo::train_mlp(cfg)) << "a fixed seed must reproduce the run bit for bit";
}
