// Model and training configuration: presets, JSON round trips, overrides, and errors naming the key.
#include <gtest/gtest.h>

#include "autograd/error.h"
#include "models/config.h"
#include "models/trainer.h"

using namespace minidl;
using namespace minidl::models;

namespace {
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}
}  // namespace

TEST(ModelConfig, PresetsAreValidAndDiffer) {
  for (const char* name : {"tiny", "small", "paper"}) {
    const ModelConfig c = model_preset(name);
    EXPECT_NO_THROW(validate(c)) << name;
    EXPECT_EQ(c.preset, name);
  }
  EXPECT_EQ(model_preset("paper").visual_widths, (std::vector<int64_t>{64, 128, 256, 512}));
  EXPECT_EQ(model_preset("paper").clips, 16);
  EXPECT_EQ(model_preset("paper").encoded, 128);
  EXPECT_EQ(model_preset("paper").attention, 32);
  EXPECT_EQ(visual_stem_width(model_preset("paper")), 45) << "torchvision's stem width";
  EXPECT_NE(error_of([] { model_preset("huge"); }).find("huge"), std::string::npos);
}

TEST(ModelConfig, LoaderMatchesTheModelsInputs) {
  for (const char* name : {"tiny", "paper"}) {
    const ModelConfig c = model_preset(name);
    const data::LoaderConfig l = loader_config(c);
    EXPECT_EQ(l.windows.clips, c.clips);
    EXPECT_EQ(l.windows.frames_per_clip, c.frames_per_clip);
    EXPECT_EQ(l.image_size, c.image_size);
    EXPECT_EQ(l.mel.n_mels, c.mel_bins);
    EXPECT_EQ(l.mel.hop_length, c.mel_hop);
  }
  // The paper's 16 kHz setting: 20 ms windows, 10 ms hops, 107 frames for a 32-frame clip at 30 fps.
  const data::LoaderConfig l = loader_config(model_preset("paper"));
  EXPECT_EQ(l.mel.win_length, 320);
  EXPECT_EQ(data::LogMel(l.mel).frames(17067), 107);
  EXPECT_EQ(data::LogMel(loader_config(model_preset("tiny")).mel).frames(17067), 48);
}

TEST(ModelConfig, JsonRoundTripAndErrorsNameTheKey) {
  ModelConfig c = model_preset("small");
  c.fusion = "cross_attention";
  c.tcn_channels = {7, 9};
  const ModelConfig back = model_config_from_json(to_json(c), model_preset("tiny"));
  EXPECT_EQ(to_json(back), to_json(c));
  EXPECT_NE(error_of([] { model_config_from_json({{"colour", 3}}, ModelConfig{}); }).find("colour"), std::string::npos);
  EXPECT_NE(error_of([] {
              model_config_from_json({{"clips", "many"}}, ModelConfig{});
            }).find("clips"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              model_config_from_json({{"fusion", "magic"}}, ModelConfig{});
            }).find("magic"),
            std::string::npos);
  EXPECT_NE(error_of([] { model_config_from_json({{"clips", 0}}, ModelConfig{}); }).find("clips"), std::string::npos);
}

TEST(TrainConfig, OverridesAndJson) {
  TrainConfig c;
  c = apply_overrides(c, {"epochs=7", "optimizer=sgd", "model.fusion=concat", "lr=0.01"});
  EXPECT_EQ(c.epochs, 7);
  EXPECT_EQ(c.optimizer, "sgd");
  EXPECT_EQ(c.model.fusion, "concat");
  EXPECT_EQ(c.model.preset, "tiny") << "a model key changes the current model, not a fresh preset";
  EXPECT_DOUBLE_EQ(c.lr, 0.01);
  c = apply_overrides(c, {"model.preset=paper"});
  EXPECT_EQ(c.model.clips, 16) << "a new preset brings its own sizes";
  const TrainConfig back = train_config_from_json(to_json(c), TrainConfig{});
  EXPECT_EQ(to_json(back), to_json(c));
  EXPECT_NE(error_of([&] { apply_overrides(c, {"epochz=3"}); }).find("epochz"), std::string::npos);
  EXPECT_NE(error_of([&] { apply_overrides(c, {"epochs=three"}); }).find("epochs"), std::string::npos);
  EXPECT_NE(error_of([&] { apply_overrides(c, {"model.widths=3"}); }).find("widths"), std::string::npos);
  EXPECT_NE(error_of([&] { apply_overrides(c, {"optimizer=rmsprop"}); }).find("rmsprop"), std::string::npos);
  EXPECT_NE(error_of([&] { apply_overrides(c, {"device=gpu"}); }).find("gpu"), std::string::npos);
  EXPECT_EQ(apply_overrides(c, {"math=tf32"}).math, "tf32");
  EXPECT_NE(error_of([&] { apply_overrides(c, {"math=fp16"}); }).find("math must be fp32, tf32 or tf32-all"),
            std::string::npos);
  EXPECT_NE(error_of([&] { apply_overrides(c, {"novalue"}); }).find("key=value"), std::string::npos);
  EXPECT_EQ(apply_overrides(c, {"audio_freq_mask=4"}).audio_freq_mask, 4);
  EXPECT_NE(error_of([&] { apply_overrides(c, {"audio_freq_mask=999"}); }).find("audio_freq_mask"), std::string::npos)
      << "a band wider than the mel image";
  EXPECT_NE(error_of([&] { apply_overrides(c, {"audio_time_mask=-1"}); }).find("audio_time_mask"), std::string::npos);
  // Integer settings take integers, in range: no silent truncation or wrap-around.
  for (const char* bad : {"epochs=1.7", "seed=-1", "batch_size=1e30", "epochs=99999999999999999999", "workers=true",
                          "model.visual_widths=[8,16.5,32,64]"}) {
    const std::string key = std::string(bad).substr(0, std::string(bad).find('='));
    const std::string e = error_of([&] { apply_overrides(c, {bad}); });
    EXPECT_NE(e.find(key.substr(key.find('.') + 1)), std::string::npos) << bad << ": " << e;
    EXPECT_NE(e.find("must be"), std::string::npos) << bad << ": " << e;
  }
  EXPECT_EQ(apply_overrides(c, {"seed=18446744073709551615"}).seed, 18446744073709551615ull);
  EXPECT_DOUBLE_EQ(apply_overrides(c, {"lr=1"}).lr, 1.0) << "an integer is a fine floating value";
  // Ranges of the optimiser and schedule settings are checked up front, not when training starts.
  for (const char* bad : {"weight_decay=-5", "momentum=-3", "step_size=0", "warmup_epochs=-1", "max_steps=0",
                          "max_steps=-7", "time_limit_minutes=-3"}) {
    const std::string key = std::string(bad).substr(0, std::string(bad).find('='));
    EXPECT_NE(error_of([&] { apply_overrides(c, {bad}); }).find(key), std::string::npos) << bad;
  }
  EXPECT_TRUE(apply_overrides(c, {"nesterov=true"}).nesterov);
  for (const auto& bad :
       std::vector<std::vector<std::string>>{{"optimizer=adamw", "nesterov=true"}, {"momentum=0", "nesterov=true"}})
    EXPECT_NE(error_of([&] { apply_overrides(c, bad); }).find("nesterov needs optimizer sgd and momentum > 0"),
              std::string::npos)
        << bad.back();
  EXPECT_NE(error_of([&] { apply_overrides(c, {"model=3"}); }).find("model.fusion"), std::string::npos);
  EXPECT_NE(error_of([&] {
              apply_overrides(c, {"model.fusion=concat", R"(model={"clips":4})"});
            }).find("one form"),
            std::string::npos)
      << "a whole model after one of its keys would drop the key";
  EXPECT_NE(error_of([&] { apply_overrides(c, {"batch_size=4294967297"}); }).find("batch_size"), std::string::npos);
  EXPECT_NE(error_of([&] { apply_overrides(c, {"warmup_epochs=1e300"}); }).find("warmup_epochs"), std::string::npos);
  EXPECT_EQ(apply_overrides(c, {"schedule=cosine", "gamma=1"}).gamma, 1.0) << "gamma only matters to step and plateau";
  EXPECT_NE(error_of([&] { apply_overrides(c, {"schedule=step", "gamma=2"}); }).find("gamma"), std::string::npos);
  EXPECT_NE(error_of([&] { apply_overrides(c, {"schedule=plateau", "gamma=0"}); }).find("gamma"), std::string::npos);
}
