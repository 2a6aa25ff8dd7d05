// Scoring the way the paper does (MODEL.md §4): every frame of every video gets the prediction of the one
// clip that ends at it (evaluation windows), predictions are clipped to [-1, 1], optionally smoothed per
// video with a moving average (20 frames for valence, 50 for arousal, zeros beyond the ends, as
// scipy.ndimage.uniform_filter1d with mode "constant"), and the CCC is pooled over every annotated frame of
// every video of the split (not averaged per video).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "autograd/tensor.h"
#include "data/dataset.h"
#include "data/loader.h"

namespace minidl::models {

struct Scores {
  double valence = 0, arousal = 0;                    // pooled CCC of the clipped predictions
  double valence_smoothed = 0, arousal_smoothed = 0;  // after the moving averages
  int64_t frames = 0;                                 // annotated frames scored
  struct PerVideo {
    std::string name;
    int64_t frames = 0;
    double valence = 0, arousal = 0;  // CCC of that video alone (raw); NaN when undefined (constant input)
  };
  std::vector<PerVideo> videos;
  double mean() const { return (valence + arousal) / 2; }
  nlohmann::json to_json() const;
};

// The CCC of two equally long series with population moments (MODEL.md §4); NaN for fewer than 2 values.
double concordance(const std::vector<double>& x, const std::vector<double>& y);

// scipy.ndimage.uniform_filter1d(x, size, mode="constant"): the mean of x[i - size/2 .. i - size/2 + size - 1],
// zeros outside.
std::vector<double> moving_average(const std::vector<double>& x, int size);

class Scorer {
 public:
  explicit Scorer(const data::Dataset& dataset);
  // Records the predictions [B, L, 2] of an evaluation batch (any device) for the frames its clips end at.
  void add(const data::Batch& batch, const Tensor& predictions);
  // Frames of the dataset that are annotated but got no prediction are an error (the windows were not
  // evaluation windows, or the epoch was cut short).
  Scores compute(int smooth_valence = 20, int smooth_arousal = 50) const;
  // Per video, per frame: the raw (clipped) predictions, NaN where none arrived; for the ABAW result files.
  const std::vector<std::vector<float>>& valence() const { return valence_; }
  const std::vector<std::vector<float>>& arousal() const { return arousal_; }

 private:
  const data::Dataset& dataset_;
  std::vector<std::vector<float>> valence_, arousal_;
};

class EmotionModel;

// Runs `model` (in eval mode, without recording autograd) over every evaluation window of `dataset`
// and scores it. `transform` may alter each batch first (remove a modality, add noise, occlude frames);
// `scorer`, if given, receives the predictions too (for per-frame result files).
Scores evaluate_model(EmotionModel& model, const data::Dataset& dataset, data::LoaderConfig loader, Device device,
                      const std::function<void(data::Batch&)>& transform = nullptr, Scorer* scorer = nullptr);

// A test-time condition (apps/evaluate): how the inputs are degraded before the model sees them.
struct Condition {
  enum class Kind { Clean, NoAudio, NoVideo, Snr, Occlusion };
  Kind kind = Kind::Clean;
  double value = 0;  // Snr: noise this many dB below each clip's power; Occlusion: fraction of the frame covered
  std::string name;  // as written: "clean", "no_audio", "no_video", "snr:10", "occlusion:0.5"
};
// "clean"; "no_audio" (every clip hears silence); "no_video" (every frame is the data set's mean colour);
// "snr:DB" (white noise DB below each clip's power); "occlusion:F" (a square covering the fraction F of
// every frame's area, in its middle). Anything else is a minidl::Error naming the text and the forms.
Condition parse_condition(const std::string& text);
// evaluate_model under `condition`.
Scores evaluate_condition(EmotionModel& model, const data::Dataset& dataset, data::LoaderConfig loader, Device device,
                          const Condition& condition, Scorer* scorer = nullptr);

// Per-frame predictions for one video (apps/predict): clipped to [-1, 1], and smoothed as in scoring
// (20 frames valence, 50 arousal) when `smooth`.
struct FramePredictions {
  std::vector<double> valence, arousal;
};
FramePredictions predict_video(EmotionModel& model, const data::VideoRecord& video, data::LoaderConfig loader,
                               Device device, bool smooth = true);

}  // namespace minidl::models
