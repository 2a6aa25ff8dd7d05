// Training the emotion model on an Aff-Wild2-layout data set (SynthAV by default): the loop behind
// apps/train, kept in the library so tests can run a few steps, round-trip a checkpoint and resume.
//
// A run lives in one folder:
//   config.json             the full TrainConfig it was started with
//   last.safetensors        model weights (state_dict names) after the latest saved step
//   last.state.safetensors  optimiser moments, step counters, RNG offsets, scheduler state, best score
//   best.safetensors        weights of the epoch with the best validation mean CCC
//   metrics.jsonl           one JSON object per epoch (train loss, lr, validation scores, time)
//   curve.svg               training loss and validation CCC per epoch
//   profile.txt, profile.trace.json   the op profiler's tables and trace, when asked for (StudyOptions)
// Resuming restores every piece of state, including where in the epoch the run stopped, so a resumed run
// computes exactly the losses an uninterrupted one would (on the CPU, bit for bit).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/config.h"
#include "models/evaluation.h"
#include "models/study_tools.h"

namespace minidl::models {

struct TrainConfig {
  ModelConfig model;
  std::string data;                         // data set root (Aff-Wild2 layout); "" = SynthAV under data_cache
  std::string data_cache = "synthav-data";  // where the default SynthAV set lives, generated when missing
  std::string out = "runs/latest";          // the run folder
  int64_t epochs = 2;
  int64_t batch_size = 16;
  std::string optimizer = "adamw";  // sgd, adam or adamw
  double lr = 2e-3;
  double weight_decay = 0.05;
  double momentum = 0.9;            // sgd only
  bool nesterov = false;            // sgd only: Nesterov momentum (needs momentum > 0)
  std::string schedule = "cosine";  // constant, step, cosine (with warm-up) or plateau
  double warmup_epochs = 0.5;       // cosine
  int64_t step_size = 4;            // step: epochs between decays
  double gamma = 0.5;               // step and plateau: the decay factor
  double grad_clip = 5.0;           // global-norm clipping; <= 0 turns it off
  bool augment = true;              // brightness / contrast per clip while training
  bool flip = true;                 // training: mirror a clip left-right with probability 1/2
  double crop = 1.0;                // training, in (0, 1]: random square crops of side U[crop, 1], resized back
  int audio_freq_mask = 0;          // training: SpecAugment band of up to this many mel bins per clip
  int audio_time_mask = 0;          // training: SpecAugment run of up to this many log-mel frames per clip
  int workers = 2;                  // loader threads
  std::string clip_cache;           // "" = off; a folder for the loader's decoded frames and audio (reused)
  uint64_t seed = 1;                // model init, dropout, shuffling, augmentation
  std::string device = "cpu";       // cpu or cuda[:N]
  std::string math = "fp32";        // on CUDA: fp32, tf32 (TF32 convolutions) or tf32-all (TF32 matmuls too)
  int64_t max_steps = -1;           // stop after this many optimiser steps in total (tests, quick runs)
  double time_limit_minutes = 0;    // > 0: stop training when exceeded (the last epoch is still evaluated)
  bool evaluate_test = true;        // score Test_Set with the best weights at the end
  bool detect_anomaly = false;      // check every op's outputs and gradients for NaN / Inf (autograd/anomaly.h)
};

nlohmann::json to_json(const TrainConfig& config);
// Starts from `base` (its model from the preset named in json, if any) and overrides the keys present;
// unknown keys and wrong types are a minidl::Error naming the key.
TrainConfig train_config_from_json(const nlohmann::json& json, const TrainConfig& base);
// Applies "key=value" overrides (model keys as "model.clips=16"); values are parsed as JSON, falling back
// to a string.
TrainConfig apply_overrides(const TrainConfig& config, const std::vector<std::string>& assignments);

struct Progress {
  int64_t epoch = 0, epochs = 0;
  int64_t batch = 0, batches = 0;           // within the epoch
  int64_t step = 0;                         // optimiser steps so far
  double loss = 0;                          // running mean of the epoch's training loss
  double ccc_valence = 0, ccc_arousal = 0;  // running means of the epoch's batch CCCs
  double lr = 0;
  double clips_per_s = 0;
  double elapsed_s = 0, eta_s = 0;
};

struct EpochRecord {
  int64_t epoch = 0;
  double train_loss = 0, lr = 0, seconds = 0;
  std::array<double, 2> train_ccc{0, 0};  // mean batch CCC over the epoch: valence, arousal
  Scores validation;
};

class Trainer {
 public:
  // Builds the data set (generating SynthAV when needed), the model, the optimiser and the loaders.
  // resume: continue the run in config.out from its last checkpoint (its config.json must describe the
  // same model). Without resume, an existing run folder with a checkpoint is an error (no overwrite).
  // study: the graph and profile to write (models/study_tools.h).
  Trainer(const TrainConfig& config, bool resume, std::function<void(const std::string&)> log = nullptr,
          const StudyOptions& study = {});
  ~Trainer();

  // Trains until the configured epochs, max_steps or time limit, evaluating Validation_Set after each
  // epoch, saving checkpoints; returns the per-epoch records. `stop` (Ctrl-C) ends the run at the next
  // step with a checkpoint, so it can be resumed.
  std::vector<EpochRecord> run(const std::function<void(const Progress&)>& on_progress = nullptr,
                               const std::atomic<bool>* stop = nullptr);

  // One optimiser step on the next training batch; returns its loss (or NaN at the end of the epoch, when
  // no batch was left).
  double train_step();
  Scores evaluate(const std::string& split);
  // Loads the run's best.safetensors into the model (if there is one) and scores `split` with it.
  Scores evaluate_best(const std::string& split);
  void save_checkpoint();
  const TrainConfig& config() const;
  int64_t epoch() const;
  int64_t steps() const;
  bool stopped_by_signal() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class EmotionModel;

// The model of a finished (or running) training run: its config.json and the weights of `which`
// ("best", "last", or a path to a .safetensors file). The config is returned through `config` if given.
std::unique_ptr<EmotionModel> load_run_model(const std::string& run_dir, const std::string& which = "best",
                                             TrainConfig* config = nullptr);

// The data set root a run trained on (its `data`, or its SynthAV cache).
std::string run_data_root(const TrainConfig& config);

// The learning-curve picture: training loss and validation CCC (valence, arousal) per epoch, as SVG.
std::string learning_curve_svg(const std::vector<EpochRecord>& records, const std::string& title);

}  // namespace minidl::models
