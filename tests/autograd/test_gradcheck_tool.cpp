// Tests of gradcheck itself (autograd/gradcheck.h): a tool that never fails proves nothing, so these
// check that it passes a correct op, fails a deliberately wrong backward and names the entry, rejects
// inputs it cannot check with a minidl::Error that says why, and treats NaN as a failure.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "autograd/minidl.h"

namespace minidl {
namespace {

using Inputs = std::vector<Tensor>;
const TensorOptions kF64{.dtype = kFloat64};

Tensor randn_leaf(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  Tensor t = randn(shape, kF64, &gen);
  t.requires_grad_();
  return t;
}

// 2 x in the forward, but a backward that claims 3 x: the classic wrong derivative.
Tensor wrong_double(const Tensor& x) {
  Tensor out = x.detach() * 2.0;  // a fresh tensor with no history
  if (needs_grad(x)) record(out, "wrong_double", {x}, [](const Tensor& g) { return std::vector<Tensor>{g * 3.0}; });
  return out;
}

// 2 x with a correct backward, except that the gradient of element `bad` (row-major) is `value` added on.
Tensor double_with_bad_grad(const Tensor& x, int64_t bad, double value) {
  Tensor out = x.detach() * 2.0;
  if (needs_grad(x)) {
    const Shape shape = x.shape();
    record(out, "double_with_bad_grad", {x}, [shape, bad, value](const Tensor& g) {
      std::vector<double> poison(static_cast<size_t>(numel_of(shape)), 0.0);
      poison[static_cast<size_t>(bad)] = value;
      return std::vector<Tensor>{g * 2.0 + from_vector(poison, shape, kF64)};
    });
  }
  return out;
}

// The message of the minidl::Error that `fn` throws; fails the test if it throws nothing or another type.
template <class Fn>
std::string error_message(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-minidl exception: " << e.what();
    return {};
  }
  ADD_FAILURE() << "did not throw";
  return {};
}

// ---- (a) passes a correct op -----------------------------------------------------------------

TEST(GradcheckTool, PassesCorrectOp) {
  const Tensor a = randn_leaf({3, 4}, 1), b = randn_leaf({4, 2}, 2);
  const GradcheckResult r = gradcheck([](const Inputs& in) { return tanh(matmul(in[0], in[1])); }, {a, b});
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_TRUE(static_cast<bool>(r));
  // Every (output, input element) pair: 6 outputs x (12 + 8) input elements.
  EXPECT_EQ(r.entries, 6 * (12 + 8));
  EXPECT_GE(r.worst_ratio, 0.0);
  EXPECT_LE(r.worst_ratio, 1.0);
  EXPECT_TRUE(r.input == 0 || r.input == 1);
  EXPECT_NE(r.message.find("passed"), std::string::npos) << r.message;
}

TEST(GradcheckTool, CountsOnlyInputsThatRequireGrad) {
  Generator gen(3);
  const Tensor constant = randn({3}, kF64, &gen);
  const Tensor x = randn_leaf({3}, 4);
  const GradcheckResult r = gradcheck([](const Inputs& in) { return mul(in[0], in[1]); }, {constant, x});
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.entries, 3 * 3);
  EXPECT_EQ(r.input, 1);
}

TEST(GradcheckTool, LeavesInputsUnchanged) {
  const Tensor x = randn_leaf({2, 3}, 5);
  const std::vector<double> before = x.values<double>();
  const GradcheckResult r = gradcheck([](const Inputs& in) { return exp(in[0]); }, {x});
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(x.values<double>(), before);  // every perturbation restored exactly
  EXPECT_FALSE(x.grad().defined());       // and no gradient left behind
}

TEST(GradcheckTool, AcceptsNonContiguousLeaves) {
  Generator gen(6);
  const Tensor base = randn({4, 3}, kF64, &gen);
  Tensor x = base.t();  // a permuted leaf view
  x.requires_grad_();
  ASSERT_FALSE(x.is_contiguous());
  const GradcheckResult r = gradcheck([](const Inputs& in) { return in[0] * in[0]; }, {x});
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.entries, 12 * 12);
}

// ---- (b) fails a wrong backward, and names the entry ---------------------------------------------

TEST(GradcheckTool, FailsWrongBackward) {
  const Tensor x = randn_leaf({3}, 7);
  const GradcheckResult r = gradcheck([](const Inputs& in) { return wrong_double(in[0]); }, {x});
  EXPECT_FALSE(r.ok) << r.message;
  EXPECT_FALSE(static_cast<bool>(r));
  EXPECT_EQ(r.entries, 9);
  EXPECT_EQ(r.input, 0);
  // The Jacobian is diagonal, so the worst entry is a diagonal one: input index == output index.
  ASSERT_EQ(r.input_index.size(), 1u);
  EXPECT_EQ(r.input_index, r.output_index);
  EXPECT_DOUBLE_EQ(r.analytic, 3.0);
  EXPECT_NEAR(r.numeric, 2.0, 1e-6);
  // |3 - 2| / (1e-6 + 1e-4 * 2)
  EXPECT_NEAR(r.worst_ratio, 1.0 / (1e-6 + 2e-4), 1.0);
  EXPECT_NE(r.message.find("FAILED"), std::string::npos) << r.message;
}

TEST(GradcheckTool, NamesTheWrongInputAndElement) {
  // Input 0 goes through a correct op; only element [1, 2] of input 1 goes through the wrong one, into a
  // 0-d output. The worst entry is then exactly: input 1, index [1, 2], output index [].
  const Tensor a = randn_leaf({3}, 8), x = randn_leaf({2, 3}, 9);
  const GradcheckResult r = gradcheck(
      [](const Inputs& in) { return sum(tanh(in[0])) + wrong_double(in[1].select(0, 1).select(0, 2)); }, {a, x});
  EXPECT_FALSE(r.ok) << r.message;
  EXPECT_EQ(r.entries, 3 + 6);
  EXPECT_EQ(r.input, 1);
  EXPECT_EQ(r.input_index, (Shape{1, 2}));
  EXPECT_TRUE(r.output_index.empty());
  EXPECT_DOUBLE_EQ(r.analytic, 3.0);
  EXPECT_NEAR(r.numeric, 2.0, 1e-6);
  EXPECT_NE(r.message.find("input 1"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("index [1,2]"), std::string::npos) << r.message;
}

TEST(GradcheckTool, FailsDisconnectedGradient) {
  // f reads the data but records nothing: the analytic Jacobian is 0, the numeric one is 2.
  const Tensor x = randn_leaf({4}, 10);
  const GradcheckResult r = gradcheck([](const Inputs& in) { return in[0].detach() * 2.0; }, {x});
  EXPECT_FALSE(r.ok) << r.message;
  EXPECT_EQ(r.analytic, 0.0);
  EXPECT_NEAR(r.numeric, 2.0, 1e-6);
}

TEST(GradcheckTool, ToleranceOptionsAreUsed) {
  const Tensor x = randn_leaf({3}, 11);
  const GradcheckFn f = [](const Inputs& in) { return wrong_double(in[0]); };
  // |3 - 2| = 1 <= atol 0 + rtol 0.6 * 2: the same wrong gradient passes with a loose enough tolerance...
  const GradcheckResult loose = gradcheck(f, {x}, {.eps = 1e-6, .atol = 0.0, .rtol = 0.6});
  EXPECT_TRUE(loose.ok) << loose.message;
  EXPECT_NEAR(loose.worst_ratio, 1.0 / 1.2, 1e-6);
  // ... and fails just below it.
  const GradcheckResult tight = gradcheck(f, {x}, {.eps = 1e-6, .atol = 0.0, .rtol = 0.4});
  EXPECT_FALSE(tight.ok) << tight.message;
}

TEST(GradcheckTool, ZeroAtolAcceptsExactZeroEntries) {
  // With atol 0, an entry where analytic and numeric are both exactly 0 is 0 / 0 in the ratio; it is an
  // exact match and must count as one, whether it comes early or last in the comparison order.
  const GradcheckOptions relative_only{.eps = 1e-6, .atol = 0.0, .rtol = 1e-4};
  const Tensor x = randn_leaf({3}, 21);
  // exp: zero off-diagonal entries in the middle, the last entry (2, 2) is non-zero.
  const GradcheckResult r1 = gradcheck([](const Inputs& in) { return exp(in[0]); }, {x}, relative_only);
  EXPECT_TRUE(r1.ok) << r1.message;
  EXPECT_FALSE(std::isnan(r1.worst_ratio)) << r1.message;
  // narrow to the first two elements: element 2 feeds no output, so the last entries are all exact zeros.
  const GradcheckResult r2 =
      gradcheck([](const Inputs& in) { return in[0].narrow(0, 0, 2) * 2.0; }, {x}, relative_only);
  EXPECT_TRUE(r2.ok) << r2.message;
  EXPECT_FALSE(std::isnan(r2.worst_ratio)) << r2.message;
}

TEST(GradcheckTool, SmallErrorInOneColumnFails) {
  // Element 3's gradient is off by 1e-3 in every output row. Where the true entry is 0 (outputs other
  // than 3) that is 1e-3 / atol = 1000 x the tolerance, far worse than the diagonal entry (2.001 vs 2,
  // 1e-3 / 2.01e-4 = 5 x), so the worst entry is an off-diagonal one of input element 3.
  const Tensor x = randn_leaf({5}, 12);
  const GradcheckResult r = gradcheck([](const Inputs& in) { return double_with_bad_grad(in[0], 3, 1e-3); }, {x});
  EXPECT_FALSE(r.ok) << r.message;
  EXPECT_EQ(r.input_index, (Shape{3}));
  EXPECT_NE(r.output_index, (Shape{3}));
  EXPECT_NEAR(r.analytic, 1e-3, 1e-15);
  EXPECT_NEAR(r.numeric, 0.0, 1e-9);
  EXPECT_NEAR(r.worst_ratio, 1000.0, 1e-3);
}

// ---- (c) rejects inputs it cannot check -----------------------------------------------------------

TEST(GradcheckTool, RejectsFloat32Input) {
  Tensor x = randn({3}, {.dtype = kFloat32});
  x.requires_grad_();
  const std::string msg = error_message([&] { gradcheck([](const Inputs& in) { return in[0] * 2.0; }, {x}); });
  EXPECT_NE(msg.find("gradcheck"), std::string::npos) << msg;
  EXPECT_NE(msg.find("float32"), std::string::npos) << msg;
  EXPECT_NE(msg.find("float64"), std::string::npos) << msg;
}

TEST(GradcheckTool, RejectsNonLeafInput) {
  const Tensor x = randn_leaf({3}, 13);
  const Tensor y = x * 2.0;  // produced by 'mul', requires grad, not a leaf
  ASSERT_FALSE(y.is_leaf());
  const std::string msg = error_message([&] { gradcheck([](const Inputs& in) { return exp(in[0]); }, {y}); });
  EXPECT_NE(msg.find("not a leaf"), std::string::npos) << msg;
  EXPECT_NE(msg.find("mul"), std::string::npos) << msg;
}

TEST(GradcheckTool, RejectsExpandedInput) {
  Generator gen(14);
  const Tensor base = randn({1, 3}, kF64, &gen);
  Tensor x = base.expand({4, 3});  // a leaf view with a stride-0 dim
  x.requires_grad_();
  ASSERT_TRUE(x.has_overlap());
  const std::string msg = error_message([&] { gradcheck([](const Inputs& in) { return exp(in[0]); }, {x}); });
  EXPECT_NE(msg.find("expanded"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expand inside f"), std::string::npos) << msg;
}

TEST(GradcheckTool, RejectsNoInputRequiringGrad) {
  Generator gen(15);
  const Tensor x = randn({3}, kF64, &gen);
  const std::string msg = error_message([&] { gradcheck([](const Inputs& in) { return exp(in[0]); }, {x}); });
  EXPECT_NE(msg.find("no input requires grad"), std::string::npos) << msg;
}

TEST(GradcheckTool, RejectsNonFloat64Output) {
  const Tensor x = randn_leaf({3}, 16);
  const std::string msg = error_message([&] { gradcheck([](const Inputs& in) { return in[0].to(kFloat32); }, {x}); });
  EXPECT_NE(msg.find("float64"), std::string::npos) << msg;
}

TEST(GradcheckTool, RejectsUndefinedInputAndOutput) {
  const Tensor x = randn_leaf({3}, 17);
  EXPECT_THROW(gradcheck([](const Inputs& in) { return exp(in[0]); }, {x, Tensor()}), Error);
  EXPECT_THROW(gradcheck([](const Inputs&) { return Tensor(); }, {x}), Error);
}

// ---- (d) NaN is a failure -------------------------------------------------------------------------

TEST(GradcheckTool, NanGradientFails) {
  // A backward that returns NaN everywhere.
  const Tensor x = randn_leaf({3}, 18);
  const GradcheckResult r = gradcheck(
      [](const Inputs& in) {
        Tensor out = in[0].detach() * 2.0;
        if (needs_grad(in[0]))
          record(out, "nan_grad", {in[0]},
                 [](const Tensor& g) { return std::vector<Tensor>{g * std::numeric_limits<double>::quiet_NaN()}; });
        return out;
      },
      {x});
  EXPECT_FALSE(r.ok) << r.message;
  EXPECT_TRUE(std::isnan(r.analytic)) << r.message;
  EXPECT_TRUE(std::isnan(r.worst_ratio)) << r.message;
}

TEST(GradcheckTool, NanInFirstEntryFails) {
  // Only element 0's gradient is NaN; every later entry is exact. A NaN compared early must still be
  // the worst entry at the end, not be replaced by the correct entries that come after it.
  const Tensor x = randn_leaf({3}, 19);
  const GradcheckResult r = gradcheck(
      [](const Inputs& in) { return double_with_bad_grad(in[0], 0, std::numeric_limits<double>::quiet_NaN()); }, {x});
  EXPECT_FALSE(r.ok) << r.message;
  EXPECT_TRUE(std::isnan(r.analytic)) << r.message;
  EXPECT_EQ(r.input_index, (Shape{0}));
}

TEST(GradcheckTool, NanInLastEntryFails) {
  const Tensor x = randn_leaf({3}, 20);
  const GradcheckResult r = gradcheck(
      [](const Inputs& in) { return double_with_bad_grad(in[0], 2, std::numeric_limits<double>::quiet_NaN()); }, {x});
  EXPECT_FALSE(r.ok) << r.message;
  EXPECT_TRUE(std::isnan(r.analytic)) << r.message;
}

TEST(GradcheckTool, NanInForwardFails) {
  // sqrt at 0: x - eps is negative, so the numeric derivative is NaN (and the analytic one infinite).
  Tensor x = from_vector(std::vector<double>{1.0, 0.0, 4.0}, {3}, kF64);
  x.requires_grad_();
  const GradcheckResult r = gradcheck([](const Inputs& in) { return sqrt(in[0]); }, {x});
  EXPECT_FALSE(r.ok) << r.message;
  EXPECT_EQ(r.input_index, (Shape{1}));
}

}  // namespace
}  // namespace minidl
