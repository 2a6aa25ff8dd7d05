// The study tools on CUDA tensors: the op profiler's CUDA-event times, FLOP counts (the same as the
// CPU's) and the caching allocator's bytes; anomaly detection's checks read back from the device; the
// graph export of a GPU computation. Under the emulator the CUDA events carry the host's clock.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "autograd/minidl.h"
#include "cuda/runtime.h"
#include "tests/autograd/dot_reader.h"
#include "tests/autograd/profile_events.h"
#include "tests/cuda/cuda_test_helpers.h"

using namespace minidl;
using minidl::cuda_test::kGpu;
using profiler::Event;
using profiler::EventKind;

namespace {

// conv + matmul, forward and backward, on `device`; returns the profile.
std::unique_ptr<profiler::Profiler> profile_step(Device device) {
  Generator g(5);
  const TensorOptions on{.device = device, .requires_grad = true};
  const Tensor x = randn({2, 3, 9, 8}, on, &g), w = randn({4, 3, 3, 3}, on, &g), v = randn({4 * 7 * 6, 5}, on, &g);
  auto p = std::make_unique<profiler::Profiler>();
  {
    const profiler::Range step("step");
    const Tensor y = conv(x, w, {}, {1}, {0});
    sum(matmul(y.reshape({2, 4 * 7 * 6}), v)).backward();
  }
  p->stop();
  return p;
}

}  // namespace

TEST(CudaStudy, ProfilerTimesOpsWithCudaEventsAndCountsTheirWork) {
  REQUIRE_GPU();
  const auto gpu = profile_step(kGpu), cpu = profile_step(Device::cpu());
  for (const auto& [kind, name] :
       {std::pair{EventKind::Op, "conv"}, std::pair{EventKind::Rule, "conv"}, std::pair{EventKind::Op, "matmul"}}) {
    // Ops as the forward ran them (a rule's matmuls are ops too).
    const auto on_gpu = profile_test::find(*gpu, kind, name, true), on_cpu = profile_test::find(*cpu, kind, name, true);
    ASSERT_EQ(on_gpu.size(), 1u) << name;
    ASSERT_EQ(on_cpu.size(), 1u) << name;
    const Event& e = on_gpu[0];
    EXPECT_TRUE(e.device.is_cuda()) << name;
    EXPECT_GE(e.device_start_us, 0) << name << ": a CUDA op has its events' times";
    EXPECT_GE(e.device_end_us, e.device_start_us) << name;
    EXPECT_EQ(e.flops, on_cpu[0].flops) << name << ": the work does not depend on the device";
    EXPECT_GT(e.flops, 0) << name;
    EXPECT_LT(on_cpu[0].device_start_us, 0) << name << ": a CPU op has no GPU time";
  }
  // The step's ops have GPU times, and the report shows them as CUDA rows with their launch cost.
  const std::string report = gpu->report();
  EXPECT_NE(report.find("conv backward (cuda)"), std::string::npos) << report;
  EXPECT_NE(report.find("host ms"), std::string::npos) << report;
  EXPECT_NE(report.find("MiB on cuda:0"), std::string::npos) << report;
  // The trace has a track of GPU times for the device.
  const nlohmann::json doc = nlohmann::json::parse(gpu->chrome_trace());
  int gpu_events = 0;
  for (const auto& e : doc["traceEvents"]) gpu_events += e["ph"] == "X" && e["pid"] == 1;
  EXPECT_GE(gpu_events, 3);
}

TEST(CudaStudy, ProfilerReadsTheCachingAllocator) {
  REQUIRE_GPU();
  const Tensor a = rand({1000}, {.device = kGpu}), b = rand({1000}, {.device = kGpu});
  profiler::Profiler p;
  const Tensor c = mul(a, b);
  p.stop();
  const auto ev = profile_test::find(p, EventKind::Op, "mul");
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].memory_after - ev[0].memory_before, static_cast<int64_t>(cuda::size_class(4000)));
}

TEST(CudaStudy, AnomalyDetectionChecksDeviceTensors) {
  REQUIRE_GPU();
  const DetectAnomalyGuard on;
  const Tensor x = from_vector(std::vector<float>{1.0f, -2.0f}, {2}).to(kGpu).requires_grad_();
  std::string forward;
  try {
    log(x);
  } catch (const Error& e) {
    forward = e.what();
  }
  EXPECT_NE(forward.find("the forward of 'log'"), std::string::npos) << forward;
  EXPECT_NE(forward.find("1 NaN and 0 Inf among the 2 elements of float32[2] on cuda:0"), std::string::npos) << forward;
  const Tensor z = from_vector(std::vector<float>{0.0f, 4.0f}, {2}).to(kGpu).requires_grad_();
  std::string backward;
  try {
    sum(sqrt(z)).backward();
  } catch (const Error& e) {
    backward = e.what();
  }
  EXPECT_NE(backward.find("the backward of 'sqrt'"), std::string::npos) << backward;
  EXPECT_NE(backward.find("0 NaN and 1 Inf"), std::string::npos) << backward;
}

TEST(CudaStudy, GraphOfAGpuComputation) {
  REQUIRE_GPU();
  const Tensor w = rand({3, 4}, {.device = kGpu, .requires_grad = true});
  const Tensor loss = sum(tanh(matmul(rand({2, 3}, {.device = kGpu}), w)));
  const dot_test::Graph g = dot_test::read(graph_dot(loss, {.names = {{"w", w}}}));
  ASSERT_EQ(g.find("tanh").size(), 1u);
  EXPECT_EQ(g.labels.at(g.find("tanh")[0]), "tanh\nout: float32[2,4] on cuda:0\nsaved: float32[2,4] (32 B)");
  EXPECT_EQ(g.labels.at(g.find("w").at(0)), "w\nfloat32[3,4] on cuda:0");
}
