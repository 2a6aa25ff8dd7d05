// The training-step benchmarks of apps/bench (apps/bench_model.cpp): DESIGN.md's workloads W1 and W2.
#pragma once

namespace minidl::bench {
// bench w1 [--device cpu|cuda[:N]] [--steps N] [--warmup N] [--json FILE] [--profile N [--trace FILE]]
//          [--graph FILE] [--detect-anomaly]
int w1(int argc, char** argv);
// bench w2 [the same options] [--preset NAME] [--batch N]
int w2(int argc, char** argv);
}  // namespace minidl::bench
