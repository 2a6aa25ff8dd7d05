// Strided addressing on the device. A kernel over N operands (operand 0 the output) receives the merged
// geometry of autograd/strided_geometry.h by value, as a fixed-size struct, and turns the linear index of
// an output element into one element offset per operand.
//
// The decomposition divides by every dim. Below 2^31 elements each division is a multiply and a shift
// by a magic number picked on the host (cuda/fast_divide.h), four instructions where a 32-bit division
// takes about twenty and a 64-bit one dozens; larger tensors take the 64-bit divisions.
#pragma once

#include <array>
#include <cstdint>

#include "autograd/error.h"
#include "autograd/strided_geometry.h"
#include "cuda/fast_divide.h"

namespace minidl::cuda {

constexpr int kMaxDims = 12;  // after merging; a tensor of more dims that cannot be merged is refused

template <int N>
struct Geometry {
  int ndim = 0;
  int64_t numel = 0;
  bool small = true;  // numel < 2^31: index arithmetic in 32 bits, dividing by by_shape
  int64_t shape[kMaxDims];
  FastDivide by_shape[kMaxDims];
  int64_t stride[N][kMaxDims];
  char* base[N];

  // Operand 0's offset alone (a walk over one operand's dims).
  __device__ __forceinline__ int64_t offset(int64_t i) const {
    int64_t off[N];
    offsets(i, off);
    return off[0];
  }

  // Element offsets of output element i in every operand.
  __device__ __forceinline__ void offsets(int64_t i, int64_t (&off)[N]) const {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = 0;
    if (small) {
      uint32_t r = static_cast<uint32_t>(i);
      for (int d = ndim - 1; d >= 0; --d) {
        uint32_t idx;
        by_shape[d].divmod(r, r, idx);
#pragma unroll
        for (int k = 0; k < N; ++k) off[k] += static_cast<int64_t>(idx) * stride[k][d];
      }
    } else {
      int64_t r = i;
      for (int d = ndim - 1; d >= 0; --d) {
        const int64_t idx = r % shape[d];
        r /= shape[d];
#pragma unroll
        for (int k = 0; k < N; ++k) off[k] += idx * stride[k][d];
      }
    }
  }
};

// The device form of a host-side StridedLoop.
template <int N>
Geometry<N> device_geometry(const StridedLoop<N>& L, const char* op) {
  Geometry<N> g;
  g.numel = L.numel;
  g.small = L.numel < (int64_t{1} << 31);
  g.ndim = static_cast<int>(L.shape.size());
  MINIDL_CHECK(g.ndim <= kMaxDims, op, ": the CUDA kernels address at most ", kMaxDims, " dims that cannot be merged; ",
               "this operation has ", g.ndim, " (make an operand contiguous first)");
  for (int d = 0; d < g.ndim; ++d) {
    g.shape[d] = L.shape[d];
    if (g.small && L.numel > 0) g.by_shape[d] = FastDivide::of(L.shape[d]);
    for (int k = 0; k < N; ++k) g.stride[k][d] = L.strides[k][d];
  }
  for (int k = 0; k < N; ++k) g.base[k] = L.base[k];
  return g;
}

// The geometry of out = f(in...) over out's shape.
template <int N>
Geometry<N> device_geometry(const char* op, const Tensor& out, const std::array<const Tensor*, N - 1>& in) {
  std::array<const Tensor*, N> all;
  all[0] = &out;
  for (int k = 1; k < N; ++k) all[k] = in[k - 1];
  return device_geometry<N>(make_loop<N>(out.shape(), all), op);
}

// A "flat" loop: after merging, one dim in which every operand is either contiguous (stride 1) or a
// single broadcast value (stride 0). Most elementwise work is of this kind and needs no index arithmetic.
template <int N>
bool is_flat(const Geometry<N>& g) {
  if (g.ndim != 1) return false;
  if (g.stride[0][0] != 1 && g.shape[0] != 1) return false;
  for (int k = 1; k < N; ++k)
    if (g.stride[k][0] != 0 && g.stride[k][0] != 1) return false;
  return true;
}

}  // namespace minidl::cuda
