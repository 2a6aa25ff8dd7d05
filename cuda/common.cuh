// Shared by every CUDA source: error checks that turn a failed CUDA call or launch into a minidl::Error
// with file, line and CUDA's own message; the current stream; grid sizing; warp and block reductions;
// 16-byte vector loads; scratch memory.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "autograd/dtype.h"
#include "autograd/error.h"
#include "autograd/tensor.h"
#include "cuda/runtime.h"

#define MINIDL_CUDA_CHECK(call)                                                                              \
  do {                                                                                                       \
    const cudaError_t minidl_err_ = (call);                                                                  \
    if (minidl_err_ != cudaSuccess) {                                                                        \
      (void)cudaGetLastError(); /* not left behind for the next launch check to report */                    \
      ::minidl::fail(__FILE__, ":", __LINE__, ": ", #call, " failed: ", cudaGetErrorName(minidl_err_), " (", \
                     cudaGetErrorString(minidl_err_), ")");                                                  \
    }                                                                                                        \
  } while (0)

// After every launch: a bad configuration (too many threads, too much shared memory) is reported here,
// at the launch that caused it, rather than by whichever later call happens to see the sticky error.
#define MINIDL_CUDA_CHECK_LAUNCH(what)                                                                                \
  do {                                                                                                                \
    const cudaError_t minidl_err_ = cudaGetLastError();                                                               \
    if (minidl_err_ != cudaSuccess)                                                                                   \
      ::minidl::fail(__FILE__, ":", __LINE__, ": launching ", what, " failed: ", cudaGetErrorName(minidl_err_), " (", \
                     cudaGetErrorString(minidl_err_), ")");                                                           \
  } while (0)

namespace minidl::cuda {

constexpr int kWarp = 32;

// The device pointer to element [0, ..., 0] of a CUDA tensor of dtype T (Tensor::data is for the CPU).
template <class T>
T* device_data(const Tensor& t) {
  MINIDL_CHECK(t.device().is_cuda() && t.dtype() == dtype_of<T>(), "device_data<", dtype_name(dtype_of<T>()),
               ">: the tensor is ", t.meta_str());
  return static_cast<T*>(t.raw_data());
}

inline cudaStream_t stream_of(int device) { return static_cast<cudaStream_t>(current_stream(device)); }

// cuda/allocator.cu: blocks binned under a stream that is being destroyed move to `heir`.
void hand_over_stream_blocks(cudaStream_t gone, cudaStream_t heir, int device);

// Makes `device` current for a scope and restores the caller's device after, so that touching a tensor
// on cuda:1 does not silently redirect the caller's later kernel launches.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    status_ = cudaSetDevice(device);
  }
  ~DeviceGuard() {
    if (previous_ >= 0 && cudaSetDevice(previous_) != cudaSuccess) (void)cudaGetLastError();
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;
  cudaError_t status() const { return status_; }

 private:
  int previous_ = -1;
  cudaError_t status_ = cudaSuccess;
};

// The number of SMs of `device`, asked once.
int multiprocessors(int device);

// Blocks for a grid-stride loop over n items with `threads` per block, each thread taking `per_thread`
// items per step: never more than the work needs, and at most what keeps every SM full (2048 resident
// threads each) so that each thread loops a few times instead of the grid paying for idle blocks.
inline unsigned grid_for(int64_t n, int threads, int device, int per_thread = 1) {
  const int64_t per_block = static_cast<int64_t>(threads) * per_thread;
  const int64_t needed = (n + per_block - 1) / per_block;
  const int64_t cap = static_cast<int64_t>(multiprocessors(device)) * (2048 / threads);
  return static_cast<unsigned>(needed < 1 ? 1 : (needed < cap ? needed : cap));
}

// Launches a grid-stride kernel over n items with 256-thread blocks on the current stream of `device`
// (made current for the call), then checks the launch; nothing happens when n is 0.
template <class Kernel, class... Args>
void launch_grid_stride(const char* op, int device, int64_t n, Kernel kernel, Args... args) {
  if (n == 0) return;
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  constexpr int threads = 256;
  kernel<<<grid_for(n, threads, device), threads, 0, stream_of(device)>>>(args...);
  MINIDL_CUDA_CHECK_LAUNCH(op);
}

// ---- reductions (fixed order: the same inputs always give the same bits) --------------------------
// Welford's running count, mean and sum of squared deviations, in double; merge() is Chan's formula for
// two partial states, so a variance can be folded in segments and the segments merged in a fixed order.
// An aggregate (no constructor), so it can live in __shared__ arrays; Welford{} is the empty state.
struct Welford {
  double n, mean, m2;
  __device__ __forceinline__ void add(double v) {
    n += 1;
    const double d = v - mean;
    mean += d / n;
    m2 += d * (v - mean);
  }
  __device__ __forceinline__ void merge(const Welford& b) {
    if (b.n == 0) return;
    if (n == 0) {
      *this = b;
      return;
    }
    const double total = n + b.n, d = b.mean - mean;
    mean += d * (b.n / total);
    m2 += b.m2 + d * d * (n * b.n / total);
    n = total;
  }
};

template <class T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int o = kWarp / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <class T>
__device__ __forceinline__ T warp_max(T v) {
  for (int o = kWarp / 2; o > 0; o /= 2) {
    const T w = __shfl_xor_sync(0xffffffffu, v, o);
    v = (w > v || w != w) ? w : v;  // NaN wins, as on the CPU
  }
  return v;
}

// Sum over the whole block; every thread gets the result. `scratch` holds one T per warp (32 suffice).
// The block size must be a multiple of 32.
template <class T>
__device__ T block_sum(T v, T* scratch) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : T(0);
  return warp_sum(v);
}

// Any trivially copyable value through a warp shuffle, as 8-byte words (4-byte where its size asks):
// the hardware shuffles 32 bits at a time, and a fold's state (a Welford triple, a value with its index)
// is a small struct. Padding bytes travel too, harmlessly. `shuffle` moves one word.
template <class T, class Shuffle>
__device__ __forceinline__ T shuffle_words(const T& v, Shuffle shuffle) {
  using Word = std::conditional_t<sizeof(T) % 8 == 0, unsigned long long, unsigned>;
  static_assert(sizeof(T) % sizeof(unsigned) == 0, "a warp shuffle moves whole 32-bit words");
  constexpr int n = sizeof(T) / sizeof(Word);
  Word w[n];
  memcpy(w, &v, sizeof(T));
  for (int i = 0; i < n; ++i) w[i] = shuffle(w[i]);
  T r;
  memcpy(&r, w, sizeof(T));
  return r;
}

template <class T>
__device__ __forceinline__ T shuffle_xor(const T& v, int lane_mask) {
  return shuffle_words(v, [lane_mask](auto w) { return __shfl_xor_sync(0xffffffffu, w, lane_mask); });
}

template <class T>
__device__ __forceinline__ T shuffle_from(const T& v, int src_lane) {
  return shuffle_words(v, [src_lane](auto w) { return __shfl_sync(0xffffffffu, w, src_lane); });
}

// Folds one state per thread over a group of `group` threads: 1, a warp, or the whole block (a multiple
// of 32 threads), and every thread of the group gets the result. Within a warp the states meet through
// shuffles in a butterfly (lane 0 folds lane 16, then 8, 4, 2, 1: the order of a halving tree) and lane
// 0's result is handed to the others, so they agree bit for bit even where merge(a, b) and merge(b, a)
// round differently. Across a block each warp's lane 0 leaves its state in `scratch` (one T per warp)
// and every thread folds those in warp order. The order depends on the group size alone: the same
// inputs give the same bits on every run. Every thread of the block must call it (no early return).
template <class T, class Merge>
__device__ T group_fold(T v, int group, T* scratch, Merge merge) {
  if (group == 1) return v;
  for (int o = kWarp / 2; o > 0; o /= 2) {
    const T other = shuffle_xor(v, o);
    merge(v, other);
  }
  v = shuffle_from(v, 0);
  if (group <= kWarp) return v;
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = group / kWarp;
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = scratch[0];
  for (int w = 1; w < warps; ++w) merge(v, scratch[w]);
  return v;
}

// ---- 16-byte vector access ----------------------------------------------------------------------
// Four floats in one load or store instruction; the address must be 16-byte aligned.
__device__ __forceinline__ float4 load4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ void store4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }
__device__ __forceinline__ void store2(float* p, float2 v) { *reinterpret_cast<float2*>(p) = v; }  // 8-byte aligned

__host__ __device__ inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// ---- scratch ----------------------------------------------------------------------------------------
// Device scratch from the caching allocator, freed at the end of the scope (stream-ordered reuse makes
// that safe while the kernels that read it are still queued).
class Scratch {
 public:
  Scratch(size_t bytes, int device) : device_(device), p_(device_malloc(std::max<size_t>(bytes, 16), device)) {}
  ~Scratch() { device_free(p_, device_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <class T>
  T* as() const {
    return static_cast<T*>(p_);
  }

 private:
  int device_;
  void* p_;
};

}  // namespace minidl::cuda
