// The optimisers' fused CUDA updates: one kernel per parameter applies the update rule of
// optim/update_rules.h (the same functor the CPU loop applies) to every element, reading the gradient
// and the moments and writing the parameter and the moments in one pass, with no temporaries.
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace minidl::cuda {
namespace {

__global__ void sgd_kernel(optim::SgdF<float> f, float* p, const float* g, float* buf, int64_t n) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    f(p[i], g[i], buf ? buf + i : nullptr);
}

__global__ void adam_kernel(optim::AdamF<float> f, float* p, const float* g, float* m, float* v, int64_t n) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    f(p[i], g[i], m[i], v[i]);
}

// The parameter, its gradient and its moments: contiguous float32 on one device (the optimiser makes
// them so).
void check(const char* op, const Tensor& p, std::initializer_list<const Tensor*> others) {
  MINIDL_CHECK(p.is_contiguous() && p.dtype() == kFloat32, op, ": the parameter must be contiguous float32, got ",
               p.meta_str());
  for (const Tensor* t : others)
    MINIDL_CHECK(!t->defined() || (t->is_contiguous() && t->dtype() == kFloat32 && t->device() == p.device() &&
                                   t->numel() == p.numel()),
                 op, ": ", t->meta_str(), " does not match the parameter ", p.meta_str());
}

}  // namespace

void sgd_update(const optim::SgdF<float>& rule, const Tensor& param, const Tensor& grad, const Tensor& buf) {
  check("SGD.step", param, {&grad, &buf});
  launch_grid_stride("SGD.step", param.device().index, param.numel(), sgd_kernel, rule, device_data<float>(param),
                     device_data<float>(grad), buf.defined() ? device_data<float>(buf) : nullptr, param.numel());
}

void adam_update(const optim::AdamF<float>& rule, const Tensor& param, const Tensor& grad, const Tensor& m,
                 const Tensor& v) {
  check("Adam.step", param, {&grad, &m, &v});
  launch_grid_stride("Adam.step", param.device().index, param.numel(), adam_kernel, rule, device_data<float>(param),
                     device_data<float>(grad), device_data<float>(m), device_data<float>(v), param.numel());
}

}  // namespace minidl::cuda
