// The layers against PyTorch: tools/torch_reference.py ran torch's Conv2d, Conv3d, BatchNorm2d and a
// 2-layer bidirectional LSTM in float64 with fixed weights and inputs, back-propagated a fixed output
// gradient, and saved everything in tests/layers/fixtures/torch_reference.safetensors under torch's
// state_dict names. Here our layers load those weights by name and must reproduce outputs, input gradients,
// weight gradients and (BatchNorm) the running statistics.
//
// Tolerance: both sides compute in float64 in different orders, so results differ by rounding only,
// about 1e-15 relative; 1e-10 of the largest reference value leaves room for that and for nothing else (a
// wrong padding, stride, gate order or variance convention is off by far more).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>

#include "autograd/minidl.h"
#include "autograd/safetensors.h"
#include "layers/conv.h"
#include "layers/lstm.h"
#include "layers/norm.h"

using namespace minidl;

namespace {

const std::map<std::string, Tensor>& reference() {
  static const std::map<std::string, Tensor> tensors = [] {
    std::map<std::string, Tensor> m;
    const auto path = std::filesystem::path(__FILE__).parent_path() / "fixtures" / "torch_reference.safetensors";
    for (auto& [name, t] : load_safetensors(path.string())) m[name] = t;
    return m;
  }();
  return tensors;
}

Tensor fixture(const std::string& name) {
  auto it = reference().find(name);
  if (it == reference().end()) throw std::runtime_error("the fixture has no tensor " + name);
  return it->second;
}

// The torch state_dict entries saved under `prefix` (e.g. "conv2d.param."), with the prefix removed.
nn::NamedTensors state(const std::string& prefix) {
  nn::NamedTensors out;
  for (const auto& [name, t] : reference())
    if (name.rfind(prefix, 0) == 0) out.emplace_back(name.substr(prefix.size()), t);
  return out;
}

void expect_close(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what << " is undefined";
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const auto g = got.values<double>(), w = want.values<double>();
  double scale = 1.0, worst = 0.0;
  for (double v : w) scale = std::max(scale, std::fabs(v));
  for (size_t i = 0; i < g.size(); ++i) worst = std::max(worst, std::fabs(g[i] - w[i]));
  EXPECT_LE(worst, 1e-10 * scale) << what << ": largest difference " << worst << " (scale " << scale << ")";
}

// Runs a conv layer on the fixture's input for `prefix` and checks output and every gradient.
void check_conv(nn::ConvNd& conv, const std::string& prefix) {
  conv.to(kFloat64);
  conv.load_state_dict(state(prefix + ".param."));
  Tensor x = fixture(prefix + ".input").clone().detach();
  x.requires_grad_();
  const Tensor y = conv(x);
  expect_close(y, fixture(prefix + ".output0"), prefix + " output");
  sum(y * fixture(prefix + ".grad_output0")).backward();
  expect_close(x.grad(), fixture(prefix + ".grad_input"), prefix + " input gradient");
  expect_close(conv.weight.grad(), fixture(prefix + ".grad_param.weight"), prefix + " weight gradient");
  if (conv.bias.defined())
    expect_close(conv.bias.grad(), fixture(prefix + ".grad_param.bias"), prefix + " bias gradient");
}

}  // namespace

TEST(TorchReference, Conv2dStridedPadded) {
  nn::Conv2d conv(3, 8, 3, 2, 1);
  check_conv(conv, "conv2d");
}

TEST(TorchReference, Conv2dGroupedDilatedAsymmetric) {
  nn::Conv2d conv(4, 6, {3, 2}, {1, 2}, {2, 1}, {2, 1}, 2);
  check_conv(conv, "conv2d_grouped");
}

TEST(TorchReference, Conv3dSpatialHalfOfR2Plus1D) {
  nn::Conv3d conv(3, 5, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}, 1, 1, false);
  check_conv(conv, "conv3d_spatial");
}

TEST(TorchReference, Conv3dTemporalHalfOfR2Plus1D) {
  nn::Conv3d conv(5, 4, {3, 1, 1}, {2, 1, 1}, {1, 0, 0});
  check_conv(conv, "conv3d_temporal");
}

TEST(TorchReference, BatchNorm2dTrainingStepAndEval) {
  nn::BatchNorm2d bn(6);
  bn.to(kFloat64);
  bn.load_state_dict(state("batchnorm2d_train.before."));
  bn.train();
  Tensor x = fixture("batchnorm2d_train.input").clone().detach();
  x.requires_grad_();
  Tensor y = bn(x);
  expect_close(y, fixture("batchnorm2d_train.output0"), "training output");
  sum(y * fixture("batchnorm2d_train.grad_output0")).backward();
  expect_close(x.grad(), fixture("batchnorm2d_train.grad_input"), "training input gradient");
  expect_close(bn.weight.grad(), fixture("batchnorm2d_train.grad_param.weight"), "training weight gradient");
  expect_close(bn.bias.grad(), fixture("batchnorm2d_train.grad_param.bias"), "training bias gradient");
  // The running statistics after the step: momentum 0.1 and the unbiased batch variance.
  for (const auto& [name, t] : bn.named_buffers())
    expect_close(t.to(kFloat64), fixture("batchnorm2d_train.param." + name), "buffer " + name);

  bn.zero_grad();
  bn.eval();
  Tensor xe = fixture("batchnorm2d_eval.input").clone().detach();
  xe.requires_grad_();
  y = bn(xe);
  expect_close(y, fixture("batchnorm2d_eval.output0"), "eval output");
  sum(y * fixture("batchnorm2d_eval.grad_output0")).backward();
  expect_close(xe.grad(), fixture("batchnorm2d_eval.grad_input"), "eval input gradient");
  expect_close(bn.weight.grad(), fixture("batchnorm2d_eval.grad_param.weight"), "eval weight gradient");
  expect_close(bn.bias.grad(), fixture("batchnorm2d_eval.grad_param.bias"), "eval bias gradient");
}

TEST(TorchReference, TwoLayerBidirectionalLstm) {
  nn::LSTM lstm(7, 5, {.num_layers = 2, .bidirectional = true, .batch_first = true});
  lstm.to(kFloat64);
  lstm.load_state_dict(state("lstm.param.inner."));  // torch's own names: weight_ih_l0, ..._reverse
  Tensor x = fixture("lstm.input").clone().detach(), h0 = fixture("lstm.h0").clone().detach(),
         c0 = fixture("lstm.c0").clone().detach();
  for (Tensor* t : {&x, &h0, &c0}) t->requires_grad_();
  const auto [output, h_n, c_n] = lstm(x, h0, c0);
  expect_close(output, fixture("lstm.output0"), "output");
  expect_close(h_n, fixture("lstm.output1"), "h_n");
  expect_close(c_n, fixture("lstm.output2"), "c_n");
  const Tensor loss = sum(output * fixture("lstm.grad_output0")) + sum(h_n * fixture("lstm.grad_output1")) +
                      sum(c_n * fixture("lstm.grad_output2"));
  loss.backward();
  expect_close(x.grad(), fixture("lstm.grad_input"), "input gradient");
  expect_close(h0.grad(), fixture("lstm.grad_h0"), "h0 gradient");
  expect_close(c0.grad(), fixture("lstm.grad_c0"), "c0 gradient");
  int checked = 0;
  for (const auto& [name, p] : lstm.named_parameters()) {
    expect_close(p.grad(), fixture("lstm.grad_param.inner." + name), "gradient of " + name);
    ++checked;
  }
  EXPECT_EQ(checked, 16) << "2 layers x 2 directions x (w_ih, w_hh, b_ih, b_hh)";
}
