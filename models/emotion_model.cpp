#include "models/emotion_model.h"

#include "autograd/error.h"
#include "autograd/ops.h"
#include "layers/lstm.h"
#include "layers/tcn.h"

namespace minidl::models {

Temporal::Temporal(const ModelConfig& c, int64_t in_features, Generator* gen) : kind_(c.temporal), out_(in_features) {
  if (kind_ == "lstm") {
    auto lstm = std::make_shared<nn::LSTM>(
        in_features, c.lstm_hidden,
        nn::LSTMOptions{.num_layers = c.lstm_layers, .bidirectional = true, .batch_first = true}, gen);
    register_module("lstm", lstm.get());
    inner_ = lstm;
    out_ = 2 * c.lstm_hidden;
  } else if (kind_ == "tcn") {
    auto tcn =
        std::make_shared<nn::TCN>(in_features, c.tcn_channels, c.tcn_kernel, c.tcn_dropout, nn::TCNOptions{}, gen);
    register_module("tcn", tcn.get());
    inner_ = tcn;
    out_ = c.tcn_channels.back();
  }
}

std::string Temporal::describe() const { return "Temporal(" + kind_ + ", out=" + std::to_string(out_) + ")"; }

Tensor Temporal::forward(const Tensor& x) {
  if (kind_ == "lstm") return static_cast<nn::LSTM&>(*inner_)(x).output;
  if (kind_ == "tcn") return static_cast<nn::TCN&>(*inner_)(x.transpose(1, 2)).transpose(1, 2);
  return x;
}

EmotionModel::EmotionModel(const ModelConfig& config, Generator* gen) : config_(config) {
  validate(config_);
  FusionConfig f;
  f.kind = config_.fusion;
  f.clips = config_.clips;
  f.encoded = config_.encoded;
  f.attention = config_.attention;
  f.recursions = config_.recursions;
  f.head_hidden = config_.head_hidden;
  f.head_dropout = config_.head_dropout;
  // Each branch: backbone, then its temporal model. A single-modality variant still gets the width of the
  // missing branch in its fusion config, which ignores it.
  f.visual_features = f.audio_features = 1;
  if (uses_video()) {
    visual_ = std::make_shared<R2Plus1D>(config_.visual_widths, config_.visual_blocks, visual_stem_width(config_), gen);
    visual_temporal_ = std::make_shared<Temporal>(config_, visual_->out_features(), gen);
    register_module("visual", visual_.get());
    register_module("visual_temporal", visual_temporal_.get());
    f.visual_features = visual_temporal_->out_features();
  }
  if (uses_audio()) {
    audio_ = std::make_shared<AudioResNet>(config_.audio_widths, config_.audio_blocks, gen);
    audio_temporal_ = std::make_shared<Temporal>(config_, audio_->out_features(), gen);
    register_module("audio", audio_.get());
    register_module("audio_temporal", audio_temporal_.get());
    f.audio_features = audio_temporal_->out_features();
  }
  fusion_ = make_fusion(f, gen);
  register_module("fusion", fusion_.get());
}

std::string EmotionModel::describe() const {
  return "EmotionModel(preset=" + config_.preset + ", temporal=" + config_.temporal + ", fusion=" + config_.fusion +
         ", clips=" + std::to_string(config_.clips) + ")";
}

Tensor EmotionModel::per_clip(nn::Unary& backbone, const Tensor& x, const char* what, int64_t clips) {
  MINIDL_CHECK(x.dim() >= 3 && x.size(1) == clips, "EmotionModel: the ", what, " input ", x.meta_str(), " must be [B, ",
               clips, ", ...] (", clips, " clips per sequence)");
  const int64_t B = x.size(0);
  Shape flat{B * clips};
  flat.insert(flat.end(), x.shape().begin() + 2, x.shape().end());
  const Tensor features = backbone(x.reshape(flat));  // [B L, D]
  return features.reshape({B, clips, features.size(-1)});
}

Tensor EmotionModel::forward(const Tensor& video, const Tensor& audio) {
  const int64_t L = config_.clips;
  Tensor v, a;
  if (uses_video()) {
    check_defined("EmotionModel", video, "video input");
    MINIDL_CHECK(video.dim() == 6 && video.size(2) == 3 && video.size(3) == config_.frames_per_clip,
                 "EmotionModel: the video input ", video.meta_str(), " must be [B, ", L, ", 3, ",
                 config_.frames_per_clip, ", H, W]");
    v = (*visual_temporal_)(per_clip(*visual_, video, "video", L));
  }
  if (uses_audio()) {
    check_defined("EmotionModel", audio, "audio input");
    MINIDL_CHECK(audio.dim() == 5 && audio.size(2) == 1 && audio.size(3) == config_.mel_bins,
                 "EmotionModel: the audio input ", audio.meta_str(), " must be [B, ", L, ", 1, ", config_.mel_bins,
                 ", frames]");
    a = (*audio_temporal_)(per_clip(*audio_, audio, "audio", L));
  }
  return (*fusion_)(a, v);
}

}  // namespace minidl::models
