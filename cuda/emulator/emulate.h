// The first thing every translated .cu file includes (cuda/emulator/translate.cpp puts it there): what
// nvcc provides to device code, for the C++ compiler. The CUDA qualifiers become plain C++ (__shared__
// variables become static thread_local, which is one copy for the block, since a block's threads are
// fibers of one host thread and blocks run one at a time), the built-in variables are set by the
// scheduler before it resumes each thread, and the intrinsics the kernels use call into it.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "cuda/emulator/emulator.h"

#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __constant__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __shared__ static thread_local
#define __constant__ static
#define __launch_bounds__(...)

// Set by the scheduler (scheduler.cpp) for the thread it is about to resume.
extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;
constexpr int warpSize = 32;

#define MINIDL_EMU_STRING2(x) #x
#define MINIDL_EMU_STRING(x) MINIDL_EMU_STRING2(x)
#define __syncthreads() ::minidl::emu::sync_threads(__FILE__ ":" MINIDL_EMU_STRING(__LINE__))
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  (void)minidl::emu::warp_exchange(minidl::emu::WarpOp::Sync, mask, 0, 0, 32);
}

namespace minidl::emu {
template <class T>
T shuffle(WarpOp op, unsigned mask, T value, int arg, int width) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "warp shuffles move at most 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  bits = warp_exchange(op, mask, bits, arg, width);
  std::memcpy(&value, &bits, sizeof(T));
  return value;
}
}  // namespace minidl::emu

template <class T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  return minidl::emu::shuffle(minidl::emu::WarpOp::Index, mask, v, src, width);
}
template <class T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return minidl::emu::shuffle(minidl::emu::WarpOp::Up, mask, v, static_cast<int>(delta), width);
}
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return minidl::emu::shuffle(minidl::emu::WarpOp::Down, mask, v, static_cast<int>(delta), width);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  return minidl::emu::shuffle(minidl::emu::WarpOp::Xor, mask, v, lane_mask, width);
}

// Device math that host C++ lacks.
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }

// nvcc's min and max overloads for device code (host C++ has only std::min and std::max).
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }

// cuda_runtime.h declares the typed overload for nvcc only.
template <class T>
cudaError_t cudaFuncSetAttribute(T* kernel, cudaFuncAttribute attr, int value) {
  return ::cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), attr, value);
}
