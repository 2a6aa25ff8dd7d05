// A small, real training problem for the core alone: fit a two-input non-linear function with a
// 2 -> H -> H -> 1 tanh MLP, full-batch gradient descent with momentum, written out by hand (the
// optimisers and layers come later). Used by apps/mlp_demo and by tests/autograd/test_mlp.cpp.
#pragma once

#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "autograd/minidl.h"

namespace minidl::demo {

struct MlpConfig {
  int64_t hidden = 32;
  int64_t samples = 512;
  int64_t steps = 1500;
  double lr = 0.05;
  double momentum = 0.9;
  uint64_t seed = 1;
};

// The target, non-linear in both inputs: y = tanh(3 x0) (1 - x1^2) + 0.5 x0^2 on [-1, 1]^2.
// Its variance over the square is about 0.38, so a mean squared error of 0.005 explains 98.7% of it.
inline Tensor target_function(const Tensor& x) {
  const Tensor x0 = x.select(1, 0), x1 = x.select(1, 1);
  return (tanh(x0 * 3.0) * sub(1.0, x1 * x1) + x0 * x0 * 0.5).unsqueeze(1);
}

struct Mlp {
  std::vector<Tensor> params;  // w1 [H,2], b1 [H], w2 [H,H], b2 [H], w3 [1,H], b3 [1]

  Mlp(int64_t hidden, Generator& gen) {
    // PyTorch's Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases.
    auto layer = [&](int64_t out, int64_t in) {
      const double bound = 1.0 / std::sqrt(static_cast<double>(in));
      params.push_back(rand({out, in}, {.requires_grad = true}, &gen, -bound, bound));
      params.push_back(rand({out}, {.requires_grad = true}, &gen, -bound, bound));
    };
    layer(hidden, 2);
    layer(hidden, hidden);
    layer(1, hidden);
  }

  // The names the graph export (graph_dot) labels the parameters with.
  std::vector<std::pair<std::string, Tensor>> named() const {
    const char* names[] = {"w1", "b1", "w2", "b2", "w3", "b3"};
    std::vector<std::pair<std::string, Tensor>> out;
    for (size_t i = 0; i < params.size(); ++i) out.emplace_back(names[i], params[i]);
    return out;
  }

  Tensor forward(const Tensor& x) const {
    Tensor h = tanh(linear(x, params[0], params[1]));
    h = tanh(linear(h, params[2], params[3]));
    return linear(h, params[4], params[5]);
  }
};

// Trains and returns the mean squared error after each step. `on_step(step, loss)` may report progress;
// `on_first_loss(loss, mlp)`, if given, sees the first step's loss before its backward (to draw its graph).
inline std::vector<double> train_mlp(const MlpConfig& cfg,
                                     const std::function<void(int64_t, double)>& on_step = nullptr,
                                     const std::function<void(const Tensor&, const Mlp&)>& on_first_loss = nullptr) {
  Generator gen(cfg.seed);
  const Tensor x = rand({cfg.samples, 2}, {}, &gen, -1.0, 1.0);
  const Tensor y = target_function(x).detach();
  Mlp mlp(cfg.hidden, gen);
  std::vector<Tensor> velocity;
  for (const Tensor& p : mlp.params) velocity.push_back(zeros_like(p));
  std::vector<double> losses;
  for (int64_t step = 0; step < cfg.steps; ++step) {
    const Tensor diff = mlp.forward(x) - y;
    const Tensor loss = mean(diff * diff);
    if (step == 0 && on_first_loss) on_first_loss(loss, mlp);
    loss.backward();
    {
      NoGradGuard no_grad;  // the update itself must not be recorded
      for (size_t i = 0; i < mlp.params.size(); ++i) {
        velocity[i].mul_(cfg.momentum).add_(mlp.params[i].grad());
        mlp.params[i].add_(velocity[i], -cfg.lr);
        mlp.params[i].zero_grad();
      }
    }
    losses.push_back(loss.item());
    if (on_step) on_step(step, losses.back());
  }
  return losses;
}

}  // namespace minidl::demo
