// The backward engine: accumulation through shared subexpressions and diamonds, no_grad, detach,
// retain_graph, long chains, leaves used twice, saved-tensor versions, thread-local grad mode.
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "autograd/minidl.h"

using namespace minidl;

namespace {

Tensor leaf(std::vector<double> v, Shape shape = {}) {
  Tensor t = from_vector(v, shape, {.dtype = kFloat64});
  t.requires_grad_();
  return t;
}

}  // namespace

TEST(Engine, ScalarBackwardSeedsOne) {
  Tensor x = leaf({3.0});
  Tensor y = x * x * x;  // dy/dx = 3x^2 = 27
  y.backward();
  EXPECT_DOUBLE_EQ(x.grad().item(), 27.0);
}

TEST(Engine, LeafUsedTwiceAccumulates) {
  Tensor x = leaf({2.0, -1.0});
  Tensor y = sum(x * x + x);  // dy/dx = 2x + 1
  y.backward();
  EXPECT_EQ(x.grad().values<double>(), (std::vector<double>{5.0, -1.0}));
}

TEST(Engine, DiamondSumsBothPaths) {
  // x -> a = 2x, b = x^2 -> c = a * b = 2x^3; dc/dx = 6x^2.
  Tensor x = leaf({1.5});
  Tensor a = x * 2.0, b = x * x;
  Tensor c = a * b;
  c.backward();
  EXPECT_DOUBLE_EQ(x.grad().item(), 6.0 * 1.5 * 1.5);
}

TEST(Engine, SharedSubexpressionRunsItsBackwardOnce) {
  // s = exp(x) feeds three consumers; its node must receive the summed gradient and run once.
  Tensor x = leaf({0.5});
  Tensor s = exp(x);
  Tensor y = s + s * 2.0 + s * s;  // dy/dx = e^x (1 + 2 + 2 e^x)
  y.backward();
  const double e = std::exp(0.5);
  EXPECT_NEAR(x.grad().item(), e * (3.0 + 2.0 * e), 1e-12);
}

TEST(Engine, GradAccumulatesAcrossBackwardCallsUntilZeroed) {
  Tensor x = leaf({1.0, 2.0});
  sum(x * 3.0).backward();
  sum(x * 3.0).backward();
  EXPECT_EQ(x.grad().values<double>(), (std::vector<double>{6.0, 6.0}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
  sum(x).backward();
  EXPECT_EQ(x.grad().values<double>(), (std::vector<double>{1.0, 1.0}));
}

TEST(Engine, AccumulatedGradDoesNotAliasAnotherLeafs) {
  // add's backward hands the same tensor to both inputs; the leaves must own separate gradients.
  Tensor a = leaf({1.0}), b = leaf({1.0});
  (a + b).backward();
  a.grad().add_(ones({1}, {.dtype = kFloat64}));
  EXPECT_DOUBLE_EQ(b.grad().item(), 1.0);
}

TEST(Engine, BackwardWithExplicitGradient) {
  Tensor x = leaf({1, 2, 3});
  Tensor y = x * 2.0;
  y.backward(from_vector(std::vector<double>{1, 10, 100}, {}, {.dtype = kFloat64}));
  EXPECT_EQ(x.grad().values<double>(), (std::vector<double>{2, 20, 200}));
}

TEST(Engine, NoGradRecordsNothing) {
  Tensor x = leaf({1.0});
  Tensor y;
  {
    NoGradGuard guard;
    EXPECT_FALSE(grad_enabled());
    y = x * 2.0;
  }
  EXPECT_TRUE(grad_enabled());
  EXPECT_FALSE(y.requires_grad());
  EXPECT_EQ(y.grad_fn(), nullptr);
  EXPECT_THROW(y.backward(), Error);
}

TEST(Engine, NoGradIsThreadLocal) {
  Tensor x = leaf({1.0});
  NoGradGuard guard;
  bool recorded_in_other_thread = false;
  std::thread t([&] { recorded_in_other_thread = (x * 2.0).requires_grad(); });
  t.join();
  EXPECT_TRUE(recorded_in_other_thread);
  EXPECT_FALSE((x * 2.0).requires_grad());
}

TEST(Engine, NoGradGuardRestoresOnException) {
  try {
    NoGradGuard guard;
    throw std::runtime_error("boom");
  } catch (const std::runtime_error&) {
  }
  EXPECT_TRUE(grad_enabled());
}

TEST(Engine, DetachCutsTheGraph) {
  Tensor x = leaf({2.0});
  Tensor y = x * x;
  Tensor z = y.detach() * x;  // only the direct path through x counts: dz/dx = y = 4
  z.backward();
  EXPECT_DOUBLE_EQ(x.grad().item(), 4.0);
  EXPECT_FALSE(y.detach().requires_grad());
  EXPECT_EQ(y.detach().impl()->storage, y.impl()->storage) << "detach shares the data";
}

TEST(Engine, SecondBackwardNeedsRetainGraph) {
  Tensor x = leaf({3.0});
  Tensor y = exp(x);
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();  // allowed: the first kept the graph
  EXPECT_NEAR(x.grad().item(), 2 * std::exp(3.0), 1e-9);
  try {
    y.backward();
    FAIL() << "a third backward through a freed graph must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("retain_graph"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("exp"), std::string::npos) << e.what();
  }
}

TEST(Engine, LongChainDoesNotOverflowTheStack) {
  // 10,000 recorded ops, backward through all of them, then the whole chain destroyed.
  Tensor x = leaf({1.0});
  Tensor y = x;
  for (int i = 0; i < 10000; ++i) y = y * 1.0001;
  y.backward();
  EXPECT_NEAR(x.grad().item(), std::pow(1.0001, 10000), 1e-9);
  // A much longer chain is only built and dropped: the node destructor must not recurse either.
  Tensor z = x;
  for (int i = 0; i < 200000; ++i) z = z + 0.0;
  z = Tensor();
  SUCCEED();
}

TEST(Engine, GradientsFlowOnlyToInputsThatRequireThem) {
  Tensor w = leaf({2.0});
  Tensor c = from_vector(std::vector<double>{5.0}, {}, {.dtype = kFloat64});  // a constant
  Tensor y = w * c;
  y.backward();
  EXPECT_DOUBLE_EQ(w.grad().item(), 5.0);
  EXPECT_FALSE(c.grad().defined());
}

TEST(Engine, BackwardFromALeafSetsItsOwnGrad) {
  Tensor x = leaf({1.0, 2.0});
  x.backward(ones({2}, {.dtype = kFloat64}));
  EXPECT_EQ(x.grad().values<double>(), (std::vector<double>{1.0, 1.0}));
}

TEST(Engine, ModifyingASavedTensorIsDetected) {
  Tensor w = leaf({2.0});
  Tensor x = from_vector(std::vector<double>{3.0}, {}, {.dtype = kFloat64});
  Tensor y = w * x;  // mul saves x for w's gradient
  x.fill_(100.0);    // x does not require grad, so this is allowed, but the graph saw the old value
  try {
    y.backward();
    FAIL() << "backward must refuse a saved tensor that was modified in place";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mul"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("in place"), std::string::npos) << e.what();
  }
}

TEST(Engine, OptimizerStyleUpdateUnderNoGrad) {
  // The pattern a training loop uses: backward, then update the leaf in place without recording.
  Tensor w = leaf({1.0, -1.0});
  for (int step = 0; step < 3; ++step) {
    Tensor loss = sum(w * w);
    loss.backward();
    {
      NoGradGuard guard;
      w.add_(w.grad(), -0.25);
    }
    w.zero_grad();
  }
  // w <- w - 0.25 * 2w = 0.5 w each step.
  EXPECT_EQ(w.values<double>(), (std::vector<double>{0.125, -0.125}));
  EXPECT_TRUE(w.is_leaf());
}

TEST(Engine, ViewsOfLeavesPropagateToTheLeaf) {
  Tensor x = leaf({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor y = sum(x.t().narrow(0, 1, 2) * 2.0);  // picks columns 1 and 2 of x
  y.backward();
  EXPECT_EQ(x.grad().values<double>(), (std::vector<double>{0, 2, 2, 0, 2, 2}));
}

TEST(Engine, RequiresGradOnlyOnFloatLeaves) {
  Tensor i = arange(3, {.dtype = kInt64});
  EXPECT_THROW(i.requires_grad_(), Error);
  Tensor x = leaf({1.0});
  Tensor y = x * 2.0;
  EXPECT_THROW(y.requires_grad_(false), Error);
  EXPECT_FALSE(y.is_leaf());
  EXPECT_TRUE(x.is_leaf());
}

namespace {
// A two-output op recorded as one node: (2x, 3x).
std::pair<Tensor, Tensor> twice_and_thrice(const Tensor& x) {
  Tensor a = x.detach() * 2.0, b = x.detach() * 3.0;
  if (needs_grad(x))
    record_multi({&a, &b}, "twice_and_thrice", {x}, [](const std::vector<Tensor>& g) {
      Tensor gx;
      if (g[0].defined()) gx = g[0] * 2.0;
      if (g[1].defined()) gx = gx.defined() ? gx + g[1] * 3.0 : g[1] * 3.0;
      return std::vector<Tensor>{gx};
    });
  return {a, b};
}
}  // namespace

TEST(Engine, MultiOutputNodesRouteEachGradientToItsSlot) {
  Tensor x = leaf({1.0, 2.0});
  auto [a, b] = twice_and_thrice(x);
  EXPECT_EQ(a.grad_fn(), b.grad_fn()) << "one node for both outputs";
  sum(b).backward();  // only the second output is used
  EXPECT_EQ(x.grad().values<double>(), (std::vector<double>{3.0, 3.0}));
  x.zero_grad();
  auto [c, d] = twice_and_thrice(x);
  sum(c * 10.0 + d + d.narrow(0, 1, 1).expand({2})).backward();  // both outputs, one of them twice
  // x0: 10*2 + 3 = 23; x1: 10*2 + 3 + 2*3 (d[1] is expanded to both elements) = 29.
  EXPECT_EQ(x.grad().values<double>(), (std::vector<double>{23.0, 29.0}));
}
