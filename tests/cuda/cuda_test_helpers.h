// Layer 2 of DESIGN.md "Testing in four layers": every CUDA kernel against its CPU twin, forward and
// backward. Shared by the tests/cuda/test_cuda_*.cpp files.
//
// Every test here needs a GPU: REQUIRE_GPU() skips it, saying why, where there is none (or the build has
// no CUDA). Nothing is skipped on a machine that has one.
//
// compare_op runs a function of leaf tensors twice, on CPU copies and on CUDA copies of the same float32
// values, backpropagates the same random upstream gradient through both, and compares the outputs and
// every input's gradient element by element with |gpu - cpu| <= atol + rtol |cpu|, naming the worst
// element. Non-contiguous and broadcast inputs are made inside the function (a permute, a slice, an
// expand of a contiguous leaf), so the kernels see the views while the leaves stay simple.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/minidl.h"
#include "cuda/kernels.h"

namespace minidl::cuda_test {

inline bool have_gpu() { return cuda_device_count() > 0; }

#define REQUIRE_GPU()                                                                               \
  if (!::minidl::cuda_test::have_gpu())                                                             \
  GTEST_SKIP() << (::minidl::cuda_built() ? "no CUDA device on this machine: this test needs a GPU" \
                                          : "minidl was built without CUDA: this test needs a GPU")

inline const Device kGpu = Device::cuda(0);

// Selects the GEMMs' (or the convolutions') kernels, or the convolutions' tile, for a scope and puts the
// previous choice back after, whatever MINIDL_GEMM / MINIDL_CONV / MINIDL_CONV_TILE said: a tolerance is
// written for one kernel's arithmetic.
template <class Choice, Choice (*get)(), void (*set)(Choice)>
class KernelChoiceScope {
 public:
  explicit KernelChoiceScope(Choice choice) : before_(get()) { set(choice); }
  ~KernelChoiceScope() { set(before_); }
  KernelChoiceScope(const KernelChoiceScope&) = delete;
  KernelChoiceScope& operator=(const KernelChoiceScope&) = delete;

 private:
  Choice before_;
};
using GemmPathScope = KernelChoiceScope<cuda::GemmPath, cuda::gemm_path, cuda::set_gemm_path>;
using ConvPathScope = KernelChoiceScope<cuda::GemmPath, cuda::conv_path, cuda::set_conv_path>;
using ConvTileScope = KernelChoiceScope<cuda::ConvTile, cuda::conv_tile, cuda::set_conv_tile>;

// The CUDA emulator (-DMINIDL_CUDA=EMULATE, cuda/emulator/emulator.h) runs the kernels on the CPU, each
// launch to its end before the call returns. Tests of what only a real device has (work still queued
// while the host goes on) skip there; every other test runs the same.
#define SKIP_IF_EMULATED(why) \
  if (::minidl::cuda_emulated()) GTEST_SKIP() << "the CUDA emulator runs every launch at once: " << why

// A dim list as "{0,2}", for messages.
inline std::string dims_str(const std::vector<int64_t>& d) {
  std::ostringstream os;
  os << "{";
  for (size_t i = 0; i < d.size(); ++i) os << (i ? "," : "") << d[i];
  os << "}";
  return os.str();
}

// Worst-element comparison; returns a description of the first failure, or "" when every element is
// within atol + rtol |expected|. NaN must meet NaN, inf the same inf.
inline std::string compare(const Tensor& actual, const Tensor& expected, double atol, double rtol) {
  if (actual.shape() != expected.shape())
    return "shape " + shape_str(actual.shape()) + " instead of " + shape_str(expected.shape());
  const std::vector<double> a = actual.values<double>(), e = expected.values<double>();
  double worst = -1;
  size_t at = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(e[i]) || std::isnan(a[i])) {
      if (std::isnan(e[i]) != std::isnan(a[i])) return "element " + std::to_string(i) + ": NaN on one side only";
      continue;
    }
    if (std::isinf(e[i]) || std::isinf(a[i])) {
      if (a[i] != e[i]) return "element " + std::to_string(i) + ": infinity on one side only";
      continue;
    }
    const double excess = std::fabs(a[i] - e[i]) - (atol + rtol * std::fabs(e[i]));
    if (excess > worst) worst = excess, at = i;
  }
  if (worst <= 0) return "";
  std::ostringstream os;
  os.precision(9);
  os << "element " << at << " of " << shape_str(expected.shape()) << ": " << a[at] << " instead of " << e[at]
     << " (|diff| " << std::fabs(a[at] - e[at]) << ", allowed " << atol + rtol * std::fabs(e[at]) << ")";
  return os.str();
}

#define EXPECT_CLOSE(actual, expected, atol, rtol)                                              \
  do {                                                                                          \
    const std::string minidl_msg_ = ::minidl::cuda_test::compare(actual, expected, atol, rtol); \
    EXPECT_TRUE(minidl_msg_.empty()) << minidl_msg_;                                            \
  } while (0)

// Bit-for-bit equality of two float32 tensors (the arithmetic ops are exactly rounded on both sides).
inline std::string compare_bits(const Tensor& actual, const Tensor& expected) {
  if (actual.shape() != expected.shape())
    return "shape " + shape_str(actual.shape()) + " instead of " + shape_str(expected.shape());
  const std::vector<float> a = actual.values<float>(), e = expected.values<float>();
  for (size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == e[i] || (std::isnan(a[i]) && std::isnan(e[i]))))
      return "element " + std::to_string(i) + ": " + std::to_string(a[i]) + " instead of " + std::to_string(e[i]);
  return "";
}

using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

struct Input {
  Shape shape;
  double lo = -2, hi = 2;  // uniform range of the values (keep log, sqrt, pow inputs positive)
};

struct Tolerance {
  double atol = 1e-6, rtol = 1e-6;
};

// Runs f on the CPU and on the GPU with the same inputs and upstream gradient; compares the outputs
// (tolerance `fwd`) and the gradients of every input (tolerance `bwd`).
inline void compare_op(const std::string& what, const OpFn& f, const std::vector<Input>& inputs, Tolerance fwd,
                       Tolerance bwd, uint64_t seed = 7) {
  SCOPED_TRACE(what);
  Generator gen(seed);
  std::vector<Tensor> cpu_in, gpu_in;
  for (const Input& in : inputs) {
    Tensor c = rand(in.shape, {}, &gen, in.lo, in.hi);
    Tensor g = c.to(kGpu).detach();
    cpu_in.push_back(c.requires_grad_());
    gpu_in.push_back(g.requires_grad_());
  }
  const Tensor yc = f(cpu_in), yg = f(gpu_in);
  ASSERT_TRUE(yg.device().is_cuda()) << "the op did not run on the GPU";
  {
    const std::string m = compare(yg, yc, fwd.atol, fwd.rtol);
    EXPECT_TRUE(m.empty()) << "forward: " << m;
  }
  const Tensor up = randn(yc.shape(), {}, &gen);
  yc.backward(up);
  yg.backward(up.to(kGpu));
  for (size_t i = 0; i < inputs.size(); ++i) {
    ASSERT_EQ(cpu_in[i].grad().defined(), gpu_in[i].grad().defined()) << "input " << i;
    if (!cpu_in[i].grad().defined()) continue;
    ASSERT_TRUE(gpu_in[i].grad().device().is_cuda());
    const std::string m = compare(gpu_in[i].grad(), cpu_in[i].grad(), bwd.atol, bwd.rtol);
    EXPECT_TRUE(m.empty()) << "gradient of input " << i << ": " << m;
  }
}

// Two float32 sums of `terms` products in different orders (a GEMM, a convolution) drift apart by
// about 1e-7 per term for inputs of order 1; ten times that plus 1e-5 relative. A wrong index or a
// missed slice errs by the size of a whole term.
inline Tolerance float_sums(int64_t terms) { return {1e-6 * static_cast<double>(terms), 1e-5}; }

// The same sums on TF32 tensor cores: each input keeps 10 mantissa bits (rounded to nearest, relative
// error up to 2^-11), so each product of inputs of order 1 is off by about 4e-4 of its size, with
// random sign, and a sum of `terms` of them by about 5e-4 sqrt(terms): 5e-3 sqrt(terms) is some nine
// standard deviations. The float32 sums' own drift comes on top. A wrong index or a missed slice still
// errs by a whole term.
inline Tolerance tf32_sums(int64_t terms) {
  const double n = static_cast<double>(terms);
  return {5e-3 * std::sqrt(n) + 1e-6 * n, 1e-5};
}

// A convolution's geometry for the CUDA and cuDNN tests.
struct ConvCase {
  const char* name;
  Shape x, w;
  std::vector<int64_t> stride, padding, dilation;
  int64_t groups;
  bool bias = false;
};

// The odd sizes of the CUDA issue: single elements, sizes that are not multiples of the vector width or
// the block size, and one above a power of two.
inline std::vector<Shape> odd_shapes() { return {{1}, {7}, {33}, {1000, 3}, {4097}}; }

}  // namespace minidl::cuda_test
