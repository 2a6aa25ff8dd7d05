// The GPU benchmarks of apps/bench (apps/bench_cuda.cu), built when the CUDA backend is.
#pragma once

#include <functional>

namespace minidl::bench {
// Median milliseconds of fn on the device (CUDA events on the current stream of cuda:0), after two
// warm-ups (which also let cuDNN make its plans); repeats until about 0.3 s of device time or 50 runs.
double device_ms(const std::function<void()>& fn);

// bench cuda-gemm [--sizes 512,1024,2048,4096,8192] [--json FILE]
int cuda_gemm(int argc, char** argv);
// bench cuda-bandwidth [--elements N]
int cuda_bandwidth(int argc, char** argv);
}  // namespace minidl::bench
