// Layer modules on the GPU against the same modules on the CPU: a module built from a seed on each
// side (the same Philox draws, so the same weights), one moved with to(kGpu), both run on the same
// input and backpropagated from the same upstream gradient; the outputs, the input's gradient and every
// parameter's gradient are compared. Covered: the causal Conv1d, the TCN (with element and channel
// dropout in training), the dropout modules, and BatchNorm2d / 3d over training steps and evaluation
// with their running statistics and batch count.
//
// The generator a module is built with also draws its dropout masks (layers/tcn.h, layers/dropout.h).
// The CPU and the GPU draw the same Philox values for the same seed and offset (test_cuda_random.cpp),
// so both sides drop the same elements; the generators' offsets are compared at the end, so that a side
// that drew more or fewer values shows even where the masks happened to agree.
//
// The convolutions and GEMMs are pinned to SIMT float32 (the default; MINIDL_CONV / MINIDL_GEMM may
// change it), so the tolerances are those of float32 sums in different orders.
//
// Tolerances, per case (the reasons are those of test_cuda_layers.cpp and test_cuda_norm.cpp):
//   a causal Conv1d: float_sums of the longest reduction (in / groups x kernel for the output, batch x
//     output steps for the weight gradient), as the conv geometries in test_cuda_layers.cpp;
//   the TCN: four such convolutions in a chain, each within float_sums of its reduction, joined by
//     LeakyReLUs and dropouts (scalings by at most 1 / (1 - p)) that do not amplify the drift: the
//     float_sums of the longest reduction of the chain, doubled for the chain. Its weights are
//     N(0, 0.01), so its values and gradients are of order 0.01 to 1, not 1 as float_sums assumes:
//     the absolute part is taken relative to the largest magnitude in the tensor compared (else the
//     input gradient, of order 0.03, would be allowed a third of its size);
//   dropout: the same mask times x, one rounding: exact;
//   BatchNorm: test_cuda_norm.cpp's 1e-6 absolute and 1e-5 relative for outputs and gradients; the
//     running statistics blend two batches (two roundings each): 2e-7 absolute and 2e-6 relative, twice
//     test_cuda_norm.cpp's tolerance for one. The batch count is an integer: exact.
#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cuda/kernels.h"
#include "layers/dropout.h"
#include "layers/norm.h"
#include "layers/tcn.h"
#include "tests/cuda/cuda_test_helpers.h"

using namespace minidl;
using namespace minidl::cuda_test;

namespace {

// Pins the convolutions and the GEMMs to SIMT float32 for a scope.
struct SimtScope {
  GemmPathScope gemm{cuda::GemmPath::Simt};
  ConvPathScope conv{cuda::GemmPath::Simt};
};

// How compare_pass reads a tolerance's absolute part: as it is, or in units of the largest magnitude in
// the CPU's tensor (for a module whose values are far from order 1).
enum class Atol { Absolute, OfLargest };

std::string compare_with(const Tensor& actual, const Tensor& expected, Tolerance tol, Atol how) {
  double atol = tol.atol;
  if (how == Atol::OfLargest) {
    double largest = 0;
    for (double v : expected.values<double>()) largest = std::max(largest, std::fabs(v));
    atol *= largest;
  }
  return compare(actual, expected, atol, tol.rtol);
}

// One forward and backward of a CPU module and its GPU twin on the CPU values x (and their GPU copy)
// with the upstream gradient up; compares the output (`fwd`), the input's gradient and every parameter's
// (`bwd`). The parameters' gradients are dropped first, so each call compares one pass. Returns the CPU
// output, for the callers' own checks.
Tensor compare_pass(const std::string& what, nn::Unary& cpu, nn::Unary& gpu, const Tensor& x, const Tensor& up,
                    Tolerance fwd, Tolerance bwd, Atol how = Atol::Absolute) {
  SCOPED_TRACE(what);
  cpu.zero_grad();
  gpu.zero_grad();
  const Tensor xc = x.detach().clone().requires_grad_(), xg = x.to(kGpu).detach().requires_grad_();
  const Tensor yc = cpu(xc), yg = gpu(xg);
  EXPECT_TRUE(yg.device().is_cuda()) << "the GPU module did not run on the GPU";
  {
    const std::string m = compare_with(yg, yc, fwd, how);
    EXPECT_TRUE(m.empty()) << "forward: " << m;
  }
  yc.backward(up);
  yg.backward(up.to(kGpu));
  {
    const std::string m = compare_with(xg.grad(), xc.grad(), bwd, how);
    EXPECT_TRUE(m.empty()) << "input gradient: " << m;
  }
  const nn::NamedTensors pc = cpu.named_parameters(), pg = gpu.named_parameters();
  EXPECT_EQ(pc.size(), pg.size());
  for (size_t i = 0; i < std::min(pc.size(), pg.size()); ++i) {
    SCOPED_TRACE("parameter " + pc[i].first);
    EXPECT_EQ(pg[i].first, pc[i].first);
    EXPECT_TRUE(pg[i].second.device().is_cuda());
    EXPECT_EQ(pg[i].second.grad().defined(), pc[i].second.grad().defined());
    if (!pc[i].second.grad().defined() || !pg[i].second.grad().defined()) continue;
    const std::string m = compare_with(pg[i].second.grad(), pc[i].second.grad(), bwd, how);
    EXPECT_TRUE(m.empty()) << "gradient: " << m;
  }
  return yc.detach();
}

// The generators of the two sides must have made the same draws.
void expect_same_draws(const Generator& cpu, const Generator& gpu) {
  EXPECT_EQ(gpu.offset(), cpu.offset()) << "the two sides drew different numbers of random values";
}

// Counts the zeros of a tensor (the dropped elements of a dropout of nonzero values).
int64_t zeros_in(const Tensor& t) {
  const std::vector<float> v = t.values<float>();
  return std::count(v.begin(), v.end(), 0.0f);
}

// How many of the runs of `per_unit` contiguous elements (the channels of a contiguous [B, C, *spatial])
// are neither all zero nor free of zeros.
int64_t channels_dropped_in_part(const Tensor& t, int64_t per_unit) {
  const std::vector<float> v = t.values<float>();
  int64_t partial = 0;
  for (size_t start = 0; start < v.size(); start += per_unit) {
    const auto zeros = std::count(v.begin() + start, v.begin() + start + per_unit, 0.0f);
    partial += zeros != 0 && zeros != per_unit;
  }
  return partial;
}

}  // namespace

// ---- causal convolution and the TCN -------------------------------------------------------------------

// The causal Conv1d pads (kernel - 1) dilation zeros on the left (a pad on the GPU too) and convolves
// without padding: dilated, grouped, strided, and one whose reach (16 steps) exceeds the whole sequence,
// so that the first outputs see only padding and the bias.
TEST(CudaModules, CausalConv1dForwardAndAllGradients) {
  REQUIRE_GPU();
  const SimtScope simt;
  struct Case {
    const char* name;
    int64_t in, out, kernel, stride, dilation, groups, B, T;
  };
  const std::vector<Case> cases = {
      {"dilation 2", 5, 7, 3, 1, 2, 1, 3, 17},
      {"grouped, dilation 3", 6, 4, 4, 1, 3, 2, 2, 13},
      {"stride 2, dilation 1", 3, 5, 5, 2, 1, 1, 2, 12},
      {"reach of 16 over 10 steps", 2, 3, 3, 1, 8, 1, 2, 10},
  };
  for (const Case& c : cases) {
    Generator gc(31), gg(31), data(32);
    nn::Conv1d cpu(c.in, c.out, c.kernel, c.stride, 0, c.dilation, c.groups, true, &gc, true);
    nn::Conv1d gpu(c.in, c.out, c.kernel, c.stride, 0, c.dilation, c.groups, true, &gg, true);
    gpu.to(kGpu);
    const Tensor x = rand({c.B, c.in, c.T}, {}, &data, -2, 2);
    const int64_t t_out = (c.T - 1) / c.stride + 1;
    const Tensor up = randn({c.B, c.out, t_out}, {}, &data);
    const int64_t terms = c.in / c.groups * c.kernel, longest = std::max(terms, c.B * t_out);
    const Tensor y = compare_pass(c.name, cpu, gpu, x, up, float_sums(terms), float_sums(longest));
    EXPECT_EQ(y.shape(), (Shape{c.B, c.out, t_out})) << c.name;
  }
}

// A two-level TCN (dilations 1 and 2; block 0 has a 1x1 downsample, block 1 the identity residual) in
// evaluation, and in training with element dropout and with channel dropout (the authors' Dropout2d,
// Dropout1d here). Two passes in each mode: in training the second draws new masks from where the
// first left off.
TEST(CudaModules, TcnForwardAndAllGradientsWithAndWithoutDropout) {
  REQUIRE_GPU();
  const SimtScope simt;
  const int64_t B = 2, C = 4, T = 24, kernel = 3;
  const std::vector<int64_t> channels{6, 6};
  // The longest reductions: a weight gradient over B x T positions; an output over 6 x 3 terms.
  const Tolerance tol = float_sums(2 * std::max(B * T, channels[0] * kernel));
  for (const auto& [mode, channel_dropout] : {std::pair{"eval", false}, std::pair{"training, element dropout", false},
                                              std::pair{"training, channel dropout", true}}) {
    SCOPED_TRACE(mode);
    const bool training = std::string(mode) != "eval";
    Generator gc(41), gg(41), data(42);
    const nn::TCNOptions options{.negative_slope = 0.05, .channel_dropout = channel_dropout};
    nn::TCN cpu(C, channels, kernel, 0.3, options, &gc), gpu(C, channels, kernel, 0.3, options, &gg);
    gpu.to(kGpu);
    ASSERT_TRUE(cpu.block(0).has_downsample() && !cpu.block(1).has_downsample());
    cpu.train(training);
    gpu.train(training);
    std::vector<Tensor> outputs;
    for (int pass = 0; pass < 2; ++pass) {
      const Tensor x = rand({B, C, T}, {}, &data, -2, 2), up = randn({B, channels.back(), T}, {}, &data);
      outputs.push_back(compare_pass("pass " + std::to_string(pass), cpu, gpu, x, up, tol, tol, Atol::OfLargest));
    }
    expect_same_draws(gc, gg);
    if (!training) continue;
    // Dropout must have acted, or the training cases compare nothing the evaluation one does not: the
    // same input in evaluation gives another output.
    Generator again(42);
    const Tensor x0 = rand({B, C, T}, {}, &again, -2, 2);
    cpu.eval();
    const std::string same = compare(cpu(x0), outputs[0], 1e-3, 0);
    EXPECT_FALSE(same.empty()) << "dropout changed nothing in training";
  }
}

// ---- dropout modules --------------------------------------------------------------------------------

// Dropout and Dropout1d / 2d / 3d (channel dropout, batched and unbatched) in training: the same masks on
// both sides, so output and gradient are bit for bit the CPU's, on two calls in a row (the second from
// the generator's new offset). Each mask must drop some elements or channels and keep others, or the
// comparison would prove nothing. In evaluation the input comes back unchanged on the GPU too.
TEST(CudaModules, DropoutModulesForwardAndBackwardAreExact) {
  REQUIRE_GPU();
  const Tolerance exact{0, 0};
  struct Case {
    const char* name;
    std::function<std::unique_ptr<nn::Unary>(Generator*)> make;
    Shape shape;
    int64_t units;  // the elements or channels that are dropped together
  };
  const std::vector<Case> cases = {
      {"Dropout", [](Generator* g) { return std::make_unique<nn::Dropout>(0.4, g); }, {3, 5, 7}, 3 * 5 * 7},
      {"Dropout1d", [](Generator* g) { return std::make_unique<nn::Dropout1d>(0.5, g); }, {4, 6, 9}, 4 * 6},
      {"Dropout2d", [](Generator* g) { return std::make_unique<nn::Dropout2d>(0.5, g); }, {4, 8, 5, 3}, 4 * 8},
      {"Dropout2d, unbatched", [](Generator* g) { return std::make_unique<nn::Dropout2d>(0.5, g); }, {16, 3, 5}, 16},
      {"Dropout2d, p = 0.2", [](Generator* g) { return std::make_unique<nn::Dropout2d>(0.2, g); }, {6, 7, 2, 2}, 42},
      {"Dropout3d", [](Generator* g) { return std::make_unique<nn::Dropout3d>(0.5, g); }, {3, 6, 2, 3, 4}, 3 * 6},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Generator gc(51), gg(51), data(52);
    const std::unique_ptr<nn::Unary> cpu = c.make(&gc), gpu = c.make(&gg);
    gpu->to(kGpu);
    for (int call = 0; call < 2; ++call) {
      // Values in [0.5, 2]: a zero in the output is a dropped element, never a zero input.
      const Tensor x = rand(c.shape, {}, &data, 0.5, 2), up = randn(c.shape, {}, &data);
      const Tensor y = compare_pass("call " + std::to_string(call), *cpu, *gpu, x, up, exact, exact);
      const int64_t dropped = zeros_in(y), per_unit = y.numel() / c.units;
      if (per_unit > 1) {
        EXPECT_EQ(channels_dropped_in_part(y, per_unit), 0) << "channels were dropped in part";
      }
      EXPECT_GT(dropped, 0) << "nothing was dropped";
      EXPECT_LT(dropped, y.numel()) << "everything was dropped";
    }
    expect_same_draws(gc, gg);
    gpu->eval();
    const Tensor x = rand(c.shape, {}, &data, 0.5, 2).to(kGpu);
    EXPECT_EQ(compare_bits((*gpu)(x), x), "") << "evaluation changed the input";
  }
}

// ---- BatchNorm ----------------------------------------------------------------------------------------

namespace {

// The CPU's running statistics and batch count against the GPU's.
void expect_same_statistics(const nn::BatchNorm& cpu, const nn::BatchNorm& gpu, int64_t batches) {
  ASSERT_TRUE(gpu.running_mean.device().is_cuda() && gpu.running_var.device().is_cuda());
  EXPECT_CLOSE(gpu.running_mean, cpu.running_mean, 2e-7, 2e-6);
  EXPECT_CLOSE(gpu.running_var, cpu.running_var, 2e-7, 2e-6);
  EXPECT_TRUE(gpu.num_batches_tracked.device().is_cuda());
  EXPECT_EQ(gpu.num_batches_tracked.dtype(), kInt64);
  EXPECT_EQ(cpu.num_batches_tracked.item(), static_cast<double>(batches));
  EXPECT_EQ(gpu.num_batches_tracked.item(), static_cast<double>(batches));
}

}  // namespace

// BatchNorm2d and 3d with weights, biases and running statistics away from their initial values and a
// count of 3 already tracked (loaded from one state_dict into both: the GPU module must read its count
// from the loaded device buffer), with momentum 0.1 and as a cumulative average (factor 1 / (count + 1),
// which depends on that count). Two training steps, then two passes in evaluation, which normalise with
// the running statistics and must leave them and the count alone. Inputs have a channel-dependent mean,
// so the running means move away from 0.
TEST(CudaModules, BatchNormTrainingStepsThenEvaluation) {
  REQUIRE_GPU();
  const Tolerance tol{1e-6, 1e-5};
  struct Case {
    const char* name;
    int rank;
    Shape x;
  };
  const std::vector<Case> cases = {{"BatchNorm2d", 2, {4, 3, 5, 6}}, {"BatchNorm3d", 3, {2, 2, 3, 4, 5}}};
  for (const Case& c : cases)
    for (const std::optional<double> momentum : {std::optional<double>(0.1), std::optional<double>()}) {
      const std::string name = std::string(c.name) + (momentum ? ", momentum 0.1" : ", cumulative average");
      SCOPED_TRACE(name);
      const int64_t C = c.x[1];
      auto make = [&]() -> std::unique_ptr<nn::BatchNorm> {
        if (c.rank == 2) return std::make_unique<nn::BatchNorm2d>(C, 1e-5, momentum);
        return std::make_unique<nn::BatchNorm3d>(C, 1e-5, momentum);
      };
      const std::unique_ptr<nn::BatchNorm> cpu = make(), gpu = make();
      Generator data(61);
      const nn::NamedTensors state{{"weight", rand({C}, {}, &data, 0.5, 1.5)},
                                   {"bias", rand({C}, {}, &data, -1, 1)},
                                   {"running_mean", rand({C}, {}, &data, -1, 1)},
                                   {"running_var", rand({C}, {}, &data, 0.5, 1.5)},
                                   {"num_batches_tracked", full({}, 3.0, {.dtype = kInt64})}};
      cpu->load_state_dict(state);
      gpu->to(kGpu);
      gpu->load_state_dict(state);
      Shape mean_shape(c.x.size(), 1);
      mean_shape[1] = C;
      const Tensor channel_mean = rand(mean_shape, {}, &data, -3, 3);
      for (int step = 0; step < 2; ++step) {
        const Tensor x = rand(c.x, {}, &data, -2, 2) + channel_mean, up = randn(c.x, {}, &data);
        compare_pass("training step " + std::to_string(step), *cpu, *gpu, x, up, tol, tol);
        SCOPED_TRACE("after training step " + std::to_string(step));
        expect_same_statistics(*cpu, *gpu, 4 + step);
      }
      cpu->eval();
      gpu->eval();
      const Tensor before = cpu->running_mean.clone();
      for (int pass = 0; pass < 2; ++pass) {
        const Tensor x = rand(c.x, {}, &data, -2, 2) + channel_mean, up = randn(c.x, {}, &data);
        compare_pass("evaluation " + std::to_string(pass), *cpu, *gpu, x, up, tol, tol);
        SCOPED_TRACE("after evaluation " + std::to_string(pass));
        expect_same_statistics(*cpu, *gpu, 5);
      }
      EXPECT_EQ(compare_bits(cpu->running_mean, before), "") << "evaluation moved the CPU's running mean";
    }
}
