// Learning-rate schedules. The two closed-form schedules validate their settings on every call (they are
// plain aggregates a user fills in, so there is no constructor to do it once); the checks cost nothing
// next to a training step.
#include "optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "autograd/error.h"
#include "autograd/factories.h"

namespace minidl::optim {

namespace {
constexpr double kPi = 3.14159265358979323846;
}  // namespace

// ---- StepDecay ----------------------------------------------------------------------------------------

double StepDecay::lr(int64_t epoch) const {
  MINIDL_CHECK(std::isfinite(base) && base > 0.0, "StepDecay: base must be finite and > 0, got ", base);
  MINIDL_CHECK(base_after < 0.0 || (std::isfinite(base_after) && base_after > 0.0),
               "StepDecay: base_after must be finite and > 0 (or < 0 for the same as base), got ", base_after);
  MINIDL_CHECK(std::isfinite(gamma) && gamma > 0.0, "StepDecay: gamma must be finite and > 0, got ", gamma);
  MINIDL_CHECK(step_size > 0, "StepDecay: step_size must be > 0, got ", step_size);
  MINIDL_CHECK(start >= 0, "StepDecay: start must be >= 0, got ", start);
  const int64_t origin = count_from < 0 ? start : count_from;
  MINIDL_CHECK(origin <= start, "StepDecay: count_from (", count_from, ") must not be after start (", start,
               "): the exponent would be negative");
  MINIDL_CHECK(epoch >= 0, "StepDecay: epoch must be >= 0, got ", epoch);
  if (epoch < start) return base;
  // A closed form (torch's StepLR._get_closed_form_lr) rather than torch's chained lr *= gamma: the value
  // depends on the epoch alone, so a resumed run gets it without replaying the epochs before.
  const double after = base_after < 0.0 ? base : base_after;
  return after * std::pow(gamma, double((epoch - origin) / step_size));
}

// ---- CosineWithWarmup ---------------------------------------------------------------------------------

double CosineWithWarmup::lr(int64_t step) const {
  MINIDL_CHECK(std::isfinite(base) && base > 0.0, "CosineWithWarmup: base must be finite and > 0, got ", base);
  MINIDL_CHECK(std::isfinite(min_lr) && min_lr >= 0.0 && min_lr <= base,
               "CosineWithWarmup: min_lr must be in [0, base = ", base, "], got ", min_lr);
  MINIDL_CHECK(warmup_steps >= 0, "CosineWithWarmup: warmup_steps must be >= 0, got ", warmup_steps);
  MINIDL_CHECK(total_steps > warmup_steps, "CosineWithWarmup: total_steps (", total_steps,
               ") must exceed warmup_steps (", warmup_steps, ") so that the cosine has at least one step");
  MINIDL_CHECK(step >= 0, "CosineWithWarmup: step must be >= 0, got ", step);
  // Warm-up as in the common transformer schedules: lr(0) = 0, rising linearly to base at warmup_steps.
  if (step < warmup_steps) return base * double(step) / double(warmup_steps);
  if (step >= total_steps) return min_lr;
  const double progress = double(step - warmup_steps) / double(total_steps - warmup_steps);
  return min_lr + (base - min_lr) * 0.5 * (1.0 + std::cos(kPi * progress));
}

// ---- ReduceOnPlateau ----------------------------------------------------------------------------------

ReduceOnPlateau::ReduceOnPlateau(bool maximize, double factor, int64_t patience, double threshold, double min_lr)
    : maximize_(maximize),
      factor_(factor),
      threshold_(threshold),
      min_lr_(min_lr),
      patience_(patience),
      best_(maximize ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity()) {
  MINIDL_CHECK(factor > 0.0 && factor < 1.0, "ReduceOnPlateau: factor must be in (0, 1), got ", factor);
  MINIDL_CHECK(patience >= 0, "ReduceOnPlateau: patience must be >= 0, got ", patience);
  MINIDL_CHECK(std::isfinite(threshold) && threshold >= 0.0, "ReduceOnPlateau: threshold must be finite and >= 0, got ",
               threshold);
  MINIDL_CHECK(std::isfinite(min_lr) && min_lr >= 0.0, "ReduceOnPlateau: min_lr must be finite and >= 0, got ", min_lr);
}

double ReduceOnPlateau::observe(double metric, double lr) {
  // torch counts a NaN metric as one more bad epoch; here it is an error, so that a diverged run is not
  // quietly trained on at a smaller lr.
  MINIDL_CHECK(std::isfinite(metric), "ReduceOnPlateau.observe: the metric must be finite, got ", metric);
  MINIDL_CHECK(std::isfinite(lr) && lr >= 0.0, "ReduceOnPlateau.observe: lr must be finite and >= 0, got ", lr);
  // torch's is_better in threshold mode "rel".
  const bool better = maximize_ ? metric > best_ * (1.0 + threshold_) : metric < best_ * (1.0 - threshold_);
  if (better) {
    best_ = metric;
    bad_epochs_ = 0;
  } else {
    ++bad_epochs_;
  }
  if (bad_epochs_ <= patience_) return lr;
  bad_epochs_ = 0;  // cooldown 0: counting starts again right away
  const double reduced = std::max(lr * factor_, min_lr_);
  // torch's eps: a change of 1e-8 or less is not made, so the lr settles exactly on min_lr.
  return lr - reduced > 1e-8 ? reduced : lr;
}

std::vector<std::pair<std::string, Tensor>> ReduceOnPlateau::state_dict() const {
  return {{"best", scalar_tensor(best_, {.dtype = kFloat64})},
          {"bad_epochs", scalar_tensor(double(bad_epochs_), {.dtype = kFloat64})}};
}

void ReduceOnPlateau::load_state_dict(const std::vector<std::pair<std::string, Tensor>>& state) {
  std::map<std::string, double> values;
  std::string problems;
  for (const auto& [name, t] : state) {
    if (name != "best" && name != "bad_epochs") {
      problems += "\n  unexpected entry '" + name + "'";
    } else if (!t.defined() || t.numel() != 1) {
      problems += "\n  '" + name + "' must hold one value, got " + (t.defined() ? t.meta_str() : "an undefined tensor");
    } else if (!values.emplace(name, t.item()).second) {
      problems += "\n  entry '" + name + "' appears twice";
    }
  }
  for (const char* name : {"best", "bad_epochs"})
    if (!values.count(name) && problems.find(std::string("'") + name + "'") == std::string::npos)
      problems += std::string("\n  missing entry '") + name + "'";
  if (values.count("best")) {
    const double b = values["best"];
    // Before the first epoch best is the infinity on the worse side; it can never be NaN or the other one.
    const double worst = maximize_ ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
    if (!(std::isfinite(b) || b == worst))
      problems += detail::concat("\n  'best' must be finite (or ", worst, " before the first epoch), got ", b);
  }
  if (values.count("bad_epochs")) {
    const double n = values["bad_epochs"];
    if (!(n >= 0.0 && n == std::floor(n) && n <= double(patience_)))
      problems += detail::concat("\n  'bad_epochs' must be a whole number in [0, patience = ", patience_, "], got ", n);
  }
  MINIDL_CHECK(problems.empty(), "ReduceOnPlateau.load_state_dict: the state does not fit:", problems);
  best_ = values["best"];
  bad_epochs_ = int64_t(values["bad_epochs"]);
}

}  // namespace minidl::optim
