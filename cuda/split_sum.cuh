// The second half of a deterministic split reduction, shared by the GEMM's split K (cuda/gemm.cu) and
// the convolution weight gradient's segments (cuda/conv.cu): work cut along its reduction leaves one
// partial result per segment, and these are added in segment order, so the sum depends on the split
// (a function of the shapes) and never on the run. No atomics.
#pragma once

#include <cstdint>

#include "cuda/common.cuh"

namespace minidl::cuda {
namespace {

// out[r * ld + c] = the sum over s of partial[s][r][c], s in order, for [rows, cols] partials stored one
// after another.
__global__ void add_splits(const float* partial, int splits, int64_t rows, int64_t cols, float* out, int64_t ld) {
  const int64_t n = rows * cols;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float sum = partial[i];
    for (int s = 1; s < splits; ++s) sum += partial[s * n + i];
    out[ld == cols ? i : i / cols * ld + i % cols] = sum;
  }
}

// Launches add_splits on `device`'s current stream.
void launch_add_splits(const float* partial, int splits, int64_t rows, int64_t cols, float* out, int64_t ld, int device,
                       const char* what) {
  add_splits<<<grid_for(rows * cols, 256, device), 256, 0, stream_of(device)>>>(partial, splits, rows, cols, out, ld);
  MINIDL_CUDA_CHECK_LAUNCH(what);
}

}  // namespace
}  // namespace minidl::cuda
