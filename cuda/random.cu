// CUDA fills from the Philox stream, element for element the stream of cpu/random.cpp (autograd/random.h
// defines it): one thread per Philox block, which defines four float32 elements or two float64 ones, so
// both elements of a Box-Muller pair are made by the same thread, as on the CPU. The generator
// (autograd/philox.h) is the same header on both sides; the uniforms and Bernoulli draws are therefore
// equal bit for bit. Normals go through double log, sqrt, sin and cos, whose CUDA versions may differ
// from glibc's in the last bit of the double; after rounding to float32 that almost never shows.
#include <cmath>

#include "autograd/philox.h"
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace minidl::cuda {
namespace {

constexpr int kThreads = 256;
enum class Draw { Uniform, Normal, Bernoulli };

template <class T, Draw kind>
__global__ void philox_fill(T* out, int64_t n, uint64_t seed, uint64_t offset, double a, double b) {
  // Bernoulli always uses the float32 rule (one stream value per element), whatever the dtype.
  constexpr bool wide = std::is_same_v<T, double> && kind != Draw::Bernoulli;
  constexpr int per_block = wide ? 2 : 4;
  const int64_t draw = kind == Draw::Normal ? (n + 1) / 2 * 2 : n;  // normals cover whole pairs
  const int64_t blocks = (draw + per_block - 1) / per_block;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t blk = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; blk < blocks; blk += step) {
    const uint64_t ctr = offset + static_cast<uint64_t>(blk);
    const philox::Block r = philox::philox4x32_10(static_cast<uint32_t>(ctr), static_cast<uint32_t>(ctr >> 32), 0u, 0u,
                                                  static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
    double u[4];
#pragma unroll
    for (int k = 0; k < per_block; ++k)
      u[k] = wide ? philox::to_unit_double(r.v[2 * k], r.v[2 * k + 1]) : philox::to_unit_float(r.v[k]);
    const int64_t first = blk * per_block;
    if constexpr (kind == Draw::Uniform) {
      const T top = wide ? static_cast<T>(nextafter(b, a))
                         : static_cast<T>(nextafterf(static_cast<float>(b), static_cast<float>(a)));
#pragma unroll
      for (int k = 0; k < per_block; ++k) {
        if (first + k >= n) break;
        const T v = static_cast<T>(a + (b - a) * u[k]);
        out[first + k] = v < top ? v : top;  // lo + (hi - lo) u can round up to hi: keep [lo, hi)
      }
    } else if constexpr (kind == Draw::Normal) {
      constexpr double kTwoPi = 6.283185307179586476925286766559;
#pragma unroll
      for (int k = 0; k + 1 < per_block; k += 2) {
        const double rad = sqrt(-2.0 * ::log(1.0 - u[k]));  // 1 - u lies in (0, 1]: the log is finite
        const double z[2] = {rad * cos(kTwoPi * u[k + 1]), rad * sin(kTwoPi * u[k + 1])};
        for (int j = 0; j < 2; ++j)
          if (first + k + j < n) out[first + k + j] = static_cast<T>(a + b * z[j]);
      }
    } else {
#pragma unroll
      for (int k = 0; k < per_block; ++k)
        if (first + k < n) out[first + k] = BernoulliDraw<T>{a, T(1)}(u[k]);
    }
  }
}

// Dropout in one pass: each thread takes one Philox block, i.e. four elements of bernoulli's float32
// rule, and writes both the scaled keep mask (the backward's factor) and x times it.
__global__ void philox_dropout(const float* x, int64_t n, uint64_t seed, uint64_t offset, BernoulliDraw<float> draw,
                               float* y, float* mask) {
  const int64_t blocks = (n + 3) / 4;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t blk = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; blk < blocks; blk += step) {
    const uint64_t ctr = offset + static_cast<uint64_t>(blk);
    const philox::Block r = philox::philox4x32_10(static_cast<uint32_t>(ctr), static_cast<uint32_t>(ctr >> 32), 0u, 0u,
                                                  static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
    for (int k = 0; k < 4; ++k) {
      const int64_t i = blk * 4 + k;
      if (i >= n) break;
      const float m = draw(philox::to_unit_float(r.v[k]));
      mask[i] = m;
      y[i] = x[i] * m;
    }
  }
}

template <Draw kind>
void launch(const char* op, const Tensor& out, uint64_t seed, uint64_t offset, double a, double b) {
  MINIDL_CHECK(out.is_contiguous(), op, ": the output must be contiguous, got ", out.meta_str());
  const int64_t n = out.numel();
  if (n == 0) return;
  const int device = out.device().index;
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  const cudaStream_t stream = stream_of(device);
  const unsigned blocks = grid_for((n + 1) / 2, kThreads, device);
  switch (out.dtype()) {
    case DType::Float32:
      philox_fill<float, kind><<<blocks, kThreads, 0, stream>>>(device_data<float>(out), n, seed, offset, a, b);
      break;
    case DType::Float64:
      philox_fill<double, kind><<<blocks, kThreads, 0, stream>>>(device_data<double>(out), n, seed, offset, a, b);
      break;
    default: fail(op, ": expected a float32 or float64 tensor, got ", out.meta_str());
  }
  MINIDL_CUDA_CHECK_LAUNCH(op);
}

}  // namespace

void uniform(const Tensor& out, uint64_t seed, uint64_t offset, double lo, double hi) {
  launch<Draw::Uniform>("rand", out, seed, offset, lo, hi);
}

void normal(const Tensor& out, uint64_t seed, uint64_t offset, double mean, double std) {
  launch<Draw::Normal>("randn", out, seed, offset, mean, std);
}

void bernoulli(const Tensor& out, uint64_t seed, uint64_t offset, double p) {
  launch<Draw::Bernoulli>("bernoulli", out, seed, offset, p, 0.0);
}

void dropout(const Tensor& x, uint64_t seed, uint64_t offset, double keep, const Tensor& y, const Tensor& mask) {
  MINIDL_CHECK(x.dtype() == kFloat32, "dropout: the CUDA kernels compute in float32, got ", x.meta_str(),
               " (float64 is for CPU gradchecks)");
  MINIDL_CHECK(x.is_contiguous() && y.is_contiguous() && mask.is_contiguous(), "dropout: contiguous tensors expected");
  const int64_t n = x.numel();
  if (n == 0) return;
  const int device = x.device().index;
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  philox_dropout<<<grid_for((n + 3) / 4, kThreads, device), kThreads, 0, stream_of(device)>>>(
      device_data<float>(x), n, seed, offset, BernoulliDraw<float>{keep, static_cast<float>(1.0 / keep)},
      device_data<float>(y), device_data<float>(mask));
  MINIDL_CUDA_CHECK_LAUNCH("dropout");
}

}  // namespace minidl::cuda
