// The assembled model: shapes for every fusion variant, state names, which branches exist, gradients.
#include <gtest/gtest.h>

#include "autograd/minidl.h"
#include "models/emotion_model.h"

using namespace minidl;
using namespace minidl::models;

namespace {

// The tiny preset, narrowed further so a forward and backward take milliseconds.
ModelConfig small_tiny(const std::string& fusion, const std::string& temporal = "lstm") {
  ModelConfig c = model_preset("tiny");
  c.visual_widths = {4, 4, 8, 8};
  c.audio_widths = {4, 4, 8, 8};
  c.lstm_hidden = 6;
  c.lstm_layers = 1;
  c.tcn_channels = {10};
  c.encoded = 6;
  c.attention = 4;
  c.head_hidden = 8;
  c.fusion = fusion;
  c.temporal = temporal;
  return c;
}

std::pair<Tensor, Tensor> inputs(const ModelConfig& c, int64_t B, Generator& g) {
  return {randn({B, c.clips, 3, c.frames_per_clip, c.image_size, c.image_size}, {}, &g),
          randn({B, c.clips, 1, c.mel_bins, 48}, {}, &g)};
}

bool has_prefix(const nn::NamedTensors& names, const std::string& prefix) {
  for (const auto& [n, t] : names)
    if (n.rfind(prefix, 0) == 0) return true;
  return false;
}

}  // namespace

TEST(EmotionModel, EveryFusionVariantGivesValenceAndArousalPerClip) {
  Generator g(1);
  for (const char* fusion : {"audio", "visual", "concat", "cross_attention", "jca", "recursive_jca"}) {
    EmotionModel model(small_tiny(fusion), &g);
    const auto [video, audio] = inputs(model.config(), 2, g);
    const Tensor out = model(video, audio);
    EXPECT_EQ(out.shape(), (Shape{2, 8, 2})) << fusion;
  }
}

TEST(EmotionModel, TemporalModelsAndStateNames) {
  Generator g(2);
  for (const char* temporal : {"lstm", "tcn", "none"}) {
    EmotionModel model(small_tiny("jca", temporal), &g);
    const auto names = model.state_dict();
    EXPECT_TRUE(has_prefix(names, "visual.stem.0.weight")) << temporal;
    EXPECT_TRUE(has_prefix(names, "audio.conv1.weight")) << temporal;
    EXPECT_TRUE(has_prefix(names, "fusion.encoder1.weight")) << temporal;
    EXPECT_TRUE(has_prefix(names, "fusion.vregressor.2.bias")) << temporal;
    EXPECT_EQ(has_prefix(names, "visual_temporal.lstm.weight_ih_l0"), std::string(temporal) == "lstm");
    EXPECT_EQ(has_prefix(names, "audio_temporal.tcn.network.0.conv1.weight"), std::string(temporal) == "tcn");
    const auto [video, audio] = inputs(model.config(), 1, g);
    EXPECT_EQ(model(video, audio).shape(), (Shape{1, 8, 2})) << temporal;
  }
}

TEST(EmotionModel, SingleModalityVariantsBuildOneBranch) {
  Generator g(3);
  EmotionModel audio_only(small_tiny("audio"), &g);
  EXPECT_FALSE(has_prefix(audio_only.state_dict(), "visual."));
  EXPECT_TRUE(has_prefix(audio_only.state_dict(), "audio."));
  const auto [video, audio] = inputs(audio_only.config(), 1, g);
  EXPECT_EQ(audio_only(Tensor(), audio).shape(), (Shape{1, 8, 2})) << "the unused input may be left out";
  EmotionModel visual_only(small_tiny("visual"), &g);
  EXPECT_FALSE(has_prefix(visual_only.state_dict(), "audio."));
  EXPECT_EQ(visual_only(video, Tensor()).shape(), (Shape{1, 8, 2}));
}

TEST(EmotionModel, EveryParameterGetsAGradient) {
  Generator g(4);
  EmotionModel model(small_tiny("jca"), &g);
  const auto [video, audio] = inputs(model.config(), 2, g);
  const Tensor target = rand({2, 8, 2}, {}, &g, -1, 1);
  ccc_loss(model(video, audio), target).backward();
  for (const auto& [name, p] : model.named_parameters()) {
    ASSERT_TRUE(p.grad().defined()) << name;
    const auto v = p.grad().values<float>();
    bool nonzero = false;
    for (float x : v) nonzero |= x != 0.0f;
    EXPECT_TRUE(nonzero) << name << " received an all-zero gradient";
  }
}

TEST(EmotionModel, WrongInputsNameTheShapes) {
  Generator g(5);
  EmotionModel model(small_tiny("jca"), &g);
  const auto [video, audio] = inputs(model.config(), 1, g);
  try {
    model(video.narrow(1, 0, 4), audio);
    FAIL() << "4 clips for a model of 8 must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("8 clips"), std::string::npos) << e.what();
  }
  EXPECT_THROW(model(video, audio.narrow(3, 0, 16)), Error);  // 16 mel bins instead of 32
  EXPECT_THROW(model(Tensor(), audio), Error);                // JCA needs both
}
