// CUDA reductions: sum, mean, max, min, var over any set of dims, argmax along one dim. Deterministic:
// no atomics; every output is folded in an order fixed by the shapes alone.
//
// The work is cut into items: output o, segment s of its reduced block. A group of threads folds one
// item: a whole block of 256 threads or one warp where the reduced elements are contiguous (each
// thread strides through them, so a warp reads consecutive addresses), a single thread where they are
// not (then consecutive threads take consecutive outputs, which are the contiguous ones). The group
// combines its threads' states with warp shuffles in a fixed order (group_fold of cuda/common.cuh);
// a block-wide group passes one state per warp through shared memory. With one segment per output the
// group writes the result; with several (a long block and few outputs, where one group per output would
// leave the GPU idle) it writes partial states that a second kernel folds in segment order.
//
// Sums accumulate in double (as on the CPU), var with Welford's update and Chan's merge in double.
#include <cmath>
#include <cstdint>

#include "cuda/common.cuh"
#include "cuda/indexing.cuh"
#include "cuda/kernels.h"

namespace minidl::cuda {
namespace {

constexpr int kThreads = 256;

// A strided walk over some dims of x (the kept or the reduced ones), addressed as a one-operand
// geometry of cuda/indexing.cuh: offset(n) is the n-th position's offset in x.
using Dims = Geometry<1>;

Dims make_dims(std::vector<int64_t> shape, std::vector<int64_t> strides, const char* op) {
  merge_dims(shape, strides);
  StridedLoop<1> walk;
  walk.numel = 1;
  for (int64_t n : shape) walk.numel *= n;
  walk.shape = std::move(shape);
  walk.strides[0] = std::move(strides);
  walk.base[0] = nullptr;  // offsets only
  return device_geometry<1>(walk, op);
}

struct Plan {
  Dims kept, red;
  int64_t outputs = 0, block = 0;
  int64_t segments = 1, seg_len = 0;  // item (o, s) folds reduced elements [s seg_len, min(block, (s+1) seg_len))
  int group = 1;                      // threads per item: 1, 32 or 256
  bool contiguous = false;            // the reduced elements of an output are one contiguous run
};

Plan make_plan(const Tensor& x, const std::vector<int64_t>& dims, const char* op) {
  const ReduceGeometry g = reduce_geometry(x, dims);
  Plan p;
  p.kept = make_dims(g.kept_shape, g.kept_strides, op);
  p.red = make_dims(g.red_shape, g.red_strides, op);
  p.outputs = g.outputs;
  p.block = g.block;
  p.contiguous = p.red.ndim == 1 && p.red.stride[0][0] == 1;
  const bool inner = p.red.ndim >= 1 && p.red.stride[0][p.red.ndim - 1] == 1;
  if (inner) {
    p.group = p.block >= 2048 ? 256 : 32;
    p.seg_len = 32768;
  } else {
    // One thread per item: enough segments that about 64K threads share the work, none shorter than 32.
    const int64_t want = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, p.outputs));
    const int64_t most = std::max<int64_t>(1, (p.block + 31) / 32);
    p.seg_len = (p.block + std::min(want, most) - 1) / std::min(want, most);
  }
  p.seg_len = std::max<int64_t>(1, p.seg_len);
  p.segments = std::max<int64_t>(1, (p.block + p.seg_len - 1) / p.seg_len);
  return p;
}

// ---- folds: a state, how a value enters it, how two states merge, what the output is ---------------
struct SumFold {
  using State = double;
  using Out = float;
  bool mean = false;
  __device__ State init() const { return 0.0; }
  __device__ void add(State& s, float v, int64_t) const { s += v; }
  __device__ void merge(State& a, const State& b) const { a += b; }
  __device__ Out finish(const State& s, int64_t count) const { return static_cast<float>(mean ? s / count : s); }
};

struct ExtremeFold {
  using State = float;
  using Out = float;
  bool max = true;
  __device__ State init() const { return max ? -INFINITY : INFINITY; }
  __device__ void add(State& s, float v, int64_t) const {
    if (s != s) return;  // NaN wins, as on the CPU
    if (v != v || (max ? v > s : v < s)) s = v;
  }
  __device__ void merge(State& a, const State& b) const { add(a, b, 0); }
  __device__ Out finish(const State& s, int64_t) const { return s; }
};

struct VarFold {
  using State = Welford;
  using Out = float;
  int64_t ddof = 1;
  __device__ State init() const { return {}; }
  __device__ void add(State& s, float v, int64_t) const { s.add(v); }
  __device__ void merge(State& a, const State& b) const { a.merge(b); }
  __device__ Out finish(const State& s, int64_t count) const {
    const double divisor = static_cast<double>(count - ddof);
    return divisor > 0 ? static_cast<float>(s.m2 / divisor) : NAN;
  }
};

struct ArgBest {
  float v;
  int64_t i;
};
struct ArgmaxFold {  // the first maximum wins; the first NaN counts as the maximum, like torch.argmax
  using State = ArgBest;
  using Out = int64_t;
  __device__ State init() const { return {-INFINITY, INT64_MAX}; }
  __device__ static bool better(const ArgBest& b, const ArgBest& a) {  // is b preferred over a?
    const bool an = a.v != a.v, bn = b.v != b.v;
    if (an || bn) return bn && (!an || b.i < a.i);
    return b.v > a.v || (b.v == a.v && b.i < a.i);
  }
  __device__ void add(State& s, float v, int64_t j) const {
    const ArgBest c{v, j};
    if (better(c, s)) s = c;
  }
  __device__ void merge(State& a, const State& b) const {
    if (better(b, a)) a = b;
  }
  __device__ Out finish(const State& s, int64_t) const { return s.i == INT64_MAX ? 0 : s.i; }
};

// ---- kernels ----------------------------------------------------------------------------------------
template <class Fold>
__global__ void reduce_items(Fold fold, const float* x, Plan p, typename Fold::State* partial,
                             typename Fold::Out* out) {
  using State = typename Fold::State;
  __shared__ State smem[kThreads / kWarp];  // one state per warp, for a block-wide group
  const int lane = threadIdx.x % p.group;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * (blockDim.x / p.group) + threadIdx.x / p.group;
  const int64_t items = p.outputs * p.segments;
  State s = fold.init();
  int64_t o = 0, seg = 0;
  if (item < items) {
    // Consecutive items are consecutive outputs of one segment: with one thread per item, neighbouring
    // threads read neighbouring kept positions.
    o = item % p.outputs;
    seg = item / p.outputs;
    const int64_t lo = seg * p.seg_len, hi = lo + p.seg_len < p.block ? lo + p.seg_len : p.block;
    const float* base = x + p.kept.offset(o);
    if (p.contiguous) {
      if (p.group >= 32 && aligned16(base + lo) && ((hi - lo) & 3) == 0) {
        // Four elements per load; lanes take consecutive float4s.
        for (int64_t k = lo + 4 * lane; k < hi; k += 4 * p.group) {
          const float4 v = load4(base + k);
          fold.add(s, v.x, k);
          fold.add(s, v.y, k + 1);
          fold.add(s, v.z, k + 2);
          fold.add(s, v.w, k + 3);
        }
      } else {
#pragma unroll 4
        for (int64_t j = lo + lane; j < hi; j += p.group) fold.add(s, base[j], j);
      }
    } else {
      for (int64_t j = lo + lane; j < hi; j += p.group) fold.add(s, base[p.red.offset(j)], j);
    }
  }
  s = group_fold(s, p.group, smem, [&](State& a, const State& b) { fold.merge(a, b); });
  if (lane != 0 || item >= items) return;
  if (p.segments == 1)
    out[o] = fold.finish(s, p.block);
  else
    partial[o * p.segments + seg] = s;
}

template <class Fold>
__global__ void finish_segments(Fold fold, const typename Fold::State* partial, int64_t outputs, int64_t segments,
                                int64_t count, typename Fold::Out* out) {
  const int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (o >= outputs) return;
  typename Fold::State s = partial[o * segments];
  for (int64_t k = 1; k < segments; ++k) fold.merge(s, partial[o * segments + k]);
  out[o] = fold.finish(s, count);
}

// Scratch memory for partial states: a byte tensor from the caching allocator, alive until the
// stream has used it (it returns to the same stream's bin, so the next user is ordered after).
Tensor scratch(size_t bytes, Device device) {
  return Tensor::empty({static_cast<int64_t>((bytes + 7) / 8)}, kFloat64, device);
}

template <class Fold>
void launch_items(const char* op, const Fold& fold, const Tensor& x, const Plan& p, typename Fold::State* partial,
                  typename Fold::Out* out) {
  const int64_t items = p.outputs * p.segments;
  const int64_t per_block = kThreads / p.group;
  const int64_t blocks = (items + per_block - 1) / per_block;
  MINIDL_CHECK(blocks < (int64_t{1} << 31), op, ": too many outputs for one launch (", items, ")");
  reduce_items<Fold><<<static_cast<unsigned>(blocks), kThreads, 0, stream_of(x.device().index)>>>(
      fold, device_data<float>(x), p, partial, out);
  MINIDL_CUDA_CHECK_LAUNCH(op);
}

template <class Fold>
void run(const char* op, const Fold& fold, const Tensor& x, const std::vector<int64_t>& dims, typename Fold::Out* out) {
  using State = typename Fold::State;
  const Plan p = make_plan(x, dims, op);
  if (p.outputs == 0) return;
  const int device = x.device().index;
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  if (p.segments == 1) {
    launch_items(op, fold, x, p, nullptr, out);
    return;
  }
  const Tensor part = scratch(sizeof(State) * p.outputs * p.segments, x.device());
  State* partial = static_cast<State*>(part.raw_data());
  launch_items(op, fold, x, p, partial, nullptr);
  const unsigned blocks = static_cast<unsigned>((p.outputs + kThreads - 1) / kThreads);
  finish_segments<Fold><<<blocks, kThreads, 0, stream_of(device)>>>(fold, partial, p.outputs, p.segments, p.block, out);
  MINIDL_CUDA_CHECK_LAUNCH(op);
}

void check_float32(const char* op, const Tensor& x) {
  MINIDL_CHECK(x.dtype() == kFloat32, op, ": the CUDA kernels compute in float32, got ", x.meta_str(),
               " (float64 is for CPU gradchecks)");
}

}  // namespace

void reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims, const Tensor& out) {
  const char* name = op == ReduceOp::Sum ? "sum" : op == ReduceOp::Mean ? "mean" : op == ReduceOp::Max ? "max" : "min";
  check_float32(name, x);
  if (op == ReduceOp::Sum || op == ReduceOp::Mean) {
    run(name, SumFold{op == ReduceOp::Mean}, x, dims, device_data<float>(out));
  } else {
    MINIDL_CHECK(reduce_geometry(x, dims).block > 0, "max/min: cannot reduce over an empty dim (", x.meta_str(), ")");
    run(name, ExtremeFold{op == ReduceOp::Max}, x, dims, device_data<float>(out));
  }
}

void var(const Tensor& x, const std::vector<int64_t>& dims, int64_t ddof, const Tensor& out) {
  check_float32("var", x);
  run("var", VarFold{ddof}, x, dims, device_data<float>(out));
}

void argmax(const Tensor& x, int64_t dim, const Tensor& out) {
  check_float32("argmax", x);
  run("argmax", ArgmaxFold{}, x, x.dim() == 0 ? std::vector<int64_t>{} : std::vector<int64_t>{dim},
      device_data<int64_t>(out));
}

}  // namespace minidl::cuda
