// CUDA concordance correlation coefficient (MODEL.md §4) per column over the rows the mask keeps, and
// its backward; the formulas and the layout of `stats` are those of cpu/loss.cpp.
//
// Forward: one block per column, two passes over its rows (means first, then centred moments) with
// fixed-order block sums in double, as the CPU does, so float32 inputs lose nothing to cancellation.
// Backward: one thread per element.
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace minidl::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void ccc_columns(const float* x, const float* y, const bool* mask, int64_t R, int64_t C, double eps,
                            float* ccc, float* stats) {
  __shared__ double scratch[kWarp];
  const int64_t c = blockIdx.x;
  double n = 0, sx = 0, sy = 0;
  for (int64_t r = threadIdx.x; r < R; r += blockDim.x)
    if (!mask || mask[r]) {
      n += 1;
      sx += x[r * C + c];
      sy += y[r * C + c];
    }
  n = block_sum(n, scratch);
  sx = block_sum(sx, scratch);
  sy = block_sum(sy, scratch);
  const double mx = sx / n, my = sy / n;
  double vx = 0, vy = 0, cov = 0;
  for (int64_t r = threadIdx.x; r < R; r += blockDim.x)
    if (!mask || mask[r]) {
      const double dx = x[r * C + c] - mx, dy = y[r * C + c] - my;
      vx += dx * dx;
      vy += dy * dy;
      cov += dx * dy;
    }
  vx = block_sum(vx, scratch);
  vy = block_sum(vy, scratch);
  cov = block_sum(cov, scratch);
  if (threadIdx.x != 0) return;
  const double D = vx / n + vy / n + (mx - my) * (mx - my) + eps;
  ccc[c] = static_cast<float>(2.0 * (cov / n) / D);
  stats[c * 4 + 0] = static_cast<float>(mx);
  stats[c * 4 + 1] = static_cast<float>(my);
  stats[c * 4 + 2] = static_cast<float>(D);
  stats[c * 4 + 3] = static_cast<float>(n);
}

__global__ void ccc_grad(const float* x, const float* y, const bool* mask, int64_t R, int64_t C, const float* ccc,
                         const float* stats, const float* gc, float* gx, float* gy) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < R * C; i += step) {
    const int64_t r = i / C, c = i % C;
    if (mask && !mask[r]) {  // a masked row gets exactly 0, even if it holds NaN or inf
      if (gx) gx[i] = 0.0f;
      if (gy) gy[i] = 0.0f;
      continue;
    }
    const double mx = stats[c * 4], my = stats[c * 4 + 1], D = stats[c * 4 + 2], n = stats[c * 4 + 3];
    const double k = gc[c] * 2.0 / (n * D);
    if (gx) gx[i] = static_cast<float>(k * ((y[i] - my) - ccc[c] * (x[i] - my)));
    if (gy) gy[i] = static_cast<float>(k * ((x[i] - mx) - ccc[c] * (y[i] - mx)));
  }
}

void check_float32(const Tensor& t) {
  MINIDL_CHECK(t.dtype() == kFloat32, "ccc: the CUDA kernels compute in float32, got ", t.meta_str(),
               " (float64 is for CPU gradchecks)");
}

}  // namespace

void ccc_forward(const Tensor& pred, const Tensor& target, const Tensor& mask, double eps, const Tensor& ccc,
                 const Tensor& stats) {
  check_float32(pred);
  const int64_t R = pred.size(0), C = pred.size(1);
  if (C == 0) return;
  const int device = pred.device().index;
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  ccc_columns<<<static_cast<unsigned>(C), kThreads, 0, stream_of(device)>>>(
      device_data<float>(pred), device_data<float>(target), mask.defined() ? device_data<bool>(mask) : nullptr, R, C,
      eps, device_data<float>(ccc), device_data<float>(stats));
  MINIDL_CUDA_CHECK_LAUNCH("ccc");
}

void ccc_backward(const Tensor& pred, const Tensor& target, const Tensor& mask, const Tensor& ccc, const Tensor& stats,
                  const Tensor& g, const Tensor& gpred, const Tensor& gtarget) {
  check_float32(pred);
  const int64_t R = pred.size(0), C = pred.size(1);
  launch_grid_stride("ccc backward", pred.device().index, R * C, ccc_grad, device_data<float>(pred),
                     device_data<float>(target), mask.defined() ? device_data<bool>(mask) : nullptr, R, C,
                     device_data<float>(ccc), device_data<float>(stats), device_data<float>(g),
                     gpred.defined() ? device_data<float>(gpred) : nullptr,
                     gtarget.defined() ? device_data<float>(gtarget) : nullptr);
}

}  // namespace minidl::cuda
