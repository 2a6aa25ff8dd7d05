// CUDA batch norm and layer norm (cuda/norm.cu) against the CPU (cpu/norm.cpp), through the public ops
// batch_norm and layer_norm: outputs, the gradients of x, weight and bias, and the running statistics
// after one training step from the same starting values.
//
// Tolerances. Both sides compute every statistic and sum in double and round each result to float32
// once, with the same expressions (the CUDA build does not contract a * b + c); they differ only in how
// the double sums associate (the GPU folds Welford states per segment and merges them in a fixed tree,
// the CPU runs two passes in one loop), a few 1e-16 relative, which flips a float32 rounding by at most
// an ulp (6e-8). 1e-5 relative leaves room for that difference amplified by 1/std in narrow channels;
// 1e-6 absolute covers the results that cancel to nearly 0 (gx = w r (g - mean g - xhat mean(g xhat)),
// sum g xhat of a constant upstream gradient), whose few 1e-16 absolute have no relative meaning. The
// running statistics are one more rounded blend of float32 values: 1e-6 relative, 1e-7 absolute.
#include "tests/cuda/cuda_test_helpers.h"

using namespace minidl;
using namespace minidl::cuda_test;

namespace {

const Tolerance kNorm{1e-6, 1e-5};
constexpr double kRunAtol = 1e-7, kRunRtol = 1e-6;

enum class Mode { TrainRunning, TrainBare, Eval };  // training with / without running statistics; evaluation

const char* mode_name(Mode m) {
  return m == Mode::TrainRunning ? "training with running statistics" : m == Mode::TrainBare ? "training" : "eval";
}

// batch_norm on x of `shape` (values in [lo, hi]) on both devices, with weight and bias when `affine`.
// The running statistics start from the same values on both sides and are compared after the call.
// `view` turns the leaf into the tensor the op sees (a permute, say); `reduce` the output into what is
// backpropagated (identity: a random upstream gradient; sum: an expanded, stride-0 one).
void check_batch_norm(const std::string& what, const Shape& leaf_shape, Mode mode, bool affine, double lo = -2,
                      double hi = 2, const std::function<Tensor(const Tensor&)>& view = nullptr,
                      const std::function<Tensor(const Tensor&)>& reduce = nullptr, int64_t channel_dim = 1) {
  const std::string name = what + " " + shape_str(leaf_shape) + ", " + mode_name(mode) + (affine ? ", affine" : "");
  SCOPED_TRACE(name);
  const int64_t C = leaf_shape[channel_dim];
  const bool training = mode != Mode::Eval, running = mode != Mode::TrainBare;
  Generator gen(C + 11);
  const Tensor rm0 = rand({C}, {}, &gen, -1, 1), rv0 = rand({C}, {}, &gen, 0.5, 1.5);
  Tensor rm[2], rv[2];  // [0] the CPU's, [1] the GPU's
  const OpFn f = [&](const std::vector<Tensor>& v) {
    const int d = v[0].device().is_cuda() ? 1 : 0;
    rm[d] = d ? rm0.to(kGpu) : rm0.clone();
    rv[d] = d ? rv0.to(kGpu) : rv0.clone();
    const Tensor x = view ? view(v[0]) : v[0];
    const Tensor y = batch_norm(x, affine ? v[1] : Tensor(), affine ? v[2] : Tensor(), running ? rm[d] : Tensor(),
                                running ? rv[d] : Tensor(), training, 0.1, 1e-5);
    return reduce ? reduce(y) : y;
  };
  std::vector<Input> inputs{{leaf_shape, lo, hi}};
  if (affine) {
    inputs.push_back({{C}, 0.5, 1.5});
    inputs.push_back({{C}, -1, 1});
  }
  compare_op(name, f, inputs, kNorm, kNorm);
  if (!running) return;
  ASSERT_TRUE(rm[1].defined() && rm[1].device().is_cuda());
  EXPECT_CLOSE(rm[1], rm[0], kRunAtol, kRunRtol);
  EXPECT_CLOSE(rv[1], rv[0], kRunAtol, kRunRtol);
  if (!training) {  // evaluation reads the running statistics and never writes them
    EXPECT_EQ(compare_bits(rm[1], rm0), "");
    EXPECT_EQ(compare_bits(rv[1], rv0), "");
  }
}

void check_batch_norm_all_modes(const std::string& what, const Shape& shape, double lo = -2, double hi = 2) {
  for (Mode mode : {Mode::TrainRunning, Mode::TrainBare, Mode::Eval})
    for (bool affine : {true, false}) check_batch_norm(what, shape, mode, affine, lo, hi);
}

// layer_norm of x [*, normalized] on both devices, with weight and bias of the normalized shape when
// `affine`; `view` as above.
void check_layer_norm(const std::string& what, const Shape& leaf_shape, const Shape& normalized, bool affine,
                      const std::function<Tensor(const Tensor&)>& view = nullptr) {
  const std::string name =
      what + " " + shape_str(leaf_shape) + " over " + shape_str(normalized) + (affine ? ", affine" : "");
  const OpFn f = [&](const std::vector<Tensor>& v) {
    const Tensor x = view ? view(v[0]) : v[0];
    return layer_norm(x, normalized, affine ? v[1] : Tensor(), affine ? v[2] : Tensor(), 1e-5);
  };
  std::vector<Input> inputs{{leaf_shape}};
  if (affine) {
    inputs.push_back({normalized, 0.5, 1.5});
    inputs.push_back({normalized, -1, 1});
  }
  compare_op(name, f, inputs, kNorm, kNorm);
}

}  // namespace

// ---- batch norm ---------------------------------------------------------------------------------------

TEST(CudaBatchNorm, TwoThreeAndFiveDimsAtOddSizes) {
  REQUIRE_GPU();
  check_batch_norm_all_modes("[B, C]", {7, 33});
  check_batch_norm_all_modes("[B, C]", {33, 7});
  check_batch_norm_all_modes("[B, C, S]", {33, 7, 5});
  check_batch_norm_all_modes("[B, C, S] with B = 1", {1, 7, 33});
  check_batch_norm_all_modes("[B, C, S] with C = 1", {7, 1, 33});
  check_batch_norm_all_modes("[B, C, T, H, W]", {2, 3, 3, 5, 7});
}

TEST(CudaBatchNorm, ManyValuesPerChannelUseTheSegmentedSums) {
  REQUIRE_GPU();
  // 8 channels of 64 * 4 * 28 * 28 = 200704 values: each channel is split over dozens of blocks whose
  // partial states are merged in order.
  for (Mode mode : {Mode::TrainRunning, Mode::Eval})
    check_batch_norm("[B, C, T, H, W]", {64, 8, 4, 28, 28}, mode, true);
  check_batch_norm("[B, C] with a long batch", {100000, 3}, Mode::TrainRunning, true);
}

TEST(CudaBatchNorm, ChannelsWithALargeMeanKeepTheirVariance) {
  REQUIRE_GPU();
  // Values 1000 +- 0.5: E[x^2] - E[x]^2 in float32 would lose every digit of the variance (0.083); the
  // GPU's Welford states in double keep it, on the short and on the segmented path.
  check_batch_norm("mean 1000", {16, 4, 50}, Mode::TrainRunning, true, 999.5, 1000.5);
  check_batch_norm("mean 1000", {16, 4, 50}, Mode::TrainBare, false, 999.5, 1000.5);
  check_batch_norm("mean 1000, segmented", {64, 8, 4, 28, 28}, Mode::TrainRunning, true, 999.5, 1000.5);
}

TEST(CudaBatchNorm, StridedInputsAndBroadcastGradients) {
  REQUIRE_GPU();
  const auto channels_last = [](const Tensor& t) { return t.permute({0, 3, 1, 2}); };  // [B, H, W, C] memory
  const auto total = [](const Tensor& y) { return sum(y); };  // upstream gradient: one value, expanded
  for (Mode mode : {Mode::TrainRunning, Mode::Eval}) {
    check_batch_norm("channels-last", {3, 5, 6, 4}, mode, true, -2, 2, channels_last, nullptr, 3);
    check_batch_norm("sum of", {5, 3, 7}, mode, true, -2, 2, nullptr, total);
    check_batch_norm(
        "a transpose", {7, 33}, mode, false, -2, 2, [](const Tensor& t) { return t.t(); }, nullptr, 0);
  }
}

TEST(CudaBatchNorm, OneValuePerChannelAndEmptyBatchesInEvaluation) {
  REQUIRE_GPU();
  // Evaluation accepts N = 1 (training refuses it) and N = 0; the weight and bias gradients of an empty
  // batch are sums of nothing, 0.
  for (bool affine : {true, false}) {
    check_batch_norm("one sample", {1, 7}, Mode::Eval, affine);
    check_batch_norm("no sample", {0, 3, 4}, Mode::Eval, affine);
    check_batch_norm("no spatial extent", {4, 3, 0}, Mode::Eval, affine);
  }
}

TEST(CudaBatchNorm, SameBitsEveryRun) {
  REQUIRE_GPU();
  Generator gen(21);
  const Tensor x0 = randn({64, 8, 4, 28, 28}, {.device = kGpu}, &gen);
  const Tensor w0 = rand({8}, {.device = kGpu}, &gen, 0.5, 1.5), b0 = rand({8}, {.device = kGpu}, &gen);
  const Tensor up = randn(x0.shape(), {.device = kGpu}, &gen);
  std::vector<Tensor> first;
  for (int run = 0; run < 3; ++run) {
    Tensor x = x0.detach().requires_grad_(), w = w0.detach().requires_grad_(), b = b0.detach().requires_grad_();
    Tensor rm = zeros({8}, {.device = kGpu}), rv = ones({8}, {.device = kGpu});
    const Tensor y = batch_norm(x, w, b, rm, rv, true);
    y.backward(up);
    const std::vector<Tensor> now{y, x.grad(), w.grad(), b.grad(), rm, rv};
    if (run == 0) {
      first = now;
      continue;
    }
    for (size_t i = 0; i < now.size(); ++i) EXPECT_EQ(compare_bits(now[i], first[i]), "") << "result " << i;
  }
}

TEST(CudaBatchNorm, Float64IsRefusedWithAnError) {
  REQUIRE_GPU();
  const Tensor x = rand({4, 3}, {.dtype = kFloat64}).to(kGpu);
  EXPECT_THROW(batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), true), Error);
  EXPECT_THROW(layer_norm(x, {3}), Error);
}

// ---- layer norm ---------------------------------------------------------------------------------------

TEST(CudaLayerNorm, ShortAndLongRowsOverTheLastDims) {
  REQUIRE_GPU();
  for (bool affine : {true, false}) {
    check_layer_norm("short rows (a warp each)", {5, 7}, {7}, affine);
    check_layer_norm("rows of 1024", {9, 1024}, {1024}, affine);
    check_layer_norm("long rows (a block each)", {3, 4097}, {4097}, affine);
    check_layer_norm("the last two dims", {4, 3, 11}, {3, 11}, affine);
    check_layer_norm("the last two dims, long", {2, 3, 2, 700}, {2, 700}, affine);
  }
}

TEST(CudaLayerNorm, ManyRowsSplitTheWeightAndBiasSums) {
  REQUIRE_GPU();
  // gweight and gbias sum over the rows: many rows of few columns are cut into row segments.
  check_layer_norm("many short rows", {4096, 7}, {7}, true);
  check_layer_norm("rows of 33", {8, 125, 33}, {33}, true);
  check_layer_norm("long rows, several segments", {70, 2000}, {2000}, true);
}

TEST(CudaLayerNorm, StridedRowsSingleValuesAndEmptyInputs) {
  REQUIRE_GPU();
  for (bool affine : {true, false}) {
    check_layer_norm("a transpose", {7, 5}, {7}, affine, [](const Tensor& t) { return t.t(); });
    check_layer_norm("a slice", {6, 65}, {33}, affine, [](const Tensor& t) { return t.slice(1, 0, 65, 2); });
    check_layer_norm("one value per row", {33, 1}, {1}, affine);  // var 0: out = bias, gx = 0
    check_layer_norm("no rows", {0, 7}, {7}, affine);
  }
}

TEST(CudaLayerNorm, SameBitsEveryRun) {
  REQUIRE_GPU();
  Generator gen(22);
  const Tensor x0 = randn({512, 4097}, {.device = kGpu}, &gen), w0 = rand({4097}, {.device = kGpu}, &gen);
  const Tensor up = randn(x0.shape(), {.device = kGpu}, &gen);
  std::vector<Tensor> first;
  for (int run = 0; run < 3; ++run) {
    Tensor x = x0.detach().requires_grad_(), w = w0.detach().requires_grad_();
    const Tensor y = layer_norm(x, {4097}, w);
    y.backward(up);
    const std::vector<Tensor> now{y, x.grad(), w.grad()};
    if (run == 0) {
      first = now;
      continue;
    }
    for (size_t i = 0; i < now.size(); ++i) EXPECT_EQ(compare_bits(now[i], first[i]), "") << "result " << i;
  }
}
