// The training loop end to end on a small generated SynthAV set: the loss goes down, a checkpoint
// round-trips, a resumed run equals an uninterrupted one bit for bit, a stop request saves, bad input is
// refused with an error naming it.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "autograd/minidl.h"
#include "autograd/safetensors.h"
#include "data/synthav.h"
#include "models/emotion_model.h"
#include "models/trainer.h"
#include "tests/data/data_test_helpers.h"
#include "tests/models/small_run.h"

using namespace minidl;
using namespace minidl::models;
using minidl::models_test::steps;
namespace fs = std::filesystem;

namespace {

// One small data set for the whole suite: 2 training identities, 1 each for validation and test.
class TrainerTest : public models_test::SmallDataSuite {
 protected:
  // The small configuration with 2 epochs at a constant learning rate.
  static TrainConfig config(const std::string& run) {
    TrainConfig c = models_test::small_training(data_root(), (dir() / run).string());
    c.epochs = 2;
    c.schedule = "constant";
    c.lr = 3e-3;
    return c;
  }
};

}  // namespace

TEST_F(TrainerTest, LossGoesDownAndTheRunFolderIsComplete) {
  Trainer t(config("fit"), false);
  const auto records = t.run();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_LT(records[1].train_loss, records[0].train_loss) << "the second epoch must fit better than the first";
  for (const char* f :
       {"config.json", "last.safetensors", "last.state.safetensors", "best.safetensors", "metrics.jsonl", "curve.svg"})
    EXPECT_TRUE(fs::exists(fs::path(config("fit").out) / f)) << f;
  EXPECT_TRUE(std::isfinite(records[1].validation.valence));
}

TEST_F(TrainerTest, CheckpointRoundTripsIntoAFreshModel) {
  TrainConfig c = config("roundtrip");
  c.max_steps = 3;
  Trainer t(c, false);
  t.run();
  EmotionModel fresh(c.model);
  nn::load(fresh, (fs::path(c.out) / "last.safetensors").string());
  Trainer again(c, true);  // resuming loads the same weights into the trainer's model
  nn::NamedTensors saved = load_safetensors((fs::path(c.out) / "last.safetensors").string());
  const auto state = fresh.state_dict();
  ASSERT_EQ(state.size(), saved.size());
  for (size_t i = 0; i < state.size(); ++i) {
    EXPECT_EQ(state[i].first, saved[i].first);
    EXPECT_EQ(state[i].second.values<double>(), saved[i].second.values<double>()) << state[i].first;
  }
}

TEST_F(TrainerTest, ResumeEqualsAnUninterruptedRun) {
  Trainer whole(config("whole"), false);
  const std::vector<double> expected = steps(whole, 9);

  Trainer first(config("split"), false);
  std::vector<double> got = steps(first, 4);
  first.save_checkpoint();
  Trainer second(config("split"), true);
  EXPECT_EQ(second.steps(), 4);
  for (double l : steps(second, 5)) got.push_back(l);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], expected[i]) << "step " << i + 1 << " differs";
}

// The clip cache changes where the loader's pixels and samples come from, never what they are: the same
// losses, from a cache filled by the first run and read by the second.
TEST_F(TrainerTest, AClipCacheKeepsTheLossesAndIsReusedByTheNextRun) {
  Trainer plain(config("uncached"), false);
  const std::vector<double> expected = steps(plain, 3);
  const fs::path cache = dir() / "clip-cache";
  for (const char* run : {"cached-1", "cached-2"}) {
    SCOPED_TRACE(run);
    TrainConfig c = config(run);
    c.clip_cache = cache.string();
    Trainer t(c, false);
    EXPECT_EQ(steps(t, 3), expected);
  }
  int64_t frames = 0, audio = 0;
  for (const auto& e : fs::directory_iterator(cache)) {
    const std::string name = e.path().filename().string();
    frames += name.find(".frames32.bin") != std::string::npos;
    audio += name.find(".audio") != std::string::npos;
  }
  EXPECT_GT(frames, 0) << "no frames were cached in " << cache;
  EXPECT_GT(audio, 0) << "no audio was cached in " << cache;
  EXPECT_EQ(train_config_from_json(to_json(config("x")), TrainConfig{}).clip_cache, "");
  TrainConfig c = config("x");
  c.clip_cache = cache.string();
  EXPECT_EQ(train_config_from_json(to_json(c), TrainConfig{}).clip_cache, cache.string());
}

TEST_F(TrainerTest, NesterovReachesTheSgdUpdate) {
  // The first loss is measured before any update, so both runs share it; Nesterov's first step is
  // already longer (g + momentum g instead of g), so the second loss tells them apart.
  TrainConfig c = config("sgd");
  c.optimizer = "sgd";
  c.momentum = 0.9;
  Trainer plain(c, false);
  c.out = (fs::path(c.out).parent_path() / "nesterov").string();
  c.nesterov = true;
  Trainer nesterov(c, false);
  const std::vector<double> a = steps(plain, 2), b = steps(nesterov, 2);
  EXPECT_EQ(a[0], b[0]);
  EXPECT_NE(a[1], b[1]) << "the nesterov key did not reach the optimiser";
}

TEST_F(TrainerTest, AStopRequestSavesAndCanBeResumed) {
  TrainConfig c = config("stopped");
  Trainer t(c, false);
  std::atomic<bool> stop{false};
  t.run([&](const Progress& p) { stop = p.step >= 2; }, &stop);
  EXPECT_TRUE(t.stopped_by_signal());
  Trainer resumed(c, true);
  EXPECT_EQ(resumed.steps(), 2);
}

TEST_F(TrainerTest, BadInputIsAnErrorNamingIt) {
  auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  TrainConfig c = config("bad");
  c.data = (dir() / "nowhere").string();
  EXPECT_NE(message([&] { Trainer t(c, false); }).find("nowhere"), std::string::npos);
  // A run folder that already holds a run is not overwritten.
  TrainConfig existing = config("existing");
  existing.max_steps = 1;
  Trainer(existing, false).run();
  EXPECT_NE(message([&] { Trainer t(config("existing"), false); }).find("--resume"), std::string::npos);
  // Resuming a run with another model.
  TrainConfig other = config("existing");
  other.model.encoded = 7;
  EXPECT_NE(message([&] { Trainer t(other, true); }).find("model"), std::string::npos);
  EXPECT_NE(message([&] { Trainer t(config("never-started"), true); }).find("no checkpoint"), std::string::npos);
  // A run that cannot start leaves no run folder behind.
  EXPECT_FALSE(fs::exists(c.out)) << c.out;
}

// Resuming a run whose step budget is spent trains nothing and records nothing; a larger budget set on
// resume is written to config.json for the next resume; the records read back keep their smoothed scores.
TEST_F(TrainerTest, ResumeKeepsChangedSettingsAndDoesNotRecordAnEmptyEpoch) {
  TrainConfig c = config("budget");
  c.max_steps = 2;
  const auto first = Trainer(c, false).run();
  ASSERT_EQ(first.size(), 1u);
  auto records_in_file = [&] {
    std::ifstream in(fs::path(c.out) / "metrics.jsonl");
    int n = 0;
    for (std::string line; std::getline(in, line);) n += !line.empty();
    return n;
  };
  EXPECT_EQ(records_in_file(), 1);
  {
    Trainer again(c, true);
    const auto records = again.run();
    EXPECT_EQ(again.steps(), 2) << "the budget is spent";
    ASSERT_EQ(records.size(), 1u) << "no record of an epoch in which nothing was trained";
    EXPECT_EQ(records[0].validation.valence_smoothed, first[0].validation.valence_smoothed);
    EXPECT_NE(records[0].validation.valence_smoothed, 0.0);
  }
  EXPECT_EQ(records_in_file(), 1);
  c.max_steps = 3;
  {
    Trainer more(c, true);
    more.run();
    EXPECT_EQ(more.steps(), 3);
  }
  EXPECT_EQ(records_in_file(), 2) << "the epoch stopped in is scored again when the larger budget ends";
  std::ifstream in(fs::path(c.out) / "config.json");
  EXPECT_EQ(nlohmann::json::parse(in).at("max_steps"), 3) << "the setting changed on resume is kept";
}

// The budget's edge cases: a stop request on the budget's last step leaves the epoch unscored, so the
// resume scores it; a budget that ends exactly at an epoch's end completes that epoch, so a resume with a
// larger budget starts the next one instead of scoring an empty epoch.
TEST_F(TrainerTest, BudgetEndingAtAStopOrAtAnEpochsEndResumesCleanly) {
  TrainConfig c = config("budget-stop");
  c.max_steps = 2;
  Trainer t(c, false);
  std::atomic<bool> stop{false};
  EXPECT_TRUE(t.run([&](const Progress& p) { stop = p.step >= 2; }, &stop).empty());
  EXPECT_TRUE(t.stopped_by_signal());
  Trainer resumed(c, true);
  const auto records = resumed.run();
  EXPECT_EQ(resumed.steps(), 2);
  EXPECT_EQ(records.size(), 1u) << "the stopped epoch is scored on resume";

  TrainConfig one = config("one-epoch");
  one.epochs = 1;
  Trainer whole(one, false);
  whole.run();
  const int64_t per_epoch = whole.steps();
  ASSERT_GT(per_epoch, 0);
  TrainConfig edge = config("budget-edge");
  edge.max_steps = per_epoch;
  Trainer first(edge, false);
  ASSERT_EQ(first.run().size(), 1u);
  EXPECT_EQ(first.epoch(), 1) << "the epoch the budget ended with is complete";
  edge.max_steps = -1;
  Trainer rest(edge, true);
  const auto more = rest.run();
  EXPECT_EQ(rest.steps(), 2 * per_epoch);
  ASSERT_EQ(more.size(), 2u);
  EXPECT_EQ(more[0].epoch, 1);
  EXPECT_EQ(more[1].epoch, 2) << "no second, empty record of epoch 1";
  EXPECT_GT(more[1].train_loss, 0.0);
}
