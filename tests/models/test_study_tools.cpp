// The study tools on the real model and trainer (models/study_tools.h): the tiny model's graph names every
// parameter by its module path; a run with --graph, --profile-steps and detect_anomaly writes its files
// and trains exactly as a run without them.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "autograd/minidl.h"
#include "data/synthav.h"
#include "models/emotion_model.h"
#include "models/trainer.h"
#include "tests/autograd/dot_reader.h"
#include "tests/data/data_test_helpers.h"
#include "tests/models/small_run.h"

using namespace minidl;
using namespace minidl::models;
namespace fs = std::filesystem;

TEST(StudyTools, TinyModelGraphNamesEveryParameterByItsModulePath) {
  Generator g(1);
  EmotionModel model(model_preset("tiny"), &g);
  const ModelConfig& c = model.config();
  const Tensor video = randn({1, c.clips, 3, c.frames_per_clip, c.image_size, c.image_size}, {}, &g);
  const Tensor audio = randn({1, c.clips, 1, c.mel_bins, 48}, {}, &g);
  const Tensor loss = sum(model(video, audio));
  const dot_test::Graph graph = dot_test::read(graph_dot(loss, {.names = model.named_parameters()}));
  int named = 0;
  for (const auto& [name, p] : model.named_parameters()) {
    const auto ids = graph.find(name);
    ASSERT_EQ(ids.size(), 1u) << name << " is not a node of the graph";
    EXPECT_EQ(graph.shapes.at(ids[0]), "ellipse") << name;
    EXPECT_EQ(graph.cluster.at(ids[0]), name.substr(0, name.rfind('.'))) << name;
    ++named;
  }
  EXPECT_GT(named, 50);
  EXPECT_TRUE(graph.find("leaf").empty()) << "every leaf that gets a gradient is a parameter, so all are named";
  // The convolutions of the visual stem sit in its cluster.
  int stem_convs = 0;
  for (const std::string& id : graph.find("conv"))
    if (graph.cluster.at(id) == "visual.stem.0") ++stem_convs;
  EXPECT_EQ(stem_convs, 1);
}

namespace {

class StudyRun : public models_test::SmallDataSuite {
 protected:
  static TrainConfig config(const std::string& run) {
    TrainConfig c = models_test::small_training(data_root(), (dir() / run).string());
    c.epochs = 1;
    return c;
  }
  static fs::path path(const std::string& name) { return dir() / name; }
};

}  // namespace

TEST_F(StudyRun, GraphProfileAndAnomalyDetectionChangeNoLoss) {
  Trainer plain(config("plain"), false);
  const std::vector<double> expected = models_test::steps(plain, 5);

  TrainConfig c = config("studied");
  c.detect_anomaly = true;
  const StudyOptions study{.graph = path("step.dot").string(), .profile_steps = 2, .profile_warmup = 1};
  std::vector<std::string> log;
  {
    Trainer t(
        c, false, [&](const std::string& s) { log.push_back(s); }, study);
    EXPECT_EQ(models_test::steps(t, 5), expected) << "the tools must not change a single bit of training";
  }
  // The graph of the first step.
  ASSERT_TRUE(fs::exists(path("step.dot")));
  std::ifstream dot(path("step.dot"));
  const std::string text((std::istreambuf_iterator<char>(dot)), std::istreambuf_iterator<char>());
  EXPECT_FALSE(dot_test::read(text).find("fusion.W_ca.weight").empty());
  // The profile of steps 2 and 3: its table and a trace that parses.
  const fs::path run = c.out;
  ASSERT_TRUE(fs::exists(run / "profile.txt"));
  std::ifstream table(run / "profile.txt");
  const std::string report((std::istreambuf_iterator<char>(table)), std::istreambuf_iterator<char>());
  EXPECT_NE(report.find("Profile: 2 steps"), std::string::npos) << report;
  EXPECT_NE(report.find("conv backward"), std::string::npos) << report;
  EXPECT_NE(report.find("visual.stem"), std::string::npos) << report;
  EXPECT_NE(report.find("Outside the steps, per step: data"), std::string::npos) << report;
  std::ifstream trace(run / "profile.trace.json");
  const nlohmann::json doc = nlohmann::json::parse(trace);
  int steps = 0;
  for (const auto& e : doc["traceEvents"]) steps += e["ph"] == "X" && e["name"] == "step";
  EXPECT_EQ(steps, 2);
  bool said = false;
  for (const std::string& line : log) said = said || line.find("profiled 2 steps after 1") != std::string::npos;
  EXPECT_TRUE(said);
  // detect_anomaly is a setting of the run; the graph and profile are not.
  std::ifstream config_file(run / "config.json");
  const nlohmann::json saved = nlohmann::json::parse(config_file);
  EXPECT_EQ(saved["detect_anomaly"], true);
  EXPECT_FALSE(saved.contains("graph"));
  EXPECT_FALSE(anomaly_detection_enabled()) << "the trainer's anomaly detection ends with it";
}

TEST_F(StudyRun, AProfileCutShortIsWrittenAtTheEnd) {
  TrainConfig c = config("short");
  c.max_steps = 3;
  std::vector<std::string> log;
  Trainer t(c, false, [&](const std::string& s) { log.push_back(s); }, {.profile_steps = 10, .profile_warmup = 1});
  t.run();
  std::ifstream table(fs::path(c.out) / "profile.txt");
  const std::string report((std::istreambuf_iterator<char>(table)), std::istreambuf_iterator<char>());
  EXPECT_NE(report.find("Profile: 2 steps"), std::string::npos) << report;
  bool said = false;
  for (const std::string& line : log) said = said || line.find("after 2 of the 10 profiled steps") != std::string::npos;
  EXPECT_TRUE(said);
}

TEST(StudyTools, DetectAnomalyIsAConfigKey) {
  TrainConfig c;
  EXPECT_EQ(to_json(c)["detect_anomaly"], false);
  const TrainConfig on = apply_overrides(c, {"detect_anomaly=true"});
  EXPECT_TRUE(on.detect_anomaly);
  EXPECT_TRUE(train_config_from_json(to_json(on), TrainConfig{}).detect_anomaly);
}
