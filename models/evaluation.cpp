#include "models/evaluation.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>

#include "autograd/error.h"
#include "autograd/grad_mode.h"
#include "data/logmel.h"
#include "models/emotion_model.h"

namespace minidl::models {

double concordance(const std::vector<double>& x, const std::vector<double>& y) {
  const size_t n = std::min(x.size(), y.size());
  if (n < 2) return std::numeric_limits<double>::quiet_NaN();
  double mx = 0, my = 0;
  for (size_t i = 0; i < n; ++i) {
    mx += x[i] / static_cast<double>(n);
    my += y[i] / static_cast<double>(n);
  }
  double vx = 0, vy = 0, cov = 0;
  for (size_t i = 0; i < n; ++i) {
    vx += (x[i] - mx) * (x[i] - mx);
    vy += (y[i] - my) * (y[i] - my);
    cov += (x[i] - mx) * (y[i] - my);
  }
  const double den = vx / n + vy / n + (mx - my) * (mx - my);
  return den > 0 ? 2 * (cov / n) / den : std::numeric_limits<double>::quiet_NaN();
}

std::vector<double> moving_average(const std::vector<double>& x, int size) {
  MINIDL_CHECK(size >= 1, "moving_average: size must be at least 1, got ", size);
  const int64_t n = static_cast<int64_t>(x.size()), lo = size / 2;
  // Prefix sums make every window O(1); windows reaching past the ends count those places as zeros.
  std::vector<double> prefix(static_cast<size_t>(n + 1), 0.0);
  for (int64_t i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + x[i];
  std::vector<double> out(x.size());
  for (int64_t i = 0; i < n; ++i) {
    const int64_t a = std::clamp<int64_t>(i - lo, 0, n), b = std::clamp<int64_t>(i - lo + size, 0, n);
    out[i] = (prefix[b] - prefix[a]) / size;
  }
  return out;
}

Scorer::Scorer(const data::Dataset& dataset) : dataset_(dataset) {
  for (const auto& v : dataset.videos) {
    valence_.emplace_back(static_cast<size_t>(v.num_frames()), std::numeric_limits<float>::quiet_NaN());
    arousal_.emplace_back(static_cast<size_t>(v.num_frames()), std::numeric_limits<float>::quiet_NaN());
  }
}

void Scorer::add(const data::Batch& batch, const Tensor& predictions) {
  const int64_t B = batch.frame_ids.size(0), L = batch.frame_ids.size(1);
  MINIDL_CHECK(predictions.shape() == (Shape{B, L, 2}), "Scorer: predictions ", predictions.meta_str(),
               " do not match the batch's [", B, ", ", L, ", 2]");
  const auto p = predictions.values<float>();
  const auto ids = batch.frame_ids.values<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    const int32_t v = batch.video_index[b];
    for (int64_t c = 0; c < L; ++c) {
      const int64_t frame = ids[b * L + c];
      if (frame < 1 || frame > dataset_.videos[v].num_frames()) continue;  // padding past the end
      valence_[v][frame - 1] = std::clamp(p[(b * L + c) * 2], -1.0f, 1.0f);
      arousal_[v][frame - 1] = std::clamp(p[(b * L + c) * 2 + 1], -1.0f, 1.0f);
    }
  }
}

Scores Scorer::compute(int smooth_valence, int smooth_arousal) const {
  Scores s;
  std::vector<double> pv, pa, sv, sa, tv, ta;
  for (size_t v = 0; v < dataset_.videos.size(); ++v) {
    const data::VideoRecord& video = dataset_.videos[v];
    const int64_t n = video.num_frames();
    std::vector<double> rv(n), ra(n);
    for (int64_t f = 0; f < n; ++f) {
      MINIDL_CHECK(!std::isnan(valence_[v][f]) || !video.annotated(f + 1), "Scorer: frame ", f + 1, " of video ",
                   video.name, " is annotated but got no prediction; score an evaluation epoch in full");
      rv[f] = std::isnan(valence_[v][f]) ? 0.0 : valence_[v][f];
      ra[f] = std::isnan(arousal_[v][f]) ? 0.0 : arousal_[v][f];
    }
    const auto smv = moving_average(rv, smooth_valence), sma = moving_average(ra, smooth_arousal);
    Scores::PerVideo row{video.name, 0, 0, 0};
    std::vector<double> vv, va, lv, la;
    for (int64_t f = 0; f < n; ++f) {
      if (!video.annotated(f + 1)) continue;
      pv.push_back(rv[f]);
      pa.push_back(ra[f]);
      sv.push_back(smv[f]);
      sa.push_back(sma[f]);
      tv.push_back(video.valence[f]);
      ta.push_back(video.arousal[f]);
      vv.push_back(rv[f]);
      va.push_back(ra[f]);
      lv.push_back(video.valence[f]);
      la.push_back(video.arousal[f]);
    }
    row.frames = static_cast<int64_t>(vv.size());
    row.valence = concordance(vv, lv);
    row.arousal = concordance(va, la);
    s.videos.push_back(row);
  }
  s.frames = static_cast<int64_t>(pv.size());
  s.valence = concordance(pv, tv);
  s.arousal = concordance(pa, ta);
  s.valence_smoothed = concordance(sv, tv);
  s.arousal_smoothed = concordance(sa, ta);
  return s;
}

Scores evaluate_model(EmotionModel& model, const data::Dataset& dataset, data::LoaderConfig loader, Device device,
                      const std::function<void(data::Batch&)>& transform, Scorer* scorer) {
  loader.evaluation = true;
  loader.augment = false;
  loader.device = device;
  Scorer own(dataset);
  Scorer& s = scorer ? *scorer : own;
  const bool was_training = model.is_training();
  model.eval();
  {
    NoGradGuard no_grad;
    data::Loader l(dataset, loader);
    for (data::Batch b; l.next(b);) {
      if (transform) transform(b);
      s.add(b, model(b.video, b.audio));
    }
  }
  model.train(was_training);
  return s.compute();
}

Condition parse_condition(const std::string& text) {
  Condition c;
  c.name = text;
  auto number = [&](size_t from) {
    const std::string v = text.substr(from);
    char* end = nullptr;
    const double x = std::strtod(v.c_str(), &end);
    MINIDL_CHECK(!v.empty() && end == v.c_str() + v.size() && std::isfinite(x), "condition '", text, "': '", v,
                 "' is not a number");
    return x;
  };
  if (text == "clean") {
    c.kind = Condition::Kind::Clean;
  } else if (text == "no_audio") {
    c.kind = Condition::Kind::NoAudio;
  } else if (text == "no_video") {
    c.kind = Condition::Kind::NoVideo;
  } else if (text.rfind("snr:", 0) == 0) {
    c.kind = Condition::Kind::Snr;
    c.value = number(4);
    // Below -100 dB the noise's power (10^10 times the clip's and up) leaves the float range of the
    // log-mel features; no test of robustness needs more than that.
    MINIDL_CHECK(c.value >= -100 && c.value <= 200, "condition '", text, "': the SNR must lie in [-100, 200] dB");
  } else if (text.rfind("occlusion:", 0) == 0) {
    c.kind = Condition::Kind::Occlusion;
    c.value = number(10);
    MINIDL_CHECK(c.value > 0 && c.value <= 1, "condition '", text, "': the occluded fraction must lie in (0, 1]");
  } else {
    fail("unknown condition '", text, "' (clean, no_audio, no_video, snr:DB, occlusion:FRACTION)");
  }
  return c;
}

Scores evaluate_condition(EmotionModel& model, const data::Dataset& dataset, data::LoaderConfig loader, Device device,
                          const Condition& condition, Scorer* scorer) {
  std::function<void(data::Batch&)> transform;
  switch (condition.kind) {
    case Condition::Kind::Clean: break;
    case Condition::Kind::NoAudio: {
      // The log-mel image of digital silence: what a clip without any audio looks like to the model.
      const data::LogMel mel(loader.mel);
      const std::vector<float> zeros(static_cast<size_t>(loader.mel.n_fft) * 2, 0.0f);
      const float silence = mel.compute(zeros.data(), static_cast<int64_t>(zeros.size()))[0];
      transform = [silence](data::Batch& b) { b.audio.fill_(silence); };
      break;
    }
    case Condition::Kind::NoVideo:
      transform = [](data::Batch& b) { b.video.zero_(); };  // normalised 0 is the data set's mean colour
      break;
    case Condition::Kind::Snr: loader.audio_snr_db = condition.value; break;
    case Condition::Kind::Occlusion: {
      const double area = condition.value;
      transform = [area](data::Batch& b) {
        const int64_t S = b.video.size(-1), side = std::llround(static_cast<double>(S) * std::sqrt(area));
        const int64_t lo = (S - side) / 2;
        b.video.narrow(-1, lo, side).narrow(-2, lo, side).zero_();
      };
      break;
    }
  }
  return evaluate_model(model, dataset, loader, device, transform, scorer);
}

FramePredictions predict_video(EmotionModel& model, const data::VideoRecord& video, data::LoaderConfig loader,
                               Device device, bool smooth) {
  data::Dataset ds;
  ds.videos.push_back(video);
  Scorer scorer(ds);
  evaluate_model(model, ds, loader, device, nullptr, &scorer);
  FramePredictions p;
  p.valence.assign(scorer.valence()[0].begin(), scorer.valence()[0].end());
  p.arousal.assign(scorer.arousal()[0].begin(), scorer.arousal()[0].end());
  if (smooth) {
    p.valence = moving_average(p.valence, 20);
    p.arousal = moving_average(p.arousal, 50);
  }
  return p;
}

nlohmann::json Scores::to_json() const {
  nlohmann::json per_video = nlohmann::json::array();
  auto num = [](double x) { return std::isnan(x) ? nlohmann::json(nullptr) : nlohmann::json(x); };
  for (const auto& v : videos)
    per_video.push_back(
        {{"video", v.name}, {"frames", v.frames}, {"valence", num(v.valence)}, {"arousal", num(v.arousal)}});
  return {{"frames", frames},
          {"ccc", {{"valence", num(valence)}, {"arousal", num(arousal)}, {"mean", num(mean())}}},
          {"ccc_smoothed", {{"valence", num(valence_smoothed)}, {"arousal", num(arousal_smoothed)}}},
          {"videos", per_video}};
}

}  // namespace minidl::models
