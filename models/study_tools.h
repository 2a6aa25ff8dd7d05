// The study tools around the trainer's steps: the first step's autograd graph, the op profiler over a
// few steps, anomaly detection (apps/train --graph, --profile-steps, --detect-anomaly). The Trainer
// (models/trainer.cpp) calls these hooks at the edges of each step; they write beside the run's files.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "autograd/anomaly.h"
#include "autograd/profiler.h"
#include "autograd/tensor.h"

namespace minidl::nn {
class Module;
}

namespace minidl::models {

// What to study in a run. Not settings of the run: config.json does not keep them, and a resumed run
// studies only what its own command line asks for.
struct StudyOptions {
  std::string graph{};         // write the first step's autograd graph here (DOT; an SVG beside it)
  int64_t profile_steps = 0;   // profile this many training steps ...
  int64_t profile_warmup = 2;  // ... after this many steps of this process (the first ones are slower)
};

class StudyTools {
 public:
  // run_dir: where the profile's files go (profile.txt, profile.trace.json). detect_anomaly turns anomaly
  // detection on for the life of this object.
  StudyTools(StudyOptions options, std::string run_dir, bool detect_anomaly,
             std::function<void(const std::string&)> log);
  ~StudyTools();

  void before_step();                                               // starts the profiler when it is time
  void after_forward(const Tensor& loss, const nn::Module& model);  // draws the first step's graph
  void after_step();                                                // writes the profile when it is done
  void finish();  // the end of training: writes a profile that fewer steps than asked for went into

 private:
  void write_profile();

  StudyOptions options_;
  std::string run_dir_;
  std::function<void(const std::string&)> log_;
  std::unique_ptr<DetectAnomalyGuard> anomaly_;
  std::unique_ptr<profiler::Profiler> profiler_;
  int64_t steps_ = 0;  // steps of this process so far
  int64_t profiled_ = 0;
  bool graph_drawn_ = false;
};

}  // namespace minidl::models
