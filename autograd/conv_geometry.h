// The geometry of a convolution and of a pooling, as the front ends (autograd/ops_conv.cpp,
// autograd/ops_pool.cpp) check it and both backends' kernels read it. Plain fields only, so the CUDA
// kernels take these structs by value.
//
// Both families always work on 3 spatial dims: a 1-D or 2-D problem is the 3-D one with leading spatial
// sizes of 1 (and kernel 1, stride 1, padding 0, dilation 1 there), so one loop nest serves every rank.
#pragma once

#include <array>
#include <cstdint>

#include "autograd/philox.h"  // MINIDL_HD

namespace minidl {

using Dims3 = std::array<int64_t, 3>;

// x [batch, in_channels, *in], weight [out_channels, in_channels / groups, *kernel], y [batch,
// out_channels, *out] with out = floor((in + 2 padding - dilation (kernel - 1) - 1) / stride) + 1 >= 1.
struct ConvShape {
  int64_t batch = 0, in_channels = 0, out_channels = 0, groups = 1;
  Dims3 in{1, 1, 1}, kernel{1, 1, 1}, out{1, 1, 1};
  Dims3 stride{1, 1, 1}, padding{0, 0, 0}, dilation{1, 1, 1};
};

// The windows along one spatial dim: output cell o reads input positions [lo(o), hi(o)), clipped to
// [0, in) (padding is whatever the window lost to the clipping). Sliding windows cover [o stride -
// padding, o stride - padding + kernel); adaptive ones, torch's [floor(o in / out), ceil((o + 1) in / out)).
// The default is an unused leading dim.
struct PoolDim {
  int64_t in = 1, out_size = 1, kernel = 1, stride = 1, padding = 0;
  bool adaptive = false;
  MINIDL_HD int64_t out() const { return out_size; }
  MINIDL_HD int64_t lo(int64_t o) const {
    if (adaptive) return o * in / out_size;
    const int64_t start = o * stride - padding;
    return start > 0 ? start : 0;
  }
  MINIDL_HD int64_t hi(int64_t o) const {
    if (adaptive) return ((o + 1) * in + out_size - 1) / out_size;
    const int64_t end = o * stride - padding + kernel;
    return end < in ? end : in;
  }
};

inline PoolDim pool_windows(int64_t in, int64_t kernel, int64_t stride, int64_t padding, int64_t out) {
  return {in, out, kernel, stride, padding, false};
}
inline PoolDim adaptive_pool_windows(int64_t in, int64_t out) { return {in, out, 1, 1, 0, true}; }

// x [planes, *in] pooled to y [planes, *out], planes = batch * channels.
struct PoolShape {
  int64_t planes = 0;
  PoolDim dims[3];
  MINIDL_HD int64_t in_plane() const { return dims[0].in * dims[1].in * dims[2].in; }
  MINIDL_HD int64_t out_plane() const { return dims[0].out() * dims[1].out() * dims[2].out(); }
};

}  // namespace minidl
