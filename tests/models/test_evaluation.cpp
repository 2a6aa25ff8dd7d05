// Scoring the paper's way (models/evaluation.h) and the two programs built on it, apps/evaluate and
// apps/predict: the CCC and the moving average against values worked out by hand, the Scorer's pooling
// over videos, the test-time conditions, one video's per-frame predictions, and both programs run on a
// real (small) training run, with their errors.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "autograd/minidl.h"
#include "data/affwild2.h"
#include "data/audio.h"
#include "data/image.h"
#include "data/synthav.h"
#include "models/emotion_model.h"
#include "models/evaluation.h"
#include "models/trainer.h"
#include "tests/data/data_test_helpers.h"
#include "tests/models/small_run.h"

using namespace minidl;
using namespace minidl::models;
namespace fs = std::filesystem;

TEST(Concordance, MatchesItsDefinition) {
  EXPECT_NEAR(concordance({1, 2, 3, 4}, {1, 2, 3, 4}), 1.0, 1e-15);
  EXPECT_NEAR(concordance({1, 2, 3, 4}, {4, 3, 2, 1}), -1.0, 1e-15);
  // x = 1..4 (mean 2.5, var 1.25), y = x + 1 (var 1.25, cov 1.25): 2.5 / (1.25 + 1.25 + 1) = 5/7.
  EXPECT_NEAR(concordance({1, 2, 3, 4}, {2, 3, 4, 5}), 5.0 / 7.0, 1e-15);
  // y = 2 x: cov 2.5, var(y) 5, means 2.5 and 5: 5 / (1.25 + 5 + 6.25) = 0.4.
  EXPECT_NEAR(concordance({1, 2, 3, 4}, {2, 4, 6, 8}), 0.4, 1e-15);
  EXPECT_TRUE(std::isnan(concordance({1}, {1})));
  EXPECT_TRUE(std::isnan(concordance({2, 2}, {2, 2})));  // no variance anywhere: undefined
}

TEST(MovingAverage, IsUniformFilterWithZerosBeyondTheEnds) {
  // scipy.ndimage.uniform_filter1d([1, 2, 3, 4, 5], 3, mode="constant") = [1, 2, 3, 4, 3].
  const std::vector<double> odd = moving_average({1, 2, 3, 4, 5}, 3);
  const std::vector<double> want_odd{1, 2, 3, 4, 3};
  for (size_t i = 0; i < 5; ++i) EXPECT_NEAR(odd[i], want_odd[i], 1e-15) << i;
  // Even sizes reach one further back than forward: size 4 at i averages x[i-2 .. i+1].
  const std::vector<double> even = moving_average({4, 8, 12, 16}, 4);
  const std::vector<double> want_even{3, 6, 10, 9};
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(even[i], want_even[i], 1e-15) << i;
  EXPECT_EQ(moving_average({1, 2, 3}, 1), (std::vector<double>{1, 2, 3}));
  EXPECT_THROW(moving_average({1}, 0), Error);
}

namespace {

data::VideoRecord labelled_video(const std::string& name, std::vector<float> v, std::vector<float> a) {
  data::VideoRecord r;
  r.name = name;
  r.valence = std::move(v);
  r.arousal = std::move(a);
  r.has_image.assign(r.valence.size(), 1);
  return r;
}

// A batch of one sequence of `ids.size()` clips of video `video`, ending at the given frames.
data::Batch batch_of(int32_t video, const std::vector<int64_t>& ids) {
  data::Batch b;
  b.frame_ids = from_vector(ids, {1, static_cast<int64_t>(ids.size())}, {.dtype = kInt64});
  b.video_index = {video};
  return b;
}

}  // namespace

TEST(Scorer, PoolsEveryAnnotatedFrameOfEveryVideoAndClipsPredictions) {
  data::Dataset ds;
  ds.videos.push_back(labelled_video("a", {0.1f, 0.2f, data::kNotAnnotated}, {0.5f, 0.4f, data::kNotAnnotated}));
  ds.videos.push_back(labelled_video("b", {-0.5f, 0.9f}, {0.0f, -0.2f}));
  Scorer s(ds);
  s.add(batch_of(0, {1, 2, 3, 4}),
        from_vector({0.2, 0.6, 0.1, 3.0, 0.0, 0.0, 7.0, 7.0}, {1, 4, 2}));  // 4: past the end
  s.add(batch_of(1, {1, 2}), from_vector({-0.4, 0.1, 2.0, -9.0}, {1, 2, 2}));
  const Scores r = s.compute(1, 1);  // no smoothing
  // Pooled over the four annotated frames, predictions clipped to [-1, 1].
  // 1e-6: the predictions and labels are stored as float32.
  EXPECT_NEAR(r.valence, concordance({0.2, 0.1, -0.4, 1.0}, {0.1, 0.2, -0.5, 0.9}), 1e-6);
  EXPECT_NEAR(r.arousal, concordance({0.6, 1.0, 0.1, -1.0}, {0.5, 0.4, 0.0, -0.2}), 1e-6);
  EXPECT_EQ(r.frames, 4);
  ASSERT_EQ(r.videos.size(), 2u);
  EXPECT_EQ(r.videos[1].name, "b");
  EXPECT_NEAR(r.videos[1].valence, concordance({-0.4, 1.0}, {-0.5, 0.9}), 1e-6);
  EXPECT_FLOAT_EQ(s.valence()[0][2], 0.0f) << "an unannotated frame still gets its prediction";
  const nlohmann::json j = r.to_json();
  EXPECT_NEAR(j["ccc"]["mean"].get<double>(), r.mean(), 1e-15);
}

TEST(Scorer, AnAnnotatedFrameWithoutAPredictionIsAnError) {
  data::Dataset ds;
  ds.videos.push_back(labelled_video("clip7", {0.1f, 0.2f}, {0.1f, 0.2f}));
  Scorer s(ds);
  s.add(batch_of(0, {1}), from_vector({0.0, 0.0}, {1, 1, 2}));
  try {
    s.compute();
    FAIL() << "expected minidl::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("frame 2 of video clip7"), std::string::npos) << e.what();
  }
  EXPECT_THROW(s.add(batch_of(0, {1}), zeros({1, 2, 2})), Error);  // predictions of the wrong shape
}

TEST(Conditions, ParseEveryFormAndRefuseTheRest) {
  EXPECT_EQ(parse_condition("clean").kind, Condition::Kind::Clean);
  EXPECT_EQ(parse_condition("no_audio").kind, Condition::Kind::NoAudio);
  EXPECT_EQ(parse_condition("no_video").kind, Condition::Kind::NoVideo);
  const Condition snr = parse_condition("snr:-5");
  EXPECT_EQ(snr.kind, Condition::Kind::Snr);
  EXPECT_DOUBLE_EQ(snr.value, -5);
  EXPECT_DOUBLE_EQ(parse_condition("occlusion:0.25").value, 0.25);
  for (const char* bad : {"noisy", "snr:", "snr:ten", "occlusion:0", "occlusion:1.5", "occlusion:", "Clean"}) {
    SCOPED_TRACE(bad);
    try {
      parse_condition(bad);
      FAIL() << "expected minidl::Error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("'") + bad), std::string::npos) << e.what();
    }
  }
}

// ---- on a real (small) run -------------------------------------------------------------------------

namespace {

// One small data set and one short training run for the rest of this file.
class RunTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new data_test::TempDir();
    data::generate_synthav(data_root(), models_test::small_synthav());
    TrainConfig c = models_test::small_training(data_root(), run_dir());
    c.epochs = 1;
    c.max_steps = 3;
    Trainer t(c, false);
    t.run();
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string data_root() { return dir_->file("synthav"); }
  static std::string run_dir() { return dir_->file("run"); }
  static data_test::TempDir* dir_;
};
data_test::TempDir* RunTest::dir_ = nullptr;

}  // namespace

TEST_F(RunTest, ConditionsChangeWhatTheModelSees) {
  TrainConfig config;
  auto model = load_run_model(run_dir(), "last", &config);
  const data::Dataset ds = data::read_affwild2({.root = data_root(), .split = "Test_Set"});
  data::LoaderConfig loader = loader_config(config.model);
  loader.batch_size = 4;
  loader.workers = 1;
  std::vector<std::vector<float>> predictions;
  for (const char* c : {"clean", "no_audio", "no_video", "snr:0", "occlusion:0.5"}) {
    SCOPED_TRACE(c);
    Scorer scorer(ds);
    const Scores s = evaluate_condition(*model, ds, loader, Device::cpu(), parse_condition(c), &scorer);
    EXPECT_GT(s.frames, 0);
    EXPECT_TRUE(std::isfinite(s.valence) && std::isfinite(s.arousal));
    predictions.push_back(scorer.valence()[0]);
  }
  for (size_t i = 1; i < predictions.size(); ++i) EXPECT_NE(predictions[i], predictions[0]) << "condition " << i;
  // The same condition twice gives the same predictions (the noise is seeded).
  Scorer again(ds);
  evaluate_condition(*model, ds, loader, Device::cpu(), parse_condition("snr:0"), &again);
  EXPECT_EQ(again.valence()[0], predictions[3]);
}

TEST_F(RunTest, OneVideosPredictionsCoverEveryFrame) {
  TrainConfig config;
  auto model = load_run_model(run_dir(), "last", &config);
  const data::Dataset ds = data::read_affwild2({.root = data_root(), .split = "Test_Set"});
  const data::VideoRecord& known = ds.videos[0];
  const data::VideoRecord v = data::read_video_folder(known.frames_dir, known.wav_path, known.fps);
  EXPECT_LE(v.num_frames(), known.num_frames());  // the highest frame with an image
  EXPECT_GE(v.num_frames(), known.num_frames() - 30);
  data::LoaderConfig loader = loader_config(config.model);
  loader.workers = 1;
  for (bool smooth : {false, true}) {
    const FramePredictions p = predict_video(*model, v, loader, Device::cpu(), smooth);
    ASSERT_EQ(static_cast<int64_t>(p.valence.size()), v.num_frames());
    for (size_t i = 0; i < p.valence.size(); ++i) {
      ASSERT_TRUE(std::isfinite(p.valence[i]) && std::isfinite(p.arousal[i])) << "frame " << i + 1;
      EXPECT_LE(std::fabs(p.valence[i]), 1.0);
    }
  }
  EXPECT_THROW(data::read_video_folder(dir_->file("nowhere"), ""), Error);
  EXPECT_THROW(data::read_video_folder(known.frames_dir, dir_->file("missing.wav")), Error);
  EXPECT_THROW(data::read_video_folder(known.frames_dir, "", 0.0), Error);
  fs::create_directories(dir_->path() / "empty");
  EXPECT_THROW(data::read_video_folder(dir_->file("empty"), ""), Error);
  // A timestamps file gives the count, but a folder holding none of those frames is still an error, and
  // so is one whose files are not named as the loader reads them (1.jpg, 000001.jpg for %05d.jpg).
  const std::string stamps = dir_->file("stamps.txt");
  std::ofstream(stamps) << "timestamp\n0\n40\n80\n";
  try {
    data::read_video_folder(dir_->file("empty"), "", 25.0, stamps);
    ADD_FAILURE() << "no frame exists";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("none of the 3 frames"), std::string::npos) << e.what();
  }
  int64_t some = 1;
  while (!known.image_exists(some)) ++some;
  fs::create_directories(dir_->path() / "unpadded");
  for (const char* name : {"1.jpg", "2.jpg", "000003.jpg"})
    fs::copy_file(known.frame_path(some), dir_->path() / "unpadded" / name);
  EXPECT_THROW(data::read_video_folder(dir_->file("unpadded"), ""), Error);
  fs::copy_file(known.frame_path(some), dir_->path() / "unpadded" / "00002.jpg");
  const data::VideoRecord two = data::read_video_folder(dir_->file("unpadded"), "");
  EXPECT_EQ(two.num_frames(), 2);
  EXPECT_FALSE(two.image_exists(1));
  EXPECT_TRUE(two.image_exists(2));
}

TEST_F(RunTest, ACheckpointOfAnotherModelIsRefusedNamingBoth) {
  // Weights of the same preset with wider LSTMs: every name is there, some shapes are not.
  TrainConfig c = models_test::small_training(data_root(), run_dir());
  c.model.lstm_hidden = 10;
  EmotionModel other(c.model);
  const std::string file = dir_->file("other.safetensors");
  nn::save(other, file);
  try {
    load_run_model(run_dir(), file);
    ADD_FAILURE() << "a checkpoint of another model loaded";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(file + " is not a checkpoint of the model in " + run_dir()), std::string::npos) << what;
    EXPECT_NE(what.find("lstm"), std::string::npos) << "the mis-shaped tensors are named: " << what;
  }
  try {
    load_run_model(run_dir(), dir_->file("missing.safetensors"));
    ADD_FAILURE() << "a missing checkpoint loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.safetensors"), std::string::npos) << e.what();
  }
}

#ifdef MINIDL_APPS_DIR
namespace {
// Runs a program of apps/ with arguments; returns its exit status, its standard output in `out`.
int run_app(const std::string& cmd, std::string* out = nullptr) {
  const std::string log = (fs::temp_directory_path() / ("minidl_app_" + std::to_string(::getpid()) + ".log")).string();
  const int rc = std::system((std::string(MINIDL_APPS_DIR) + "/" + cmd + " > " + log + " 2>&1").c_str());
  if (out) {
    std::ifstream f(log);
    std::stringstream ss;
    ss << f.rdbuf();
    *out = ss.str();
  }
  fs::remove(log);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}
}  // namespace

TEST_F(RunTest, EvaluateProgramWritesTheTableAndTheReport) {
  const std::string json = dir_->file("report.json");
  std::string out;
  ASSERT_EQ(
      run_app("evaluate --run " + run_dir() + " --checkpoint last --conditions clean,no_audio,snr:5 --json " + json,
              &out),
      0)
      << out;
  EXPECT_NE(out.find("no_audio"), std::string::npos) << out;
  std::ifstream f(json);
  const nlohmann::json j = nlohmann::json::parse(f);
  for (const char* c : {"clean", "no_audio", "snr:5"}) EXPECT_TRUE(j["conditions"].contains(c)) << c;
  EXPECT_GT(j["conditions"]["clean"]["frames"].get<int64_t>(), 0);
  // Bad command lines: exit 2 with the reason; a missing run: exit 1 naming it.
  EXPECT_EQ(run_app("evaluate --run " + run_dir() + " --conditions clean,loud", &out), 2);
  EXPECT_NE(out.find("unknown condition 'loud'"), std::string::npos) << out;
  EXPECT_EQ(run_app("evaluate", &out), 2);
  EXPECT_EQ(run_app("evaluate --run " + dir_->file("no-such-run"), &out), 1);
  EXPECT_NE(out.find("no-such-run"), std::string::npos) << out;
  // Checked before any work: the split, the device, the SNR's range, where the report goes.
  EXPECT_EQ(run_app("evaluate --run " + run_dir() + " --split Tset", &out), 2);
  EXPECT_NE(out.find("--split"), std::string::npos) << out;
  EXPECT_EQ(run_app("evaluate --run " + run_dir() + " --device cuda:9", &out), 2);
  EXPECT_NE(out.find("CUDA device"), std::string::npos) << out;
  EXPECT_EQ(run_app("evaluate --run " + run_dir() + " --conditions snr:-1000", &out), 2);
  EXPECT_NE(out.find("[-100, 200]"), std::string::npos) << out;
  EXPECT_EQ(run_app("evaluate --run " + run_dir() + " --json " + dir_->file("no-dir") + "/r.json", &out), 1);
  EXPECT_NE(out.find("does not exist"), std::string::npos) << out;
  EXPECT_EQ(out.find("clean "), std::string::npos) << "no condition ran: " << out;
  EXPECT_EQ(run_app("evaluate --run " + run_dir() + " --bogus", &out), 2);
  EXPECT_NE(out.find("unknown argument --bogus"), std::string::npos) << out;
}

TEST_F(RunTest, PredictProgramWritesOneLinePerFrame) {
  const data::Dataset ds = data::read_affwild2({.root = data_root(), .split = "Test_Set"});
  const data::VideoRecord& v = ds.videos[0];
  const std::string csv = dir_->file("pred.csv");
  std::string out;
  ASSERT_EQ(run_app("predict --run " + run_dir() + " --checkpoint last --frames " + v.frames_dir + " --wav " +
                        v.wav_path + " --out " + csv,
                    &out),
            0)
      << out;
  std::ifstream f(csv);
  std::string line;
  std::getline(f, line);
  EXPECT_EQ(line, "valence,arousal");
  int64_t lines = 0;
  for (; std::getline(f, line); ++lines) {
    float a = 0, b = 0;
    ASSERT_EQ(std::sscanf(line.c_str(), "%f,%f", &a, &b), 2) << line;
  }
  EXPECT_EQ(lines, data::read_video_folder(v.frames_dir, v.wav_path).num_frames());
  EXPECT_EQ(run_app("predict --run " + run_dir() + " --frames " + v.frames_dir + " --fps abc", &out), 2);
  EXPECT_NE(out.find("--fps"), std::string::npos) << out;
  EXPECT_EQ(run_app("predict --run " + run_dir() + " --frames " + dir_->file("nowhere"), &out), 1);
  EXPECT_NE(out.find("nowhere"), std::string::npos) << out;
  // A track far shorter than the video is predicted, with a warning.
  const std::string short_wav = dir_->file("short.wav");
  data::write_wav(short_wav, std::vector<float>(8000, 0.0f), 16000);
  ASSERT_EQ(run_app("predict --run " + run_dir() + " --checkpoint last --frames " + v.frames_dir + " --wav " +
                        short_wav + " --out " + csv,
                    &out),
            0)
      << out;
  EXPECT_NE(out.find("lasts 0.5 s"), std::string::npos) << out;
}
// apps/train's command line: --resume takes the run's own settings, the default follows the machine,
// an unavailable device is refused before a run folder exists.
TEST_F(RunTest, TrainProgramResumesWithTheRunsSettings) {
  std::ifstream f(run_dir() + "/config.json");
  const nlohmann::json saved = nlohmann::json::parse(f);
  std::string out;
  ASSERT_EQ(run_app("train --resume --out " + run_dir() + " --set epochs=7 --print-config", &out), 0) << out;
  const nlohmann::json printed = nlohmann::json::parse(out);
  EXPECT_EQ(printed["epochs"], 7);  // the --set override
  for (const char* key : {"lr", "batch_size", "data", "seed", "model", "max_steps"})
    EXPECT_EQ(printed[key], saved[key]) << key;
  EXPECT_EQ(run_app("train --resume", &out), 2);
  EXPECT_NE(out.find("--out"), std::string::npos) << out;
  EXPECT_EQ(run_app("train --resume --out " + run_dir() + " --preset small", &out), 2);
  EXPECT_NE(out.find("--preset"), std::string::npos) << out;
  EXPECT_EQ(run_app("train --resume --out " + dir_->file("no-such-run"), &out), 2);
  EXPECT_NE(out.find("no-such-run"), std::string::npos) << out;
}

TEST_F(RunTest, TrainProgramPicksTheDeviceAndRefusesAMissingOne) {
  std::string out;
  ASSERT_EQ(run_app("train --print-config", &out), 0) << out;
  const nlohmann::json printed = nlohmann::json::parse(out);
  const bool gpu = cuda_device_count() > 0 && !cuda_emulated();
  EXPECT_EQ(printed["device"], gpu ? "cuda" : "cpu");
  EXPECT_EQ(printed["model"]["preset"], gpu ? "small" : "tiny");
  ASSERT_EQ(run_app("train --device cpu --print-config", &out), 0) << out;
  EXPECT_EQ(nlohmann::json::parse(out)["model"]["preset"], "tiny");
  const std::string never = dir_->file("never-made");
  EXPECT_EQ(run_app("train --device cuda:9 --data " + data_root() + " --out " + never, &out), 1);
  EXPECT_NE(out.find("cuda:9 is not available"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(never));
}

// String options reach the config as they were typed (no JSON escapes read into them), and --preset is
// the base that a --config file's model keys change.
TEST_F(RunTest, TrainProgramTakesPathsLiterallyAndLayersPresetAndConfigFile) {
  std::string out;
  ASSERT_EQ(run_app("train --print-config --device cpu --out 'odd\\u0041\\b \"name\"'", &out), 0) << out;
  EXPECT_EQ(nlohmann::json::parse(out)["out"], "odd\\u0041\\b \"name\"");
  const std::string file = dir_->file("concat.json");
  std::ofstream(file) << R"({"model": {"fusion": "concat", "clips": 4}, "lr": 0.01})";
  ASSERT_EQ(run_app("train --print-config --device cpu --preset small --config " + file, &out), 0) << out;
  const nlohmann::json printed = nlohmann::json::parse(out);
  EXPECT_EQ(printed["model"]["preset"], "small");
  EXPECT_EQ(printed["model"]["fusion"], "concat");
  EXPECT_EQ(printed["model"]["clips"], 4);
  EXPECT_EQ(printed["model"]["encoded"], model_preset("small").encoded);
  EXPECT_EQ(printed["lr"], 0.01);
  std::ofstream(file) << R"({"model": {"preset": "tiny"}})";
  EXPECT_EQ(run_app("train --print-config --preset small --config " + file, &out), 2);
  EXPECT_NE(out.find("disagree"), std::string::npos) << out;
  EXPECT_EQ(run_app("train --print-config --config " + dir_->path().string(), &out), 2);
  EXPECT_NE(out.find("not a regular file"), std::string::npos) << out;
}
#endif
