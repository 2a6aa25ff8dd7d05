// SynthAV: the project's own audio-visual emotion data set, generated deterministically from a seed
// (MODEL.md §6), because Aff-Wild2 and RECOLA are licensed and cannot ship. It is written in the
// Aff-Wild2 layout (affwild2.h), so the real reader is what reads it, plus <root>/manifest.json.
//
// Each video has a hidden valence v(t) and arousal a(t) in [-1, 1]. The face carries mostly valence
// (mouth curvature, brows), the voice mostly arousal (pitch, loudness, syllable rate); each also carries a
// weaker trace of the other dimension, and each has stretches where it carries nothing (occlusion,
// missing frames; low SNR, silence), so fusion must beat either modality alone. docs/data.md documents
// every cue and how strongly it is tied to each dimension.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace minidl::data {

struct SynthAvConfig {
  uint64_t seed = 2024;
  // Identities (face, voice, background) per split; splits never share an identity.
  // Many people with one video each: a face and a voice the model has not seen are what validation and
  // test measure, and with a dozen training identities a model learns who is speaking instead of how.
  int train_identities = 192;
  int validation_identities = 24;
  int test_identities = 24;
  int videos_per_identity = 1;
  double min_seconds = 20.0, max_seconds = 26.0;
  double fps = 30.0;
  int image_size = 112;
  int sample_rate = 16000;
  int jpeg_quality = 85;
  int threads = 0;  // 0: every core
};

struct SynthAvSummary {
  int videos = 0;
  int64_t frames = 0;    // frame images written
  double seconds = 0;    // of video, all splits
  double elapsed_s = 0;  // generation time
};

// Progress: done and total units of work (frames), called from the generating thread now and then.
using SynthAvProgress = std::function<void(int64_t done, int64_t total)>;

// Generates the data set under `root`. It is built in a temporary folder beside root and renamed into
// place at the end, so an interrupted run never leaves a half-written set that looks complete. The same
// config gives the same bytes, whatever the thread count. An existing root is an error (no overwrite).
SynthAvSummary generate_synthav(const std::string& root, const SynthAvConfig& config,
                                const SynthAvProgress& progress = nullptr);

// True when `root` holds a complete set generated with exactly this config (its manifest says so).
bool synthav_ready(const std::string& root, const SynthAvConfig& config);

// The config as JSON text (the manifest's "config" object) and back; unknown keys or wrong types are a
// minidl::Error naming the key. `threads` is not part of it: it does not change what is generated.
std::string synthav_config_json(const SynthAvConfig& config);
SynthAvConfig synthav_config_from_json(const std::string& json);

}  // namespace minidl::data
