// Trains the small MLP of apps/mlp_regression.h on the CPU and prints its progress: what the core can do
// before the emotion model exists. Usage: mlp_demo [--graph FILE.dot] [steps] [seed]
// --graph writes the first step's autograd graph (and an SVG beside it where Graphviz is installed): the
// picture of docs/internals.md.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "apps/mlp_regression.h"

int main(int argc, char** argv) {
  using namespace minidl;
  demo::MlpConfig cfg;
  std::string graph;
  try {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.size() >= 2 && args[0] == "--graph") {
      graph = args[1];
      args.erase(args.begin(), args.begin() + 2);
    }
    if (!args.empty()) cfg.steps = std::stoll(args[0]);
    if (args.size() > 1) cfg.seed = std::stoull(args[1]);
    if (args.size() > 2 || cfg.steps <= 0) throw std::invalid_argument("usage");
  } catch (const std::exception&) {
    std::fprintf(stderr, "usage: %s [--graph FILE.dot] [steps > 0] [seed]\n", argv[0]);
    return 2;
  }
  std::printf(
      "Fitting y = tanh(3 x0) (1 - x1^2) + 0.5 x0^2 with a 2-%lld-%lld-1 tanh MLP on %lld points,\n"
      "full-batch gradient descent with momentum %.2f, lr %.3f, %lld steps, seed %llu.\n",
      static_cast<long long>(cfg.hidden), static_cast<long long>(cfg.hidden), static_cast<long long>(cfg.samples),
      cfg.momentum, cfg.lr, static_cast<long long>(cfg.steps), static_cast<unsigned long long>(cfg.seed));
  const int64_t every = std::max<int64_t>(1, cfg.steps / 10);
  try {
    auto draw = [&](const Tensor& loss, const demo::Mlp& mlp) {
      if (graph.empty()) return;
      const std::string wrote = write_graph(graph, loss, {.names = mlp.named(), .title = "mlp_demo: one step"});
      std::printf("The first step's graph: %s\n", wrote.c_str());
    };
    const auto losses = demo::train_mlp(
        cfg,
        [&](int64_t step, double loss) {
          if (step % every == 0 || step + 1 == cfg.steps)
            std::printf("  step %5lld / %lld   mse %.6f\n", static_cast<long long>(step + 1),
                        static_cast<long long>(cfg.steps), loss);
        },
        draw);
    std::printf("Done: mean squared error %.6f (the target's variance is about 0.38).\n", losses.back());
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
