// CUDA indexing kernels: gather / scatter_add (one element per index) and index_select / index_add
// (whole slices along a dim), which are the same kernels with the 1-D index seen through the slice's
// shape (stride 0 everywhere but `dim`).
//
// The backward kernels have destinations that several indices may name. Instead of atomics (whose
// order, and so whose float sum, changes from run to run) each thread owns one destination and scans
// the indices that could reach it, in index order. That is deterministic and simple, and costs the
// length of `dim` per destination: right for the small index sets of this project; a large embedding
// table would want a sort-based version.
#include "cuda/common.cuh"
#include "cuda/indexing.cuh"
#include "cuda/kernels.h"

namespace minidl::cuda {
namespace {

constexpr int kThreads = 256;

// t seen through `shape`, with stride 0 along `dim` (and t's own strides elsewhere): the loop hands out
// the address of t[pos with pos[dim] = 0].
Tensor zero_dim_view(const Tensor& t, int64_t dim, const Shape& shape) {
  Strides s = t.strides();
  s[dim] = 0;
  return make_view(t, shape, s, t.offset());
}

// A 1-D index [n] seen through `shape` (shape[dim] == n): index[pos[dim]] at every position.
Tensor spread_index(const Tensor& index, int64_t dim, const Shape& shape) {
  Strides s(shape.size(), 0);
  s[dim] = index.dim() == 0 ? 0 : index.stride(0);
  return make_view(index, shape, s, index.offset());
}

// out[p] = x[p with p[dim] = index[p]]: operands (out, index, x with stride 0 along dim).
__global__ void gather_kernel(Geometry<3> g, int64_t step) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < g.numel; i += stride) {
    int64_t off[3];
    g.offsets(i, off);
    const int64_t ix = reinterpret_cast<const int64_t*>(g.base[1])[off[1]];
    reinterpret_cast<float*>(g.base[0])[off[0]] = reinterpret_cast<const float*>(g.base[2])[off[2] + ix * step];
  }
}

// out[q] += sum of src[p] over p = (q with p[dim] = j), j = 0 .. n-1, where index[p] == q[dim]: operands
// (out, index and src with stride 0 along dim), over the destinations the index can reach.
__global__ void scatter_add_kernel(Geometry<3> g, int64_t inner, int64_t out_dim_size, int64_t n, int64_t index_step,
                                   int64_t src_step) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < g.numel; i += stride) {
    int64_t off[3];
    g.offsets(i, off);
    // Which destination along dim this thread owns: the geometry walks dim with the output's stride.
    const int64_t q = (i / inner) % out_dim_size;
    const int64_t* ix = reinterpret_cast<const int64_t*>(g.base[1]) + off[1];
    const float* src = reinterpret_cast<const float*>(g.base[2]) + off[2];
    // Added onto the old value term by term, as the CPU does, so the roundings agree for any `out`.
    float* dst = reinterpret_cast<float*>(g.base[0]) + off[0];
    float acc = *dst;
    for (int64_t j = 0; j < n; ++j)
      if (ix[j * index_step] == q) acc += src[j * src_step];
    *dst = acc;
  }
}

void launch_gather(const char* op, const Tensor& x, int64_t dim, const Tensor& index_view, const Tensor& out) {
  MINIDL_CHECK(x.dtype() == kFloat32, op, ": the CUDA kernels compute in float32, got ", x.meta_str());
  if (out.numel() == 0) return;
  const Tensor xv = zero_dim_view(x, dim, out.shape());
  const Geometry<3> g = device_geometry<3>(op, out, {&index_view, &xv});
  const int device = out.device().index;
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  gather_kernel<<<grid_for(g.numel, kThreads, device), kThreads, 0, stream_of(device)>>>(g, x.stride(dim));
  MINIDL_CUDA_CHECK_LAUNCH(op);
}

// out += scatter of src through index_view (src's shape), along dim.
void launch_scatter_add(const char* op, const Tensor& src, int64_t dim, const Tensor& index_view, const Tensor& out) {
  MINIDL_CHECK(src.dtype() == kFloat32, op, ": the CUDA kernels compute in float32, got ", src.meta_str());
  // The destinations: src's shape with dim as long as out's (every other dim of out that lies beyond
  // src's shape receives nothing).
  Shape dest = src.shape();
  dest[dim] = out.size(dim);
  if (numel_of(dest) == 0 || src.size(dim) == 0) return;
  const Tensor ov = make_view(out, dest, out.strides(), out.offset());
  const Tensor iv = zero_dim_view(index_view, dim, dest), sv = zero_dim_view(src, dim, dest);
  // The geometry is not merged across dim for this purpose; q is recovered from the linear index over
  // `dest` (row-major), whatever the merging did.
  const Geometry<3> g = device_geometry<3>(op, ov, {&iv, &sv});
  int64_t inner = 1;
  for (size_t d = dim + 1; d < dest.size(); ++d) inner *= dest[d];
  const int device = out.device().index;
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  scatter_add_kernel<<<grid_for(g.numel, kThreads, device), kThreads, 0, stream_of(device)>>>(
      g, inner, out.size(dim), src.size(dim), index_view.stride(dim), src.stride(dim));
  MINIDL_CUDA_CHECK_LAUNCH(op);
}

}  // namespace

void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  launch_gather("gather", x, dim, index, out);
}

void scatter_add(const Tensor& src, int64_t dim, const Tensor& index, const Tensor& out) {
  launch_scatter_add("gather backward", src, dim, index, out);
}

void index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  launch_gather("index_select", x, dim, spread_index(index, dim, out.shape()), out);
}

void index_add(const Tensor& src, int64_t dim, const Tensor& index, const Tensor& out) {
  launch_scatter_add("index_select backward", src, dim, spread_index(index, dim, src.shape()), out);
}

}  // namespace minidl::cuda
