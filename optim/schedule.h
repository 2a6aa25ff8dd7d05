// Learning-rate schedules. Step decay and cosine-with-warmup are pure functions of the epoch or step, so a
// resumed run only needs its position; reduce-on-plateau follows a metric and keeps a small state, which
// goes into checkpoints.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.h"

namespace minidl::optim {

// lr = base before `start`, then base_after * gamma^floor((epoch - count_from) / step_size), count_from
// being `start` unless set. With start 0 and base_after = base this is torch's StepLR; the authors' code
// (lr = 1e-3 * 0.8^((epoch - 5) // 2) for epoch > 5) is start 6, count_from 5, base 1e-4, base_after 1e-3,
// gamma 0.8, step_size 2.
struct StepDecay {
  double base = 1e-3;
  double gamma = 0.1;
  int64_t step_size = 10;
  int64_t start = 0;
  double base_after = -1;   // < 0: the same as base
  int64_t count_from = -1;  // addition; < 0: the same as start
  double lr(int64_t epoch) const;
};

// Linear warm-up from 0 over warmup_steps, then half a cosine from base down to min_lr at total_steps
// (and min_lr after).
struct CosineWithWarmup {
  double base = 1e-3;
  double min_lr = 0.0;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  double lr(int64_t step) const;
};

// torch's ReduceLROnPlateau: after `patience` epochs without an improvement of more than `threshold`
// (relative, mode "rel") in the metric, the lr is multiplied by `factor`, never below min_lr.
class ReduceOnPlateau {
 public:
  ReduceOnPlateau(bool maximize, double factor = 0.1, int64_t patience = 10, double threshold = 1e-4,
                  double min_lr = 0.0);
  // Records this epoch's metric and returns the lr to use next, given the current one.
  double observe(double metric, double lr);
  std::vector<std::pair<std::string, Tensor>> state_dict() const;  // "best", "bad_epochs"
  void load_state_dict(const std::vector<std::pair<std::string, Tensor>>& state);

 private:
  bool maximize_;
  double factor_, threshold_, min_lr_;
  int64_t patience_;
  double best_;
  int64_t bad_epochs_ = 0;
};

}  // namespace minidl::optim
