// The backbones against torchvision. tools/backbone_reference.py wrote three fixtures:
//   backbone_names.safetensors     the state_dict names and shapes of torchvision's r2plus1d_18 and resnet18
//                                  (1-channel conv1), fc removed: ours at the paper widths must equal them;
//   backbone_r2plus1d / _audio     torchvision's own block classes at widths (3, 4, 6, 8), 2 blocks, stem 5,
//                                  in float64: weights, an input, and the outputs and gradients of
//                                  sum(out * r) in eval mode, plus a training-mode step (outputs, the
//                                  BatchNorm gradients, the updated running statistics).
// Tolerance: float64 on both sides in different summation orders, so results differ by rounding only
// (about 1e-15 relative); 1e-9 of each tensor's largest reference value leaves room for that and nothing
// else - a wrong stride, padding, midplanes or residual is off by order 1.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

#include "autograd/minidl.h"
#include "autograd/safetensors.h"
#include "layers/norm.h"
#include "models/backbones.h"

using namespace minidl;
using models::AudioResNet;
using models::R2Plus1D;

namespace {

// The presets' backbone settings (models/config.cpp: tiny, small, paper; stem = round(45 w0 / 64)).
const std::vector<int64_t> kTinyWidths{8, 16, 32, 64}, kSmallWidths{16, 32, 64, 128}, kPaperWidths{64, 128, 256, 512};

struct Fixture {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
};

const Fixture& fixture(const std::string& file) {
  static std::map<std::string, Fixture> cache;
  auto it = cache.find(file);
  if (it != cache.end()) return it->second;
  Fixture f;
  const auto path = std::filesystem::path(__FILE__).parent_path() / "fixtures" / file;
  for (auto& [name, t] : load_safetensors(path.string(), &f.metadata)) f.tensors[name] = t;
  return cache.emplace(file, std::move(f)).first->second;
}

Tensor get(const Fixture& f, const std::string& name) {
  auto it = f.tensors.find(name);
  if (it == f.tensors.end()) throw std::runtime_error("the fixture has no tensor " + name);
  return it->second;
}

// The entries under `prefix` with the prefix removed.
nn::NamedTensors with_prefix(const Fixture& f, const std::string& prefix) {
  nn::NamedTensors out;
  for (const auto& [name, t] : f.tensors)
    if (name.rfind(prefix, 0) == 0) out.emplace_back(name.substr(prefix.size()), t);
  return out;
}

// Largest |got - want| over the largest |want| (at least 1e-300), the figure the tolerance bounds.
double relative_error(const Tensor& got, const Tensor& want) {
  const auto g = got.values<double>(), w = want.values<double>();
  double scale = 1e-300, worst = 0.0;
  for (double v : w) scale = std::max(scale, std::fabs(v));
  for (size_t i = 0; i < g.size(); ++i) worst = std::max(worst, std::fabs(g[i] - w[i]));
  return worst / scale;
}

// Checks each pair and reports the worst error of the group, so the margin to the tolerance is visible.
struct Comparison {
  std::string what;
  double worst = 0.0;
  int count = 0;
  void expect(const Tensor& got, const Tensor& want, const std::string& name) {
    ASSERT_TRUE(got.defined()) << what << " " << name << " is undefined";
    ASSERT_EQ(got.shape(), want.shape()) << what << " " << name;
    const double err = relative_error(got, want);
    EXPECT_LE(err, 1e-9) << what << " " << name;
    worst = std::max(worst, err);
    ++count;
  }
  ~Comparison() { std::printf("[ figures  ] %s: %d tensors, worst relative error %.2e\n", what.c_str(), count, worst); }
};

bool same(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.values<double>() == b.values<double>();
}

std::vector<int64_t> fixture_widths() { return {3, 4, 6, 8}; }

// Builds the fixture's network, in float64, with the fixture's weights loaded by name.
template <class Net>
std::unique_ptr<Net> load_net(const Fixture& f);
template <>
std::unique_ptr<R2Plus1D> load_net(const Fixture& f) {
  auto net = std::make_unique<R2Plus1D>(fixture_widths(), 2, 5);
  net->to(kFloat64);
  net->load_state_dict(with_prefix(f, "param."));
  return net;
}
template <>
std::unique_ptr<AudioResNet> load_net(const Fixture& f) {
  auto net = std::make_unique<AudioResNet>(fixture_widths(), 2);
  net->to(kFloat64);
  net->load_state_dict(with_prefix(f, "param."));
  return net;
}

template <class Net>
void check_eval(const std::string& file) {
  const Fixture& f = fixture(file);
  auto net = load_net<Net>(f);
  net->eval();
  Tensor x = get(f, "input").to(kFloat64).detach();
  x.requires_grad_();
  const Tensor y = (*net)(x);
  Comparison c{file + " eval"};
  c.expect(y, get(f, "eval.output"), "output");
  sum(y * get(f, "grad_output").to(kFloat64)).backward();
  c.expect(x.grad(), get(f, "eval.grad_input"), "input gradient");
  int grads = 0;
  for (const auto& [name, p] : net->named_parameters()) {
    c.expect(p.grad(), get(f, "eval.grad." + name), name + " gradient");
    ++grads;
  }
  EXPECT_EQ(grads, static_cast<int>(with_prefix(f, "eval.grad.").size()));
  // Eval mode must leave the running statistics alone.
  for (const auto& [name, t] : net->named_buffers()) EXPECT_TRUE(same(t, get(f, "param." + name))) << name;
}

template <class Net>
void check_train(const std::string& file) {
  const Fixture& f = fixture(file);
  auto net = load_net<Net>(f);
  net->train();
  Tensor x = get(f, "input").to(kFloat64).detach();
  x.requires_grad_();
  const Tensor y = (*net)(x);
  Comparison c{file + " train"};
  c.expect(y, get(f, "train.output"), "output");
  sum(y * get(f, "grad_output").to(kFloat64)).backward();
  c.expect(x.grad(), get(f, "train.grad_input"), "input gradient");
  const auto params = net->named_parameters();
  std::map<std::string, Tensor> by_name(params.begin(), params.end());
  for (const auto& [name, want] : with_prefix(f, "train.grad.")) c.expect(by_name.at(name).grad(), want, name);
  const auto buffers = net->named_buffers();
  ASSERT_EQ(buffers.size(), with_prefix(f, "train.state.").size());
  for (const auto& [name, t] : buffers) c.expect(t.to(kFloat64), get(f, "train.state." + name).to(kFloat64), name);
}

// "name shape" lines from the names fixture, against ours.
void check_names(const nn::Module& net, const std::string& key) {
  const auto& meta = fixture("backbone_names.safetensors").metadata;
  ASSERT_TRUE(meta.count(key)) << key;
  std::istringstream lines(meta.at(key));
  std::vector<std::string> want;
  for (std::string line; std::getline(lines, line);) want.push_back(line);
  std::vector<std::string> got;
  for (const auto& [name, t] : net.state_dict()) {
    std::string dims;
    for (int64_t d : t.shape()) {
      if (!dims.empty()) dims += ',';
      dims += std::to_string(d);
    }
    got.push_back(name + " " + dims);
  }
  ASSERT_EQ(got.size(), want.size()) << key;
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], want[i]) << key << " entry " << i;
  EXPECT_EQ(std::to_string(net.parameter_count()), meta.at(key + "_parameters"));
}

bool has(const nn::NamedTensors& list, const std::string& name) {
  for (const auto& [n, t] : list)
    if (n == name) return true;
  return false;
}

template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

// ---- torchvision's names and shapes ----

TEST(BackboneNames, R2Plus1DPaperEqualsTorchvision) {
  R2Plus1D net(kPaperWidths, 2, 45);
  check_names(net, "r2plus1d_18");
  // Hard-coded too, so a regenerated fixture cannot silently move the target (torchvision 0.14).
  const auto sd = net.state_dict();
  EXPECT_EQ(sd.size(), 222u);
  EXPECT_EQ(net.parameter_count(), 31300125);
  EXPECT_EQ(sd[0].first, "stem.0.weight");
  EXPECT_EQ(sd[0].second.shape(), (Shape{45, 3, 1, 7, 7}));
  EXPECT_EQ(sd[6].first, "stem.3.weight");
  EXPECT_EQ(sd[6].second.shape(), (Shape{64, 45, 3, 1, 1}));
  EXPECT_EQ(sd[12].first, "layer1.0.conv1.0.0.weight");
  EXPECT_EQ(sd[12].second.shape(), (Shape{144, 64, 1, 3, 3}));
  EXPECT_EQ(sd[18].first, "layer1.0.conv1.0.3.weight");
  EXPECT_EQ(sd[19].first, "layer1.0.conv1.1.weight");
  EXPECT_EQ(sd[30].first, "layer1.0.conv2.0.3.weight");
  EXPECT_EQ(sd[221].first, "layer4.1.conv2.1.num_batches_tracked");
  std::map<std::string, Tensor> tensors(sd.begin(), sd.end());
  EXPECT_EQ(tensors.at("layer2.0.conv1.0.0.weight").shape(), (Shape{230, 64, 1, 3, 3}));
  EXPECT_EQ(tensors.at("layer2.0.conv2.0.0.weight").shape(), (Shape{230, 128, 1, 3, 3}));  // midplanes of (64, 128)
  EXPECT_EQ(tensors.at("layer2.1.conv1.0.0.weight").shape(), (Shape{288, 128, 1, 3, 3}));
  EXPECT_EQ(tensors.at("layer4.0.downsample.0.weight").shape(), (Shape{512, 256, 1, 1, 1}));
  EXPECT_FALSE(tensors.count("layer1.0.downsample.0.weight"));
  EXPECT_FALSE(tensors.count("fc.weight"));
  EXPECT_EQ(net.out_features(), 512);
}

TEST(BackboneNames, AudioResNetPaperEqualsTorchvision) {
  AudioResNet net(kPaperWidths, 2);
  check_names(net, "resnet18_1ch");
  const auto sd = net.state_dict();
  EXPECT_EQ(sd.size(), 120u);
  EXPECT_EQ(net.parameter_count(), 11170240);
  EXPECT_EQ(sd[0].first, "conv1.weight");
  EXPECT_EQ(sd[0].second.shape(), (Shape{64, 1, 7, 7}));
  EXPECT_EQ(sd[6].first, "layer1.0.conv1.weight");
  EXPECT_EQ(sd[30].first, "layer2.0.conv1.weight");
  EXPECT_EQ(sd[30].second.shape(), (Shape{128, 64, 3, 3}));
  EXPECT_EQ(sd[119].first, "layer4.1.bn2.num_batches_tracked");
  std::map<std::string, Tensor> tensors(sd.begin(), sd.end());
  EXPECT_EQ(tensors.at("layer2.0.downsample.0.weight").shape(), (Shape{128, 64, 1, 1}));
  EXPECT_EQ(tensors.at("layer2.0.downsample.1.running_var").shape(), (Shape{128}));
  EXPECT_EQ(net.out_features(), 512);
}

TEST(BackboneNames, SummaryShowsTorchvisionTree) {
  R2Plus1D video(kTinyWidths, 1, 6);
  const std::string s = video.summary();
  EXPECT_NE(s.find("R2Plus1D(widths=[8, 16, 32, 64], blocks=1, stem_width=6)"), std::string::npos) << s;
  EXPECT_NE(s.find("(0): Conv2Plus1D"), std::string::npos) << s;
  EXPECT_NE(s.find("BasicBlock(8, 16, stride=2, midplanes="), std::string::npos) << s;
  EXPECT_NE(s.find("(avgpool): AdaptiveAvgPool3d"), std::string::npos) << s;
  AudioResNet audio(kTinyWidths, 1);
  EXPECT_EQ(audio.describe(), "AudioResNet(widths=[8, 16, 32, 64], blocks=1)");
  EXPECT_NE(audio.summary().find("(maxpool): MaxPool2d(kernel_size=3, stride=2, padding=1)"), std::string::npos);
}

// ---- against torchvision's outputs and gradients ----

TEST(BackboneReference, R2Plus1DEval) { check_eval<R2Plus1D>("backbone_r2plus1d.safetensors"); }
TEST(BackboneReference, R2Plus1DTrainingStep) { check_train<R2Plus1D>("backbone_r2plus1d.safetensors"); }
TEST(BackboneReference, AudioResNetEval) { check_eval<AudioResNet>("backbone_audio.safetensors"); }
TEST(BackboneReference, AudioResNetTrainingStep) { check_train<AudioResNet>("backbone_audio.safetensors"); }

// ---- initialisation ----

TEST(BackboneInit, KaimingNormalFanOutAndSeeded) {
  Generator g1(7), g2(7);
  R2Plus1D a(kTinyWidths, 1, 6, &g1), b(kTinyWidths, 1, 6, &g2);
  const auto sa = a.state_dict(), sb = b.state_dict();
  for (size_t i = 0; i < sa.size(); ++i) EXPECT_TRUE(same(sa[i].second, sb[i].second)) << sa[i].first;
  std::map<std::string, Tensor> t(sa.begin(), sa.end());
  // layer4.0.conv2.0.0: [115, 64, 1, 3, 3], fan_out = 115 * 9, std sqrt(2 / fan_out) over 66,240 draws.
  const Tensor w = t.at("layer4.0.conv2.0.0.weight");
  ASSERT_EQ(w.shape(), (Shape{115, 64, 1, 3, 3}));
  const double sd = std::sqrt(var(w, {}, 0).item()), want = std::sqrt(2.0 / (115 * 9));
  EXPECT_NEAR(sd, want, 0.02 * want);
  EXPECT_NEAR(mean(w).item(), 0.0, 0.02 * want);
  EXPECT_TRUE(same(t.at("layer4.0.conv2.1.weight"), ones({64})));
  EXPECT_TRUE(same(t.at("layer4.0.conv2.1.bias"), zeros({64})));
  AudioResNet audio(kTinyWidths, 1, &g1);
  std::map<std::string, Tensor> at;
  for (auto& [n, v] : audio.state_dict()) at[n] = v;
  const Tensor c = at.at("layer4.0.conv2.weight");  // [64, 64, 3, 3], fan_out 576
  EXPECT_NEAR(std::sqrt(var(c, {}, 0).item()), std::sqrt(2.0 / 576), 0.02 * std::sqrt(2.0 / 576));
}

// ---- shapes for the presets ----

TEST(BackboneShapes, TinyPreset) {
  R2Plus1D video(kTinyWidths, 1, 6);
  AudioResNet audio(kTinyWidths, 1);
  EXPECT_EQ(video(randn({2, 3, 4, 32, 32})).shape(), (Shape{2, 64}));
  EXPECT_EQ(audio(randn({2, 1, 32, 48})).shape(), (Shape{2, 64}));
  EXPECT_EQ(video.out_features(), 64);
  EXPECT_EQ(audio.out_features(), 64);
}

TEST(BackboneShapes, SmallPreset) {
  R2Plus1D video(kSmallWidths, 2, 11);
  AudioResNet audio(kSmallWidths, 2);
  video.eval();
  audio.eval();
  NoGradGuard no_grad;
  EXPECT_EQ(video(randn({2, 3, 8, 64, 64})).shape(), (Shape{2, 128}));
  EXPECT_EQ(audio(randn({2, 1, 64, 104})).shape(), (Shape{2, 128}));
}

// One clip, forward only: the paper R(2+1)D is about 20 GFLOP per 8-frame clip.
TEST(BackboneShapes, PaperPresetForward) {
  R2Plus1D video(kPaperWidths, 2, 45);
  AudioResNet audio(kPaperWidths, 2);
  video.eval();
  audio.eval();
  NoGradGuard no_grad;
  const Tensor v = video(randn({1, 3, 8, 112, 112}));
  EXPECT_EQ(v.shape(), (Shape{1, 512}));
  EXPECT_TRUE(std::isfinite(sum(v).item()));
  EXPECT_EQ(audio(randn({1, 1, 64, 104})).shape(), (Shape{1, 512}));
}

// No size reaches 0: 1 frame of 1x1 works, odd sizes round up; the feature is always [N, widths.back()].
TEST(BackboneShapes, SmallestAndOddInputs) {
  R2Plus1D video(kTinyWidths, 1, 6);
  AudioResNet audio(kTinyWidths, 1);
  EXPECT_EQ(video(randn({2, 3, 1, 1, 1})).shape(), (Shape{2, 64}));
  EXPECT_EQ(video(randn({1, 3, 3, 17, 5})).shape(), (Shape{1, 64}));  // training: last map 1x2x1, 2 values
  EXPECT_EQ(audio(randn({2, 1, 1, 1})).shape(), (Shape{2, 64}));
  EXPECT_EQ(audio(randn({1, 1, 7, 33})).shape(), (Shape{1, 64}));  // last map 1x2
  video.eval();
  audio.eval();
  EXPECT_EQ(video(randn({1, 3, 1, 1, 1})).shape(), (Shape{1, 64}));  // eval: one value per channel is fine
  EXPECT_EQ(audio(randn({1, 1, 1, 1})).shape(), (Shape{1, 64}));
}

// ---- training mode ----

TEST(BackboneTraining, TinyStepUpdatesRunningStatsAndGradients) {
  Generator gen(3);
  R2Plus1D video(kTinyWidths, 1, 6, &gen);
  AudioResNet audio(kTinyWidths, 1, &gen);
  for (nn::Module* net : std::vector<nn::Module*>{&video, &audio}) {
    std::map<std::string, Tensor> before;
    for (auto& [n, t] : net->named_buffers()) before[n] = t.clone();
    const Tensor y = net == &video ? video(randn({4, 3, 4, 32, 32}, {}, &gen)) : audio(randn({4, 1, 32, 48}, {}, &gen));
    sum(y * randn(y.shape(), {}, &gen)).backward();
    for (auto& [n, t] : net->named_buffers()) {
      if (n.find("num_batches_tracked") != std::string::npos)
        EXPECT_EQ(t.item(), 1.0) << n;
      else
        EXPECT_FALSE(same(t, before.at(n))) << n << " did not change";
    }
    for (auto& [n, p] : net->named_parameters()) {
      ASSERT_TRUE(p.grad().defined()) << n;
      EXPECT_GT(sum(abs(p.grad())).item(), 0.0) << n;
    }
  }
}

// ---- errors ----

TEST(BackboneErrors, BadInputsNameTheModuleAndShape) {
  R2Plus1D video(kTinyWidths, 1, 6);
  AudioResNet audio(kTinyWidths, 1);
  auto expect_error = [](auto&& fn, const std::vector<std::string>& parts) {
    const std::string msg = error_of(fn);
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  };
  expect_error(
      [&] {
        video(randn({2, 3, 32, 32}));
      },
      {"R2Plus1D(widths=[8, 16, 32, 64]", "[N, 3, T, H, W]", "[2,3,32,32]"});
  expect_error([&] { video(randn({2, 1, 4, 32, 32})); }, {"R2Plus1D", "[2,1,4,32,32]"});
  expect_error([&] { video(randn({2, 3, 0, 32, 32})); }, {"R2Plus1D", "empty in dim 2"});
  expect_error([&] { video(randn({2, 3, 4, 32, 32}, {.dtype = kFloat64})); }, {"R2Plus1D", "float64", "float32"});
  expect_error([&] { video(randn({1, 3, 4, 16, 16})); }, {"R2Plus1D", "more than 1 value per channel"});
  expect_error([&] { video(Tensor()); }, {"R2Plus1D"});
  expect_error(
      [&] {
        audio(randn({2, 32, 48}));
      },
      {"AudioResNet(widths=[8, 16, 32, 64], blocks=1)", "[N, 1, M, F]", "[2,32,48]"});
  expect_error([&] { audio(randn({2, 3, 32, 48})); }, {"AudioResNet", "[2,3,32,48]"});
  expect_error([&] { audio(randn({2, 1, 32, 0})); }, {"AudioResNet", "empty in dim 3"});
  expect_error([&] { audio(randn({1, 1, 32, 32})); }, {"AudioResNet", "more than 1 value per channel"});
  audio.eval();
  EXPECT_EQ(audio(randn({1, 1, 32, 32})).shape(), (Shape{1, 64}));
}

TEST(BackboneErrors, BadConfigurations) {
  EXPECT_NE(error_of([] {
              R2Plus1D({8, 16, 32}, 1, 6);
            }).find("R2Plus1D: needs 4 stage widths, got 3"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              R2Plus1D({8, 0, 32, 64}, 1, 6);
            }).find("R2Plus1D: stage widths must be positive"),
            std::string::npos);
  EXPECT_NE(error_of([] { R2Plus1D({8, 16, 32, 64}, 0, 6); }).find("R2Plus1D: blocks"), std::string::npos);
  EXPECT_NE(error_of([] { R2Plus1D({8, 16, 32, 64}, 1, 0); }).find("R2Plus1D: stem_width"), std::string::npos);
  EXPECT_NE(error_of([] {
              AudioResNet({8, 16, 32, 64, 128}, 1);
            }).find("AudioResNet: needs 4 stage widths"),
            std::string::npos);
  EXPECT_NE(error_of([] { AudioResNet({8, 16, 32, 64}, -1); }).find("AudioResNet: blocks"), std::string::npos);
}

// Loading a checkpoint of other widths fails by name and shape, so torchvision weights cannot load into the
// wrong preset silently.
TEST(BackboneErrors, WrongWidthsCheckpointIsRejected) {
  R2Plus1D net(fixture_widths(), 2, 4);  // stem 4, not the fixture's 5
  const std::string msg =
      error_of([&] { net.load_state_dict(with_prefix(fixture("backbone_r2plus1d.safetensors"), "param.")); });
  EXPECT_NE(msg.find("stem.0.weight (checkpoint [5,3,1,7,7], model [4,3,1,7,7])"), std::string::npos) << msg;
  EXPECT_FALSE(has(net.state_dict(), "fc.weight"));
}

// ---- CPU speed (not run by default: --gtest_also_run_disabled_tests) ----

TEST(BackboneSpeed, DISABLED_TinyBatch64ForwardBackward) {
  R2Plus1D video(kTinyWidths, 1, 6);
  AudioResNet audio(kTinyWidths, 1);
  const Tensor xv = randn({64, 3, 4, 32, 32}), xa = randn({64, 1, 32, 48});
  auto time = [](auto&& step) {
    step();  // warm-up: first-touch allocations
    double best = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      step();
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
  };
  const double tv = time([&] {
    video.zero_grad();
    sum(video(xv)).backward();
  });
  const double ta = time([&] {
    audio.zero_grad();
    sum(audio(xa)).backward();
  });
  std::printf(
      "[ figures  ] tiny, batch 64, forward+backward: R2Plus1D %.1f ms (%.2f ms/clip), "
      "AudioResNet %.1f ms (%.2f ms/clip)\n",
      tv * 1e3, tv * 1e3 / 64, ta * 1e3, ta * 1e3 / 64);
}
