// SynthAV (data/synthav.h): the config and its JSON, byte-for-byte determinism across thread counts, the
// layout as read_affwild2 sees it (frames, annotations, timestamps, shared wavs, missing frames), refusing
// to overwrite, the manifest check, interruption, and that the cues carry their dimension: the face's
// valence-driven pixels track valence, the voice's loudness tracks arousal.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "autograd/error.h"
#include "data/affwild2.h"
#include "data/audio.h"
#include "data/image.h"
#include "data/synthav.h"
#include "data/synthav_internal.h"
#include "tests/data/data_test_helpers.h"

using namespace minidl;
using namespace minidl::data;
using namespace data_test;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* kSplits[] = {"Train_Set", "Validation_Set", "Test_Set"};

// 3 + 1 + 1 identities, one 2-3 s video each (ids 0 and 1 talk to each other: a _left/_right pair),
// small frames and 8 kHz audio: a whole set in well under a second.
SynthAvConfig tiny_config() {
  SynthAvConfig c;
  c.seed = 11;
  c.train_identities = 3;
  c.validation_identities = 1;
  c.test_identities = 1;
  c.videos_per_identity = 1;
  c.min_seconds = 2;
  c.max_seconds = 3;
  c.image_size = 32;
  c.sample_rate = 8000;
  return c;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

json read_manifest(const fs::path& root) { return json::parse(read_bytes(root / "manifest.json")); }

// Relative path -> bytes of every file under root.
std::map<std::string, std::string> all_files(const fs::path& root) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) files[fs::relative(e.path(), root).string()] = read_bytes(e.path());
  return files;
}

// Least squares y = bv * v + ba * a on data centred per video, coefficients standardised (multiplied by
// sd(x) / sd(y)): how much of y each dimension explains even when v and a happen to move together.
struct Effects {
  double valence = 0, arousal = 0;
};
Effects standardised_effects(const std::vector<double>& y, const std::vector<double>& v, const std::vector<double>& a) {
  double vv = 0, aa = 0, va = 0, yv = 0, ya = 0, yy = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    vv += v[i] * v[i], aa += a[i] * a[i], va += v[i] * a[i];
    yv += y[i] * v[i], ya += y[i] * a[i], yy += y[i] * y[i];
  }
  const double det = vv * aa - va * va;
  const double bv = (aa * yv - va * ya) / det, ba = (vv * ya - va * yv) / det;
  return {bv * std::sqrt(vv / yy), ba * std::sqrt(aa / yy)};
}

// Subtracts the mean, divides by the standard deviation.
void standardise(std::vector<double>& x) {
  double mean = 0, sq = 0;
  for (double e : x) mean += e / static_cast<double>(x.size());
  for (double& e : x) e -= mean, sq += e * e;
  const double sd = std::sqrt(sq / static_cast<double>(x.size())) + 1e-12;
  for (double& e : x) e /= sd;
}

// A box blur of radius r over an RGB image, as floats: makes a pixel template forgiving of the small
// head movements between the frame it was made from and the frames it is compared with.
std::vector<float> blurred(const std::vector<uint8_t>& rgb, int size, int r) {
  std::vector<float> a(rgb.begin(), rgb.end()), b(a.size());
  for (int pass = 0; pass < 2; ++pass) {
    for (int y = 0; y < size; ++y)
      for (int x = 0; x < size; ++x)
        for (int ch = 0; ch < 3; ++ch) {
          float sum = 0;
          int n = 0;
          for (int d = -r; d <= r; ++d) {
            const int xx = pass == 0 ? x + d : x, yy = pass == 0 ? y : y + d;
            if (xx < 0 || yy < 0 || xx >= size || yy >= size) continue;
            sum += a[(yy * size + xx) * 3 + ch];
            ++n;
          }
          b[(y * size + x) * 3 + ch] = sum / n;
        }
    std::swap(a, b);
  }
  return a;
}

// One tiny set for the tests that only read it.
class SynthAvTiny : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    SynthAvConfig c = tiny_config();
    c.threads = 1;
    summary_ = generate_synthav((*dir_ / "set").string(), c);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static fs::path root() { return *dir_ / "set"; }
  static TempDir* dir_;
  static SynthAvSummary summary_;
};
TempDir* SynthAvTiny::dir_ = nullptr;
SynthAvSummary SynthAvTiny::summary_;

}  // namespace

TEST(SynthAvConfig, JsonRoundTrip) {
  SynthAvConfig c = tiny_config();
  c.seed = 18446744073709551615ull;  // the largest seed survives JSON
  c.fps = 25;
  c.jpeg_quality = 70;
  c.threads = 3;
  const std::string text = synthav_config_json(c);
  EXPECT_EQ(text.find("threads"), std::string::npos) << "threads does not change the data, so it is not stored";
  const SynthAvConfig back = synthav_config_from_json(text);
  EXPECT_EQ(back.seed, c.seed);
  EXPECT_EQ(back.train_identities, 3);
  EXPECT_EQ(back.validation_identities, 1);
  EXPECT_EQ(back.test_identities, 1);
  EXPECT_EQ(back.videos_per_identity, 1);
  EXPECT_EQ(back.min_seconds, 2);
  EXPECT_EQ(back.max_seconds, 3);
  EXPECT_EQ(back.fps, 25);
  EXPECT_EQ(back.image_size, 32);
  EXPECT_EQ(back.sample_rate, 8000);
  EXPECT_EQ(back.jpeg_quality, 70);
  EXPECT_EQ(synthav_config_json(back), text);
  // Missing keys keep their defaults.
  EXPECT_EQ(synthav_config_from_json("{\"seed\": 5}").image_size, SynthAvConfig{}.image_size);
}

TEST(SynthAvConfig, BadJsonIsAnErrorNamingTheKey) {
  auto message = [](const std::string& text) -> std::string {
    try {
      synthav_config_from_json(text);
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_NE(message("{\"image_sise\": 64}").find("unknown config key \"image_sise\""), std::string::npos);
  EXPECT_NE(message("{\"threads\": 2}").find("unknown config key \"threads\""), std::string::npos);
  EXPECT_NE(message("{\"image_size\": 64.5}").find("image_size must be an integer"), std::string::npos);
  EXPECT_NE(message("{\"fps\": \"fast\"}").find("fps must be a number"), std::string::npos);
  EXPECT_NE(message("{\"seed\": -1}").find("seed must be an integer"), std::string::npos);
  EXPECT_NE(message("{\"min_seconds\": 5, \"max_seconds\": 4}").find("max_seconds must be in [min_seconds"),
            std::string::npos);
  EXPECT_NE(message("{\"test_identities\": 0}").find("test_identities must be in [1,"), std::string::npos);
  EXPECT_NE(message("[1, 2]").find("must be a JSON object"), std::string::npos);
  EXPECT_NE(message("{\"seed\": ").find("not valid JSON"), std::string::npos);
}

TEST(SynthAvGenerate, InvalidConfigIsAnErrorAndWritesNothing) {
  TempDir dir;
  SynthAvConfig c = tiny_config();
  c.image_size = 8;
  EXPECT_THROW(generate_synthav((dir / "set").string(), c), Error);
  EXPECT_FALSE(fs::exists(dir / "set"));
}

// Two generations with different thread counts give identical files, byte for byte.
TEST(SynthAvGenerate, SameBytesWhateverTheThreadCount) {
  TempDir dir;
  SynthAvConfig c = tiny_config();
  c.threads = 1;
  const SynthAvSummary a = generate_synthav((dir / "a").string(), c);
  c.threads = 3;
  const SynthAvSummary b = generate_synthav((dir / "b").string(), c);
  EXPECT_EQ(a.videos, b.videos);
  EXPECT_EQ(a.frames, b.frames);
  const auto fa = all_files(dir / "a"), fb = all_files(dir / "b");
  ASSERT_EQ(fa.size(), fb.size());
  size_t jpegs = 0;
  for (const auto& [name, bytes] : fa) {
    const auto it = fb.find(name);
    ASSERT_NE(it, fb.end()) << name << " only in the first set";
    EXPECT_TRUE(bytes == it->second) << name << " differs";
    jpegs += name.ends_with(".jpg");
  }
  EXPECT_EQ(static_cast<int64_t>(jpegs), a.frames);
  // A different seed gives a different set.
  c.seed += 1;
  generate_synthav((dir / "c").string(), c);
  EXPECT_NE(read_bytes(dir / "a" / "manifest.json"), read_bytes(dir / "c" / "manifest.json"));
}

TEST_F(SynthAvTiny, EverySplitReadsBackWithReadAffWild2) {
  const json m = read_manifest(root());
  std::map<std::string, json> by_name;
  for (const json& v : m["videos"]) by_name[v["name"].get<std::string>()] = v;
  const SynthAvConfig c = tiny_config();
  int videos = 0, with_timestamps = 0, pairs = 0;
  int64_t frames_written = 0, missing = 0, unannotated = 0;
  for (const char* split : kSplits) {
    AffWild2Layout layout;
    layout.root = root().string();
    layout.split = split;
    const Dataset ds = read_affwild2(layout);
    ASSERT_EQ(ds.videos.size(), m["splits"][split]["videos"].size()) << split;
    EXPECT_TRUE(ds.warnings.empty());
    for (const VideoRecord& v : ds.videos) {
      SCOPED_TRACE(v.name);
      ASSERT_TRUE(by_name.count(v.name));
      const json& info = by_name[v.name];
      EXPECT_EQ(info["split"], split);
      ++videos;
      // Frame count against the duration: frames cover [0, seconds) at the frame rate.
      const double seconds = info["seconds"].get<double>();
      EXPECT_EQ(v.num_frames(), info["frames"].get<int64_t>());
      EXPECT_GE(seconds, c.min_seconds - 0.05);
      EXPECT_LE(seconds, c.max_seconds + 0.05);
      if (v.frame_time_ms.empty()) {
        EXPECT_NEAR(static_cast<double>(v.num_frames()), seconds * c.fps, 0.01);
      } else {
        ++with_timestamps;
        EXPECT_EQ(v.frame_time_ms.size(), static_cast<size_t>(v.num_frames()));
        EXPECT_EQ(v.frame_time_ms.front(), 0);
        EXPECT_NEAR(v.frame_time_ms.back() / 1000 + 1 / c.fps, seconds, 0.002);
        EXPECT_NEAR(static_cast<double>(v.num_frames()), seconds * c.fps, 0.02 * seconds * c.fps);
      }
      // Labels: in [-1, 1] or the -5 marker, both values of a frame together.
      for (int64_t k = 0; k < v.num_frames(); ++k) {
        const float va = v.valence[k], ar = v.arousal[k];
        if (va == kNotAnnotated) {
          EXPECT_EQ(ar, kNotAnnotated);
          ++unannotated;
        } else {
          EXPECT_TRUE(va >= -1 && va <= 1 && ar >= -1 && ar <= 1) << "frame " << k + 1 << ": " << va << "," << ar;
        }
      }
      EXPECT_EQ(v.num_frames() - std::count(v.valence.begin(), v.valence.end(), kNotAnnotated),
                info["annotated_frames"].get<int64_t>());
      // Missing frames are really missing, written ones are really there.
      int64_t written = 0;
      for (int64_t k = 1; k <= v.num_frames(); ++k) {
        EXPECT_EQ(v.image_exists(k), fs::exists(v.frame_path(k))) << "frame " << k;
        written += v.image_exists(k);
      }
      EXPECT_EQ(written, info["frames_written"].get<int64_t>());
      EXPECT_EQ(static_cast<int64_t>(std::distance(fs::directory_iterator(v.frames_dir), {})), written);
      frames_written += written;
      missing += v.num_frames() - written;
      // Left and right faces of one conversation share its wav.
      const std::string base = audio_base_name(v.name);
      EXPECT_EQ(fs::path(v.wav_path).filename().string(), base + ".wav");
      EXPECT_EQ(info["audio"], base + ".wav");
      if (base != v.name) {
        ++pairs;
        EXPECT_FALSE(info["partner"].is_null());
      }
      const Image img =
          read_image(v.frame_path(std::find(v.has_image.begin(), v.has_image.end(), 1) - v.has_image.begin() + 1));
      EXPECT_EQ(img.width, c.image_size);
      EXPECT_EQ(img.height, c.image_size);
    }
  }
  EXPECT_EQ(videos, 5);
  EXPECT_EQ(pairs, 2);
  EXPECT_GE(with_timestamps, 2);
  EXPECT_LT(with_timestamps, videos);
  EXPECT_EQ(frames_written, summary_.frames);
  EXPECT_GT(missing, 0) << "the tiny set should exercise missing frames";
  EXPECT_GT(unannotated, 0) << "the tiny set should exercise unannotated frames";
  EXPECT_EQ(m["totals"]["frames_written"].get<int64_t>(), summary_.frames);
}

TEST_F(SynthAvTiny, AudioMatchesItsVideoAndItsSilences) {
  const json m = read_manifest(root());
  const SynthAvConfig c = tiny_config();
  size_t silent = 0;
  for (const json& v : m["videos"]) {
    SCOPED_TRACE(v["name"].get<std::string>());
    silent += v["audio_silent"].size();
    const Audio audio = read_wav((root() / "audio" / v["audio"].get<std::string>()).string());
    EXPECT_EQ(audio.sample_rate, c.sample_rate);
    EXPECT_NEAR(audio.seconds(), v["seconds"].get<double>(), 0.002);
    double energy = 0, peak = 0;
    for (float x : audio.samples) energy += x * x, peak = std::max(peak, std::fabs(static_cast<double>(x)));
    EXPECT_GT(std::sqrt(energy / audio.samples.size()), 0.005) << "someone should be talking";
    EXPECT_LT(peak, 1.0) << "clipped";
    // Silent stretches are digital silence (5 ms fades at their edges).
    for (const json& iv : v["audio_silent"]) {
      const double from = iv[0].get<double>() + 0.006, to = iv[1].get<double>() - 0.006;
      for (int64_t k = std::llround(from * c.sample_rate); k < std::llround(to * c.sample_rate); ++k)
        ASSERT_EQ(audio.samples[k], 0.0f) << "sample " << k;
    }
  }
  EXPECT_GT(silent, 0u) << "the tiny set should exercise silent stretches";
}

TEST_F(SynthAvTiny, ManifestRecordsTheGeneratorAndTheSplit) {
  const json m = read_manifest(root());
  EXPECT_EQ(m["dataset"], "SynthAV");
  EXPECT_EQ(m["config"], json::parse(synthav_config_json(tiny_config())));
  EXPECT_TRUE(m["cues"]["face_valence"].contains("mouth_curve_v"));
  EXPECT_TRUE(m["cues"]["voice_arousal"].contains("pitch_a"));
  // The split is by identity: no identity in two splits, and every video's identity is in its split.
  std::map<int, std::string> split_of;
  for (const char* split : kSplits)
    for (const json& id : m["splits"][split]["identities"]) {
      EXPECT_FALSE(split_of.count(id.get<int>())) << "identity " << id << " in two splits";
      split_of[id.get<int>()] = split;
    }
  EXPECT_EQ(split_of.size(), 5u);
  for (const json& v : m["videos"]) {
    EXPECT_EQ(split_of[v["identity"].get<int>()], v["split"].get<std::string>());
    if (!v["partner"].is_null()) {
      EXPECT_EQ(split_of[v["partner"].get<int>()], v["split"].get<std::string>());
    }
  }
  EXPECT_FALSE(fs::exists(root().string() + ".partial-" + std::to_string(::getpid())));
}

TEST_F(SynthAvTiny, ReadyOnlyForItsOwnConfig) {
  SynthAvConfig c = tiny_config();
  EXPECT_TRUE(synthav_ready(root().string(), c));
  c.threads = 7;  // not part of the data
  EXPECT_TRUE(synthav_ready(root().string(), c));
  c.seed += 1;
  EXPECT_FALSE(synthav_ready(root().string(), c));
  c = tiny_config();
  c.image_size = 48;
  EXPECT_FALSE(synthav_ready(root().string(), c));
  EXPECT_FALSE(synthav_ready((root() / "nothing-here").string(), tiny_config()));
}

TEST_F(SynthAvTiny, ExistingFolderIsAnError) {
  const std::string before = read_bytes(root() / "manifest.json");
  try {
    generate_synthav(root().string(), tiny_config());
    ADD_FAILURE() << "generating into an existing folder should fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already exists"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_bytes(root() / "manifest.json"), before);
  // Even an empty folder is refused: the set never mixes with other files.
  fs::create_directories(*dir_ / "empty");
  EXPECT_THROW(generate_synthav((*dir_ / "empty").string(), tiny_config()), Error);
}

TEST(SynthAvGenerate, ProgressCountsEveryFrameAndAnInterruptLeavesNothing) {
  TempDir dir;
  SynthAvConfig c = tiny_config();
  int64_t last_done = -1, last_total = -1, calls = 0;
  bool monotone = true;
  generate_synthav((dir / "set").string(), c, [&](int64_t done, int64_t total) {
    monotone = monotone && done >= last_done && (last_total < 0 || total == last_total);
    last_done = done, last_total = total;
    ++calls;
  });
  EXPECT_TRUE(monotone);
  EXPECT_GE(calls, 2);
  int64_t frames = 0;
  const json manifest = read_manifest(dir / "set");
  for (const json& v : manifest["videos"]) frames += v["frames"].get<int64_t>();
  EXPECT_EQ(last_done, frames);
  EXPECT_EQ(last_total, frames);

  // A progress callback that throws (how the app stops on Ctrl-C) stops the run and removes its work.
  EXPECT_THROW(generate_synthav((dir / "stopped").string(), c,
                                [](int64_t done, int64_t) {
                                  if (done == 0) throw Error("stop");
                                }),
               Error);
  EXPECT_FALSE(fs::exists(dir / "stopped"));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), {}), 1) << "only the first set is left";
}

// The valence template of one generated video's face: the face at rest rendered at valence +0.8 minus
// at -0.8 (everything else equal), blurred, with the middle of the mouth left out (speech opens it
// whatever the valence). The face at rest (the mean of the two) is returned too, to align frames with.
struct FaceTemplate {
  std::vector<float> weight, rest;
};
FaceTemplate valence_template(const SynthAvConfig& c, int identity, int recording, int person, int blur) {
  using namespace minidl::data::synthav;
  const FaceIdentity face = make_face_identity(c.seed, identity);
  Rng scene_rng(c.seed, stream_id(Tag::kFaceScene, recording, person));
  const FaceScene scene = make_face_scene(face, c.image_size, scene_rng);
  const int n = c.image_size;
  std::vector<float> render[2];
  for (int s = 0; s < 2; ++s) {
    Trajectory t;
    t.valence.assign(10, s == 0 ? -0.8f : 0.8f);
    t.arousal.assign(10, 0.0f);
    Rng rng(1, 2);
    FacePlan plan = plan_face(face, scene, t, SpeechPlan{}, {0.0}, rng);
    FaceFrame& f = plan.frames[0];  // at rest: no motion, no occluder, eyes open
    f.cx = face.cx * n + scene.dx;
    f.cy = face.cy * n + scene.dy;
    f.scale = face.scale * n;
    f.roll = f.yaw = 0;
    f.eye_open = face.eye_open;
    f.occlusion = -1;
    Image img;
    render_face(face, scene, plan, 0, 1, 2, img);
    render[s] = blurred(img.rgb, n, blur);
  }
  FaceTemplate t;
  t.weight.resize(render[0].size());
  t.rest.resize(render[0].size());
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) {
      const float fx = (x + 0.5f - face.cx * n - scene.dx) / (face.scale * n);
      const float fy = (y + 0.5f - face.cy * n - scene.dy) / (face.scale * n);
      const bool middle = std::fabs(fx) < 0.6f * face.mouth_w && std::fabs(fy - face.mouth_y) < 0.25f;
      for (int ch = 0; ch < 3; ++ch) {
        const size_t p = (static_cast<size_t>(y) * n + x) * 3 + ch;
        t.weight[p] = middle ? 0.0f : render[1][p] - render[0][p];
        t.rest[p] = 0.5f * (render[0][p] + render[1][p]);
      }
    }
  return t;
}

// The template's response to a (blurred) frame, after following the head: the frame is shifted by up to
// 3 pixels to where it best matches the face at rest, and scaled by its mean (the lighting drifts).
double template_score(const FaceTemplate& t, const std::vector<float>& img, int n) {
  auto mean_of = [](const std::vector<float>& x) {
    double m = 0;
    for (float e : x) m += e;
    return m / static_cast<double>(x.size());
  };
  const double mean = mean_of(img), rest_mean = mean_of(t.rest);
  auto at = [&](int x, int y, int ch) { return img[(std::clamp(y, 0, n - 1) * n + std::clamp(x, 0, n - 1)) * 3 + ch]; };
  double best = 1e300;
  int bx = 0, by = 0;
  for (int dy = -3; dy <= 3; ++dy)
    for (int dx = -3; dx <= 3; ++dx) {
      double ssd = 0;
      for (int y = n / 4; y < 3 * n / 4; ++y)
        for (int x = n / 4; x < 3 * n / 4; ++x) {
          const double d = at(x + dx, y + dy, 1) / mean - t.rest[(y * n + x) * 3 + 1] / rest_mean;
          ssd += d * d;
        }
      if (ssd < best) best = ssd, bx = dx, by = dy;
    }
  double s = 0;
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x)
      for (int ch = 0; ch < 3; ++ch) s += t.weight[(y * n + x) * 3 + ch] * at(x + bx, y + by, ch);
  return s / mean;
}

// The loudness of each 1 s window (every 0.25 s) of a video's audio: the level of its loudest tenth of
// 20 ms frames, which is the voice rather than the pauses. Windows whose middle frame is not annotated,
// or that overlap a low-SNR or silent stretch (listed in the manifest entry `info`), are left out; the
// label of the middle frame goes to v and a.
void loudness_windows(const VideoRecord& video, const json& info, double fps, std::vector<double>& level,
                      std::vector<double>& v, std::vector<double>& a) {
  const Audio audio = read_wav(video.wav_path);
  const int64_t frame_len = audio.sample_rate / 50;
  for (double t0 = 0; t0 + 1 <= audio.seconds(); t0 += 0.25) {
    const int64_t k = static_cast<int64_t>((t0 + 0.5) * fps) + 1;
    if (!video.annotated(k)) continue;
    bool disturbed = false;
    for (const char* key : {"audio_low_snr", "audio_silent"})
      for (const json& iv : info[key]) disturbed = disturbed || (iv[0] < t0 + 1 && iv[1] > t0);
    if (disturbed) continue;
    std::vector<double> db;
    const int64_t end = std::llround((t0 + 1) * audio.sample_rate);
    for (int64_t s0 = std::llround(t0 * audio.sample_rate); s0 + frame_len <= end; s0 += frame_len) {
      double e = 0;
      for (int64_t j = s0; j < s0 + frame_len; ++j) e += audio.samples[j] * audio.samples[j];
      db.push_back(10 * std::log10(e / static_cast<double>(frame_len) + 1e-10));
    }
    std::sort(db.begin(), db.end());
    level.push_back(db[db.size() * 9 / 10]);
    v.push_back(video.valence[k - 1]);
    a.push_back(video.arousal[k - 1]);
  }
}

// Reads the video `info` names from a generated set.
VideoRecord video_of(const fs::path& root, const json& info) {
  AffWild2Layout layout;
  layout.root = root.string();
  layout.split = info["split"];
  const Dataset ds = read_affwild2(layout);
  for (const VideoRecord& v : ds.videos)
    if (v.name == info["name"]) return v;
  ADD_FAILURE() << "video " << info["name"] << " not found";
  return {};
}

// The cues, over small generated sets: the pixels valence moves track the annotated valence far more than
// arousal does, and the loudness of the voice tracks arousal far more than valence does. Both are measured
// within each video (what a face or a voice is like at rest does not count), by a joint regression on v
// and a, because over a few seconds v and a can move together by chance.
TEST(SynthAvCues, FaceCarriesValence) {
  TempDir dir;
  SynthAvConfig c;
  c.seed = 5;
  c.train_identities = 4;
  c.validation_identities = 1;
  c.test_identities = 1;
  c.videos_per_identity = 1;
  c.min_seconds = 8;
  c.max_seconds = 10;
  c.image_size = 64;
  c.sample_rate = 4000;
  generate_synthav((dir / "set").string(), c);
  constexpr int kBlur = 2;

  std::vector<double> score_all, v_all, a_all;
  const json manifest = read_manifest(dir / "set");
  for (const json& info : manifest["videos"]) {
    SCOPED_TRACE(info["name"].get<std::string>());
    const VideoRecord v = video_of(dir / "set", info);
    const FaceTemplate t = valence_template(c, info["identity"], info["recording"], info["role"] == "right", kBlur);
    std::vector<double> score, val, aro;
    for (int64_t k = 1; k <= v.num_frames(); ++k) {
      if (!v.image_exists(k) || !v.annotated(k)) continue;
      bool occluded = false;  // a bar or a hand over the face would swamp any pixel statistic
      for (const json& o : info["occlusions"]) occluded = occluded || (k >= o[0] && k <= o[1]);
      if (occluded) continue;
      score.push_back(template_score(t, blurred(read_image(v.frame_path(k)).rgb, c.image_size, kBlur), c.image_size));
      val.push_back(v.valence[k - 1]);
      aro.push_back(v.arousal[k - 1]);
    }
    for (auto* x : {&score, &val, &aro}) standardise(*x);
    score_all.insert(score_all.end(), score.begin(), score.end());
    v_all.insert(v_all.end(), val.begin(), val.end());
    a_all.insert(a_all.end(), aro.begin(), aro.end());
  }
  const Effects face = standardised_effects(score_all, v_all, a_all);
  std::printf("valence template of the face: %.2f from valence, %.2f from arousal (%zu frames)\n", face.valence,
              face.arousal, score_all.size());
  EXPECT_GT(face.valence, 0.35);
  EXPECT_GT(face.valence, 2 * std::fabs(face.arousal));
}

TEST(SynthAvCues, VoiceCarriesArousal) {
  TempDir dir;
  SynthAvConfig c;
  c.seed = 5;
  c.train_identities = 1;  // no conversations: half of a shared track is the other person's voice
  c.validation_identities = 1;
  c.test_identities = 16;  // with 8 people the estimate moved between 0.25 and 0.5 over seeds
  c.videos_per_identity = 1;
  c.min_seconds = 12;
  c.max_seconds = 16;
  c.image_size = 16;
  c.sample_rate = 8000;
  generate_synthav((dir / "set").string(), c);

  std::vector<double> level_all, v_all, a_all;
  const json manifest = read_manifest(dir / "set");
  for (const json& info : manifest["videos"]) {
    if (info["role"] != "solo") continue;
    const VideoRecord v = video_of(dir / "set", info);
    std::vector<double> level, val, aro;
    loudness_windows(v, info, c.fps, level, val, aro);
    for (auto* x : {&level, &val, &aro}) standardise(*x);
    level_all.insert(level_all.end(), level.begin(), level.end());
    v_all.insert(v_all.end(), val.begin(), val.end());
    a_all.insert(a_all.end(), aro.begin(), aro.end());
  }
  const Effects voice = standardised_effects(level_all, v_all, a_all);
  std::printf("loudness of the voice: %.2f from valence, %.2f from arousal (%zu windows)\n", voice.valence,
              voice.arousal, level_all.size());
  EXPECT_GT(voice.arousal, 0.3);
  EXPECT_GT(voice.arousal, 2 * std::fabs(voice.valence));
}

TEST(SynthAvInternals, StreamsAreReproducibleAndIndependent) {
  using namespace minidl::data::synthav;
  Rng a(5, stream_id(Tag::kAudio, 3)), b(5, stream_id(Tag::kAudio, 3)), c(5, stream_id(Tag::kAudio, 4));
  int same = 0;
  for (int i = 0; i < 100; ++i) {
    const uint32_t x = a.bits();
    EXPECT_EQ(x, b.bits());
    same += x == c.bits();
  }
  EXPECT_LT(same, 3);
  // Uniforms in [0, 1), normals with about unit variance.
  Rng r(9, 1);
  double sum = 0, sq = 0;
  for (int i = 0; i < 20000; ++i) {
    const double u = r.uniform();
    ASSERT_TRUE(u >= 0 && u < 1);
    const double z = r.normal();
    sum += z, sq += z * z;
  }
  EXPECT_NEAR(sum / 20000, 0, 0.03);
  EXPECT_NEAR(sq / 20000, 1, 0.05);
}
