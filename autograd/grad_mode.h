// Grad mode: whether ops record the graph. Thread-local, so one thread evaluating under NoGradGuard
// does not stop another from training.
#pragma once

namespace minidl {

bool grad_enabled();
void set_grad_enabled(bool on);

// Turns recording off for its scope and restores the previous mode after, exceptions included.
class NoGradGuard {
 public:
  NoGradGuard() : previous_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace minidl
