// Pooling layers (layers/pool.h): argument checks at construction, torch's repr, and the ops of
// autograd/ops_pool.cpp at forward. Arguments are checked once here so a bad layer fails where it is built,
// not at its first batch; the shape checks that need the input stay in the ops.
#include "layers/pool.h"

#include "autograd/error.h"
#include "autograd/ops.h"

namespace minidl::nn {
namespace {

// Expands and checks a pooling layer's kernel / stride / padding (stride defaults to the kernel).
void check_window(const std::string& name, int64_t rank, const Dims& kernel, const Dims& stride, const Dims& padding) {
  const std::vector<int64_t> k = kernel.expand(name, "kernel_size", rank);
  const std::vector<int64_t> s = stride.empty() ? k : stride.expand(name, "stride", rank);
  const std::vector<int64_t> p = padding.expand(name, "padding", rank);
  for (int64_t d = 0; d < rank; ++d) {
    MINIDL_CHECK(k[d] >= 1, name, ": kernel_size ", kernel.str(), " must be at least 1 in every dim");
    MINIDL_CHECK(s[d] >= 1, name, ": stride ", stride.str(), " must be at least 1 in every dim");
    MINIDL_CHECK(p[d] >= 0 && p[d] <= k[d] / 2, name, ": padding ", padding.str(),
                 " must be between 0 and half the kernel_size ", kernel.str(), " in every dim");
  }
}

// What torch prints for a pooling stride: the kernel when none was given.
const Dims& shown_stride(const Dims& kernel, const Dims& stride) { return stride.empty() ? kernel : stride; }

}  // namespace

template <int N>
MaxPool<N>::MaxPool(const Dims& kernel, const Dims& stride, const Dims& padding)
    : kernel_(kernel), stride_(stride), padding_(padding) {
  check_window(type_name(), N, kernel, stride, padding);
}

template <int N>
std::string MaxPool<N>::describe() const {
  return type_name() + "(kernel_size=" + kernel_.str() + ", stride=" + shown_stride(kernel_, stride_).str() +
         ", padding=" + padding_.str() + ")";
}

template <int N>
Tensor MaxPool<N>::forward(const Tensor& x) {
  return max_pool(x, kernel_.expand(type_name(), "kernel_size", N), stride_.values(), padding_.values());
}

template <int N>
AvgPool<N>::AvgPool(const Dims& kernel, const Dims& stride, const Dims& padding, bool count_include_pad)
    : kernel_(kernel), stride_(stride), padding_(padding), count_include_pad_(count_include_pad) {
  check_window(type_name(), N, kernel, stride, padding);
}

template <int N>
std::string AvgPool<N>::describe() const {
  return type_name() + "(kernel_size=" + kernel_.str() + ", stride=" + shown_stride(kernel_, stride_).str() +
         ", padding=" + padding_.str() + (count_include_pad_ ? "" : ", count_include_pad=False") + ")";
}

template <int N>
Tensor AvgPool<N>::forward(const Tensor& x) {
  return avg_pool(x, kernel_.expand(type_name(), "kernel_size", N), stride_.values(), padding_.values(),
                  count_include_pad_);
}

template <int N>
AdaptiveAvgPool<N>::AdaptiveAvgPool(const Dims& output_size) : output_size_(output_size) {
  for (int64_t v : output_size.expand(type_name(), "output_size", N))
    MINIDL_CHECK(v >= 1, type_name(), ": output_size ", output_size.str(), " must be at least 1 in every dim");
}

template <int N>
std::string AdaptiveAvgPool<N>::describe() const {
  return type_name() + "(output_size=" + output_size_.str() + ")";
}

template <int N>
Tensor AdaptiveAvgPool<N>::forward(const Tensor& x) {
  return adaptive_avg_pool(x, output_size_.expand(type_name(), "output_size", N));
}

template class MaxPool<1>;
template class MaxPool<2>;
template class MaxPool<3>;
template class AvgPool<1>;
template class AvgPool<2>;
template class AvgPool<3>;
template class AdaptiveAvgPool<1>;
template class AdaptiveAvgPool<2>;
template class AdaptiveAvgPool<3>;

}  // namespace minidl::nn
