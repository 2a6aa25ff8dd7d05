// Anomaly detection (autograd/anomaly.h): a NaN made in a forward (log of a negative) and an Inf made in a
// backward (sqrt at 0) are each caught at the op that made them, with the op, the module, the pass and
// the shapes named; a value passed on from the data is told apart; off, the same computations run on.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/minidl.h"
#include "layers/module.h"

using namespace minidl;

namespace {

// The message of the minidl::Error that fn throws ("" if none).
template <class F>
std::string error_of(F&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_has(const std::string& text, const std::string& part) {
  EXPECT_NE(text.find(part), std::string::npos) << "expected \"" << part << "\" in:\n" << text;
}

// log inside a module named "head" of a parent, so the error can name its path.
struct Log : nn::Unary {
  std::string type_name() const override { return "Log"; }
  Tensor forward(const Tensor& x) override { return log(x); }
};
struct Net : nn::Module {
  Log head;
  Net() { register_module("head", &head); }
  std::string type_name() const override { return "Net"; }
};

}  // namespace

TEST(Anomaly, ForwardNaNIsCaughtAtTheOpThatMadeIt) {
  Net net;
  const Tensor x = from_vector(std::vector<float>{1.0f, -2.0f, 3.0f}, {3}, {.requires_grad = true});
  const DetectAnomalyGuard on;
  const std::string msg = error_of([&] { net.head(x * 2.0); });
  expect_has(msg, "anomaly detection: the forward of 'log' (module head");
  expect_has(msg, "1 NaN and 0 Inf among the 3 elements of float32[3] on cpu (the first at flat index 1)");
  expect_has(msg, "Its inputs were finite");
  expect_has(msg, "this op made the value");
}

TEST(Anomaly, BackwardInfIsCaughtAtTheRuleThatMadeIt) {
  const Tensor x = from_vector(std::vector<double>{0.0, 1.0, 4.0}, {3}, {.dtype = kFloat64, .requires_grad = true});
  const DetectAnomalyGuard on;
  const Tensor y = sum(sqrt(x));  // finite forward; d sqrt / dx = 1 / (2 sqrt(x)) is Inf at 0
  const std::string msg = error_of([&] { y.backward(); });
  expect_has(msg, "anomaly detection: the backward of 'sqrt' (outside any module) made a non-finite gradient");
  expect_has(msg, "for its input 0: 0 NaN and 1 Inf among the 3 elements of float64[3] on cpu");
  expect_has(msg, "The gradients it received were finite: this rule made the value");
  expect_has(msg, "recorded in the forward by 'sqrt' (outside any module, inside sqrt)");
  expect_has(msg, "with inputs float64[3] on cpu;");
  EXPECT_FALSE(x.grad().defined()) << "the engine stopped before handing the gradient on";
}

TEST(Anomaly, AValueFromTheDataIsToldApartFromOneAnOpMade) {
  const Tensor w = from_vector(std::vector<float>{1.0f, 2.0f}, {2}, {.requires_grad = true});
  const Tensor data = from_vector(std::vector<float>{NAN, 1.0f}, {2});
  const DetectAnomalyGuard on;
  const std::string msg = error_of([&] { mul(data, w); });
  expect_has(msg, "the forward of 'mul'");
  expect_has(msg, "Its input 0 (float32[2] on cpu) was already non-finite, so the value came from before this op");
}

TEST(Anomaly, OffTheSameRunsProceed) {
  EXPECT_FALSE(anomaly_detection_enabled());
  const Tensor x = from_vector(std::vector<double>{0.0, 1.0, 4.0}, {3}, {.dtype = kFloat64, .requires_grad = true});
  sum(sqrt(x)).backward();
  EXPECT_TRUE(std::isinf(x.grad().values<double>()[0]));
  const Tensor y = log(from_vector(std::vector<float>{-1.0f}, {1}, {.requires_grad = true}));
  EXPECT_TRUE(std::isnan(y.item()));
  {
    const DetectAnomalyGuard on;
    EXPECT_TRUE(anomaly_detection_enabled());
    const DetectAnomalyGuard nested;
  }
  EXPECT_FALSE(anomaly_detection_enabled()) << "each guard restores what it found";
  const DetectAnomalyGuard off(false);
  EXPECT_FALSE(anomaly_detection_enabled());
}

TEST(Anomaly, FiniteRunsAreUnchanged) {
  const Tensor w = from_vector(std::vector<double>{0.5, -0.25}, {2}, {.dtype = kFloat64, .requires_grad = true});
  const Tensor x = from_vector(std::vector<double>{1.0, 2.0}, {2}, {.dtype = kFloat64});
  sum(tanh(w * x)).backward();
  const std::vector<double> plain = w.grad().values<double>();
  w.zero_grad();
  {
    const DetectAnomalyGuard on;
    sum(tanh(w * x)).backward();
  }
  EXPECT_EQ(w.grad().values<double>(), plain);
}
