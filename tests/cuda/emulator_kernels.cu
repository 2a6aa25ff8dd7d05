// Kernels for tests/cuda/test_cuda_emulator.cpp (see emulator_kernels.h). Compiled only in the emulated
// build, through cuda/emulator/translate.cpp like the kernels of cuda/.
#include <cuda_pipeline.h>

#include <cmath>

#include "cuda/common.cuh"
#include "cuda/mma.cuh"
#include "tests/cuda/emulator_kernels.h"

namespace minidl::emulator_test {
namespace {

// Copies n device values back and frees them; the launch error wins over a copy error.
template <class T>
cudaError_t finish(cudaError_t launch, T* device, size_t n, std::vector<T>& out) {
  out.assign(n, T{});
  const cudaError_t copy = cudaMemcpy(out.data(), device, n * sizeof(T), cudaMemcpyDeviceToHost);
  cudaFree(device);
  return launch != cudaSuccess ? launch : copy;
}

template <class T>
T* device_buffer(size_t n) {
  void* p = nullptr;
  if (cudaMalloc(&p, n * sizeof(T)) != cudaSuccess) return nullptr;
  return static_cast<T*>(p);
}

__global__ void neighbour_kernel(float* out, bool barrier) {
  extern __shared__ float slots[];
  const unsigned t = threadIdx.x;
  slots[t] = static_cast<float>(t);
  if (barrier) __syncthreads();
  out[t] = slots[(t + 1) % blockDim.x];
}

__global__ void static_neighbour_kernel(float* out, bool barrier) {
  __shared__ float slots[128];
  const unsigned t = threadIdx.x;
  slots[t] = static_cast<float>(t);
  if (barrier) __syncthreads();
  out[t] = slots[(t + 1) % blockDim.x];
}

__global__ void block_sum_kernel(float* out) {
  __shared__ float scratch[32];
  const float s = cuda::block_sum(static_cast<float>(threadIdx.x), scratch);
  out[threadIdx.x] = s;
}

__global__ void shuffle_kernel(int* out, int width) {
  const int lane = static_cast<int>(threadIdx.x);
  out[lane * 4 + 0] = __shfl_down_sync(0xffffffffu, lane, 3, width);
  out[lane * 4 + 1] = __shfl_up_sync(0xffffffffu, lane, 5, width);
  out[lane * 4 + 2] = __shfl_xor_sync(0xffffffffu, lane, 6, width);
  out[lane * 4 + 3] = __shfl_sync(0xffffffffu, lane, 2, width);
}

__global__ void exit_then_shuffle_kernel(int* out, int live) {
  if (static_cast<int>(threadIdx.x) >= live) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, static_cast<int>(threadIdx.x), 1);
}

__global__ void mixed_barrier_kernel() {
  if (threadIdx.x < 16)
    __syncthreads();
  else
    __syncwarp();
}

__global__ void empty_kernel() {}

__global__ void divergent_barrier_kernel() {
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    __syncthreads();
  }
}

__global__ void static_shared_kernel(float* out) {
  __shared__ float big[10 * 1024];
  big[threadIdx.x] = 1.0f;
  out[threadIdx.x] = big[threadIdx.x];
}

__global__ void far_shuffle_kernel(int* out) {
  const int lane = static_cast<int>(threadIdx.x);
  out[lane * 2] = __shfl_xor_sync(0xffffffffu, lane, 33);
  out[lane * 2 + 1] = __shfl_down_sync(0xffffffffu, lane, 40);
}

__global__ void pipeline_kernel(const float* src, float* out, int zero_fill) {
  __shared__ __align__(16) float stage[16];
  const unsigned t = threadIdx.x;
  stage[t * 4] = -1.0f;
  __pipeline_memcpy_async(stage + t * 4, src + t * 4, 16, static_cast<size_t>(zero_fill));
  __pipeline_commit();
  out[t * 2] = stage[t * 4];
  __pipeline_wait_prior(0);
  out[t * 2 + 1] = stage[t * 4 + 3];
}

// Each lane loads its fragments of A (16 x 8) and B (8 x 8, row-major in b) where cuda/mma.cuh says
// they are, and two warps (64 threads) each compute D = A B + 1 into their own 16 x 8 of d; lane
// `skipping_lane` of the second warp calls no mma.
__global__ void mma_kernel(const float* a, const float* b, float* d, int skipping_lane) {
  const int lane = static_cast<int>(threadIdx.x) % 32, warp = static_cast<int>(threadIdx.x) / 32;
  const int g = lane / 4, t = lane % 4;
  float fa[4], fb[2], fd[4] = {1, 1, 1, 1};
  for (int i = 0; i < 4; ++i) fa[i] = minidl::cuda::round_to_tf32(a[(g + 8 * (i % 2)) * 8 + t + 4 * (i / 2)]);
  for (int i = 0; i < 2; ++i) fb[i] = minidl::cuda::round_to_tf32(b[(t + 4 * i) * 8 + g]);
  if (!(warp == 1 && lane == skipping_lane)) minidl::cuda::mma_tf32_16x8x8(fd, fa, fb);
  for (int i = 0; i < 4; ++i) d[warp * 128 + (g + 8 * (i / 2)) * 8 + 2 * t + i % 2] = fd[i];
}

}  // namespace

cudaError_t mma_product(const std::vector<float>& a, const std::vector<float>& b, int skipping_lane,
                        std::vector<float>& out) {
  float* da = device_buffer<float>(128);
  float* db = device_buffer<float>(64);
  float* dd = device_buffer<float>(256);
  cudaMemcpy(da, a.data(), 128 * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(db, b.data(), 64 * sizeof(float), cudaMemcpyHostToDevice);
  mma_kernel<<<1, 64>>>(da, db, dd, skipping_lane);
  const cudaError_t e = finish(cudaGetLastError(), dd, 256, out);
  cudaFree(da);
  cudaFree(db);
  return e;
}

cudaError_t neighbour_exchange(int threads, bool barrier, std::vector<float>& out, bool static_shared) {
  float* d = device_buffer<float>(threads);
  if (static_shared)
    static_neighbour_kernel<<<1, threads>>>(d, barrier);
  else
    neighbour_kernel<<<1, threads, threads * sizeof(float)>>>(d, barrier);
  return finish(cudaGetLastError(), d, threads, out);
}

cudaError_t block_sum_of_indices(int threads, std::vector<float>& out) {
  float* d = device_buffer<float>(threads);
  block_sum_kernel<<<1, threads>>>(d);
  return finish(cudaGetLastError(), d, threads, out);
}

cudaError_t shuffles(int width, std::vector<int>& out) {
  int* d = device_buffer<int>(32 * 4);
  shuffle_kernel<<<1, 32>>>(d, width);
  return finish(cudaGetLastError(), d, 32 * 4, out);
}

cudaError_t shuffle_after_exit(int live) {
  std::vector<int> out;
  int* d = device_buffer<int>(32);
  exit_then_shuffle_kernel<<<1, 32>>>(d, live);
  return finish(cudaGetLastError(), d, 32, out);
}

cudaError_t barrier_and_warp_sync_mixed() {
  mixed_barrier_kernel<<<1, 32>>>();
  return cudaGetLastError();
}

cudaError_t divergent_barriers() {
  divergent_barrier_kernel<<<1, 32>>>();
  return cudaGetLastError();
}

cudaError_t static_and_dynamic_shared(size_t dynamic) {
  std::vector<float> out;
  float* d = device_buffer<float>(32);
  static_shared_kernel<<<1, 32, dynamic>>>(d);
  return finish(cudaGetLastError(), d, 32, out);
}

cudaError_t far_shuffles(std::vector<int>& out) {
  int* d = device_buffer<int>(64);
  far_shuffle_kernel<<<1, 32>>>(d);
  return finish(cudaGetLastError(), d, 64, out);
}

cudaError_t empty_launch(dim3 grid, dim3 block, size_t shared, int opt_in) {
  if (opt_in > 0) {
    const cudaError_t e = cudaFuncSetAttribute(empty_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, opt_in);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();  // as in CUDA, the failed call is also the last error
      return e;
    }
  }
  empty_kernel<<<grid, block, shared>>>();
  return cudaGetLastError();
}

cudaError_t pipeline_copy(size_t zero_fill, std::vector<float>& out) {
  std::vector<float> src(16);
  for (int i = 0; i < 16; ++i) src[i] = static_cast<float>(i + 1);
  float* s = device_buffer<float>(16);
  float* d = device_buffer<float>(8);
  cudaMemcpy(s, src.data(), 16 * sizeof(float), cudaMemcpyHostToDevice);
  pipeline_kernel<<<1, 4>>>(s, d, static_cast<int>(zero_fill));
  const cudaError_t e = finish(cudaGetLastError(), d, 8, out);
  cudaFree(s);
  return e;
}

}  // namespace minidl::emulator_test
