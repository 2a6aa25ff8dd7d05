// What the three SynthAV files share (synthav.cpp drives, synthav_face.cpp renders faces,
// synthav_voice.cpp synthesises voices); private to them and to tests/data/test_synthav.cpp.
//
// Randomness: every random choice comes from a Philox stream named by (config seed, stream id), the id
// packing a purpose tag with the identity / recording / frame it is for. A stream is consumed in one fixed
// order by one thread, so the bytes written do not depend on how work is spread over threads.
//
// Units: time in seconds; face geometry in "face units" (the face's half-height is 1, x right, y down,
// origin at the face centre); colours linear in [0, 1] per channel until the final 8-bit rounding.
#pragma once

#include <cstdint>
#include <vector>

#include "autograd/philox.h"
#include "data/image.h"

namespace minidl::data::synthav {

// Bumped whenever a change alters what is written for some config, so synthav_ready refuses sets made
// by an older generator.
inline constexpr int kGeneratorVersion = 2;

// How strongly each cue follows the hidden state. One place, so the code, the manifest ("cues") and
// docs/data.md (its table) agree. v and a are valence and arousal in [-1, 1].
struct Cues {
  // Face, valence: mouth-corner curvature c = mouth_curve_v * v + identity resting smile + jitter; the
  // corners sit mouth_lift * c face units above the middle of the mouth (about 10 px at 112 px when
  // c = 1); the mouth widens by mouth_widen_v * v (a smile stretches it, a sad mouth narrows). A smile
  // shows teeth: for v > 0 the lips part by smile_open_v * min(1, teeth_v * v) face units and the upper
  // part of the opening turns white in proportion (version 2: a cue large enough to survive the tiny
  // preset's 48 px frames, where a curved line alone is two pixels of change).
  double mouth_curve_v = 0.85, mouth_lift = 0.26, mouth_widen_v = 0.12;
  double resting_smile_sd = 0.12, mouth_jitter_sd = 0.08;
  double teeth_v = 1.6, smile_open_v = 0.09;
  // Face, valence: brows rise by brow_raise_v * v, their inner ends drop by brow_frown_v * (-v) (a frown
  // for negative valence). Face, arousal (weak): brows also rise by brow_raise_a * a.
  double brow_raise_v = 0.05, brow_frown_v = 0.09, brow_raise_a = 0.01;
  // Face, arousal (weak): eye opening x (1 + eye_open_a * a); blinks per minute blink_per_min * 2^a;
  // head motion: translation sd (head_move_base + head_move_a * (a + 1) / 2) image sizes, roll sd
  // (head_roll_base + head_roll_a * (a + 1) / 2) degrees; mouth articulation x (1 + articulation_a * a).
  double eye_open_a = 0.15, blink_per_min = 14.0;
  double head_move_base = 0.010, head_move_a = 0.022, head_roll_base = 1.5, head_roll_a = 4.0;
  double articulation_a = 0.1;
  // Voice, arousal (strong): F0 x 2^(pitch_a * a); pitch-accent sd (accent_base + accent_a * (a + 1) / 2)
  // octaves; level + loudness_db_a * a dB (measured on voiced speech: -5.5 dB at a = -1, +4.3 dB at a = +1,
  // as the formant resonators also answer the tilt); syllable rate x 2^(rate_a * a); pauses
  // x (1 - pause_a * a); glottal low-pass coefficient - tilt_a * a (brighter when aroused).
  // Version 2 strengthened pitch (0.45 -> 0.6 octave), accents (0.05 -> 0.07) and tilt (0.12 -> 0.18): with
  // a speaker's own F0 spread over 1.4 octaves, a 0.45-octave swing was mostly read as who is speaking.
  double pitch_a = 0.6, accent_base = 0.03, accent_a = 0.07, loudness_db_a = 8.0, rate_a = 0.4, pause_a = 0.3;
  double tilt_a = 0.18;
  // Voice, valence (weak): the pitch of a phrase rises by intonation_v * v octaves from its start to its
  // end (falls for negative valence); formants x (1 + formant_v * v) (a "smiling" voice); glottal low-pass
  // coefficient - tilt_v * v.
  double intonation_v = 0.4, formant_v = 0.06, tilt_v = 0.05;
};
inline constexpr Cues kCues{};

// What a stream is for: the top byte of its id.
enum class Tag : uint8_t {
  kPlan = 1,       // durations, which recordings get timestamps
  kFaceIdentity,   // a = identity
  kVoiceIdentity,  // a = identity
  kTrajectory,     // a = recording, b = 2 * person + (0 valence, 1 arousal)
  kSpeech,         // a = recording, b = person (turns use person 15)
  kAudio,          // a = recording: background noise, stretches, glottal jitter
  kFaceScene,      // a = recording, b = person: lighting, framing, background variation
  kFacePlan,       // a = recording, b = person: blinks, head motion, occlusions
  kFrames,         // a = recording, b = person: missing and unannotated frames
  kPixelNoise,     // a = recording * 2 + person, b = frame
};

inline uint64_t stream_id(Tag tag, uint64_t a, uint64_t b = 0) {
  return (static_cast<uint64_t>(tag) << 56) | ((a & 0xFFFFFFull) << 32) | (b & 0xFFFFFFFFull);
}

// Sequential draws from one Philox stream: value j is lane j % 4 of block j / 4, the block's counter being
// (j / 4, stream) and its key the seed.
class Rng {
 public:
  Rng(uint64_t seed, uint64_t stream) : seed_(seed), stream_(stream) {}
  uint32_t bits() {
    if (lane_ == 4) {
      block_ = block_at(seed_, stream_, counter_++);
      lane_ = 0;
    }
    return block_.v[lane_++];
  }
  double uniform() {  // [0, 1), 53 bits
    const uint32_t hi = bits();
    return philox::to_unit_double(hi, bits());
  }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  double log_uniform(double lo, double hi);
  double normal();  // Box-Muller, one value per two uniforms (no cached second value: simpler to replay)
  int below(int n) { return static_cast<int>(uniform() * n); }
  bool chance(double p) { return uniform() < p; }

  static philox::Block block_at(uint64_t seed, uint64_t stream, uint64_t counter) {
    return philox::philox4x32_10(static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32),
                                 static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32),
                                 static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  }

 private:
  uint64_t seed_, stream_, counter_ = 0;
  philox::Block block_{};
  int lane_ = 4;
};

struct Interval {
  double start = 0, end = 0;
};
// Non-overlapping stretches over [0, seconds): gaps between them exponential with mean `every`, lengths
// uniform in [min_len, max_len], so longer videos get proportionally more of them.
std::vector<Interval> random_stretches(Rng& rng, double seconds, double every, double min_len, double max_len);

// A hidden valence and arousal trajectory, sampled at `rate` points per second and linearly interpolated
// between them, so the face (at frame times) and the voice (at sample times) read the same function.
struct Trajectory {
  double rate = 100.0;
  std::vector<float> valence, arousal;
  float valence_at(double t) const { return at(valence, t); }
  float arousal_at(double t) const { return at(arousal, t); }

 private:
  float at(const std::vector<float>& x, double t) const;
};

// --- voice (synthav_voice.cpp) ---------------------------------------------------------------------------

struct VoiceIdentity {
  double f0 = 120;             // Hz at arousal 0
  double formant_scale = 1;    // vocal-tract length: formants x this
  double level_db = 0;         // loudness offset
  double syllable_rate = 4.4;  // per second at arousal 0
  double tilt = 0.8;           // glottal low-pass coefficient at a = v = 0 (higher: darker voice)
  double breathiness = 0.05;   // aspiration noise relative to the pulses
};
VoiceIdentity make_voice_identity(uint64_t seed, int identity);

struct Syllable {
  double onset = 0;                         // start of the consonant burst (== start when there is none)
  double start = 0, end = 0;                // the voiced nucleus
  int vowel = 0;                            // index into the vowel table
  float accent = 0;                         // pitch accent, octaves
  float gain = 1;                           // relative loudness
  double phrase_start = 0, phrase_end = 0;  // the phrase it belongs to (for the intonation slope)
};
// One speaker's speech over a recording, syllables in time order, never overlapping.
struct SpeechPlan {
  std::vector<Syllable> syllables;
};
// The speaking turns of each of `speakers` people over [0, seconds): one person talks with pauses; two
// alternate (a conversation), with gaps between turns.
std::vector<std::vector<Interval>> plan_turns(int speakers, double seconds, Rng& rng);
SpeechPlan plan_speech(const VoiceIdentity& voice, const Trajectory& traj, const std::vector<Interval>& turns,
                       Rng& rng);
// How far the mouth is open at time t (0 closed .. about 1 for a loud /a/) and how rounded the vowel is
// (0 spread .. 1 rounded), for the face renderer.
struct MouthShape {
  float open = 0, round = 0;
};
MouthShape mouth_at(const SpeechPlan& plan, double t);

struct Speaker {
  const VoiceIdentity* voice;
  const Trajectory* traj;
  const SpeechPlan* plan;
};
// What happened to a recording's audio besides speech, for the manifest.
struct AudioEvents {
  double snr_db = 0;              // speech-to-background ratio outside the low-SNR stretches
  bool hum = false;               // mains hum present
  std::vector<Interval> low_snr;  // background raised to about the speech level
  std::vector<Interval> silent;   // digital silence: nothing at all
};
// The recording's mono samples in [-1, 1] (before PCM16 rounding) at sample_rate, `seconds` long.
std::vector<float> synthesize_audio(const std::vector<Speaker>& speakers, double seconds, int sample_rate,
                                    uint64_t seed, uint64_t recording, AudioEvents* events);

// --- face (synthav_face.cpp) -----------------------------------------------------------------------------

struct Rgb {
  float r = 0, g = 0, b = 0;
};

struct FaceIdentity {
  // Geometry, face units.
  float width = 0.78f;  // half-width of the face oval
  float chin = 0.25f;   // how much the oval narrows towards the chin
  float eye_x = 0.33f, eye_y = -0.12f, eye_w = 0.13f, eye_h = 0.07f;
  float brow_y = -0.3f, brow_thick = 0.035f;
  float nose_y = 0.22f;
  float mouth_y = 0.5f, mouth_w = 0.27f, lip = 0.035f;
  float hairline = -0.55f;  // hair covers the face above this
  int hair_style = 0;       // 0 short, 1 long (down the sides), 2 none
  float eye_open = 1;       // resting eye opening
  float smile = 0;          // resting mouth curvature
  // Placement in the crop, relative to the image size.
  float cx = 0.5f, cy = 0.5f, scale = 0.36f;
  // Colours and light.
  Rgb skin, hair, lips, iris, shirt, bg0, bg1;
  float bg_angle = 0, bg_freq = 0, bg_pattern = 0;  // background gradient direction, stripe frequency, strength
  float light_x = 0, light_y = 0;                   // light direction (z is towards the camera)
  float ambient = 0.45f;
};
FaceIdentity make_face_identity(uint64_t seed, int identity);

// Per video: the static background layer (which also holds the shirt), the framing and the lighting.
struct FaceScene {
  int size = 0;
  std::vector<float> background;  // size * size * 3
  float dx = 0, dy = 0;           // framing offset, pixels
  float noise = 0;                // sensor noise sd, in 8-bit levels
  float light_gain = 1, light_drift = 0, light_period = 10, light_phase = 0;
  Rgb tint{1, 1, 1};
};
FaceScene make_face_scene(const FaceIdentity& face, int size, Rng& rng);

enum class OcclusionKind : uint8_t { kBar, kHand, kBlur };
struct Occlusion {
  OcclusionKind kind = OcclusionKind::kBar;
  int64_t first = 0, last = 0;  // frames, 0-based, inclusive
  float y = 0, h = 0;           // vertical centre and half-height of a bar, face units
  float x = 0, angle = 0;       // hand: centre x (face units) and tilt
  Rgb color;
};

// Everything that changes from frame to frame.
struct FaceFrame {
  float cx = 0, cy = 0, scale = 0, roll = 0;  // pixels, pixels, pixels per face unit, radians
  float yaw = 0;                              // horizontal shift of the features, face units
  float mouth_curve = 0, mouth_open = 0, mouth_round = 0, mouth_width = 1;
  float teeth = 0;  // 0..1: how much of a smile's teeth show
  float brow_raise = 0, brow_frown = 0;
  float eye_open = 1, gaze_x = 0, gaze_y = 0;
  float light = 1;
  int occlusion = -1;     // index into the plan's occlusions
  float occlusion_t = 0;  // 0..1 through the occlusion, for entering and leaving
};
struct FacePlan {
  std::vector<FaceFrame> frames;
  std::vector<Occlusion> occlusions;
};
// The per-frame parameters of one person's video, computed in frame order (blinks and head motion have
// memory). times: each frame's start in seconds.
FacePlan plan_face(const FaceIdentity& face, const FaceScene& scene, const Trajectory& traj, const SpeechPlan& speech,
                   const std::vector<double>& times, Rng& rng);
// Renders one frame into `out` (resized to scene.size). The sensor noise of frame `frame` comes from the
// stream (seed, noise_stream), value p for pixel p, so any thread renders any frame identically.
void render_face(const FaceIdentity& face, const FaceScene& scene, const FacePlan& plan, int64_t frame, uint64_t seed,
                 uint64_t noise_stream, Image& out);

}  // namespace minidl::data::synthav
