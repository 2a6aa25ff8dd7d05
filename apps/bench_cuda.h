// The GPU benchmarks of apps/bench (apps/bench_cuda.cu), built when the CUDA backend is.
#pragma once

namespace minidl::bench {
// bench cuda-gemm [--sizes 512,1024,2048,4096,8192] [--json FILE]
int cuda_gemm(int argc, char** argv);
// bench cuda-bandwidth [--elements N]
int cuda_bandwidth(int argc, char** argv);
}  // namespace minidl::bench
