// TemporalBlock and TCN (layers/tcn.h): output shapes, torch's parameter names, the 1x1 downsample only where
// the width changes, causality and the receptive field, the residual path, dropout only in training, a
// gradcheck of a tiny TCN, and errors that name the layer and the shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/minidl.h"
#include "layers/init.h"
#include "layers/tcn.h"
#include "tests/autograd/expect_error.h"
#include "tests/autograd/gradcheck_helpers.h"

namespace minidl {
namespace {

using gradcheck_test::expect_gradcheck;
using gradcheck_test::kF64;

// Weights of order 1 instead of locuslab's N(0, 0.01), so that every input a output depends on moves it
// visibly (the causality tests compare exact values).
void spread_weights(nn::Module& m, uint64_t seed) {
  Generator gen(seed);
  for (auto& [name, p] : m.named_parameters()) nn::init::uniform_(p, -0.6, 0.6, &gen);
}

TEST(TCN, OutputShape) {
  nn::TCN tcn(3, {4, 4, 6}, 3, 0.1);
  EXPECT_EQ(tcn(ones({2, 3, 10})).shape(), (Shape{2, 6, 10}));
  EXPECT_EQ(tcn(ones({1, 3, 1})).shape(), (Shape{1, 6, 1}));
  nn::TemporalBlock block(5, 5, 2, 4, 0.0);
  EXPECT_EQ(block(ones({3, 5, 7})).shape(), (Shape{3, 5, 7}));
}

TEST(TCN, ParameterNamesAndDownsampleOnlyWhereWidthsDiffer) {
  nn::TCN tcn(3, {4, 4, 6}, 5, 0.1);
  const std::vector<std::pair<std::string, Shape>> want{
      {"network.0.conv1.weight", {4, 3, 5}},      {"network.0.conv1.bias", {4}},
      {"network.0.conv2.weight", {4, 4, 5}},      {"network.0.conv2.bias", {4}},
      {"network.0.downsample.weight", {4, 3, 1}}, {"network.0.downsample.bias", {4}},
      {"network.1.conv1.weight", {4, 4, 5}},      {"network.1.conv1.bias", {4}},
      {"network.1.conv2.weight", {4, 4, 5}},      {"network.1.conv2.bias", {4}},
      {"network.2.conv1.weight", {6, 4, 5}},      {"network.2.conv1.bias", {6}},
      {"network.2.conv2.weight", {6, 6, 5}},      {"network.2.conv2.bias", {6}},
      {"network.2.downsample.weight", {6, 4, 1}}, {"network.2.downsample.bias", {6}}};
  const nn::NamedTensors got = tcn.state_dict();
  ASSERT_EQ(got.size(), want.size());
  for (size_t k = 0; k < want.size(); ++k) {
    EXPECT_EQ(got[k].first, want[k].first);
    EXPECT_EQ(got[k].second.shape(), want[k].second) << got[k].first;
  }
  EXPECT_TRUE(tcn.block(0).has_downsample());
  EXPECT_FALSE(tcn.block(1).has_downsample());
  EXPECT_TRUE(tcn.block(2).has_downsample());
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(tcn.block(i).conv1.dilation(), std::vector<int64_t>{int64_t{1} << i});
    EXPECT_TRUE(tcn.block(i).conv1.causal());
    EXPECT_TRUE(tcn.block(i).conv2.causal());
  }
  // locuslab's init: conv weights from N(0, 0.01).
  for (double v : tcn.block(1).conv2.weight.values<double>()) EXPECT_LT(std::fabs(v), 0.08);
  EXPECT_EQ(tcn.receptive_field(), 1 + 2 * 4 * 7);
  EXPECT_EQ(tcn.describe(), "TCN(3, channels=[4, 4, 6], kernel=5)");
}

TEST(TCN, CausalWithTheStatedReceptiveField) {
  // kernel 3, 3 levels: an output at t sees inputs t - 28 .. t.
  nn::TCN tcn(2, {3, 3, 2}, 3, 0.1);
  tcn.to(kFloat64);
  tcn.eval();
  spread_weights(tcn, 800);
  const int64_t T = 40, rf = tcn.receptive_field();
  ASSERT_EQ(rf, 29);
  Generator gen(801);
  const Tensor x = rand({2, 2, T}, kF64, &gen, -1, 1);
  const Tensor y = tcn(x);
  for (int64_t t : {0, 5, 30, 38}) {
    SCOPED_TRACE(::testing::Message() << "t = " << t);
    // Changing every input after t leaves every output up to t exactly as it was.
    Tensor later = x.clone();
    later.narrow(2, t + 1, T - t - 1).copy_(rand({2, 2, T - t - 1}, kF64, &gen, -1, 1));
    const Tensor y2 = tcn(later);
    EXPECT_EQ(y.narrow(2, 0, t + 1).values<double>(), y2.narrow(2, 0, t + 1).values<double>());
    EXPECT_NE(y.narrow(2, t + 1, T - t - 1).values<double>(), y2.narrow(2, t + 1, T - t - 1).values<double>());
    // The oldest input it sees moves it; one step older does not.
    if (t - rf + 1 >= 0) {
      Tensor oldest = x.clone(), older = x.clone();
      oldest.narrow(2, t - rf + 1, 1).fill_(5.0);
      EXPECT_NE(tcn(oldest).select(2, t).values<double>(), y.select(2, t).values<double>());
      if (t - rf >= 0) {
        older.narrow(2, t - rf, 1).fill_(5.0);
        EXPECT_EQ(tcn(older).select(2, t).values<double>(), y.select(2, t).values<double>());
      }
    }
  }
}

TEST(TCN, ResidualIsTheInputOrItsDownsample) {
  // With both convolutions zeroed the block reduces to LeakyReLU(residual).
  Generator gen(810);
  const Tensor x = rand({2, 3, 6}, kF64, &gen, -1, 1);
  for (int64_t out : {3, 5}) {
    nn::TemporalBlock block(3, out, 3, 2, 0.2, {.negative_slope = 0.1});
    block.to(kFloat64);
    block.eval();
    for (Tensor* p : {&block.conv1.weight, &block.conv1.bias, &block.conv2.weight, &block.conv2.bias})
      nn::init::zeros_(*p);
    const Tensor residual = out == 3 ? x : conv(x, block.downsample->weight.detach(), block.downsample->bias.detach());
    const Tensor want = leaky_relu(residual, 0.1), got = block(x);
    EXPECT_EQ(got.values<double>(), want.values<double>()) << "out = " << out;
  }
}

TEST(TCN, DropoutInTrainingOnly) {
  Generator masks(820);
  for (bool channels : {false, true}) {
    nn::TCN tcn(3, {4, 4}, 3, 0.5, {.channel_dropout = channels}, &masks);
    spread_weights(tcn, 821);
    const Tensor x = rand({2, 3, 12}, {}, &masks, -1, 1);
    tcn.eval();
    const Tensor a = tcn(x), b = tcn(x);
    EXPECT_EQ(a.values<float>(), b.values<float>());
    tcn.train();
    EXPECT_NE(tcn(x).values<float>(), a.values<float>());
    EXPECT_NE(tcn.summary().find(channels ? "(dropout1): Dropout1d(" : "(dropout1): Dropout("), std::string::npos)
        << tcn.summary();
  }
}

TEST(TCN, GradcheckTinyTcn) {
  Generator gen(830);
  nn::TCN tcn(2, {3, 3, 2}, 2, 0.1, {.negative_slope = 0.2}, &gen);
  tcn.to(kFloat64);
  tcn.eval();
  spread_weights(tcn, 831);
  // gradcheck perturbs its inputs in place, so the module's own parameters can be inputs.
  std::vector<Tensor> inputs{rand({2, 2, 9}, kF64, &gen, -1, 1).requires_grad_()};
  for (const Tensor& p : tcn.parameters()) inputs.push_back(p);
  expect_gradcheck([&tcn](const std::vector<Tensor>& in) { return tcn(in[0]); }, inputs);
}

TEST(TCNErrors, NameTheLayerAndTheShapes) {
  EXPECT_ERROR(nn::TCN(3, {}), "TCN:", "channels is empty");
  EXPECT_ERROR(nn::TCN(3, {4, 0}), "TemporalBlock:", "out (0)");
  EXPECT_ERROR(nn::TemporalBlock(3, 4, 0, 1, 0.1), "TemporalBlock:", "kernel (0)");
  EXPECT_ERROR(nn::TemporalBlock(3, 4, 3, 1, 1.0), "TemporalBlock:", "dropout", "got 1");
  nn::TCN tcn(3, {4}, 3, 0.1);
  EXPECT_ERROR(tcn(ones({2, 5, 10})), "TCN(3, channels=[4], kernel=3)", "[B, 3, T]", "float32[2,5,10]");
  EXPECT_ERROR(tcn(ones({3, 10})), "TCN(3, channels=[4], kernel=3)", "float32[3,10]");
  EXPECT_ERROR(tcn.block(0)(ones({2, 4, 10})), "TemporalBlock(3, 4, kernel=3, dilation=1)", "[B, 3, T]",
               "float32[2,4,10]");
  EXPECT_ERROR(tcn.block(3), "TCN:", "no block 3");
}

}  // namespace
}  // namespace minidl
