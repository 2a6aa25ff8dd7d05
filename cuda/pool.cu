// CUDA max and average pooling over 1-3 spatial dims, adaptive average included: the kernels behind
// autograd/ops_pool.cpp, computing what cpu/pool.cpp computes, to the bit.
//
// The geometry arrives as a PoolShape by value: per spatial dim, the clipped input window [lo(o), hi(o))
// of every output cell o, the very functions the CPU walks. A 1-D or 2-D pool is the 3-D one with leading
// dims of size 1, so one kernel of each kind serves every rank, sliding and adaptive windows alike.
//
// Forward: one thread per output element, walking its window in the CPU's row-major order: the first
// maximum wins and a NaN, once met, stays; averages sum in double and divide once, as the CPU does, so
// outputs and indices are the CPU's exactly.
//
// Backward: the CPU scatters each output's gradient into its window, outputs in row-major order. On the
// GPU a scatter needs atomics, whose order (and so whose float rounding) changes from run to run. Here
// instead one thread per INPUT element gathers: per dim it finds the run of outputs whose windows contain
// it (windows overlap when stride < kernel, and adaptive ones can), and adds their terms in row-major
// output order into a float that starts at 0. That is the sequence of float additions the CPU performs on
// that element, so gx equals the CPU's bit for bit and is the same every run. Every element of gx is
// written, 0 where no window reaches it (stride > kernel), since the front end allocates gx uninitialised.
//
// Index math is int64 throughout: planes x plane size may pass 2^31.
#include <cstdint>

#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace minidl::cuda {
namespace {

__device__ __forceinline__ int64_t first_index() { return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t grid_step() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// Splits r, a flat row-major position in a [*, H, W] volume, into (d, h, w).
__device__ __forceinline__ void unflatten(int64_t r, int64_t H, int64_t W, int64_t& d, int64_t& h, int64_t& w) {
  w = r % W;
  r /= W;
  h = r % H;
  d = r / H;
}

__device__ __forceinline__ bool contains(const PoolDim& dim, int64_t o, int64_t q) {
  return dim.lo(o) <= q && q < dim.hi(o);
}

// The outputs along one dim whose windows contain input position q, as [first, last) (empty when none
// does). lo(o) and hi(o) never decrease with o, so those outputs form one contiguous run. The arithmetic
// brackets the run (a step wider than the exact bounds, so it cannot miss one), then the loops trim the
// bracket with the windows' own lo/hi: the answer is what PoolDim says, whatever rounding the bracket took.
__device__ void outputs_containing(const PoolDim& dim, int64_t q, int64_t& first, int64_t& last) {
  int64_t a = 0, b = 0;  // the bracket [a, b)
  if (dim.adaptive) {
    // hi(o) > q  <=>  o >= floor(q out / in);  lo(o) <= q  <=>  o < ceil((q + 1) out / in). The front end
    // checked that (out + 1) in fits int64, which bounds both products.
    a = q * dim.out_size / dim.in - 1;
    b = ((q + 1) * dim.out_size + dim.in - 1) / dim.in + 1;
  } else {
    // Window o is [o stride - padding, o stride - padding + kernel) before clipping, and clipping to
    // [0, in) cannot drop a q that lies in [0, in): o stride > q + padding - kernel, o stride <= q + padding.
    const int64_t reach = q + dim.padding;  // >= 0
    const int64_t from = reach - dim.kernel + 1;
    a = (from <= 0 ? 0 : (from + dim.stride - 1) / dim.stride) - 1;
    b = reach / dim.stride + 2;
  }
  first = a > 0 ? a : 0;
  last = b < dim.out() ? b : dim.out();
  while (first < last && !contains(dim, first, q)) ++first;
  while (last > first && !contains(dim, last - 1, q)) --last;
}

__global__ void max_forward(const float* x, PoolShape s, float* y, int64_t* indices) {
  const PoolDim D = s.dims[0], H = s.dims[1], W = s.dims[2];
  const int64_t in_plane = s.in_plane(), out_plane = s.out_plane(), n = s.planes * out_plane;
  for (int64_t i = first_index(); i < n; i += grid_step()) {
    const int64_t p = i / out_plane;
    int64_t od, oh, ow;
    unflatten(i - p * out_plane, H.out(), W.out(), od, oh, ow);
    const float* xp = x + p * in_plane;
    const int64_t d0 = D.lo(od), d1 = D.hi(od), h0 = H.lo(oh), h1 = H.hi(oh), w0 = W.lo(ow), w1 = W.hi(ow);
    // Windows are never empty (the front end keeps padding <= kernel / 2): start from the first element.
    int64_t best_at = (d0 * H.in + h0) * W.in + w0;
    float best = xp[best_at];
    for (int64_t d = d0; d < d1; ++d)
      for (int64_t h = h0; h < h1; ++h)
        for (int64_t w = w0; w < w1; ++w) {
          const int64_t at = (d * H.in + h) * W.in + w;
          const float v = xp[at];
          // Strictly greater keeps the first maximum; a NaN wins once and then stays (as on the CPU).
          if (v > best || (v != v && best == best)) {
            best = v;
            best_at = at;
          }
        }
    y[i] = best;
    indices[i] = best_at;
  }
}

// The CPU's window_divisor: the given divisor, or 0 for the clipped window's element count.
__device__ __forceinline__ double window_divisor(int64_t divisor, int64_t nd, int64_t nh, int64_t nw) {
  return static_cast<double>(divisor > 0 ? divisor : nd * nh * nw);
}

__global__ void avg_forward(const float* x, PoolShape s, int64_t divisor, float* y) {
  const PoolDim D = s.dims[0], H = s.dims[1], W = s.dims[2];
  const int64_t in_plane = s.in_plane(), out_plane = s.out_plane(), n = s.planes * out_plane;
  for (int64_t i = first_index(); i < n; i += grid_step()) {
    const int64_t p = i / out_plane;
    int64_t od, oh, ow;
    unflatten(i - p * out_plane, H.out(), W.out(), od, oh, ow);
    const float* xp = x + p * in_plane;
    const int64_t d0 = D.lo(od), d1 = D.hi(od), h0 = H.lo(oh), h1 = H.hi(oh), w0 = W.lo(ow), w1 = W.hi(ow);
    // Double, in the CPU's order: a global average pool adds thousands of float32 values.
    double sum = 0;
    for (int64_t d = d0; d < d1; ++d)
      for (int64_t h = h0; h < h1; ++h) {
        const float* row = xp + (d * H.in + h) * W.in;
        for (int64_t w = w0; w < w1; ++w) sum += row[w];
      }
    y[i] = static_cast<float>(sum / window_divisor(divisor, d1 - d0, h1 - h0, w1 - w0));
  }
}

// Input element i as (plane, position q in the plane), and the runs of outputs containing it per dim.
struct Gather {
  int64_t p, q;
  int64_t d_first, d_last, h_first, h_last, w_first, w_last;
};

__device__ __forceinline__ Gather gather_for(const PoolShape& s, int64_t i) {
  Gather g;
  const int64_t in_plane = s.in_plane();
  g.p = i / in_plane;
  g.q = i - g.p * in_plane;
  int64_t d, h, w;
  unflatten(g.q, s.dims[1].in, s.dims[2].in, d, h, w);
  outputs_containing(s.dims[0], d, g.d_first, g.d_last);
  outputs_containing(s.dims[1], h, g.h_first, g.h_last);
  outputs_containing(s.dims[2], w, g.w_first, g.w_last);
  return g;
}

__global__ void max_backward(const float* gy, const int64_t* indices, PoolShape s, float* gx) {
  const int64_t Ho = s.dims[1].out(), Wo = s.dims[2].out(), out_plane = s.out_plane();
  const int64_t n = s.planes * s.in_plane();
  for (int64_t i = first_index(); i < n; i += grid_step()) {
    const Gather g = gather_for(s, i);
    const float* gp = gy + g.p * out_plane;
    const int64_t* ip = indices + g.p * out_plane;
    // An output's saved maximum lies in its window, so the outputs that chose this element are among
    // those containing it; visiting them in row-major order repeats the CPU's additions.
    float acc = 0.0f;
    for (int64_t od = g.d_first; od < g.d_last; ++od)
      for (int64_t oh = g.h_first; oh < g.h_last; ++oh)
        for (int64_t ow = g.w_first; ow < g.w_last; ++ow) {
          const int64_t o = (od * Ho + oh) * Wo + ow;
          if (ip[o] == g.q) acc += gp[o];
        }
    gx[i] = acc;
  }
}

__global__ void avg_backward(const float* gy, PoolShape s, int64_t divisor, float* gx) {
  const PoolDim D = s.dims[0], H = s.dims[1], W = s.dims[2];
  const int64_t out_plane = s.out_plane(), n = s.planes * s.in_plane();
  for (int64_t i = first_index(); i < n; i += grid_step()) {
    const Gather g = gather_for(s, i);
    const float* gp = gy + g.p * out_plane;
    float acc = 0.0f;
    for (int64_t od = g.d_first; od < g.d_last; ++od) {
      const int64_t nd = D.hi(od) - D.lo(od);
      for (int64_t oh = g.h_first; oh < g.h_last; ++oh) {
        const int64_t nh = H.hi(oh) - H.lo(oh);
        for (int64_t ow = g.w_first; ow < g.w_last; ++ow) {
          const int64_t o = (od * H.out() + oh) * W.out() + ow;
          // The CPU's share, rounded to float once, then added in float as the CPU adds it.
          acc += static_cast<float>(static_cast<double>(gp[o]) / window_divisor(divisor, nd, nh, W.hi(ow) - W.lo(ow)));
        }
      }
    }
    gx[i] = acc;
  }
}

void check_float32(const char* op, const Tensor& t) {
  MINIDL_CHECK(t.dtype() == kFloat32, op, ": the CUDA kernels compute in float32, got ", t.meta_str(),
               " (float64 is for CPU gradchecks)");
}

}  // namespace

void max_pool_forward(const Tensor& x, const PoolShape& s, const Tensor& y, const Tensor& indices) {
  check_float32("max_pool", x);
  launch_grid_stride("max_pool", x.device().index, s.planes * s.out_plane(), max_forward, device_data<float>(x), s,
                     device_data<float>(y), device_data<int64_t>(indices));
}

void max_pool_backward(const Tensor& gy, const Tensor& indices, const PoolShape& s, const Tensor& gx) {
  check_float32("max_pool backward", gy);
  launch_grid_stride("max_pool backward", gy.device().index, s.planes * s.in_plane(), max_backward,
                     device_data<float>(gy), device_data<int64_t>(indices), s, device_data<float>(gx));
}

void avg_pool_forward(const Tensor& x, const PoolShape& s, int64_t divisor, const Tensor& y) {
  check_float32("avg_pool", x);
  launch_grid_stride("avg_pool", x.device().index, s.planes * s.out_plane(), avg_forward, device_data<float>(x), s,
                     divisor, device_data<float>(y));
}

void avg_pool_backward(const Tensor& gy, const PoolShape& s, int64_t divisor, const Tensor& gx) {
  check_float32("avg_pool backward", gy);
  launch_grid_stride("avg_pool backward", gy.device().index, s.planes * s.in_plane(), avg_backward,
                     device_data<float>(gy), s, divisor, device_data<float>(gx));
}

}  // namespace minidl::cuda
