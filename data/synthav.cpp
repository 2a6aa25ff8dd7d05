// SynthAV's driver: the config and its JSON, the plan (splits, identities, recordings, durations), the
// hidden trajectories, the per-video files (annotations, timestamps, wav, frames), the manifest, and the
// temporary-folder-then-rename that makes a set appear complete or not at all.
//
// Work runs in batches of recordings: first each recording's audio and per-frame plans (in parallel over
// recordings), then its frames (in parallel over frames). Everything a recording needs is drawn from
// Philox streams named after it (synthav_internal.h), never from a shared generator, so the bytes written
// do not depend on the number of threads or the order in which they finish.
#include "data/synthav.h"

#include <fcntl.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>

#include "autograd/error.h"
#include "data/audio.h"
#include "data/image.h"
#include "data/synthav_internal.h"

namespace minidl::data {

namespace fs = std::filesystem;
using namespace synthav;
using nlohmann::ordered_json;

// ---- the random helpers and trajectories declared in synthav_internal.h ---------------------------------

namespace synthav {

double Rng::log_uniform(double lo, double hi) { return std::exp(uniform(std::log(lo), std::log(hi))); }

double Rng::normal() {
  const double u1 = uniform(), u2 = uniform();
  return std::sqrt(-2 * std::log(1 - u1)) * std::cos(2 * M_PI * u2);
}

std::vector<Interval> random_stretches(Rng& rng, double seconds, double every, double min_len, double max_len) {
  std::vector<Interval> out;
  double t = -every * std::log(1 - rng.uniform());
  while (t < seconds) {
    const double len = rng.uniform(min_len, max_len);
    out.push_back({t, std::min(seconds, t + len)});
    t += len - every * std::log(1 - rng.uniform());
  }
  return out;
}

float Trajectory::at(const std::vector<float>& x, double t) const {
  if (x.empty()) return 0;
  const double pos = std::clamp(t * rate, 0.0, static_cast<double>(x.size() - 1));
  const size_t i = std::min(static_cast<size_t>(pos), x.size() - 1);
  if (i + 1 >= x.size()) return x[i];
  const float w = static_cast<float>(pos - static_cast<double>(i));
  return x[i] + (x[i + 1] - x[i]) * w;
}

}  // namespace synthav

namespace {

constexpr const char* kSplits[3] = {"Train_Set", "Validation_Set", "Test_Set"};
constexpr const char* kFramesDir = "cropped_aligned";
constexpr const char* kAnnotationsDir = "VA_Estimation_Challenge";
constexpr const char* kAudioDir = "audio";
constexpr const char* kTimestampsDir = "timestamps";
constexpr int kRecordingsPerBatch = 8;  // bounds memory; has no effect on what is written

// ---- config ------------------------------------------------------------------------------------------------

void validate(const SynthAvConfig& c) {
  auto need = [](bool ok, const char* key, const char* rule, auto value) {
    MINIDL_CHECK(ok, "synthav: config ", key, " must be ", rule, ", got ", value);
  };
  need(c.train_identities >= 1 && c.train_identities <= 100000, "train_identities", "in [1, 100000]",
       c.train_identities);
  // Every split gets at least one identity: read_affwild2 rejects an empty split folder.
  need(c.validation_identities >= 1 && c.validation_identities <= 100000, "validation_identities", "in [1, 100000]",
       c.validation_identities);
  need(c.test_identities >= 1 && c.test_identities <= 100000, "test_identities", "in [1, 100000]", c.test_identities);
  need(c.videos_per_identity >= 1 && c.videos_per_identity <= 1000, "videos_per_identity", "in [1, 1000]",
       c.videos_per_identity);
  const int64_t recordings =
      static_cast<int64_t>(c.train_identities + c.validation_identities + c.test_identities) * c.videos_per_identity;
  need(recordings <= 1000000, "identities x videos_per_identity", "at most 1000000", recordings);
  need(c.min_seconds >= 1 && c.min_seconds <= 3600, "min_seconds", "in [1, 3600]", c.min_seconds);
  MINIDL_CHECK(c.max_seconds >= c.min_seconds && c.max_seconds <= 3600,
               "synthav: config max_seconds must be in [min_seconds, 3600], got ", c.max_seconds, " with min_seconds ",
               c.min_seconds);
  need(c.fps >= 1 && c.fps <= 240, "fps", "in [1, 240]", c.fps);
  need(c.image_size >= 16 && c.image_size <= 1024, "image_size", "in [16, 1024]", c.image_size);
  need(c.sample_rate >= 4000 && c.sample_rate <= 192000, "sample_rate", "in [4000, 192000]", c.sample_rate);
  need(c.jpeg_quality >= 1 && c.jpeg_quality <= 100, "jpeg_quality", "in [1, 100]", c.jpeg_quality);
  need(c.threads >= 0, "threads", "0 (every core) or more", c.threads);
}

ordered_json config_object(const SynthAvConfig& c) {
  ordered_json j;
  j["seed"] = c.seed;
  j["train_identities"] = c.train_identities;
  j["validation_identities"] = c.validation_identities;
  j["test_identities"] = c.test_identities;
  j["videos_per_identity"] = c.videos_per_identity;
  j["min_seconds"] = c.min_seconds;
  j["max_seconds"] = c.max_seconds;
  j["fps"] = c.fps;
  j["image_size"] = c.image_size;
  j["sample_rate"] = c.sample_rate;
  j["jpeg_quality"] = c.jpeg_quality;
  return j;
}

// ---- the plan ------------------------------------------------------------------------------------------------

// One audio file: a person alone, or two people in conversation (videos <base>_left and <base>_right).
struct Recording {
  int index = 0;  // names its random streams
  int split = 0;
  std::string base;
  std::vector<int> identities;  // 1 or 2
  bool timestamps = false;
};

struct Plan {
  std::vector<int> split_of_identity;
  std::vector<Recording> recordings;
};

Plan make_plan(const SynthAvConfig& c) {
  Plan plan;
  const int counts[3] = {c.train_identities, c.validation_identities, c.test_identities};
  int first = 0;
  char name[64];
  for (int split = 0; split < 3; ++split) {
    const int n = counts[split];
    // A few pairs of identities share their last video as a conversation, so some videos use the
    // <base>_left / <base>_right naming and share one wav, as in Aff-Wild2: about a quarter of the
    // split's videos, whatever the number of videos per identity (at least one pair).
    const int pairs = n >= 2 ? std::clamp(n * c.videos_per_identity / 8, 1, n / 2) : 0;
    for (int i = 0; i < n; ++i) {
      plan.split_of_identity.push_back(split);
      for (int slot = 1; slot <= c.videos_per_identity; ++slot) {
        Recording r;
        r.split = split;
        const bool talk = slot == c.videos_per_identity && i < 2 * pairs;
        if (talk && i % 2 == 1) continue;  // recorded with the previous identity
        if (talk) {
          r.identities = {first + i, first + i + 1};
          std::snprintf(name, sizeof name, "id%03d-id%03d-v%d", first + i, first + i + 1, slot);
        } else {
          r.identities = {first + i};
          std::snprintf(name, sizeof name, "id%03d-v%d", first + i, slot);
        }
        r.base = name;
        r.index = static_cast<int>(plan.recordings.size());
        // Conversations and every third solo recording come with a timestamps file.
        r.timestamps = talk || r.index % 3 == 1;
        plan.recordings.push_back(r);
      }
    }
    first += n;
  }
  return plan;
}

// Frame times: exactly 1 / fps apart, or (with a timestamps file) a camera clock that runs slightly
// fast or slow, with a few milliseconds of jitter, in whole milliseconds as timecode files have them.
struct Timing {
  std::vector<double> times;  // frame k's start, seconds
  std::string ts_text;        // the timestamps file, when the recording has one
};
Timing frame_times(const SynthAvConfig& c, const Recording& rec, Rng& rng) {
  Timing out;
  const double seconds = rng.uniform(c.min_seconds, c.max_seconds);
  if (rec.timestamps) {
    const double fps = c.fps * (1 + rng.uniform(-0.003, 0.003));
    const int64_t n = std::max<int64_t>(1, static_cast<int64_t>(std::floor(seconds * fps)));
    out.ts_text = "# timestamp format v2\n";
    int64_t last = -1;
    for (int64_t k = 0; k < n; ++k) {
      int64_t ms = k == 0 ? 0 : std::llround(1000.0 * static_cast<double>(k) / fps + rng.uniform(-2, 2));
      ms = std::max(ms, last + 1);
      last = ms;
      out.times.push_back(static_cast<double>(ms) / 1000);
      out.ts_text += std::to_string(ms) + "\n";
    }
  } else {
    const int64_t n = std::max<int64_t>(1, static_cast<int64_t>(std::floor(seconds * c.fps + 1e-9)));
    for (int64_t k = 0; k < n; ++k) out.times.push_back(static_cast<double>(k) / c.fps);
  }
  return out;
}

// Valence or arousal over [0, seconds]: an offset, three slow sinusoids, wandering noise and occasional
// jumps to a new level, squashed into (-1, 1) by tanh.
std::vector<float> trajectory(uint64_t seed, uint64_t stream, double seconds, double rate) {
  Rng rng(seed, stream);
  const size_t n = static_cast<size_t>(std::ceil(seconds * rate)) + 2;
  const double bias = rng.uniform(-0.6, 0.6);
  double period[3], amp[3], phase[3];
  for (int k = 0; k < 3; ++k) {
    period[k] = rng.log_uniform(4, 30);
    amp[k] = rng.uniform(0.2, 0.55);
    phase[k] = rng.uniform(0, 2 * M_PI);
  }
  const double dt = 1 / rate, rho = std::exp(-dt / 1.5), follow = 1 - std::exp(-dt / 0.15);
  double wander = 0.25 * rng.normal(), level = 0, jump = 0;
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) {
    const double t = static_cast<double>(i) * dt;
    wander = rho * wander + 0.25 * std::sqrt(1 - rho * rho) * rng.normal();
    if (rng.uniform() < dt / 12) level = rng.uniform(-0.7, 0.7);  // about one jump every 12 s
    jump += (level - jump) * follow;
    double raw = bias + wander + jump;
    for (int k = 0; k < 3; ++k) raw += amp[k] * std::sin(2 * M_PI * t / period[k] + phase[k]);
    x[i] = static_cast<float>(std::tanh(0.9 * raw));
  }
  return x;
}

// ---- files ------------------------------------------------------------------------------------------------

void write_file(const fs::path& path, const void* data, size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  MINIDL_CHECK(f, "synthav: cannot create ", path.string(), ": ", std::strerror(errno));
  const bool ok = std::fwrite(data, 1, size, f) == size;
  const int err = errno;
  MINIDL_CHECK(std::fclose(f) == 0 && ok, "synthav: cannot write ", path.string(), ": ",
               std::strerror(ok ? errno : err));
}
void write_file(const fs::path& path, const std::string& text) { write_file(path, text.data(), text.size()); }

// A value of an annotation file: 4 decimals, never "-0.0000".
void append_value(std::string& out, float v) {
  double r = std::round(static_cast<double>(v) * 1e4) / 1e4;
  if (r == 0) r = 0;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", r);
  out += buf;
}

double round3(double x) { return std::round(x * 1000) / 1000; }

// ---- per-recording work -------------------------------------------------------------------------------------

struct PersonVideo {
  std::string name, role;
  int identity = 0, partner = -1;
  FaceScene scene;
  FacePlan face;
  std::vector<uint8_t> written;  // per frame: 1 when its image file is written
  int64_t frames_written = 0, annotated = 0;
  uint64_t noise_stream = 0;
  ordered_json occlusions = ordered_json::array();
};

struct RecordingOut {
  double seconds = 0;  // covered by the frames and the audio
  int64_t frames = 0;
  AudioEvents events;
  std::vector<PersonVideo> people;
};

struct Context {
  const SynthAvConfig& config;
  const Plan& plan;
  fs::path root;  // the temporary folder being filled
  std::vector<FaceIdentity> faces;
  std::vector<VoiceIdentity> voices;
};

// Audio, annotations, timestamps and the per-frame plans of one recording; frames come later.
RecordingOut prepare(const Context& ctx, const Recording& rec) {
  const SynthAvConfig& c = ctx.config;
  const uint64_t seed = c.seed, ri = static_cast<uint64_t>(rec.index);
  RecordingOut out;
  Rng rng(seed, stream_id(Tag::kPlan, ri));

  const Timing timing = frame_times(c, rec, rng);
  const std::vector<double>& times = timing.times;
  out.frames = static_cast<int64_t>(times.size());
  out.seconds = times.back() + 1 / c.fps;

  const int people = static_cast<int>(rec.identities.size());
  std::vector<Trajectory> traj(static_cast<size_t>(people));
  for (int p = 0; p < people; ++p) {
    traj[p].valence = trajectory(seed, stream_id(Tag::kTrajectory, ri, 2 * p), out.seconds + 0.1, traj[p].rate);
    traj[p].arousal = trajectory(seed, stream_id(Tag::kTrajectory, ri, 2 * p + 1), out.seconds + 0.1, traj[p].rate);
  }
  Rng turn_rng(seed, stream_id(Tag::kSpeech, ri, 15));
  const auto turns = plan_turns(people, out.seconds, turn_rng);
  std::vector<SpeechPlan> speech(static_cast<size_t>(people));
  std::vector<Speaker> speakers;
  for (int p = 0; p < people; ++p) {
    Rng srng(seed, stream_id(Tag::kSpeech, ri, p));
    speech[p] = plan_speech(ctx.voices[rec.identities[p]], traj[p], turns[p], srng);
    speakers.push_back({&ctx.voices[rec.identities[p]], &traj[p], &speech[p]});
  }
  const std::vector<float> samples = synthesize_audio(speakers, out.seconds, c.sample_rate, seed, ri, &out.events);
  const std::vector<uint8_t> wav = encode_wav(samples, c.sample_rate);
  write_file(ctx.root / kAudioDir / (rec.base + ".wav"), wav.data(), wav.size());
  if (rec.timestamps) write_file(ctx.root / kTimestampsDir / (rec.base + "_video_ts.txt"), timing.ts_text);

  for (int p = 0; p < people; ++p) {
    PersonVideo pv;
    pv.identity = rec.identities[p];
    pv.partner = people == 2 ? rec.identities[1 - p] : -1;
    pv.role = people == 1 ? "solo" : p == 0 ? "left" : "right";
    pv.name = people == 1 ? rec.base : rec.base + (p == 0 ? "_left" : "_right");
    const FaceIdentity& face = ctx.faces[pv.identity];
    Rng scene_rng(seed, stream_id(Tag::kFaceScene, ri, p));
    pv.scene = make_face_scene(face, c.image_size, scene_rng);
    Rng face_rng(seed, stream_id(Tag::kFacePlan, ri, p));
    pv.face = plan_face(face, pv.scene, traj[p], speech[p], times, face_rng);
    pv.noise_stream = 2 * ri + static_cast<uint64_t>(p);

    // Frames the "face detector" missed: short stretches, single frames, and often the middle of an
    // occlusion. Frames not annotated: now and then a stretch.
    const int64_t n = out.frames;
    Rng frng(seed, stream_id(Tag::kFrames, ri, p));
    auto frame_at = [&](double t) {  // the first frame starting at or after t
      return static_cast<int64_t>(std::lower_bound(times.begin(), times.end(), t) - times.begin());
    };
    auto clear = [&](std::vector<uint8_t>& v, int64_t from, int64_t to) {  // frames [from, to)
      for (int64_t k = std::max<int64_t>(0, from); k < std::min(n, to); ++k) v[k] = 0;
    };
    pv.written.assign(static_cast<size_t>(n), 1);
    for (const Interval& iv : random_stretches(frng, out.seconds, 15, 0.1, 0.5))
      clear(pv.written, frame_at(iv.start), frame_at(iv.end));
    for (int64_t k = 0; k < n; ++k)
      if (frng.chance(0.004)) pv.written[k] = 0;
    for (const Occlusion& o : pv.face.occlusions)
      if (frng.chance(0.4))
        clear(pv.written, o.first + (o.last - o.first) / 4, o.first + 3 * (o.last - o.first) / 4 + 1);
    if (std::count(pv.written.begin(), pv.written.end(), 1) == 0) pv.written[0] = 1;
    pv.frames_written = std::count(pv.written.begin(), pv.written.end(), 1);

    std::vector<uint8_t> annotated(static_cast<size_t>(n), 1);
    for (const Interval& iv : random_stretches(frng, out.seconds, 25, 0.3, 2.0))
      clear(annotated, frame_at(iv.start), frame_at(iv.end));
    if (std::count(annotated.begin(), annotated.end(), 1) == 0) annotated[0] = 1;
    std::string text = "valence,arousal\n";
    text.reserve(static_cast<size_t>(n) * 16 + 16);
    for (int64_t k = 0; k < n; ++k) {
      if (!annotated[k]) {
        text += "-5,-5\n";
        continue;
      }
      ++pv.annotated;
      append_value(text, traj[p].valence_at(times[k]));
      text += ',';
      append_value(text, traj[p].arousal_at(times[k]));
      text += '\n';
    }
    write_file(ctx.root / kAnnotationsDir / kSplits[rec.split] / (pv.name + ".txt"), text);
    fs::create_directory(ctx.root / kFramesDir / pv.name);
    static const char* kKinds[] = {"bar", "hand", "blur"};
    for (const Occlusion& o : pv.face.occlusions)
      pv.occlusions.push_back({o.first + 1, o.last + 1, kKinds[static_cast<int>(o.kind)]});
    out.people.push_back(std::move(pv));
  }
  return out;
}

void render_frame(const Context& ctx, const PersonVideo& pv, int64_t frame, Image& img) {
  render_face(ctx.faces[pv.identity], pv.scene, pv.face, frame, ctx.config.seed,
              stream_id(Tag::kPixelNoise, pv.noise_stream, static_cast<uint64_t>(frame)), img);
  const std::vector<uint8_t> jpeg = encode_jpeg(img, ctx.config.jpeg_quality);
  char name[32];
  std::snprintf(name, sizeof name, "%05lld.jpg", static_cast<long long>(frame + 1));
  write_file(ctx.root / kFramesDir / pv.name / name, jpeg.data(), jpeg.size());
}

// Collects the first exception thrown inside a parallel region, and tells the others to stop.
struct Failure {
  std::mutex mutex;
  std::exception_ptr error;
  std::atomic<bool> failed{false};
  template <class F>
  void run(F&& f) {
    if (failed.load(std::memory_order_relaxed)) return;
    try {
      f();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex);
      if (!error) error = std::current_exception();
      failed = true;
    }
  }
  void rethrow() {
    if (error) std::rethrow_exception(error);
  }
};

ordered_json manifest_cues() {
  const Cues& k = kCues;
  ordered_json j;
  j["face_valence"] = {{"mouth_curve_v", k.mouth_curve_v},     {"mouth_lift", k.mouth_lift},
                       {"mouth_widen_v", k.mouth_widen_v},     {"resting_smile_sd", k.resting_smile_sd},
                       {"mouth_jitter_sd", k.mouth_jitter_sd}, {"brow_raise_v", k.brow_raise_v},
                       {"brow_frown_v", k.brow_frown_v},       {"teeth_v", k.teeth_v},
                       {"smile_open_v", k.smile_open_v}};
  j["face_arousal"] = {{"eye_open_a", k.eye_open_a},         {"blink_per_min", k.blink_per_min},
                       {"head_move_base", k.head_move_base}, {"head_move_a", k.head_move_a},
                       {"head_roll_base", k.head_roll_base}, {"head_roll_a", k.head_roll_a},
                       {"articulation_a", k.articulation_a}, {"brow_raise_a", k.brow_raise_a}};
  j["voice_arousal"] = {{"pitch_a", k.pitch_a},   {"accent_base", k.accent_base},
                        {"accent_a", k.accent_a}, {"loudness_db_a", k.loudness_db_a},
                        {"rate_a", k.rate_a},     {"pause_a", k.pause_a},
                        {"tilt_a", k.tilt_a}};
  j["voice_valence"] = {{"intonation_v", k.intonation_v}, {"formant_v", k.formant_v}, {"tilt_v", k.tilt_v}};
  return j;
}

// Moves `from` to `to` unless `to` exists (atomically where the system allows).
void rename_into_place(const fs::path& from, const fs::path& to) {
#if defined(__linux__) && defined(RENAME_NOREPLACE)
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return;
  MINIDL_CHECK(errno == EINVAL || errno == ENOSYS, "synthav: cannot rename ", from.string(), " to ", to.string(), ": ",
               std::strerror(errno), errno == EEXIST ? " (it was created while generating)" : "");
#endif
  MINIDL_CHECK(!fs::exists(fs::symlink_status(to)), "synthav: ", to.string(), " was created while generating");
  fs::rename(from, to);
}

}  // namespace

std::string synthav_config_json(const SynthAvConfig& config) { return config_object(config).dump(2); }

SynthAvConfig synthav_config_from_json(const std::string& text) {
  ordered_json j;
  try {
    j = ordered_json::parse(text);
  } catch (const std::exception& e) {
    fail("synthav: config is not valid JSON: ", e.what());
  }
  MINIDL_CHECK(j.is_object(), "synthav: config must be a JSON object, got ", j.type_name());
  SynthAvConfig c;
  for (const auto& [key, value] : j.items()) {
    auto integer = [&](auto& field) {
      MINIDL_CHECK(value.is_number_integer(), "synthav: config ", key, " must be an integer, got ", value.dump());
      const int64_t x = value.get<int64_t>();
      MINIDL_CHECK(x >= -1000000000 && x <= 1000000000, "synthav: config ", key, " is out of range: ", value.dump());
      field = static_cast<int>(x);
    };
    auto real = [&](double& field) {
      MINIDL_CHECK(value.is_number(), "synthav: config ", key, " must be a number, got ", value.dump());
      field = value.get<double>();
    };
    if (key == "seed") {
      MINIDL_CHECK(value.is_number_unsigned(), "synthav: config seed must be an integer in [0, 2^64), got ",
                   value.dump());
      c.seed = value.get<uint64_t>();
    } else if (key == "train_identities") {
      integer(c.train_identities);
    } else if (key == "validation_identities") {
      integer(c.validation_identities);
    } else if (key == "test_identities") {
      integer(c.test_identities);
    } else if (key == "videos_per_identity") {
      integer(c.videos_per_identity);
    } else if (key == "min_seconds") {
      real(c.min_seconds);
    } else if (key == "max_seconds") {
      real(c.max_seconds);
    } else if (key == "fps") {
      real(c.fps);
    } else if (key == "image_size") {
      integer(c.image_size);
    } else if (key == "sample_rate") {
      integer(c.sample_rate);
    } else if (key == "jpeg_quality") {
      integer(c.jpeg_quality);
    } else {
      fail("synthav: unknown config key \"", key,
           "\" (known: seed, train_identities, validation_identities, test_identities, videos_per_identity, "
           "min_seconds, max_seconds, fps, image_size, sample_rate, jpeg_quality)");
    }
  }
  validate(c);
  return c;
}

bool synthav_ready(const std::string& root, const SynthAvConfig& config) {
  std::error_code ec;
  const fs::path dir(root);
  if (!fs::is_regular_file(dir / "manifest.json", ec)) return false;
  for (const char* split : kSplits)
    if (!fs::is_directory(dir / kAnnotationsDir / split, ec)) return false;
  std::FILE* f = std::fopen((dir / "manifest.json").c_str(), "rb");
  if (!f) return false;
  std::string text;
  char buf[65536];
  for (size_t got; (got = std::fread(buf, 1, sizeof buf, f)) > 0;) text.append(buf, got);
  std::fclose(f);
  const ordered_json m = ordered_json::parse(text, nullptr, false);
  if (m.is_discarded() || !m.is_object()) return false;
  return m.value("dataset", "") == "SynthAV" && m.value("generator_version", -1) == kGeneratorVersion &&
         m.contains("config") && m["config"] == config_object(config);
}

SynthAvSummary generate_synthav(const std::string& root_arg, const SynthAvConfig& config,
                                const SynthAvProgress& progress) {
  validate(config);
  const auto started = std::chrono::steady_clock::now();
  MINIDL_CHECK(!root_arg.empty(), "synthav: the output folder name is empty");
  fs::path root = fs::path(root_arg).lexically_normal();
  if (root.filename().empty()) root = root.parent_path();  // "dir/" names dir
  MINIDL_CHECK(!fs::exists(fs::symlink_status(root)), "synthav: ", root.string(),
               " already exists; SynthAV never writes into an existing folder (remove it or choose another)");
  const fs::path parent = root.has_parent_path() ? root.parent_path() : fs::path(".");
  const fs::path temp = parent / (root.filename().string() + ".partial-" + std::to_string(::getpid()));
  try {
    fs::create_directories(parent);
    fs::remove_all(temp);  // left behind by a killed run of a process with our id
  } catch (const fs::filesystem_error& e) {
    fail("synthav: cannot prepare ", temp.string(), ": ", e.code().message());
  }

  const Plan plan = make_plan(config);
  Context ctx{config, plan, temp, {}, {}};
  for (int id = 0; id < static_cast<int>(plan.split_of_identity.size()); ++id) {
    ctx.faces.push_back(make_face_identity(config.seed, id));
    ctx.voices.push_back(make_voice_identity(config.seed, id));
  }
  const int threads = config.threads > 0 ? config.threads : omp_get_max_threads();
  SynthAvSummary summary;
  ordered_json videos = ordered_json::array();
  ordered_json split_videos[3] = {ordered_json::array(), ordered_json::array(), ordered_json::array()};

  try {
    fs::create_directories(temp / kFramesDir);
    fs::create_directories(temp / kAudioDir);
    fs::create_directories(temp / kTimestampsDir);
    for (const char* split : kSplits) fs::create_directories(temp / kAnnotationsDir / split);

    // Progress counts frames, written or not; their number follows from the plan's first draws.
    std::vector<int64_t> frames_of(plan.recordings.size());
    int64_t total = 0;
    for (const Recording& r : plan.recordings) {
      Rng rng(config.seed, stream_id(Tag::kPlan, static_cast<uint64_t>(r.index)));
      frames_of[r.index] =
          static_cast<int64_t>(frame_times(config, r, rng).times.size()) * static_cast<int64_t>(r.identities.size());
      total += frames_of[r.index];
    }
    int64_t done = 0;
    auto last_report = std::chrono::steady_clock::now();
    auto report = [&](int64_t now_done, bool force) {
      if (!progress) return;
      const auto now = std::chrono::steady_clock::now();
      if (!force && now - last_report < std::chrono::milliseconds(50)) return;
      last_report = now;
      progress(std::min(now_done, total), total);
    };
    report(0, true);

    const int nrec = static_cast<int>(plan.recordings.size());
    for (int b0 = 0; b0 < nrec; b0 += kRecordingsPerBatch) {
      const int b1 = std::min(nrec, b0 + kRecordingsPerBatch);
      std::vector<RecordingOut> outs(static_cast<size_t>(b1 - b0));
      Failure failure;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
      for (int r = b0; r < b1; ++r) failure.run([&] { outs[r - b0] = prepare(ctx, plan.recordings[r]); });
      failure.rethrow();

      struct Job {
        const PersonVideo* video;
        int64_t frame;
      };
      std::vector<Job> jobs;
      for (int r = b0; r < b1; ++r) {
        const RecordingOut& o = outs[r - b0];
        for (const PersonVideo& pv : o.people)
          for (int64_t k = 0; k < o.frames; ++k)
            if (pv.written[k]) jobs.push_back({&pv, k});
      }
      std::atomic<int64_t> batch_done{0};
      const int64_t njobs = static_cast<int64_t>(jobs.size());
#pragma omp parallel num_threads(threads)
      {
        Image img;
#pragma omp for schedule(dynamic, 4)
        for (int64_t j = 0; j < njobs; ++j) {
          failure.run([&] { render_frame(ctx, *jobs[j].video, jobs[j].frame, img); });
          const int64_t d = batch_done.fetch_add(1, std::memory_order_relaxed) + 1;
          if (omp_get_thread_num() == 0) failure.run([&] { report(done + d, false); });  // the caller's thread
        }
      }
      failure.rethrow();
      for (int r = b0; r < b1; ++r) done += frames_of[r];

      for (int r = b0; r < b1; ++r) {
        const Recording& rec = plan.recordings[r];
        const RecordingOut& o = outs[r - b0];
        for (const PersonVideo& pv : o.people) {
          ordered_json v;
          v["name"] = pv.name;
          v["split"] = kSplits[rec.split];
          v["identity"] = pv.identity;
          v["partner"] = pv.partner >= 0 ? ordered_json(pv.partner) : ordered_json(nullptr);
          v["role"] = pv.role;
          v["recording"] = rec.index;  // names the recording's random streams (synthav_internal.h)
          v["audio"] = rec.base + ".wav";
          v["timestamps"] = rec.timestamps ? ordered_json(rec.base + "_video_ts.txt") : ordered_json(nullptr);
          v["seconds"] = round3(o.seconds);
          v["frames"] = o.frames;
          v["frames_written"] = pv.frames_written;
          v["annotated_frames"] = pv.annotated;
          v["occlusions"] = pv.occlusions;
          ordered_json low = ordered_json::array(), silent = ordered_json::array();
          for (const Interval& iv : o.events.low_snr) low.push_back({round3(iv.start), round3(iv.end)});
          for (const Interval& iv : o.events.silent) silent.push_back({round3(iv.start), round3(iv.end)});
          v["audio_snr_db"] = round3(o.events.snr_db);
          v["audio_hum"] = o.events.hum;
          v["audio_low_snr"] = low;
          v["audio_silent"] = silent;
          videos.push_back(v);
          split_videos[rec.split].push_back(pv.name);
          summary.videos += 1;
          summary.frames += pv.frames_written;
          summary.seconds += o.seconds;
        }
      }
    }

    ordered_json m;
    m["dataset"] = "SynthAV";
    m["generator_version"] = kGeneratorVersion;
    m["config"] = config_object(config);
    m["layout"] = {{"frames_dir", kFramesDir}, {"frame_pattern", "%05d.jpg"},      {"annotations_dir", kAnnotationsDir},
                   {"audio_dir", kAudioDir},   {"timestamps_dir", kTimestampsDir}, {"fps", config.fps}};
    m["cues"] = manifest_cues();
    ordered_json splits;
    for (int s = 0; s < 3; ++s) {
      ordered_json ids = ordered_json::array();
      for (size_t id = 0; id < plan.split_of_identity.size(); ++id)
        if (plan.split_of_identity[id] == s) ids.push_back(id);
      std::vector<std::string> names = split_videos[s].get<std::vector<std::string>>();
      std::sort(names.begin(), names.end());
      splits[kSplits[s]] = {{"identities", ids}, {"videos", names}};
    }
    m["splits"] = splits;
    ordered_json ids = ordered_json::array();
    for (size_t id = 0; id < plan.split_of_identity.size(); ++id) {
      const FaceIdentity& f = ctx.faces[id];
      const VoiceIdentity& v = ctx.voices[id];
      ids.push_back({{"identity", id},
                     {"split", kSplits[plan.split_of_identity[id]]},
                     {"f0_hz", round3(v.f0)},
                     {"voice_level_db", round3(v.level_db)},
                     {"syllable_rate", round3(v.syllable_rate)},
                     {"skin", {round3(f.skin.r), round3(f.skin.g), round3(f.skin.b)}},
                     {"hair_style", f.hair_style == 0   ? "short"
                                    : f.hair_style == 1 ? "long"
                                                        : "none"},
                     {"resting_smile", round3(f.smile)}});
    }
    m["identities"] = ids;
    m["videos"] = videos;
    m["totals"] = {{"videos", summary.videos},
                   {"frames_written", summary.frames},
                   {"seconds", round3(summary.seconds)},
                   {"audio_files", plan.recordings.size()}};
    write_file(temp / "manifest.json", m.dump(2) + "\n");
    report(total, true);  // before the rename: a callback that throws now still leaves nothing behind
    rename_into_place(temp, root);
  } catch (const fs::filesystem_error& e) {
    std::error_code ec;
    fs::remove_all(temp, ec);
    fail("synthav: ", e.what());
  } catch (...) {
    std::error_code ec;
    fs::remove_all(temp, ec);
    throw;
  }
  summary.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return summary;
}

}  // namespace minidl::data
