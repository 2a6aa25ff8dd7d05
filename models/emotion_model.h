// The audio-visual emotion model (MODEL.md): per clip, a visual backbone (R(2+1)D) on the face frames and an
// audio backbone (ResNet) on the log-mel image; per modality, a temporal model over the L clips of the
// sequence (BiLSTM, TCN or none); the fusion (joint cross-attention by default) and the two heads, giving a
// valence and an arousal per clip.
//
//   video [B, L, 3, T, S, S] --visual--> [B, L, Dv] --visual_temporal--> [B, L, Dv'] --+
//                                                                                       +-- fusion, heads --> [B, L, 2]
//   audio [B, L, 1, M, F]    --audio-->  [B, L, Da] --audio_temporal-->  [B, L, Da'] --+
//
// State names: visual.*, audio.* (torchvision's layouts), visual_temporal.*, audio_temporal.* (lstm.* with
// torch's LSTM names, or tcn.*), fusion.* (the authors' CAM names: fusion.encoder1.weight, ...,
// fusion.vregressor.0.weight). A single-modality variant builds only the branch it uses.
#pragma once

#include <memory>
#include <string>

#include "autograd/random.h"
#include "layers/module.h"
#include "models/backbones.h"
#include "models/config.h"
#include "models/fusion.h"

namespace minidl::models {

// A temporal model over the clips of a sequence: [B, L, D] -> [B, L, out_features()].
class Temporal : public nn::Unary {
 public:
  Temporal(const ModelConfig& config, int64_t in_features, Generator* gen);
  std::string type_name() const override { return "Temporal"; }
  std::string describe() const override;
  Tensor forward(const Tensor& x) override;
  int64_t out_features() const { return out_; }

 private:
  std::string kind_;
  int64_t out_;
  std::shared_ptr<nn::Module> inner_;
};

class EmotionModel : public nn::Module {
 public:
  explicit EmotionModel(const ModelConfig& config, Generator* gen = nullptr);
  std::string type_name() const override { return "EmotionModel"; }
  std::string describe() const override;

  // video [B, L, 3, T, S, S] and audio [B, L, 1, M, F] (as data::Loader delivers them) -> [B, L, 2].
  // A branch the fusion does not use may be passed undefined.
  Tensor forward(const Tensor& video, const Tensor& audio);
  Tensor operator()(const Tensor& video, const Tensor& audio) {
    const ModuleScope scope(scope_path());
    return forward(video, audio);
  }

  const ModelConfig& config() const { return config_; }
  bool uses_video() const { return config_.fusion != "audio"; }
  bool uses_audio() const { return config_.fusion != "visual"; }

 private:
  // [B, L, ...] per-clip input -> [B, L, features] through a backbone applied to all B L clips at once.
  static Tensor per_clip(nn::Unary& backbone, const Tensor& x, const char* what, int64_t clips);

  ModelConfig config_;
  std::shared_ptr<R2Plus1D> visual_;
  std::shared_ptr<AudioResNet> audio_;
  std::shared_ptr<Temporal> visual_temporal_, audio_temporal_;
  std::shared_ptr<FusionHeads> fusion_;
};

}  // namespace minidl::models
