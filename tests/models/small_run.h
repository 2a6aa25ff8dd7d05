// What the model tests that train share: a SynthAV set small enough to generate in a second (two
// training people, one each for validation and test, 7-8 s videos at 32 px) and a tiny model and training
// configuration that runs a step in a fraction of a second on it, and the losses of a few steps.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "data/synthav.h"
#include "models/trainer.h"
#include "tests/data/data_test_helpers.h"

namespace minidl::models_test {

inline data::SynthAvConfig small_synthav() {
  data::SynthAvConfig s;
  s.train_identities = 2;
  s.validation_identities = s.test_identities = 1;
  s.videos_per_identity = 1;
  s.min_seconds = 7;
  s.max_seconds = 8;
  s.image_size = 32;
  return s;
}

// Tiny model, 4 clips per sequence, batches of 4, one loader thread, on `data`, into `out`.
inline models::TrainConfig small_training(const std::string& data, const std::string& out) {
  models::TrainConfig c;
  c.model = models::model_preset("tiny");
  c.model.clips = 4;
  c.model.image_size = 32;  // the frames' own size: no resizing in the loader, a faster test
  c.model.visual_widths = {4, 4, 8, 8};
  c.model.audio_widths = {4, 4, 8, 8};
  c.model.lstm_hidden = 6;
  c.model.lstm_layers = 1;
  c.model.encoded = 6;
  c.model.attention = 4;
  c.model.head_hidden = 8;
  c.data = data;
  c.out = out;
  c.batch_size = 4;
  c.workers = 1;
  c.evaluate_test = false;
  return c;
}

// A suite that trains on one small_synthav() set, generated once for the whole suite under a temporary
// folder (dir()), which also holds the suite's run folders.
class SmallDataSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new data_test::TempDir();
    data::generate_synthav(data_root(), small_synthav());
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::filesystem::path dir() { return dir_->path(); }
  static std::string data_root() { return (dir_->path() / "synthav").string(); }

 private:
  inline static data_test::TempDir* dir_ = nullptr;
};

// The losses of the trainer's next n steps.
inline std::vector<double> steps(models::Trainer& t, int n) {
  std::vector<double> losses;
  for (int i = 0; i < n; ++i) losses.push_back(t.train_step());
  return losses;
}

}  // namespace minidl::models_test
