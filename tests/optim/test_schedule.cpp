// Learning-rate schedules: step decay (torch's StepLR and the authors' start-at-epoch-6 variant), cosine
// with linear warm-up, and reduce-on-plateau against sequences run once through torch 1.13's
// ReduceLROnPlateau; the plateau state's round trip; bad settings as errors naming the schedule.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "autograd/minidl.h"
#include "optim/schedule.h"
#include "tests/autograd/expect_error.h"

using namespace minidl;
using namespace minidl::optim;

// ---- StepDecay ---------------------------------------------------------------------------------------

TEST(StepDecay, MatchesTorchStepLR) {
  // torch.optim.lr_scheduler.StepLR(step_size=3, gamma=0.5) from lr 0.1, closed form 0.1 * 0.5^(epoch // 3).
  const StepDecay s{.base = 0.1, .gamma = 0.5, .step_size = 3};
  const std::vector<double> want = {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125};
  for (int64_t e = 0; e < int64_t(want.size()); ++e) EXPECT_DOUBLE_EQ(s.lr(e), want[size_t(e)]) << "epoch " << e;
}

TEST(StepDecay, AuthorsScheduleStartsAtEpochSix) {
  // The authors' train.py: lr 1e-4 (config) for epochs 0..5, then 1e-3 * 0.8^((epoch - 5) // 2).
  const StepDecay s{.base = 1e-4, .gamma = 0.8, .step_size = 2, .start = 6, .base_after = 1e-3, .count_from = 5};
  for (int64_t e = 0; e <= 5; ++e) EXPECT_DOUBLE_EQ(s.lr(e), 1e-4) << "epoch " << e;
  for (int64_t e = 6; e < 60; ++e)
    EXPECT_DOUBLE_EQ(s.lr(e), 1e-3 * std::pow(0.8, double((e - 5) / 2))) << "epoch " << e;
  EXPECT_DOUBLE_EQ(s.lr(6), 1e-3);
  EXPECT_DOUBLE_EQ(s.lr(7), 8e-4);
  EXPECT_DOUBLE_EQ(s.lr(8), 8e-4);
  EXPECT_DOUBLE_EQ(s.lr(9), 6.4e-4);
  EXPECT_NEAR(s.lr(26), 1.07e-4, 5e-7);  // the value in the authors' shipped log at epoch 26
}

TEST(StepDecay, CountFromDefaultsToStart) {
  const StepDecay s{.base = 1e-4, .gamma = 0.8, .step_size = 2, .start = 6, .base_after = 1e-3};
  EXPECT_DOUBLE_EQ(s.lr(5), 1e-4);
  EXPECT_DOUBLE_EQ(s.lr(6), 1e-3);
  EXPECT_DOUBLE_EQ(s.lr(7), 1e-3);
  EXPECT_DOUBLE_EQ(s.lr(8), 8e-4);
  const StepDecay same{.base = 2e-3, .gamma = 0.5, .step_size = 1, .start = 2};  // base_after < 0: base
  EXPECT_DOUBLE_EQ(same.lr(1), 2e-3);
  EXPECT_DOUBLE_EQ(same.lr(2), 2e-3);
  EXPECT_DOUBLE_EQ(same.lr(4), 5e-4);
}

TEST(StepDecay, BadSettingsAreErrors) {
  EXPECT_ERROR((StepDecay{.base = 0.0}.lr(0)), "StepDecay: base must be finite and > 0, got 0");
  EXPECT_ERROR((StepDecay{.gamma = -0.5}.lr(0)), "StepDecay: gamma", "-0.5");
  EXPECT_ERROR((StepDecay{.step_size = 0}.lr(0)), "StepDecay: step_size must be > 0, got 0");
  EXPECT_ERROR((StepDecay{.start = -1}.lr(0)), "StepDecay: start must be >= 0, got -1");
  EXPECT_ERROR((StepDecay{.base_after = 0.0}.lr(0)), "StepDecay: base_after", "got 0");
  EXPECT_ERROR((StepDecay{.start = 3, .count_from = 4}.lr(5)), "StepDecay: count_from (4)", "start (3)");
  EXPECT_ERROR((StepDecay{}.lr(-2)), "StepDecay: epoch must be >= 0, got -2");
}

// ---- CosineWithWarmup ------------------------------------------------------------------------------------

TEST(CosineWithWarmup, WarmUpEndpointsMidpointAndFloor) {
  const CosineWithWarmup c{.base = 1e-3, .min_lr = 1e-5, .warmup_steps = 10, .total_steps = 110};
  EXPECT_EQ(c.lr(0), 0.0);
  EXPECT_DOUBLE_EQ(c.lr(5), 5e-4);
  EXPECT_DOUBLE_EQ(c.lr(9), 9e-4);
  EXPECT_DOUBLE_EQ(c.lr(10), 1e-3);
  EXPECT_DOUBLE_EQ(c.lr(60), (1e-3 + 1e-5) / 2);  // half-way down the cosine
  EXPECT_DOUBLE_EQ(c.lr(35), 1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + std::cos(M_PI / 4)));
  EXPECT_NEAR(c.lr(109), 1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + std::cos(0.99 * M_PI)), 1e-18);  // one step short
  EXPECT_EQ(c.lr(110), 1e-5);
  EXPECT_EQ(c.lr(1000), 1e-5);
  for (int64_t s = 10; s < 110; ++s) EXPECT_GT(c.lr(s), c.lr(s + 1)) << "step " << s;
  for (int64_t s = 0; s < 10; ++s) EXPECT_LT(c.lr(s), c.lr(s + 1)) << "step " << s;
}

TEST(CosineWithWarmup, WithoutWarmUpStartsAtBase) {
  const CosineWithWarmup c{.base = 0.1, .total_steps = 4};
  EXPECT_DOUBLE_EQ(c.lr(0), 0.1);
  EXPECT_DOUBLE_EQ(c.lr(2), 0.05);
  EXPECT_EQ(c.lr(4), 0.0);
}

TEST(CosineWithWarmup, BadSettingsAreErrors) {
  EXPECT_ERROR((CosineWithWarmup{.base = -1}.lr(0)), "CosineWithWarmup: base", "-1");
  EXPECT_ERROR((CosineWithWarmup{.base = 1e-3, .min_lr = 1e-2}.lr(0)), "CosineWithWarmup: min_lr must be in [0, base",
               "0.01");
  EXPECT_ERROR((CosineWithWarmup{.warmup_steps = -1}.lr(0)), "CosineWithWarmup: warmup_steps", "-1");
  EXPECT_ERROR((CosineWithWarmup{.warmup_steps = 5, .total_steps = 5}.lr(0)),
               "CosineWithWarmup: total_steps (5) must exceed warmup_steps (5)");
  EXPECT_ERROR((CosineWithWarmup{}.lr(-1)), "CosineWithWarmup: step must be >= 0, got -1");
}

// ---- ReduceOnPlateau -------------------------------------------------------------------------------------

namespace {
std::vector<double> follow(ReduceOnPlateau& p, const std::vector<double>& metrics, double lr) {
  std::vector<double> out;
  for (double m : metrics) out.push_back(lr = p.observe(m, lr));
  return out;
}
}  // namespace

TEST(ReduceOnPlateau, MinModeReducesWhereTorchDoes) {
  // torch 1.13: ReduceLROnPlateau(SGD(lr=1.0), mode='min', factor=0.5, patience=2), step(metric) per epoch,
  // printing param_groups[0]['lr'] after each. 0.79999 is not an improvement on 0.8 (rel threshold 1e-4).
  ReduceOnPlateau p(/*maximize=*/false, 0.5, 2);
  const std::vector<double> metrics = {1.0, 0.9, 0.95, 0.92, 0.91, 0.8, 0.8, 0.8, 0.8, 0.79999, 0.7, 0.8, 0.8, 0.8};
  const std::vector<double> torch = {1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.25, 0.125};
  EXPECT_EQ(follow(p, metrics, 1.0), torch);
}

TEST(ReduceOnPlateau, MaxModeStopsAtMinLr) {
  // torch 1.13: mode='max', factor=0.1, patience=1, min_lr=0.005, from lr 1.0. The last reduction would go
  // below min_lr and stops on it; after that old - new = 0 <= eps, so nothing changes.
  ReduceOnPlateau p(/*maximize=*/true, 0.1, 1, 1e-4, 0.005);
  const std::vector<double> metrics = {0.1, 0.2, 0.2, 0.25, 0.24, 0.2, 0.26, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1};
  const std::vector<double> torch = {
      1.0,   1.0,   1.0,   1.0,   1.0,  0.1, 0.1, 0.1, 0.010000000000000002, 0.010000000000000002,
      0.005, 0.005, 0.005, 0.005, 0.005};
  EXPECT_EQ(follow(p, metrics, 1.0), torch);
}

TEST(ReduceOnPlateau, ChangesOfAtMostEpsAreNotMade) {
  ReduceOnPlateau p(false, 0.5, 0, 1e-4, 0.0);
  EXPECT_EQ(p.observe(1.0, 1.5e-8), 1.5e-8);  // best so far: no reduction
  EXPECT_EQ(p.observe(1.0, 1.5e-8), 1.5e-8);  // would halve, but the change 7.5e-9 is below eps
  EXPECT_EQ(p.observe(1.0, 1e-6), 5e-7);
}

TEST(ReduceOnPlateau, StateRoundTripContinuesTheSame) {
  const std::vector<double> first = {5.0, 4.0, 4.5, 4.4}, then = {4.3, 4.2, 3.0, 3.5, 3.4, 3.3};
  ReduceOnPlateau a(false, 0.5, 2);
  const double lr = follow(a, first, 0.1).back();
  const auto state = a.state_dict();
  ASSERT_EQ(state.size(), 2u);
  EXPECT_EQ(state[0].first, "best");
  EXPECT_EQ(state[0].second.item(), 4.0);
  EXPECT_EQ(state[1].first, "bad_epochs");
  EXPECT_EQ(state[1].second.item(), 2.0);
  ReduceOnPlateau b(false, 0.5, 2);
  b.load_state_dict(state);
  EXPECT_EQ(follow(b, then, lr), follow(a, then, lr));
  // A fresh state (best = +inf) loads too.
  ReduceOnPlateau c(false), d(false);
  d.load_state_dict(c.state_dict());
  EXPECT_EQ(d.observe(1.0, 0.1), 0.1);
}

TEST(ReduceOnPlateau, BadInputIsAnError) {
  EXPECT_ERROR(ReduceOnPlateau(false, 1.0), "ReduceOnPlateau: factor must be in (0, 1), got 1");
  EXPECT_ERROR(ReduceOnPlateau(false, 0.0), "ReduceOnPlateau: factor", "got 0");
  EXPECT_ERROR(ReduceOnPlateau(false, 0.5, -1), "ReduceOnPlateau: patience must be >= 0, got -1");
  EXPECT_ERROR(ReduceOnPlateau(false, 0.5, 1, -1e-4), "ReduceOnPlateau: threshold", "-0.0001");
  EXPECT_ERROR(ReduceOnPlateau(false, 0.5, 1, 1e-4, -1.0), "ReduceOnPlateau: min_lr", "-1");
  ReduceOnPlateau p(true, 0.5, 3);
  EXPECT_ERROR(p.observe(NAN, 0.1), "ReduceOnPlateau.observe: the metric must be finite, got nan");
  EXPECT_ERROR(p.observe(0.5, -0.1), "ReduceOnPlateau.observe: lr", "-0.1");
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_ERROR(p.load_state_dict({{"best", scalar_tensor(0.5)}}), "ReduceOnPlateau.load_state_dict",
               "missing entry 'bad_epochs'");
  EXPECT_ERROR(p.load_state_dict({{"best", scalar_tensor(inf)}, {"bad_epochs", scalar_tensor(1.0)}}),
               "'best' must be finite (or -inf before the first epoch), got inf");
  EXPECT_ERROR(p.load_state_dict({{"best", scalar_tensor(0.5)}, {"bad_epochs", scalar_tensor(4.0)}}),
               "'bad_epochs' must be a whole number in [0, patience = 3], got 4");
  EXPECT_ERROR(p.load_state_dict({{"best", zeros({2})}, {"bad_epochs", scalar_tensor(0.0)}, {"x", scalar_tensor(0.0)}}),
               "'best' must hold one value", "unexpected entry 'x'");
}
