// The optimisers' fused CUDA updates, and clipping's global norm and scaling, over many tensors per launch.
//
// Each element's update is the functor of optim/update_rules.h (the one the CPU loop applies), reading
// the gradient and the moments and writing the parameter and the moments in one pass. A model has a
// few hundred parameter tensors, many of them small (biases, norm scales), and one launch each would
// cost a few microseconds of CPU and GPU time apiece: more than the arithmetic. So up to kPerLaunch
// tensors share a launch. Their elements are numbered as if concatenated, each block takes kChunk
// consecutive numbers of that concatenation (crossing from one tensor into the next where it ends), and
// an element's update is exactly the one a launch of its own would do, so the bits do not depend on
// how the tensors were grouped. The norm sums squares in double per block in a fixed order, then the
// blocks' sums in a fixed order: deterministic (no atomics), like every reduction here.
#include <algorithm>

#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace minidl::cuda {
namespace {

// 24 tensors' pointers, rules and offsets stay within the 4 KB of kernel parameters every CUDA
// version accepts.
constexpr int kPerLaunch = 24, kChunk = 4096, kThreads = 256;

// What one element of each kind of update does, given its index j in its own tensor.
struct SgdItem {
  optim::SgdF<float> f;
  float* p;
  const float* g;
  float* buf;
  __device__ void operator()(int64_t j) const { f(p[j], g[j], buf ? buf + j : nullptr); }
};
struct AdamItem {
  optim::AdamF<float> f;
  float* p;
  const float* g;
  float *m, *v;
  __device__ void operator()(int64_t j) const { f(p[j], g[j], m[j], v[j]); }
};
struct ScaleItem {
  float* x;
  float factor;
  __device__ void operator()(int64_t j) const { x[j] = x[j] * factor; }
};

// Tensor t holds elements [start[t], start[t + 1]) of the concatenation.
template <class Item>
struct Group {
  int count = 0;
  int64_t start[kPerLaunch + 1] = {};
  Item item[kPerLaunch];
};

// Calls fn(item of tensor t, j) for this block's elements of the concatenation (element j of tensor
// t), each thread striding through the block's share of every tensor it reaches.
template <class Item, class Fn>
__device__ void for_block_elements(const Group<Item>& group, const Fn& fn) {
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * kChunk;
  const int64_t end = min(begin + kChunk, group.start[group.count]);
  int t = 0;
  while (group.start[t + 1] <= begin) ++t;
  for (; t < group.count && group.start[t] < end; ++t) {
    const int64_t lo = max(begin, group.start[t]), hi = min(end, group.start[t + 1]);
    const Item item = group.item[t];
    for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) fn(item, i - group.start[t]);
  }
}

template <class Item>
__global__ void update_group(Group<Item> group) {
  for_block_elements(group, [](const Item& item, int64_t j) { item(j); });
}

// Hands `launch` the groups of `items` (with their element counts; empty ones left out) and the blocks
// each needs, in order.
template <class Item, class Launch>
void for_each_group(const std::vector<Item>& items, const std::vector<int64_t>& sizes, const Launch& launch) {
  Group<Item> group;
  auto flush = [&] {
    const int64_t total = group.start[group.count];
    if (total > 0) launch(group, static_cast<unsigned>((total + kChunk - 1) / kChunk));
    group.count = 0;
  };
  for (size_t k = 0; k < items.size(); ++k) {
    if (sizes[k] == 0) continue;
    group.item[group.count] = items[k];
    group.start[group.count + 1] = group.start[group.count] + sizes[k];
    if (++group.count == kPerLaunch) flush();
  }
  flush();
}

// Runs the elementwise `items` on `device`'s current stream.
template <class Item>
void launch_updates(const char* op, int device, const std::vector<Item>& items, const std::vector<int64_t>& sizes) {
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  for_each_group(items, sizes, [&](const Group<Item>& group, unsigned blocks) {
    update_group<<<blocks, kThreads, 0, stream_of(device)>>>(group);
    MINIDL_CUDA_CHECK_LAUNCH(op);
  });
}

// partial[first_block + b] = the sum of squares of block b's elements, in double.
__global__ void sum_squares_group(Group<const float*> group, double* partial) {
  double sum = 0;
  for_block_elements(group, [&](const float* x, int64_t j) {
    const double v = x[j];
    sum += v * v;
  });
  __shared__ double scratch[kWarp];
  sum = block_sum(sum, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}

// out = sqrt(sum of the n partial sums), by one block: each thread sums a fixed stride of them, then the
// block's fixed tree.
__global__ void sqrt_of_sum(const double* partial, int64_t n, float* out) {
  double sum = 0;
  for (int64_t k = threadIdx.x; k < n; k += blockDim.x) sum += partial[k];
  __shared__ double scratch[kWarp];
  sum = block_sum(sum, scratch);
  if (threadIdx.x == 0) out[0] = static_cast<float>(sqrt(sum));
}

// The parameter, its gradient and its moments: contiguous float32 on one device (the optimiser makes
// them so), the same device for every parameter of one call.
void check(const char* op, const Tensor& p, int device, std::initializer_list<const Tensor*> others) {
  MINIDL_CHECK(p.is_contiguous() && p.dtype() == kFloat32 && p.device().is_cuda(), op,
               ": the parameter must be contiguous float32 on a GPU, got ", p.meta_str());
  MINIDL_CHECK(p.device().index == device, op, ": parameters on ", p.device().str(), " and cuda:", device,
               " in one update");
  for (const Tensor* t : others)
    MINIDL_CHECK(!t->defined() || (t->is_contiguous() && t->dtype() == kFloat32 && t->device() == p.device() &&
                                   t->numel() == p.numel()),
                 op, ": ", t->meta_str(), " does not match the parameter ", p.meta_str());
}

}  // namespace

void sgd_update(const std::vector<SgdSlot>& slots) {
  if (slots.empty()) return;
  const int device = slots.front().param.device().index;
  std::vector<SgdItem> items;
  std::vector<int64_t> sizes;
  for (const SgdSlot& s : slots) {
    check("SGD.step", s.param, device, {&s.grad, &s.buf});
    items.push_back({s.rule, device_data<float>(s.param), device_data<float>(s.grad),
                     s.buf.defined() ? device_data<float>(s.buf) : nullptr});
    sizes.push_back(s.param.numel());
  }
  launch_updates("SGD.step", device, items, sizes);
}

void adam_update(const std::vector<AdamSlot>& slots) {
  if (slots.empty()) return;
  const int device = slots.front().param.device().index;
  std::vector<AdamItem> items;
  std::vector<int64_t> sizes;
  for (const AdamSlot& s : slots) {
    check("Adam.step", s.param, device, {&s.grad, &s.m, &s.v});
    items.push_back({s.rule, device_data<float>(s.param), device_data<float>(s.grad), device_data<float>(s.m),
                     device_data<float>(s.v)});
    sizes.push_back(s.param.numel());
  }
  launch_updates("Adam.step", device, items, sizes);
}

void scale(const std::vector<Tensor>& tensors, double factor) {
  if (tensors.empty()) return;
  const int device = tensors.front().device().index;
  std::vector<ScaleItem> items;
  std::vector<int64_t> sizes;
  for (const Tensor& t : tensors) {
    check("scale", t, device, {});
    items.push_back({device_data<float>(t), static_cast<float>(factor)});
    sizes.push_back(t.numel());
  }
  launch_updates("scale", device, items, sizes);
}

void global_norm(const std::vector<Tensor>& tensors, const Tensor& out) {
  MINIDL_CHECK(out.dtype() == kFloat32 && out.numel() == 1 && out.device().is_cuda(),
               "global_norm: the result must be a one-element float32 CUDA tensor, got ", out.meta_str());
  const int device = out.device().index;
  std::vector<Tensor> inputs;  // non-contiguous ones copied (kept alive until their reads are queued)
  std::vector<const float*> items;
  std::vector<int64_t> sizes;
  for (const Tensor& t : tensors) {
    MINIDL_CHECK(t.dtype() == kFloat32 && t.device() == out.device(), "global_norm: ", t.meta_str(),
                 " is not float32 on ", out.device().str());
    inputs.push_back(t.is_contiguous() ? t : t.contiguous());
    items.push_back(device_data<float>(inputs.back()));
    sizes.push_back(t.numel());
  }
  int64_t blocks = 0;
  for_each_group(items, sizes, [&](const Group<const float*>&, unsigned b) { blocks += b; });
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  // One slot per block, from the caching allocator; stream-ordered reuse keeps it alive for the kernels.
  const Tensor partial = Tensor::empty({std::max<int64_t>(1, blocks)}, kFloat64, out.device());
  double* slots = static_cast<double*>(partial.raw_data());
  int64_t at = 0;
  for_each_group(items, sizes, [&](const Group<const float*>& group, unsigned b) {
    sum_squares_group<<<b, kThreads, 0, stream_of(device)>>>(group, slots + at);
    MINIDL_CUDA_CHECK_LAUNCH("global_norm");
    at += b;
  });
  sqrt_of_sum<<<1, kThreads, 0, stream_of(device)>>>(slots, blocks, device_data<float>(out));
  MINIDL_CUDA_CHECK_LAUNCH("global_norm");
}

}  // namespace minidl::cuda
