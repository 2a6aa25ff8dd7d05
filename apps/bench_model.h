// The training-step benchmarks of apps/bench (apps/bench_model.cpp): DESIGN.md's workloads W1 and W2.
#pragma once

namespace minidl::bench {
// bench w1 [--device cpu|cuda[:N]] [--steps N] [--warmup N] [--json FILE] [--jca fused|composed|both]
//          [--profile N [--trace FILE]]
//          [--graph FILE] [--detect-anomaly]
int w1(int argc, char** argv);
// bench w2 [the same options] [--preset NAME] [--batch N]
int w2(int argc, char** argv);
// bench jca [--device cpu|cuda[:N]] [--steps N] [--batch N]: the attention block alone, forward and
// backward, fused and composed side by side, at W1's sizes.
int jca(int argc, char** argv);
}  // namespace minidl::bench
