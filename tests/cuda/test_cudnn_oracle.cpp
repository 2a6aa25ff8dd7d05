// minidl's CUDA convolution and LSTM against cuDNN (cuda/cudnn/oracle.h), the GPU oracle of DESIGN.md's
// third testing layer: the public conv op on CUDA tensors (cuda/conv.cu) in all three passes, on the
// convolutions of workload W2 scaled down (R(2+1)D's stem 1x7x7/2, its spatial 1x3x3 and temporal 3x1x1
// halves with and without stride, its 1x1x1/2 downsample; the audio ResNet-18's 7x7/2 stem, 3x3, 3x3/2 and
// 1x1/2 downsample; grouped convolutions in 2-D and 3-D; a dilated 1-D one), and nn::LSTM on the GPU
// (2 layers, bidirectional, batch_first, including the W3 size) against cuDNN's RNN loaded with the same
// weights: the output, the input gradient and every weight gradient.
//
// Tolerances.
//   Convolutions, float32 on both sides (our kernels; cuDNN with CUDNN_FMA_MATH and a GEMM-like
//   algorithm): the same sums in different orders, as in test_cuda_layers.cpp and test_cuda_gemm.cpp.
//   Inputs uniform in [-2, 2] and upstream gradients N(0, 1); each rounding error is about 6e-8 of the
//   running sum, so the results drift apart by about 1e-7 per term. Allowed: 1e-6 per term of the
//   reduction plus 1e-5 relative, ten times that; a wrong index, tap or group errs by a whole term
//   (> 0.1). The reductions: forward C_in/G x kernel volume; data gradient C_out/G x kernel volume;
//   weight gradient batch x output positions.
//   TF32 (cuDNN's tensor-op path against its own float32 result, to check the benchmark's second column):
//   inputs rounded to 11 significant bits, each product off by about 4e-4 of its size, the sum by about
//   4e-4 x 1.2 sqrt(K); allowed 5e-3 sqrt(K), as test_cuda_gemm.cpp allows its TF32 kernel.
//   LSTM: T steps of float32 GEMMs and sigmoid/tanh chained through the recurrence, on both sides
//   (cuDNN with CUDNN_FMA_MATH), the gradients summed over B x T rows: 1e-4 absolute and relative, as
//   test_cuda_layers.cpp allows our LSTM against the CPU. A swapped gate, direction or layer, or a
//   transposed block, errs by the size of the values themselves (> 1e-2).
#include <cmath>
#include <string>
#include <vector>

#include "cuda/cudnn/oracle.h"
#include "cuda/kernels.h"
#include "layers/lstm.h"
#include "tests/cuda/cuda_test_helpers.h"

using namespace minidl;
using namespace minidl::cuda_test;

// Every test needs a GPU and a working cuDNN; each skips itself, saying why, where either is missing.
#define REQUIRE_CUDNN()              \
  REQUIRE_GPU();                     \
  if (!::minidl::cudnn::available()) \
  GTEST_SKIP() << "cuDNN cannot create a handle on this machine: this test needs cuDNN"

namespace {

// The W2 convolutions at a fraction of their batch, width and size, and the grouped and dilated kinds.
std::vector<ConvCase> w2_cases() {
  return {
      {"R(2+1)D stem 1x7x7/2", {2, 3, 4, 28, 28}, {11, 3, 1, 7, 7}, {1, 2, 2}, {0, 3, 3}, {1}, 1},
      {"R(2+1)D stem temporal 3x1x1", {2, 11, 4, 14, 14}, {16, 11, 3, 1, 1}, {1}, {1, 0, 0}, {1}, 1},
      {"R(2+1)D spatial 1x3x3", {2, 16, 4, 14, 14}, {36, 16, 1, 3, 3}, {1}, {0, 1, 1}, {1}, 1},
      {"R(2+1)D spatial 1x3x3 stride (1,2,2)", {2, 16, 4, 14, 14}, {23, 16, 1, 3, 3}, {1, 2, 2}, {0, 1, 1}, {1}, 1},
      {"R(2+1)D temporal 3x1x1", {2, 36, 4, 7, 7}, {16, 36, 3, 1, 1}, {1}, {1, 0, 0}, {1}, 1},
      {"R(2+1)D temporal 3x1x1 stride (2,1,1)", {2, 23, 4, 7, 7}, {32, 23, 3, 1, 1}, {2, 1, 1}, {1, 0, 0}, {1}, 1},
      {"R(2+1)D downsample 1x1x1/2", {2, 16, 4, 14, 14}, {32, 16, 1, 1, 1}, {2}, {0}, {1}, 1},
      {"audio stem 7x7/2", {2, 1, 64, 27}, {16, 1, 7, 7}, {2}, {3}, {1}, 1},
      {"audio 3x3", {2, 16, 16, 14}, {16, 16, 3, 3}, {1}, {1}, {1}, 1},
      {"audio 3x3 stride 2", {2, 16, 16, 14}, {32, 16, 3, 3}, {2}, {1}, {1}, 1},
      {"audio downsample 1x1/2", {2, 16, 16, 14}, {32, 16, 1, 1}, {2}, {0}, {1}, 1},
      {"2-D grouped 3x3", {2, 12, 9, 9}, {12, 4, 3, 3}, {1}, {1}, {1}, 3},
      {"3-D grouped 3x3x3", {2, 8, 4, 6, 6}, {8, 2, 3, 3, 3}, {1}, {1}, {1}, 4},
      {"1-D dilated", {2, 8, 40}, {8, 8, 5}, {1}, {8}, {4}, 1},
  };
}

int64_t product(const Shape& s, size_t from) {
  int64_t p = 1;
  for (size_t i = from; i < s.size(); ++i) p *= s[i];
  return p;
}

Tensor empty_like_on_gpu(const Shape& shape) { return Tensor::empty(shape, kFloat32, kGpu); }

}  // namespace

TEST(CudnnOracle, ConvAllPassesOnTheW2Shapes) {
  REQUIRE_CUDNN();
  // Restored on every way out, a failed ASSERT included, so later tests keep the default choice.
  struct RestoreChoice {
    cudnn::AlgoChoice before = cudnn::algo_choice();
    ~RestoreChoice() { cudnn::set_algo_choice(before); }
  } restore;
  cudnn::set_algo_choice(cudnn::AlgoChoice::Accurate);
  Generator gen(11);
  for (const ConvCase& c : w2_cases()) {
    SCOPED_TRACE(c.name);
    const ConvShape s = cudnn::conv_shape(c.x, c.w, c.stride, c.padding, c.dilation, c.groups);
    Tensor x = rand(c.x, {.device = kGpu}, &gen, -2, 2).detach(), w = rand(c.w, {.device = kGpu}, &gen, -2, 2).detach();
    x.requires_grad_();
    w.requires_grad_();
    // Ours: the public op, forward and backward, on the GPU.
    const Tensor y = conv(x, w, Tensor(), c.stride, c.padding, c.dilation, c.groups);
    ASSERT_TRUE(y.device().is_cuda());
    const Tensor gy = randn(y.shape(), {.device = kGpu}, &gen);
    y.backward(gy);
    // cuDNN, float32 math, on the same tensors.
    const Tensor y_ref = empty_like_on_gpu(y.shape()), gx_ref = empty_like_on_gpu(c.x), gw_ref = empty_like_on_gpu(c.w);
    cudnn::conv_forward(x.detach(), w.detach(), s, y_ref, /*tf32=*/false);
    cudnn::conv_backward_data(w.detach(), gy, s, gx_ref, false);
    cudnn::conv_backward_filter(x.detach(), gy, s, gw_ref, false);
    const int64_t kernel = product(c.w, 2);
    const Tolerance fwd = float_sums(c.w[1] * kernel), data = float_sums(c.w[0] / c.groups * kernel),
                    filter = float_sums(c.x[0] * product(y.shape(), 2));
    SCOPED_TRACE("cuDNN forward " + cudnn::conv_algorithm(cudnn::ConvPass::Forward, s, false) + "; data " +
                 cudnn::conv_algorithm(cudnn::ConvPass::BackwardData, s, false) + "; filter " +
                 cudnn::conv_algorithm(cudnn::ConvPass::BackwardFilter, s, false));
    EXPECT_CLOSE(y, y_ref, fwd.atol, fwd.rtol);
    ASSERT_TRUE(x.grad().defined() && w.grad().defined());
    EXPECT_CLOSE(x.grad(), gx_ref, data.atol, data.rtol);
    EXPECT_CLOSE(w.grad(), gw_ref, filter.atol, filter.rtol);
  }
}

TEST(CudnnOracle, ConvShapeMatchesTheOp) {
  // Host code only (runs without a GPU): the geometry helper gives the op's output sizes, so the oracle
  // and the op describe the same problem.
  for (const ConvCase& c : w2_cases()) {
    SCOPED_TRACE(c.name);
    const ConvShape s = cudnn::conv_shape(c.x, c.w, c.stride, c.padding, c.dilation, c.groups);
    EXPECT_EQ(s.batch, c.x[0]);
    EXPECT_EQ(s.in_channels, c.x[1]);
    EXPECT_EQ(s.out_channels, c.w[0]);
    EXPECT_EQ(s.groups, c.groups);
    const Tensor x = zeros(c.x), w = zeros(c.w);
    const Shape out = conv(x, w, Tensor(), c.stride, c.padding, c.dilation, c.groups).shape();
    const size_t rank = c.x.size() - 2, lead = 3 - rank;
    for (size_t d = 0; d < rank; ++d) EXPECT_EQ(s.out[lead + d], out[2 + d]) << "spatial dim " << d;
    for (size_t d = 0; d < lead; ++d) EXPECT_EQ(s.out[d], 1);
  }
}

TEST(CudnnOracle, AvailabilityIsAnAnswerNotAnError) {
  // Without a GPU (or with a cuDNN that cannot start) available() says false instead of throwing.
  bool answer = false;
  EXPECT_NO_THROW(answer = cudnn::available());
  if (!have_gpu()) {
    EXPECT_FALSE(answer);
  }
  EXPECT_FALSE(cudnn::version().empty());
}

TEST(CudnnOracle, ConvTf32IsCloseToFloat32) {
  REQUIRE_CUDNN();
  const ConvCase c{"audio 3x3 stride 2", {4, 32, 16, 14}, {64, 32, 3, 3}, {2}, {1}, {1}, 1};
  const ConvShape s = cudnn::conv_shape(c.x, c.w, c.stride, c.padding, c.dilation, c.groups);
  Generator gen(12);
  const Tensor x = rand(c.x, {.device = kGpu}, &gen, -2, 2), w = rand(c.w, {.device = kGpu}, &gen, -2, 2);
  const Shape yshape{c.x[0], c.w[0], s.out[1], s.out[2]};
  const Tensor gy = randn(yshape, {.device = kGpu}, &gen);
  Tensor r32[3], r19[3];
  for (int tf32 = 0; tf32 < 2; ++tf32) {
    Tensor* r = tf32 ? r19 : r32;
    r[0] = empty_like_on_gpu(yshape);
    r[1] = empty_like_on_gpu(c.x);
    r[2] = empty_like_on_gpu(c.w);
    cudnn::conv_forward(x, w, s, r[0], tf32 == 1);
    cudnn::conv_backward_data(w, gy, s, r[1], tf32 == 1);
    cudnn::conv_backward_filter(x, gy, s, r[2], tf32 == 1);
  }
  const int64_t terms[3] = {c.w[1] * 9, c.w[0] * 9, c.x[0] * s.out[1] * s.out[2]};
  const char* what[3] = {"forward", "backward data", "backward filter"};
  const cudnn::ConvPass pass[3] = {cudnn::ConvPass::Forward, cudnn::ConvPass::BackwardData,
                                   cudnn::ConvPass::BackwardFilter};
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(std::string(what[i]) + ": " + cudnn::conv_algorithm(pass[i], s, true));
    EXPECT_CLOSE(r19[i], r32[i], 5e-3 * std::sqrt(static_cast<double>(terms[i])), 0);
  }
}

TEST(CudnnOracle, ConvRejectsTensorsThatDoNotFit) {
  REQUIRE_CUDNN();
  const ConvShape s = cudnn::conv_shape({2, 4, 8, 8}, {6, 4, 3, 3}, {1}, {1});
  const Tensor x = zeros({2, 4, 8, 8}, {.device = kGpu}), w = zeros({6, 4, 3, 3}, {.device = kGpu});
  EXPECT_THROW(cudnn::conv_forward(x, w, s, empty_like_on_gpu({2, 6, 7, 8}), false), Error);
  EXPECT_THROW(cudnn::conv_forward(x.to(Device::cpu()), w, s, empty_like_on_gpu({2, 6, 8, 8}), false), Error);
  EXPECT_THROW(cudnn::conv_forward(x.permute({0, 1, 3, 2}), w, s, empty_like_on_gpu({2, 6, 8, 8}), false), Error);
}

namespace {

struct LstmCase {
  const char* name;
  int64_t input, hidden, layers;
  bool bidirectional;
  int64_t B, T;
};

void compare_lstm(const LstmCase& c) {
  SCOPED_TRACE(c.name);
  // The 1e-4 tolerances are for float32 FMA on both sides: our GEMMs are pinned to the SIMT kernel
  // whatever MINIDL_GEMM says, and put back after.
  const GemmPathScope simt(cuda::GemmPath::Simt);
  Generator gen(21);
  nn::LSTM lstm(c.input, c.hidden, {.num_layers = c.layers, .bidirectional = c.bidirectional, .batch_first = true},
                &gen);
  lstm.to(kGpu);
  const int64_t D = c.bidirectional ? 2 : 1;
  Generator data(22);
  Tensor x = randn({c.B, c.T, c.input}, {.device = kGpu}, &data).detach();
  x.requires_grad_();
  const Tensor up = randn({c.B, c.T, D * c.hidden}, {.device = kGpu}, &data);

  const Tensor out = lstm(x).output;
  out.backward(up);

  cudnn::Lstm oracle(c.input, c.hidden, c.layers, c.bidirectional, c.B, c.T);
  oracle.load(lstm);
  const Tensor y = oracle.forward(x.detach(), /*training=*/true);
  oracle.backward(y, up);

  const nn::NamedTensors params = lstm.named_parameters();
  ASSERT_EQ(params.size(), oracle.parameter_names().size());
  for (const auto& [name, p] : params) {
    SCOPED_TRACE(name);
    // What load wrote is the parameter, bit for bit, read back through the same slots.
    const std::string bits = compare_bits(oracle.weight(name), p.detach());
    EXPECT_TRUE(bits.empty()) << "weight space: " << bits;
  }
  EXPECT_CLOSE(out, y, 1e-4, 1e-4);
  ASSERT_TRUE(x.grad().defined());
  EXPECT_CLOSE(x.grad(), oracle.dx(), 1e-4, 1e-4);
  for (const auto& [name, p] : params) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(p.grad().defined());
    EXPECT_CLOSE(p.grad(), oracle.grad(name), 1e-4, 1e-4);
  }
}

}  // namespace

TEST(CudnnOracle, LstmTwoLayersBidirectionalOddSizes) {
  REQUIRE_CUDNN();
  compare_lstm({"in 13, hidden 9, 2 layers, bidirectional, B 3, T 7", 13, 9, 2, true, 3, 7});
}

TEST(CudnnOracle, LstmOneLayerUnidirectional) {
  REQUIRE_CUDNN();
  compare_lstm({"in 5, hidden 6, 1 layer, B 2, T 5", 5, 6, 1, false, 2, 5});
}

TEST(CudnnOracle, LstmW3Size) {
  REQUIRE_CUDNN();
  compare_lstm({"W3: in 512, hidden 256, 2 layers, bidirectional, B 64, T 16", 512, 256, 2, true, 64, 16});
}

TEST(CudnnOracle, LstmRejectsMisuse) {
  REQUIRE_CUDNN();
  cudnn::Lstm oracle(4, 3, 1, true, 2, 5);
  const Tensor x = zeros({2, 5, 4}, {.device = kGpu}), dy = zeros({2, 5, 6}, {.device = kGpu});
  EXPECT_THROW(oracle.backward(x, dy), Error);  // no forward yet
  EXPECT_THROW(oracle.dx(), Error);
  EXPECT_THROW(oracle.grad("weight_ih_l0"), Error);
  EXPECT_THROW(oracle.weight("weight_ih_l1"), Error);  // one layer only
  EXPECT_THROW(oracle.forward(zeros({2, 5, 3}, {.device = kGpu})), Error);
  nn::NamedTensors partial{{"weight_ih_l0", zeros({12, 4})}};
  EXPECT_THROW(oracle.load(partial), Error);
  const Tensor y = oracle.forward(x);
  EXPECT_THROW(oracle.backward(oracle.forward(x), dy.narrow(1, 0, 4)), Error);  // dy of the wrong shape
  EXPECT_THROW(oracle.backward(y, dy), Error);                                  // y is not the last forward's
}
