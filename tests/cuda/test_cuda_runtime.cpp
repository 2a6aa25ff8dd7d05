// The CUDA runtime layer: moving tensors between host and device. Every test here needs a GPU and skips
// itself, saying so, where there is none; on a machine with one they run for real.
#include <gtest/gtest.h>

#include "autograd/minidl.h"

using namespace minidl;

namespace {
bool have_gpu() { return cuda_device_count() > 0; }
#define REQUIRE_GPU() \
  if (!have_gpu()) GTEST_SKIP() << (cuda_built() ? "no CUDA device on this machine" : "minidl was built without CUDA")
}  // namespace

TEST(CudaRuntime, WithoutAGpuMovingToCudaIsAClearError) {
  if (have_gpu()) GTEST_SKIP() << "this machine has a GPU; the error path is for machines without one";
  try {
    zeros({2}).to(Device::cuda(0));
    FAIL() << "expected minidl::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuda:0"), std::string::npos) << e.what();
  }
}

TEST(CudaRuntime, RoundTripKeepsValues) {
  REQUIRE_GPU();
  const Tensor x = randn({3, 5});
  const Tensor d = x.to(Device::cuda(0));
  EXPECT_TRUE(d.device().is_cuda());
  EXPECT_EQ(d.shape(), x.shape());
  EXPECT_EQ(d.to(Device::cpu()).values<float>(), x.values<float>());
  EXPECT_EQ(d.values<float>(), x.values<float>()) << "values() copies device tensors back";
}

TEST(CudaRuntime, NonContiguousViewsCopyBothWays) {
  REQUIRE_GPU();
  const Tensor x = arange(24).reshape({2, 3, 4});
  const Tensor view = x.permute({2, 0, 1}).slice(0, 1, 4, 2);
  EXPECT_EQ(view.to(Device::cuda(0)).to(Device::cpu()).values<float>(), view.values<float>());
  const Tensor d = x.to(Device::cuda(0)).permute({2, 0, 1}).slice(0, 1, 4, 2);  // a view on the device
  EXPECT_EQ(d.to(Device::cpu()).values<float>(), view.values<float>());
}

TEST(CudaRuntime, GradientFlowsBackAcrossTheCopy) {
  REQUIRE_GPU();
  Tensor x = from_vector(std::vector<double>{1, 2, 3});
  x.requires_grad_();
  const Tensor back = x.to(Device::cuda(0)).to(Device::cpu());
  sum(back * 2.0).backward();
  EXPECT_EQ(x.grad().values<float>(), (std::vector<float>{2, 2, 2}));
}

TEST(CudaRuntime, FactoriesPlaceTensorsOnTheDevice) {
  REQUIRE_GPU();
  const Tensor o = ones({4}, {.device = Device::cuda(0)});
  EXPECT_TRUE(o.device().is_cuda());
  EXPECT_DOUBLE_EQ(o.values<float>()[3], 1.0);
  Generator a(3), b(3);
  EXPECT_EQ(rand({100}, {.device = Device::cuda(0)}, &a).values<float>(), rand({100}, {}, &b).values<float>());
}
