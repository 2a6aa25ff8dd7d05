// CUDA layer kernels against the CPU: convolution (cuda/conv.cu) in 1-D, 2-D and 3-D with strides,
// padding, dilation and groups, forward and both gradients, on both paths (SIMT float32, and TF32 tensor
// cores, which must also be exact on small integers and round both operands to nearest); the fused
// LSTM (cuda/lstm.cu) as one layer, as both directions in one op, and as a 2-layer bidirectional module
// (output, final states and every gradient) with learned initial states, and with inter-layer dropout in
// training; the fused optimiser updates (cuda/optim.cu) and clipping by global norm.
//
// Tolerances. Convolutions are float32 sums on both sides in different orders, as the GEMMs are (see
// test_cuda_gemm.cpp): 1e-6 per term of the longest reduction plus 1e-5 relative; on TF32 tensor cores,
// tf32_sums (cuda_test_helpers.h). For the weight gradient the reduction runs over batch x output
// positions, which the tolerance counts. The LSTM chains T steps of those GEMMs and transcendental
// functions through a recurrence: 1e-4 absolute and relative, far below the size of any wrong index or
// gate. The optimisers apply the same update functor on both sides; CUDA computes exp/sqrt to within an
// ulp of glibc, so after a few steps parameters agree to 1e-6 relative.
#include <algorithm>
#include <memory>

#include "cuda/kernels.h"
#include "cuda/runtime.h"
#include "layers/lstm.h"
#include "models/emotion_model.h"
#include "optim/optimizer.h"
#include "tests/cuda/cuda_test_helpers.h"

using namespace minidl;
using namespace minidl::cuda_test;

namespace {

// Every rank, stride, padding, dilation, groups and bias the model and its variants use, with tile edges
// cut on every side; forward and both gradients against the CPU, within `sums(terms)`.
void compare_conv_geometries(Tolerance (*sums)(int64_t)) {
  const std::vector<ConvCase> cases = {
      {"1-D causal-like", {3, 5, 33}, {7, 5, 5}, {1}, {4}, {1}, 1, true},
      {"1-D dilated", {2, 8, 40}, {8, 8, 5}, {1}, {8}, {4}, 1, true},
      {"1-D reaching 1201 positions", {1, 2, 1300}, {3, 2, 3}, {1}, {0}, {600}, 1, false},
      {"2-D stem 7x7/2", {2, 1, 64, 52}, {16, 1, 7, 7}, {2}, {3}, {1}, 1, false},
      {"2-D 3x3 pad 1", {2, 16, 17, 13}, {33, 16, 3, 3}, {1}, {1}, {1}, 1, true},
      {"2-D 1x1 stride 2 (downsample)", {2, 16, 15, 15}, {32, 16, 1, 1}, {2}, {0}, {1}, 1, false},
      {"2-D grouped", {2, 12, 9, 9}, {12, 4, 3, 3}, {1}, {1}, {1}, 3, true},
      {"2-D depthwise, stride 2", {1, 8, 11, 11}, {8, 1, 3, 3}, {2}, {1}, {1}, 8, false},
      {"2-D stride 3, dilation 2 (uneven phases)", {2, 3, 4, 11}, {5, 3, 2, 3}, {3}, {2}, {2}, 1, true},
      {"2-D stride 3, an input shorter than it", {1, 2, 2, 9}, {3, 2, 1, 3}, {3}, {0}, {1}, 1, false},
      {"3-D stride 2, eight phases in one launch", {2, 4, 5, 6, 7}, {6, 4, 3, 3, 3}, {2}, {1}, {1}, 1, true},
      {"3-D (2+1)D spatial 1x3x3", {2, 8, 4, 14, 14}, {18, 8, 1, 3, 3}, {1, 2, 2}, {0, 1, 1}, {1}, 1, false},
      {"3-D (2+1)D temporal 3x1x1", {2, 18, 4, 7, 7}, {16, 18, 3, 1, 1}, {2, 1, 1}, {1, 0, 0}, {1}, 1, false},
      {"3-D stem 1x7x7", {1, 3, 4, 28, 28}, {9, 3, 1, 7, 7}, {1, 2, 2}, {0, 3, 3}, {1}, 1, false},
      // Groups with dilation: each group's taps skip inputs, and a slip between groups or taps shows.
      {"1-D grouped, dilation 3", {2, 6, 23}, {9, 2, 3}, {1}, {3}, {3}, 3, true},
      {"2-D grouped, dilation 2, stride 2", {2, 8, 9, 10}, {4, 4, 3, 3}, {2}, {2}, {2}, 2, true},
      {"3-D dilated", {1, 3, 5, 6, 6}, {4, 3, 2, 3, 3}, {1}, {1, 2, 2}, {2, 2, 2}, 1, true},
      {"3-D grouped, stride 1x2x2", {2, 6, 3, 5, 5}, {6, 3, 3, 3, 3}, {1, 2, 2}, {1}, {1}, 2, false},
      {"3-D grouped and dilated", {1, 4, 5, 5, 5}, {6, 2, 2, 2, 2}, {1}, {1, 0, 1}, {3, 2, 1}, 2, true},
  };
  for (const ConvCase& c : cases) {
    int64_t k = 1, out_positions = c.x[0];
    for (size_t d = 1; d < c.w.size(); ++d) k *= c.w[d];
    for (size_t d = 2; d < c.x.size(); ++d) out_positions *= c.x[d];
    std::vector<Input> in{{c.x}, {c.w}};
    if (c.bias) in.push_back({{c.w[0]}});
    const int64_t longest = std::max(k * 2, out_positions);  // data grad sums C_out/G * kernel terms
    compare_op(
        c.name,
        [&](const std::vector<Tensor>& v) {
          return conv(v[0], v[1], c.bias ? v[2] : Tensor(), c.stride, c.padding, c.dilation, c.groups);
        },
        in, sums(k), sums(longest));
  }
}

}  // namespace

TEST(CudaConv, EveryRankStrideDilationAndGroups) {
  REQUIRE_GPU();
  const ConvPathScope simt(cuda::GemmPath::Simt);
  compare_conv_geometries(float_sums);
}

TEST(CudaConv, Tf32EveryRankStrideDilationAndGroups) {
  REQUIRE_GPU();
  const ConvPathScope tf32(cuda::GemmPath::Tf32);
  compare_conv_geometries(tf32_sums);
}

// The 128 x 128 tile on the same shapes, where it is mostly partial (their GEMMs have at most 33 rows):
// every edge of the larger tile is cut.
TEST(CudaConv, LargeTileEveryRankStrideDilationAndGroups) {
  REQUIRE_GPU();
  const ConvTileScope large(cuda::ConvTile::Large);
  {
    const ConvPathScope simt(cuda::GemmPath::Simt);
    compare_conv_geometries(float_sums);
  }
  const ConvPathScope tf32(cuda::GemmPath::Tf32);
  compare_conv_geometries(tf32_sums);
}

// Each output of the forward pass and of the data gradient sums its products in the same order in
// either tile (slice after slice, and within a slice in k order or in the mma's k-steps), so the two
// tiles must agree to the bit on any input, on both paths. The weight gradient's segments depend on
// the tile, so it is left to the comparisons with the CPU.
TEST(CudaConv, BothTilesGiveTheSameBitsForwardAndDataGradient) {
  REQUIRE_GPU();
  const std::vector<ConvCase> cases = {
      {"2-D 3x3 pad 1, 96 channels", {2, 96, 6, 11}, {96, 96, 3, 3}, {1}, {1}, {1}, 1, true},
      {"3-D (2+1)D spatial 1x3x3 stride 2", {2, 8, 4, 14, 14}, {70, 8, 1, 3, 3}, {1, 2, 2}, {0, 1, 1}, {1}, 1, false},
      {"2-D grouped, dilation 2, stride 2", {2, 8, 9, 10}, {4, 4, 3, 3}, {2}, {2}, {2}, 2, false},
  };
  Generator gen(12);
  for (const auto path : {cuda::GemmPath::Simt, cuda::GemmPath::Tf32}) {
    const ConvPathScope scope(path);
    for (const ConvCase& c : cases) {
      SCOPED_TRACE(std::string(c.name) + (path == cuda::GemmPath::Tf32 ? ", tf32" : ", simt"));
      const Tensor x = randn(c.x, {.device = kGpu}, &gen), w = randn(c.w, {.device = kGpu}, &gen);
      const Tensor b = c.bias ? randn({c.w[0]}, {.device = kGpu}, &gen) : Tensor();
      std::vector<std::vector<float>> y, gx;
      for (const auto tile : {cuda::ConvTile::Small, cuda::ConvTile::Large}) {
        const ConvTileScope tile_scope(tile);
        const Tensor xg = x.detach().requires_grad_();
        const Tensor out = conv(xg, w, b, c.stride, c.padding, c.dilation, c.groups);
        out.backward(ones(out.shape(), {.device = kGpu}));
        y.push_back(out.values<float>());
        gx.push_back(xg.grad().values<float>());
      }
      EXPECT_EQ(y[0], y[1]) << "forward";
      EXPECT_EQ(gx[0], gx[1]) << "input gradient";
    }
  }
}

// Small integers are exact in TF32 and so are their products and sums in float32, so on the tensor
// cores too the three passes must give the CPU's bits: any element taken from the wrong lane of an
// mma fragment, or a tile put back in the wrong place, shows as an exact mismatch rather than hiding in
// a tolerance. Both tiles (64 x 64 and 128 x 128): two of the shapes cut tiles at every edge; the 64-
// and 128-channel ones fill whole small and large tiles, and the 96-channel one half of a large one.
TEST(CudaConv, Tf32IsExactOnSmallIntegers) {
  REQUIRE_GPU();
  const ConvPathScope tf32(cuda::GemmPath::Tf32);
  const std::vector<ConvCase> cases = {
      {"2-D 3x3 pad 1", {2, 16, 17, 13}, {33, 16, 3, 3}, {1}, {1}, {1}, 1, false},
      {"2-D 1x1, whole small tiles", {1, 64, 8, 16}, {64, 64, 1, 1}, {1}, {0}, {1}, 1, false},
      {"2-D 1x1, whole large tiles", {1, 128, 8, 16}, {128, 128, 1, 1}, {1}, {0}, {1}, 1, false},
      {"2-D 3x3, 96 channels", {2, 96, 6, 11}, {96, 96, 3, 3}, {1}, {1}, {1}, 1, false},
      {"3-D 3x1x1 stride 2, grouped", {2, 6, 5, 3, 3}, {9, 2, 3, 1, 1}, {2, 1, 1}, {1, 0, 0}, {1}, 3, false},
  };
  Generator gen(11);
  for (const auto& [tile, tile_name] :
       {std::pair{cuda::ConvTile::Small, "64 x 64"}, std::pair{cuda::ConvTile::Large, "128 x 128"}}) {
    const ConvTileScope scope(tile);
    for (const ConvCase& c : cases) {
      SCOPED_TRACE(std::string(c.name) + ", tile " + tile_name);
      auto integers = [&](const Shape& shape) {
        std::vector<double> v = rand(shape, {}, &gen, -3, 3).values<double>();
        for (double& e : v) e = std::floor(e);
        return from_vector(v, shape, {.dtype = kFloat32});
      };
      Tensor x = integers(c.x), w = integers(c.w);
      Tensor xg = x.to(kGpu).requires_grad_(), wg = w.to(kGpu).requires_grad_();
      x.requires_grad_(), w.requires_grad_();
      const Tensor y = conv(x, w, Tensor(), c.stride, c.padding, c.dilation, c.groups);
      const Tensor yg = conv(xg, wg, Tensor(), c.stride, c.padding, c.dilation, c.groups);
      const Tensor up = integers(y.shape());
      y.backward(up);
      yg.backward(up.to(kGpu));
      EXPECT_EQ(compare_bits(yg, y), "") << "forward";
      EXPECT_EQ(compare_bits(xg.grad(), x.grad()), "") << "input gradient";
      EXPECT_EQ(compare_bits(wg.grad(), w.grad()), "") << "weight gradient";
    }
  }
}

// Each pass rounds both of its operands to the nearest TF32 value (the tensor cores alone would drop
// the low bits). v = 1 + 3 x 2^-12 is three quarters of a TF32 step above 1, so it rounds to
// r = 1 + 2^-10 and truncates to 1. A 1 x 1 convolution of one channel at one position, with x = w = v
// and an upstream gradient of v, makes every pass a single product of two such values: y = r^2 and
// both gradients r^2 exactly (float32 holds r^2 = 1 + 2^-9 + 2^-20), where an unrounded operand gives r
// or 1.
TEST(CudaConv, Tf32RoundsBothOperandsOfEveryPass) {
  REQUIRE_GPU();
  const ConvPathScope tf32(cuda::GemmPath::Tf32);
  const double v = 1.0 + 3.0 / 4096.0, r = 1.0 + 1.0 / 1024.0;
  Tensor x = full({1, 1, 1}, v).to(kGpu).requires_grad_(), w = full({1, 1, 1}, v).to(kGpu).requires_grad_();
  const Tensor y = conv(x, w, Tensor(), {1}, {0});
  y.backward(full({1, 1, 1}, v).to(kGpu));
  const float want = static_cast<float>(r * r);
  EXPECT_EQ(y.values<float>(), std::vector<float>{want}) << "forward";
  EXPECT_EQ(x.grad().values<float>(), std::vector<float>{want}) << "input gradient";
  EXPECT_EQ(w.grad().values<float>(), std::vector<float>{want}) << "weight gradient";
}

// blockIdx.z holds (phase, group) and may not pass 65535: with 8192 groups a launch takes 7 of the 8
// phases of a 2 x 2 x 2 stride, and a second launch the last one.
TEST(CudaConv, ManyGroupsSplitTheDataGradientsPhasesOverLaunches) {
  REQUIRE_GPU();
  compare_op(
      "depthwise 2x2x2 stride 2 over 8192 channels",
      [](const std::vector<Tensor>& v) { return conv(v[0], v[1], Tensor(), {2}, {0}, {1}, 8192); },
      {{{1, 8192, 2, 2, 3}}, {{8192, 1, 2, 2, 2}}}, float_sums(8), float_sums(8));
}

// The index tables depend on the shapes, not the batch: built on a geometry's first call (three: the
// reduction's, the window corners, the phases), then reused, by another batch size too, and on another
// stream (which waits for the building), with the same bits.
TEST(CudaConv, IndexTablesAreBuiltOncePerGeometryAndReused) {
  REQUIRE_GPU();
  Generator gen(4);
  const Tensor w = randn({7, 5, 3, 2}, {.device = kGpu}, &gen);
  auto run = [&](int64_t batch) {
    Generator data(5);
    Tensor x = randn({batch, 5, 11, 13}, {.device = kGpu}, &data), wt = w.detach();
    x.requires_grad_();
    wt.requires_grad_();
    const Tensor y = conv(x, wt, Tensor(), {2, 1}, {1, 0});
    sum(y * y).backward();
    return std::vector<std::vector<float>>{y.values<float>(), x.grad().values<float>(), wt.grad().values<float>()};
  };
  const cuda::ConvTableStats before = cuda::conv_table_stats();
  const auto first = run(3);
  const cuda::ConvTableStats built = cuda::conv_table_stats();
  EXPECT_EQ(built.tables, before.tables + 3);
  EXPECT_GT(built.bytes, before.bytes);
  EXPECT_EQ(run(3), first);
  run(2);
  {
    const cuda::StreamHandle other = cuda::create_stream(0);
    {
      const cuda::StreamGuard on_other(other, 0);
      EXPECT_EQ(run(3), first);
    }
    cuda::destroy_stream(other, 0);
  }
  EXPECT_EQ(cuda::conv_table_stats().tables, built.tables);
  EXPECT_EQ(cuda::conv_table_stats().bytes, built.bytes);
}

TEST(CudaConv, LongWeightGradientIsSplitAndStaysDeterministic) {
  REQUIRE_GPU();
  // Few output channels, many positions: the weight gradient's reduction is cut into segments.
  compare_op(
      "4 channels over 64 x 64 x 52 positions",
      [](const std::vector<Tensor>& v) { return conv(v[0], v[1], Tensor(), {1}, {1}); },
      {{{64, 1, 64, 52}}, {{4, 1, 3, 3}}}, float_sums(9), float_sums(64 * 64 * 52));
  Generator gen(3);
  Tensor x = randn({64, 1, 64, 52}, {.device = kGpu}, &gen), w = randn({4, 1, 3, 3}, {.device = kGpu}, &gen);
  w.requires_grad_();
  sum(conv(x, w, Tensor(), {1}, {1})).backward();
  const std::vector<float> first = w.grad().values<float>();
  w.zero_grad();
  sum(conv(x, w, Tensor(), {1}, {1})).backward();
  EXPECT_EQ(w.grad().values<float>(), first);
}

TEST(CudaLstm, OneLayerBothDirectionsAllGradients) {
  REQUIRE_GPU();
  const Tolerance tol{1e-4, 1e-4};
  for (bool reverse : {false, true})
    for (int64_t T : {0, 1, 5, 16}) {  // T = 0: the states pass through, w_hh gets zeros
      compare_op(
          std::string(reverse ? "reverse" : "forward") + " T=" + std::to_string(T),
          [&](const std::vector<Tensor>& v) {
            const LstmResult r = lstm_layer(v[0], v[1], v[2], v[3], v[4], v[5], v[6], reverse);
            // Every output reaches the loss, so every gradient path is compared.
            return cat({r.output.flatten(), r.h.flatten() * 2.0, r.c.flatten() * 3.0});
          },
          {{{3, T, 7}}, {{3, 6}}, {{3, 6}}, {{24, 7}, -0.5, 0.5}, {{24, 6}, -0.5, 0.5}, {{24}}, {{24}}}, tol, tol);
    }
}

namespace {

// Two nn::LSTMs built from generators of the same seed (the same weights; in training, the same
// inter-layer dropout masks), one moved to the GPU, in training or evaluation, run on the same x of
// `x_shape` and, when `with_state`, on the same h0 and c0. The loss reads output, h_n and c_n (each
// against its own random upstream gradient), so every path backpropagates. Compares those three, the
// gradients of x, h0 and c0, and every parameter's gradient within the LSTM tolerance. Returns the
// CPU's output.
Tensor compare_lstm_modules(const nn::LSTMOptions& options, int64_t input_size, int64_t hidden, const Shape& x_shape,
                            bool with_state, bool training) {
  const Tolerance tol{1e-4, 1e-4};
  Generator gen_cpu(5), gen_gpu(5);
  nn::LSTM cpu_lstm(input_size, hidden, options, &gen_cpu), gpu_lstm(input_size, hidden, options, &gen_gpu);
  gpu_lstm.to(kGpu);
  cpu_lstm.train(training);
  gpu_lstm.train(training);
  const int64_t B = options.batch_first ? x_shape[0] : x_shape[1];
  const Shape state_shape{options.num_layers * cpu_lstm.directions(), B, hidden};
  Generator data(6);
  std::vector<Tensor> leaves{rand(x_shape, {}, &data, -1, 1)};
  if (with_state)
    leaves.insert(leaves.end(), {rand(state_shape, {}, &data, -1, 1), rand(state_shape, {}, &data, -1, 1)});
  std::vector<Tensor> cpu_in, gpu_in;
  for (const Tensor& t : leaves) {
    cpu_in.push_back(t.detach().clone().requires_grad_());
    gpu_in.push_back(t.to(kGpu).detach().requires_grad_());
  }
  const nn::LSTMOutput oc = with_state ? cpu_lstm(cpu_in[0], cpu_in[1], cpu_in[2]) : cpu_lstm(cpu_in[0]);
  const nn::LSTMOutput og = with_state ? gpu_lstm(gpu_in[0], gpu_in[1], gpu_in[2]) : gpu_lstm(gpu_in[0]);
  EXPECT_TRUE(og.output.device().is_cuda());
  EXPECT_CLOSE(og.output, oc.output, tol.atol, tol.rtol);
  EXPECT_CLOSE(og.h_n, oc.h_n, tol.atol, tol.rtol);
  EXPECT_CLOSE(og.c_n, oc.c_n, tol.atol, tol.rtol);
  const Tensor up = randn(oc.output.shape(), {}, &data), up_h = randn(state_shape, {}, &data),
               up_c = randn(state_shape, {}, &data);
  (sum(oc.output * up) + sum(oc.h_n * up_h) + sum(oc.c_n * up_c)).backward();
  (sum(og.output * up.to(kGpu)) + sum(og.h_n * up_h.to(kGpu)) + sum(og.c_n * up_c.to(kGpu))).backward();
  for (size_t i = 0; i < leaves.size(); ++i) {
    SCOPED_TRACE(std::string("gradient of ") + (i == 0 ? "x" : i == 1 ? "h0" : "c0"));
    EXPECT_CLOSE(gpu_in[i].grad(), cpu_in[i].grad(), tol.atol, tol.rtol);
  }
  const nn::NamedTensors pc = cpu_lstm.named_parameters(), pg = gpu_lstm.named_parameters();
  EXPECT_EQ(pc.size(), pg.size());
  for (size_t i = 0; i < std::min(pc.size(), pg.size()); ++i) {
    SCOPED_TRACE(pc[i].first);
    EXPECT_EQ(pg[i].first, pc[i].first);
    EXPECT_TRUE(pg[i].second.grad().defined());
    if (pg[i].second.grad().defined()) EXPECT_CLOSE(pg[i].second.grad(), pc[i].second.grad(), tol.atol, tol.rtol);
  }
  // Both sides must have drawn the same number of random values (the same masks, not merely close ones).
  EXPECT_EQ(gen_gpu.offset(), gen_cpu.offset());
  return oc.output.detach();
}

}  // namespace

TEST(CudaLstm, BidirectionalTwoLayersWithLearnedInitialState) {
  REQUIRE_GPU();
  compare_lstm_modules({.num_layers = 2, .bidirectional = true, .batch_first = true, .learned_initial_state = true}, 12,
                       8, {4, 16, 12}, false, true);
}

// Dropout between the layers, in training: the masks come from each module's generator (Philox: the same
// on both devices), time-major input, and a given initial state that takes precedence over none.
TEST(CudaLstm, BidirectionalTwoLayersWithInterLayerDropoutInTraining) {
  REQUIRE_GPU();
  const nn::LSTMOptions options{.num_layers = 2, .bidirectional = true, .dropout = 0.4};
  const Tensor trained = compare_lstm_modules(options, 7, 6, {9, 3, 7}, true, true);
  const Tensor evaluated = compare_lstm_modules(options, 7, 6, {9, 3, 7}, true, false);
  // Without this the dropout case could compare two runs that dropped nothing.
  EXPECT_FALSE(compare(trained, evaluated, 1e-3, 0).empty()) << "dropout changed nothing in training";
}

// lstm_bidirectional takes both directions' steps together on the GPU (grouped GEMMs, one pointwise
// launch for both); each direction must get the bits lstm_layer gives it alone on the GPU, forward and
// backward, and the CPU's results within the LSTM tolerance. B = 3 leaves most of a 32 x 32 GEMM tile
// empty, B = 64 (the paper's batch) fills whole tiles. The forward direction has no initial state, the
// reverse one no biases; the loss reads all six outputs.
TEST(CudaLstm, BothDirectionsInOneOpGetTheBitsOfEachAlone) {
  REQUIRE_GPU();
  for (const auto& [B, T, I, H] : {std::array<int64_t, 4>{3, 5, 7, 6}, std::array<int64_t, 4>{64, 4, 32, 64}}) {
    SCOPED_TRACE("B=" + std::to_string(B) + " H=" + std::to_string(H));
    Generator gen(11);
    auto weights = [&](const Shape& s) { return rand(s, {}, &gen, -0.5, 0.5); };
    // x, the reverse direction's h0 and c0, the forward w_ih, w_hh, b_ih, b_hh, the reverse w_ih, w_hh.
    const std::vector<Tensor> leaves{rand({B, T, I}, {}, &gen, -1, 1),
                                     rand({B, H}, {}, &gen, -1, 1),
                                     rand({B, H}, {}, &gen, -1, 1),
                                     weights({4 * H, I}),
                                     weights({4 * H, H}),
                                     weights({4 * H}),
                                     weights({4 * H}),
                                     weights({4 * H, I}),
                                     weights({4 * H, H})};
    const Tensor up_f = randn({B, T, H}, {}, &gen), up_r = randn({B, T, H}, {}, &gen);
    auto run = [&](Device dev, bool together) {
      std::vector<Tensor> in;
      for (const Tensor& t : leaves) in.push_back(t.to(dev).detach().requires_grad_());
      const LstmDirection f{Tensor(), Tensor(), in[3], in[4], in[5], in[6]},
          r{in[1], in[2], in[7], in[8], Tensor(), Tensor()};
      std::array<LstmResult, 2> out;
      if (together)
        out = lstm_bidirectional(in[0], f, r);
      else
        out = {lstm_layer(in[0], f.h0, f.c0, f.w_ih, f.w_hh, f.b_ih, f.b_hh, false),
               lstm_layer(in[0], r.h0, r.c0, r.w_ih, r.w_hh, r.b_ih, r.b_hh, true)};
      (sum(out[0].output * up_f.to(dev)) + sum(out[1].output * up_r.to(dev)) + sum(out[0].h) * 2.0 +
       sum(out[0].c) * 0.5 + sum(out[1].h) * 1.5 + sum(out[1].c) * 3.0)
          .backward();
      std::vector<Tensor> results;
      for (const LstmResult& d : out) results.insert(results.end(), {d.output, d.h, d.c});
      for (const Tensor& t : in) results.push_back(t.grad());
      return results;
    };
    const std::vector<Tensor> together = run(kGpu, true), alone = run(kGpu, false), cpu = run(Device::cpu(), false);
    for (size_t k = 0; k < together.size(); ++k) {
      SCOPED_TRACE("result " + std::to_string(k) + " (6 outputs, then the gradients of the 9 inputs)");
      ASSERT_TRUE(together[k].defined() && alone[k].defined());
      EXPECT_EQ(together[k].values<float>(), alone[k].values<float>());
      EXPECT_CLOSE(together[k], cpu[k], 1e-4, 1e-4);
    }
  }
}

namespace {

// The three optimisers of the CUDA tests, with settings that exercise every term of their rules.
std::unique_ptr<optim::Optimizer> make_optimizer(const std::string& kind, const optim::NamedTensors& params) {
  if (kind == "sgd")
    return std::make_unique<optim::SGD>(params, 0.1,
                                        optim::SgdOptions{.momentum = 0.9, .weight_decay = 0.01, .nesterov = true});
  if (kind == "adam") return std::make_unique<optim::Adam>(params, 0.01, optim::AdamOptions{.weight_decay = 0.01});
  return std::make_unique<optim::AdamW>(params, 0.01, optim::AdamOptions{.weight_decay = 0.1});
}

}  // namespace

TEST(CudaOptim, FusedUpdatesMatchTheCpu) {
  REQUIRE_GPU();
  auto run = [](const std::string& kind, Device device) {
    Generator gen(7);
    Tensor w = randn({33, 7}, {.device = device}, &gen).detach();
    Tensor b = randn({7}, {.device = device}, &gen).detach();
    w.requires_grad_();
    b.requires_grad_();
    const optim::NamedTensors params{{"w", w}, {"b", b}};
    const std::unique_ptr<optim::Optimizer> opt = make_optimizer(kind, params);
    Generator data(8);
    for (int step = 0; step < 4; ++step) {
      const Tensor x = randn({5, 33}, {.device = device}, &data);
      opt->zero_grad();
      sum(tanh(matmul(x, w) + b)).backward();
      optim::clip_grad_norm(params, 0.5);  // always active here: the gradient norm is above 0.5
      opt->step();
    }
    return std::vector<Tensor>{w.detach().to(Device::cpu()), b.detach().to(Device::cpu())};
  };
  for (const std::string kind : {"sgd", "adam", "adamw"}) {
    SCOPED_TRACE(kind);
    const auto c = run(kind, Device::cpu()), g = run(kind, kGpu);
    for (size_t i = 0; i < c.size(); ++i) EXPECT_CLOSE(g[i], c[i], 1e-6, 1e-5);
  }
}

// The CUDA updates run many parameters per launch (24, each block 4096 elements of their concatenation,
// crossing from one tensor into the next). 60 parameters of sizes on both sides of a block's share,
// with empty ones among them, updated three times by one optimiser are compared with the same
// parameters each given an optimiser of its own (one tensor per launch): the same elementwise functor on
// the same device, so the bits must be equal wherever the group and block boundaries fall. Then against
// the CPU with FusedUpdatesMatchTheCpu's tolerance. Clipping: the batched norm of the 60 gradients must
// be the CPU's, and the batched scaling must give exactly grad * float(max_norm / (norm + 1e-6)), the
// product mul_ computes.
TEST(CudaOptim, ManyParametersPerLaunchGiveTheUpdatesOfOneEach) {
  REQUIRE_GPU();
  const std::vector<int64_t> sizes{1, 7, 4095, 4096, 4097, 0, 33, 10000, 3, 8191};
  auto make = [&](Device device) {
    Generator gen(21);
    optim::NamedTensors params;
    for (int i = 0; i < 60; ++i) {
      Tensor p = randn({sizes[i % sizes.size()]}, {}, &gen).to(device).detach();
      p.requires_grad_();
      params.emplace_back(std::to_string(i), p);
    }
    return params;
  };
  auto set_grads = [](const optim::NamedTensors& params, int step) {
    Generator gen(100 + step);
    for (const auto& [name, p] : params) p.set_grad(randn(p.shape(), {}, &gen).to(p.device()));
  };
  for (const std::string kind : {"sgd", "adam", "adamw"}) {
    SCOPED_TRACE(kind);
    const optim::NamedTensors together = make(kGpu), alone = make(kGpu), cpu = make(Device::cpu());
    const auto opt = make_optimizer(kind, together), opt_cpu = make_optimizer(kind, cpu);
    std::vector<std::unique_ptr<optim::Optimizer>> opts_alone;
    for (const auto& np : alone) opts_alone.push_back(make_optimizer(kind, {np}));
    for (int step = 0; step < 3; ++step) {
      for (const auto* params : {&together, &alone, &cpu}) set_grads(*params, step);
      opt->step();
      for (auto& o : opts_alone) o->step();
      opt_cpu->step();
    }
    for (size_t i = 0; i < together.size(); ++i) {
      SCOPED_TRACE(together[i].first);
      ASSERT_EQ(together[i].second.values<float>(), alone[i].second.values<float>());
      EXPECT_CLOSE(together[i].second.detach(), cpu[i].second, 1e-6, 1e-5);
    }
  }
  const optim::NamedTensors params = make(kGpu);
  set_grads(params, 0);
  std::vector<std::vector<float>> before;
  for (const auto& [name, p] : params) before.push_back(p.grad().values<float>());
  const double norm = optim::clip_grad_norm(params, 1.0);
  const optim::NamedTensors cpu = make(Device::cpu());
  set_grads(cpu, 0);
  const double cpu_norm = optim::clip_grad_norm(cpu, 1e9);  // 1e9: measured, not clipped
  EXPECT_NEAR(norm, cpu_norm, 1e-6 * cpu_norm);             // float32 results of double sums in different orders
  const float coef = static_cast<float>(1.0 / (norm + 1e-6));
  for (size_t i = 0; i < params.size(); ++i) {
    std::vector<float> want = before[i];
    for (float& g : want) g = g * coef;
    ASSERT_EQ(params[i].second.grad().values<float>(), want) << params[i].first;
  }
}

TEST(CudaOptim, GlobalNormOfManyTensors) {
  REQUIRE_GPU();
  Generator gen(9);
  optim::NamedTensors cpu, gpu;
  const std::vector<std::string> names{"a", "b", "c", "d", "e"};
  const std::vector<Shape> shapes{{1}, {33, 7}, {1 << 20}, {0}, {4097}};
  for (size_t i = 0; i < shapes.size(); ++i) {
    const Shape& s = shapes[i];
    Tensor p = zeros(s);
    p.requires_grad_();
    p.set_grad(randn(s, {}, &gen));
    Tensor q = p.detach().to(kGpu);
    q.requires_grad_();
    q.set_grad(p.grad().to(kGpu));
    cpu.emplace_back(names[i], p);
    gpu.emplace_back(names[i], q);
  }
  const double nc = optim::clip_grad_norm(cpu, 1e9), ng = optim::clip_grad_norm(gpu, 1e9);
  EXPECT_NEAR(ng, nc, 1e-6 * nc);
}

// The whole tiny model on both devices from the same weights and inputs: every layer's CUDA kernels in
// one forward and backward. Tolerance 1e-3: some thirty layers of float32 sums in different orders, and
// BatchNorm's normalisation divides by batch statistics that amplify those differences.
TEST(CudaModel, TinyModelForwardAndBackwardMatchTheCpu) {
  REQUIRE_GPU();
  models::ModelConfig mc = models::model_preset("tiny");
  Generator g1(11), g2(11);
  models::EmotionModel cpu_model(mc, &g1), gpu_model(mc, &g2);
  gpu_model.to(kGpu);
  Generator data(12);
  const Tensor video = randn({2, mc.clips, 3, mc.frames_per_clip, mc.image_size, mc.image_size}, {}, &data);
  const Tensor audio = randn({2, mc.clips, 1, mc.mel_bins, 48}, {}, &data);
  const Tensor labels = rand({2, mc.clips, 2}, {}, &data, -1, 1);
  for (auto* m : {&cpu_model, &gpu_model}) m->eval();  // no dropout: the same function on both sides
  const Tensor lc = ccc_loss(cpu_model(video, audio), labels);
  const Tensor lg = ccc_loss(gpu_model(video.to(kGpu), audio.to(kGpu)), labels.to(kGpu));
  EXPECT_NEAR(lg.item(), lc.item(), 1e-3);
  lc.backward();
  lg.backward();
  const nn::NamedTensors pc = cpu_model.named_parameters(), pg = gpu_model.named_parameters();
  ASSERT_EQ(pc.size(), pg.size());
  for (size_t i = 0; i < pc.size(); ++i) {
    SCOPED_TRACE(pc[i].first);
    ASSERT_EQ(pc[i].second.grad().defined(), pg[i].second.grad().defined());
    if (pc[i].second.grad().defined()) EXPECT_CLOSE(pg[i].second.grad(), pc[i].second.grad(), 1e-3, 1e-3);
  }
}
