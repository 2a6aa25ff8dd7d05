// batch_norm and layer_norm (autograd/ops_norm.cpp, cpu/norm.cpp) and the layers BatchNorm1d/2d/3d and
// LayerNorm (layers/norm.cpp):
//   - forward against naive formulas written here, in double, for 2-D to 5-D inputs, training and
//     evaluation, with and without the affine parameters, and on non-contiguous inputs;
//   - the running statistics after two training steps against the momentum updates computed by hand
//     (unbiased variance), num_batches_tracked, evaluation with the running statistics;
//   - gradcheck (float64 central differences) of both ops w.r.t. x, weight and bias;
//   - bitwise-identical results with 1 and 2 OpenMP threads;
//   - error messages naming the op and the shapes.
//
// Tolerances. The kernels compute in double and round the result to the output type once, so a float32
// output is within one float32 ulp (<= 2^-23 |ref|) of the double reference; float64 outputs agree to
// 1e-12 (a few hundred double roundings at most).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "autograd/minidl.h"
#include "layers/norm.h"
#include "tests/autograd/expect_error.h"
#include "tests/autograd/gradcheck_helpers.h"
#include "tests/cpu/kernel_helpers.h"

namespace minidl {
namespace {

using namespace gradcheck_test;
using kernel_test::OmpThreads;

// Values 2 randn + 3: an offset mean makes the subtraction of the mean matter.
Tensor sample(const Shape& shape, uint64_t seed, DType dtype = kFloat32) {
  Generator gen(seed);
  return randn(shape, {.dtype = dtype}, &gen, 3.0, 2.0);
}

std::vector<double> vals(const Tensor& t) { return t.values<double>(); }

// Every element within tol(ref) of the reference; reports the first one that is not.
void expect_close(const std::vector<double>& got, const std::vector<double>& ref, DType dtype, const char* what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    const double tol = dtype == kFloat32 ? std::ldexp(std::fabs(ref[i]), -23) + 1e-30 : 1e-12 * (1 + std::fabs(ref[i]));
    ASSERT_NEAR(got[i], ref[i], tol) << what << " element " << i;
  }
}

struct ChannelStats {
  std::vector<double> mean, var_biased, var_unbiased;
};

// Per-channel statistics of x [B, C, *], two passes in double.
ChannelStats channel_stats(const std::vector<double>& x, const Shape& shape) {
  const int64_t B = shape[0], C = shape[1], S = numel_of(Shape(shape.begin() + 2, shape.end())), N = B * S;
  ChannelStats st;
  for (int64_t c = 0; c < C; ++c) {
    double sum = 0, ss = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t s = 0; s < S; ++s) sum += x[(b * C + c) * S + s];
    const double m = sum / N;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t s = 0; s < S; ++s) ss += (x[(b * C + c) * S + s] - m) * (x[(b * C + c) * S + s] - m);
    st.mean.push_back(m);
    st.var_biased.push_back(ss / N);
    st.var_unbiased.push_back(ss / (N - 1));
  }
  return st;
}

// y = (x - mean) / sqrt(var + eps) * w + b per channel; empty w / b mean 1 / 0.
std::vector<double> naive_batch_norm(const std::vector<double>& x, const Shape& shape, const std::vector<double>& mean,
                                     const std::vector<double>& var, const std::vector<double>& w,
                                     const std::vector<double>& b, double eps) {
  const int64_t C = shape[1], S = numel_of(Shape(shape.begin() + 2, shape.end()));
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const int64_t c = (static_cast<int64_t>(i) / S) % C;
    y[i] = (x[i] - mean[c]) / std::sqrt(var[c] + eps) * (w.empty() ? 1.0 : w[c]) + (b.empty() ? 0.0 : b[c]);
  }
  return y;
}

const std::vector<Shape> kBatchNormShapes = {{6, 3}, {4, 3, 5}, {2, 3, 4, 5}, {2, 3, 2, 3, 4}};

TEST(BatchNormOp, TrainingMatchesNaiveFormula) {
  for (const DType dt : {kFloat32, kFloat64})
    for (const Shape& shape : kBatchNormShapes)
      for (const bool affine : {true, false}) {
        SCOPED_TRACE(shape_str(shape) + (affine ? " affine " : " plain ") + dtype_name(dt));
        const int64_t C = shape[1];
        const Tensor x = sample(shape, 1, dt);
        const Tensor w = affine ? sample({C}, 2, dt) : Tensor(), b = affine ? sample({C}, 3, dt) : Tensor();
        const Tensor y = batch_norm(x, w, b, Tensor(), Tensor(), /*training=*/true, 0.1, 1e-5);
        ASSERT_EQ(y.shape(), shape);
        const ChannelStats st = channel_stats(vals(x), shape);
        expect_close(vals(y),
                     naive_batch_norm(vals(x), shape, st.mean, st.var_biased, affine ? vals(w) : std::vector<double>{},
                                      affine ? vals(b) : std::vector<double>{}, 1e-5),
                     dt, "output");
      }
}

TEST(BatchNormOp, EvalUsesRunningStatistics) {
  for (const Shape& shape : kBatchNormShapes)
    for (const bool affine : {true, false}) {
      SCOPED_TRACE(shape_str(shape) + (affine ? " affine" : " plain"));
      const int64_t C = shape[1];
      const Tensor x = sample(shape, 4);
      const Tensor w = affine ? sample({C}, 5) : Tensor(), b = affine ? sample({C}, 6) : Tensor();
      Generator gen(7);
      const Tensor rm = randn({C}, {}, &gen), rv = rand({C}, {}, &gen, 0.5, 2.0);
      const std::vector<double> rm0 = vals(rm), rv0 = vals(rv);
      const uint64_t version = rm.impl()->storage->version();
      const Tensor y = batch_norm(x, w, b, rm, rv, /*training=*/false, 0.1, 1e-3);
      expect_close(vals(y),
                   naive_batch_norm(vals(x), shape, rm0, rv0, affine ? vals(w) : std::vector<double>{},
                                    affine ? vals(b) : std::vector<double>{}, 1e-3),
                   kFloat32, "output");
      EXPECT_EQ(vals(rm), rm0);  // evaluation never writes the running statistics
      EXPECT_EQ(vals(rv), rv0);
      EXPECT_EQ(rm.impl()->storage->version(), version);
    }
}

TEST(BatchNormOp, RunningStatisticsFollowTheMomentumUpdate) {
  // Two training steps in float64, by hand: running = (1 - m) running + m stat, unbiased variance.
  const Shape shape{5, 2, 3};
  const double m = 0.25;
  Tensor rm = zeros({2}, {.dtype = kFloat64}), rv = ones({2}, {.dtype = kFloat64});
  std::vector<double> em{0, 0}, ev{1, 1};
  for (uint64_t step = 0; step < 2; ++step) {
    const Tensor x = sample(shape, 10 + step, kFloat64);
    const uint64_t version = rv.impl()->storage->version();
    batch_norm(x, Tensor(), Tensor(), rm, rv, /*training=*/true, m, 1e-5);
    EXPECT_GT(rv.impl()->storage->version(), version) << "the in-place update must bump the storage version";
    const ChannelStats st = channel_stats(vals(x), shape);
    for (int c = 0; c < 2; ++c) {
      em[c] = (1 - m) * em[c] + m * st.mean[c];
      ev[c] = (1 - m) * ev[c] + m * st.var_unbiased[c];
    }
    expect_close(vals(rm), em, kFloat64, "running_mean");
    expect_close(vals(rv), ev, kFloat64, "running_var");
  }
  EXPECT_FALSE(rm.requires_grad());  // the update is not recorded
  EXPECT_EQ(rm.grad_fn(), nullptr);
}

TEST(BatchNormOp, NonContiguousInputGivesTheSameBits) {
  // Channels-last memory ([B, H, W, C] permuted to [B, C, H, W]) is read through its strides; the sums
  // visit the same elements in the same order, so the result is bitwise the contiguous one.
  const Tensor base = sample({3, 4, 5, 6}, 12);
  const Tensor x = base.permute({0, 3, 1, 2});
  ASSERT_FALSE(x.is_contiguous());
  const Tensor w = sample({6}, 13), b = sample({6}, 14);
  EXPECT_EQ(vals(batch_norm(x, w, b, Tensor(), Tensor(), true)),
            vals(batch_norm(x.contiguous(), w, b, Tensor(), Tensor(), true)));
}

TEST(BatchNormOp, BackwardRunsAfterTheRunningStatisticsChanged) {
  // The running statistics are written in place by the forward pass and by later steps; backward reads
  // only its own saved mean and 1/std, so it is not disturbed.
  Tensor x = sample({4, 3, 2}, 15).requires_grad_();
  Tensor rm = zeros({3}), rv = ones({3});
  const Tensor y = batch_norm(x, Tensor(), Tensor(), rm, rv, true);
  batch_norm(sample({4, 3, 2}, 16), Tensor(), Tensor(), rm, rv, true);  // another step
  ASSERT_NO_THROW(sum(mul(y, y)).backward());
  EXPECT_TRUE(x.grad().defined());
}

// ---- gradcheck ----------------------------------------------------------------------------------------
// gradcheck evaluates f many times (twice per input element). In training mode with running statistics,
// each call would move them, and a call in evaluation mode would then see different constants; so the
// training checks pass undefined running statistics, or fresh copies made inside f, which keeps f a pure
// function of its inputs. (The update never affects the output of the call that makes it.)

GradcheckFn bn_train() {
  return [](const Inputs& in) { return batch_norm(in[0], in[1], in[2], Tensor(), Tensor(), true, 0.1, 1e-5); };
}

TEST(BatchNormGradcheck, Training3D) {
  expect_gradcheck(bn_train(), {randn_leaf({3, 2, 4}, 20), randn_leaf({2}, 21), randn_leaf({2}, 22)});
}

TEST(BatchNormGradcheck, Training2DAnd5D) {
  expect_gradcheck(bn_train(), {randn_leaf({5, 3}, 23), randn_leaf({3}, 24), randn_leaf({3}, 25)});
  expect_gradcheck(bn_train(), {randn_leaf({2, 2, 2, 1, 3}, 26), randn_leaf({2}, 27), randn_leaf({2}, 28)});
}

TEST(BatchNormGradcheck, TrainingPermuted4DInput) {
  Generator gen(29);
  Tensor x = randn({2, 3, 2, 3}, kF64, &gen).permute({0, 3, 1, 2});  // [2, 3, 3, 2], not contiguous
  x.requires_grad_();
  expect_gradcheck(bn_train(), {x, randn_leaf({3}, 30), randn_leaf({3}, 31)});
}

TEST(BatchNormGradcheck, TrainingWithFreshRunningStatistics) {
  Generator gen(32);
  const Tensor rm0 = randn({3}, kF64, &gen), rv0 = rand({3}, kF64, &gen, 0.5, 2.0);
  expect_gradcheck(
      [&](const Inputs& in) { return batch_norm(in[0], in[1], in[2], rm0.clone(), rv0.clone(), true, 0.1, 1e-5); },
      {randn_leaf({4, 3, 2}, 33), randn_leaf({3}, 34), randn_leaf({3}, 35)});
}

TEST(BatchNormGradcheck, TrainingWithoutAffine) {
  expect_gradcheck([](const Inputs& in) { return batch_norm(in[0], Tensor(), Tensor(), Tensor(), Tensor(), true); },
                   {randn_leaf({3, 2, 3}, 36)});
}

TEST(BatchNormGradcheck, Eval) {
  Generator gen(37);
  const Tensor rm = randn({3}, kF64, &gen), rv = rand({3}, kF64, &gen, 0.5, 2.0);
  expect_gradcheck([&](const Inputs& in) { return batch_norm(in[0], in[1], in[2], rm, rv, false, 0.1, 1e-5); },
                   {randn_leaf({2, 3, 4}, 38), randn_leaf({3}, 39), randn_leaf({3}, 40)});
  expect_gradcheck([&](const Inputs& in) { return batch_norm(in[0], Tensor(), Tensor(), rm, rv, false); },
                   {randn_leaf({2, 3}, 41)});
}

TEST(BatchNormGradcheck, SubsetsOfInputsRequireGrad) {
  // backward saves and reads only what the requested gradients need (x for dweight or a training dx,
  // the weight for dx); each subset runs through those branches.
  Generator gen(42);
  const Tensor rm = randn({2}, kF64, &gen), rv = rand({2}, kF64, &gen, 0.5, 2.0);
  for (const bool training : {true, false}) {
    const auto f = [&](const Inputs& in) {
      return batch_norm(in[0], in[1], in[2], training ? Tensor() : rm, training ? Tensor() : rv, training);
    };
    SCOPED_TRACE(training ? "training" : "eval");
    expect_gradcheck(f, {randn_leaf({3, 2, 2}, 43), randn_leaf({2}, 44).detach(), randn_leaf({2}, 45).detach()});
    expect_gradcheck(f, {randn_leaf({3, 2, 2}, 43).detach(), randn_leaf({2}, 44), randn_leaf({2}, 45).detach()});
    expect_gradcheck(f, {randn_leaf({3, 2, 2}, 43).detach(), randn_leaf({2}, 44).detach(), randn_leaf({2}, 45)});
  }
  const auto g = [](const Inputs& in) { return layer_norm(in[0], {3}, in[1], in[2]); };
  expect_gradcheck(g, {randn_leaf({2, 3}, 46).detach(), randn_leaf({3}, 47), randn_leaf({3}, 48).detach()});
  expect_gradcheck(g, {randn_leaf({2, 3}, 46).detach(), randn_leaf({3}, 47).detach(), randn_leaf({3}, 48)});
}

TEST(NormBackward, Float32MatchesFloat64) {
  // gradcheck runs the float64 instantiation; the float32 one computes in double too and rounds once,
  // so its gradients agree with the float64 ones to float32 precision.
  const Shape shape{4, 3, 5};
  for (const bool batch : {true, false}) {
    std::vector<std::vector<double>> grads[2];
    for (const DType dt : {kFloat32, kFloat64}) {
      // The same float32 values in both dtypes.
      const auto in = [dt](const Shape& s, uint64_t seed) { return sample(s, seed).to(dt).requires_grad_(); };
      Tensor x = in(shape, 49), w = in({5}, 50), b = in({5}, 51), wb = in({3}, 52);
      const Tensor y = batch ? batch_norm(x, wb, Tensor(), Tensor(), Tensor(), true) : layer_norm(x, {5}, w, b);
      Generator gen(53);
      y.backward(randn(shape, {}, &gen).to(dt));
      grads[dt == kFloat64].push_back(vals(x.grad()));
      grads[dt == kFloat64].push_back(vals(batch ? wb.grad() : w.grad()));
    }
    for (size_t k = 0; k < grads[0].size(); ++k)
      for (size_t i = 0; i < grads[0][k].size(); ++i)
        ASSERT_NEAR(grads[0][k][i], grads[1][k][i], 1e-5 * (1 + std::fabs(grads[1][k][i])))
            << (batch ? "batch_norm" : "layer_norm") << " gradient " << k << " element " << i;
  }
}

GradcheckFn ln(const Shape& normalized) {
  return [normalized](const Inputs& in) { return layer_norm(in[0], normalized, in[1], in[2], 1e-5); };
}

TEST(LayerNormGradcheck, OneTrailingDim) {
  expect_gradcheck(ln({5}), {randn_leaf({3, 5}, 50), randn_leaf({5}, 51), randn_leaf({5}, 52)});
}

TEST(LayerNormGradcheck, TwoTrailingDims) {
  expect_gradcheck(ln({3, 4}), {randn_leaf({2, 3, 4}, 53), randn_leaf({3, 4}, 54), randn_leaf({3, 4}, 55)});
}

TEST(LayerNormGradcheck, NoAffineAndStridedInput) {
  expect_gradcheck([](const Inputs& in) { return layer_norm(in[0], {4}); }, {strided_leaf({3, 4}, 56)});
  expect_gradcheck(ln({3}), {transposed_leaf(4, 3, 57), randn_leaf({3}, 58), randn_leaf({3}, 59)});
}

// ---- layer norm forward -------------------------------------------------------------------------------

std::vector<double> naive_layer_norm(const std::vector<double>& x, int64_t N, const std::vector<double>& w,
                                     const std::vector<double>& b, double eps) {
  std::vector<double> y(x.size());
  for (size_t r = 0; r < x.size() / N; ++r) {
    double sum = 0, ss = 0;
    for (int64_t j = 0; j < N; ++j) sum += x[r * N + j];
    const double m = sum / N;
    for (int64_t j = 0; j < N; ++j) ss += (x[r * N + j] - m) * (x[r * N + j] - m);
    for (int64_t j = 0; j < N; ++j)
      y[r * N + j] = (x[r * N + j] - m) / std::sqrt(ss / N + eps) * (w.empty() ? 1.0 : w[j]) + (b.empty() ? 0.0 : b[j]);
  }
  return y;
}

TEST(LayerNormOp, MatchesNaiveFormula) {
  const std::vector<std::pair<Shape, Shape>> cases = {{{7, 6}, {6}}, {{2, 3, 4, 5}, {4, 5}}, {{8}, {8}}};
  for (const auto& [shape, normalized] : cases)
    for (const bool affine : {true, false}) {
      SCOPED_TRACE(shape_str(shape) + " over " + shape_str(normalized));
      const Tensor x = sample(shape, 60);
      const Tensor w = affine ? sample(normalized, 61) : Tensor(), b = affine ? sample(normalized, 62) : Tensor();
      const Tensor y = layer_norm(x, normalized, w, b, 1e-5);
      ASSERT_EQ(y.shape(), shape);
      expect_close(vals(y),
                   naive_layer_norm(vals(x), numel_of(normalized), affine ? vals(w) : std::vector<double>{},
                                    affine ? vals(b) : std::vector<double>{}, 1e-5),
                   kFloat32, "output");
    }
}

// ---- determinism --------------------------------------------------------------------------------------

// The bytes of every result of a forward and backward pass.
std::vector<std::vector<char>> run_bytes(const std::function<Tensor(const Inputs&)>& f, const Inputs& in) {
  for (const Tensor& t : in) t.zero_grad();
  const Tensor y = f(in);
  Generator gen(70);
  y.backward(randn(y.shape(), {}, &gen));
  std::vector<std::vector<char>> out;
  for (const Tensor& t : {y, in[0].grad(), in[1].grad(), in[2].grad()}) {
    const Tensor c = t.contiguous();
    const char* p = static_cast<const char*>(c.raw_data());
    out.emplace_back(p, p + c.numel() * 4);
  }
  return out;
}

TEST(NormDeterminism, BitwiseSameWithOneAndTwoThreads) {
  // Large enough for the kernels' parallel paths (>= 32768 elements).
  const Inputs bn{leaf(sample({8, 16, 24, 24}, 71)), leaf(sample({16}, 72)), leaf(sample({16}, 73))};
  const auto bn_f = [](const Inputs& in) { return batch_norm(in[0], in[1], in[2], Tensor(), Tensor(), true); };
  const Inputs lnin{leaf(sample({256, 192}, 74)), leaf(sample({192}, 75)), leaf(sample({192}, 76))};
  const auto ln_f = [](const Inputs& in) { return layer_norm(in[0], {192}, in[1], in[2]); };
  for (const auto& [f, in] : {std::pair{std::function<Tensor(const Inputs&)>(bn_f), bn},
                              std::pair{std::function<Tensor(const Inputs&)>(ln_f), lnin}}) {
    std::vector<std::vector<char>> one, two;
    {
      OmpThreads t(1);
      one = run_bytes(f, in);
    }
    {
      OmpThreads t(2);
      two = run_bytes(f, in);
    }
    for (size_t k = 0; k < one.size(); ++k) EXPECT_TRUE(one[k] == two[k]) << "result " << k << " differs";
  }
}

// ---- layers -------------------------------------------------------------------------------------------

TEST(BatchNormModule, NamesInitAndDescription) {
  nn::BatchNorm2d bn(4);
  std::vector<std::string> names;
  for (const auto& [n, t] : bn.state_dict()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}));
  EXPECT_EQ(vals(bn.weight), std::vector<double>(4, 1.0));
  EXPECT_EQ(vals(bn.bias), std::vector<double>(4, 0.0));
  EXPECT_EQ(vals(bn.running_mean), std::vector<double>(4, 0.0));
  EXPECT_EQ(vals(bn.running_var), std::vector<double>(4, 1.0));
  EXPECT_EQ(bn.num_batches_tracked.dtype(), kInt64);
  EXPECT_EQ(bn.num_batches_tracked.dim(), 0);
  EXPECT_EQ(bn.describe(), "BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)");
  EXPECT_EQ(nn::BatchNorm1d(3, 1e-3, std::nullopt, false, false).describe(),
            "BatchNorm1d(3, eps=0.001, momentum=None, affine=False, track_running_stats=False)");
  EXPECT_EQ(nn::BatchNorm3d(2).type_name(), "BatchNorm3d");
  EXPECT_EQ(nn::BatchNorm1d(3, 1e-5, 0.1, false).parameter_count(), 0);
}

TEST(BatchNormModule, TwoTrainingStepsThenEval) {
  nn::BatchNorm2d bn(3, 1e-5, 0.1);
  const Shape shape{2, 3, 4, 5};
  std::vector<double> em(3, 0.0), ev(3, 1.0);
  for (uint64_t step = 0; step < 2; ++step) {
    const Tensor x = sample(shape, 80 + step);
    bn(x);
    const ChannelStats st = channel_stats(vals(x), shape);
    for (int c = 0; c < 3; ++c) {  // by hand, rounded to float32 after each step like the buffers
      em[c] = static_cast<float>(0.9 * em[c] + 0.1 * st.mean[c]);
      ev[c] = static_cast<float>(0.9 * ev[c] + 0.1 * st.var_unbiased[c]);
    }
    expect_close(vals(bn.running_mean), em, kFloat32, "running_mean");
    expect_close(vals(bn.running_var), ev, kFloat32, "running_var");
    EXPECT_EQ(bn.num_batches_tracked.item(), static_cast<double>(step + 1));
  }
  bn.eval();
  const Tensor x = sample(shape, 90);
  const Tensor y = bn(x);
  expect_close(vals(y), naive_batch_norm(vals(x), shape, em, ev, {}, {}, 1e-5), kFloat32, "eval output");
  EXPECT_EQ(bn.num_batches_tracked.item(), 2.0);  // evaluation does not count
  EXPECT_EQ(vals(bn.running_mean), em);
}

TEST(BatchNormModule, CumulativeAverageWithoutMomentum) {
  // momentum = None: running = mean of the batch statistics seen so far (factor 1 / num_batches_tracked).
  nn::BatchNorm1d bn(2, 1e-5, std::nullopt);
  std::vector<double> sum(2, 0.0);
  for (uint64_t step = 0; step < 3; ++step) {
    const Tensor x = sample({6, 2}, 91 + step);
    bn(x);
    const ChannelStats st = channel_stats(vals(x), {6, 2});
    for (int c = 0; c < 2; ++c) sum[c] += st.mean[c];
  }
  const std::vector<double> got = vals(bn.running_mean);
  for (int c = 0; c < 2; ++c) EXPECT_NEAR(got[c], sum[c] / 3, 1e-6 * (1 + std::fabs(sum[c])));
}

// The layer keeps a host copy of num_batches_tracked (reading a GPU tensor waits for the device); a
// count written from outside, by load_state_dict or by hand, must still be the one the next batch uses.
TEST(BatchNormModule, CountWrittenFromOutsideIsTheOneUsed) {
  nn::BatchNorm1d source(2, 1e-5, std::nullopt), bn(2, 1e-5, std::nullopt);
  for (uint64_t step = 0; step < 3; ++step) source(sample({6, 2}, 120 + step));
  bn(sample({6, 2}, 130));  // bn has seen its own count (1)
  bn.load_state_dict(source.state_dict());
  const std::vector<double> before = vals(bn.running_mean);
  const Tensor x = sample({6, 2}, 131);
  bn(x);
  EXPECT_EQ(bn.num_batches_tracked.item(), 4.0);
  // Cumulative average with the loaded count 3: running = (3 before + this batch's mean) / 4.
  const ChannelStats st = channel_stats(vals(x), {6, 2});
  const std::vector<double> got = vals(bn.running_mean);
  for (int c = 0; c < 2; ++c) EXPECT_NEAR(got[c], before[c] + (st.mean[c] - before[c]) / 4, 1e-6);
  bn.num_batches_tracked.fill_(9.0);
  bn(x);
  EXPECT_EQ(bn.num_batches_tracked.item(), 10.0);
  bn.num_batches_tracked = zeros({}, {.dtype = kInt64});  // a new buffer altogether
  bn(x);
  EXPECT_EQ(bn.num_batches_tracked.item(), 1.0);
}

TEST(BatchNormModule, WithoutRunningStatisticsEvalUsesTheBatch) {
  nn::BatchNorm1d bn(3, 1e-5, 0.1, /*affine=*/true, /*track_running_stats=*/false);
  EXPECT_EQ(bn.named_buffers().size(), 0u);
  bn.eval();
  const Tensor x = sample({4, 3, 5}, 95);
  const ChannelStats st = channel_stats(vals(x), {4, 3, 5});
  expect_close(vals(bn(x)), naive_batch_norm(vals(x), {4, 3, 5}, st.mean, st.var_biased, {}, {}, 1e-5), kFloat32,
               "output");
}

TEST(BatchNormModule, TrainsItsParameters) {
  nn::BatchNorm1d bn(3);
  sum(mul(bn(sample({4, 3}, 96)), sample({4, 3}, 97))).backward();
  EXPECT_TRUE(bn.weight.grad().defined());
  EXPECT_TRUE(bn.bias.grad().defined());
  EXPECT_FALSE(bn.running_mean.requires_grad());
}

TEST(LayerNormModule, ParametersForwardAndDescription) {
  nn::LayerNorm ln({4, 5});
  EXPECT_EQ(ln.weight.shape(), (Shape{4, 5}));
  EXPECT_EQ(ln.parameter_count(), 40);
  EXPECT_EQ(ln.describe(), "LayerNorm((4, 5), eps=1e-05, elementwise_affine=True)");
  EXPECT_EQ(nn::LayerNorm({64}, 1e-6, false).describe(), "LayerNorm((64,), eps=1e-06, elementwise_affine=False)");
  EXPECT_EQ(nn::LayerNorm({8}, 1e-5, true, /*use_bias=*/false).parameter_count(), 8);
  const Tensor x = sample({3, 4, 5}, 98);
  EXPECT_EQ(vals(ln(x)), vals(layer_norm(x, {4, 5}, ln.weight, ln.bias)));
}

// ---- errors -------------------------------------------------------------------------------------------

TEST(NormErrors, BatchNormMessagesNameOpAndShapes) {
  const Tensor x = ones({2, 4, 3});
  EXPECT_ERROR(batch_norm(x, ones({3}), Tensor(), Tensor(), Tensor(), true), "batch_norm:", "weight", "[3]", "[2,4,3]",
               "[4]");
  EXPECT_ERROR(batch_norm(x, Tensor(), ones({5}), Tensor(), Tensor(), true), "batch_norm:", "bias", "[5]");
  EXPECT_ERROR(batch_norm(x, Tensor(), Tensor(), zeros({3}), ones({4}), true), "batch_norm:", "running_mean", "[3]",
               "[2,4,3]");
  EXPECT_ERROR(batch_norm(x, Tensor(), Tensor(), zeros({4}), ones({4, 1}), false), "batch_norm:", "running_var",
               "[4,1]");
  EXPECT_ERROR(batch_norm(x, Tensor(), Tensor(), zeros({4}), Tensor(), true), "batch_norm:", "together");
  EXPECT_ERROR(batch_norm(ones({4}), Tensor(), Tensor(), Tensor(), Tensor(), true), "batch_norm:", "[4]",
               "at least 2 dims");
  EXPECT_ERROR(batch_norm(ones({1, 3}), Tensor(), Tensor(), Tensor(), Tensor(), true),
               "batch_norm:", "Expected more than 1 value per channel", "[1,3]");
  EXPECT_ERROR(batch_norm(ones({1, 3, 1}), Tensor(), Tensor(), zeros({3}), ones({3}), true),
               "Expected more than 1 value per channel", "[1,3,1]");
  EXPECT_ERROR(batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), false), "batch_norm:", "evaluation",
               "running_mean");
  EXPECT_ERROR(batch_norm(x, ones({4}, {.dtype = kFloat64}), Tensor(), Tensor(), Tensor(), true),
               "batch_norm:", "weight", "float64[4]", "float32[2,4,3]");
  EXPECT_ERROR(batch_norm(x, Tensor(), Tensor(), ones({4}, {.requires_grad = true}), ones({4}), true),
               "batch_norm:", "running_mean", "requires grad");
  EXPECT_ERROR(batch_norm(ones({2, 3}, {.dtype = kInt64}), Tensor(), Tensor(), Tensor(), Tensor(), true),
               "batch_norm:", "int64");
  EXPECT_ERROR(batch_norm(x, Tensor(), Tensor(), zeros({4}), ones({4}), true, 1.5), "batch_norm:", "momentum");
  EXPECT_ERROR(batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, -1.0), "batch_norm:", "eps");
}

TEST(NormErrors, LayerNormMessagesNameOpAndShapes) {
  const Tensor x = ones({2, 3, 4});
  EXPECT_ERROR(layer_norm(x, {3}), "layer_norm:", "normalized_shape [3]", "[2,3,4]", "trailing");
  EXPECT_ERROR(layer_norm(x, {2, 3, 4, 5}), "layer_norm:", "[2,3,4,5]", "[2,3,4]");
  EXPECT_ERROR(layer_norm(x, {}), "layer_norm:", "at least one");
  EXPECT_ERROR(layer_norm(x, {3, 4}, ones({4})), "layer_norm:", "weight", "[4]", "[3,4]");
  EXPECT_ERROR(layer_norm(x, {4}, Tensor(), ones({3})), "layer_norm:", "bias", "[3]");
}

TEST(NormErrors, LayersCheckRankAndChannels) {
  nn::BatchNorm2d bn2(3);
  EXPECT_ERROR(bn2(ones({2, 3, 4})), "BatchNorm2d(3", "4-D", "[2,3,4]");
  EXPECT_ERROR(bn2(ones({2, 5, 4, 4})), "BatchNorm2d(3", "[2,5,4,4]", "5 channels");
  nn::BatchNorm1d bn1(3);
  EXPECT_ERROR(bn1(ones({2, 3, 4, 5})), "BatchNorm1d(3", "[B, C] or", "[2,3,4,5]");
  EXPECT_ERROR(bn1(ones({1, 3})), "Expected more than 1 value per channel");
  EXPECT_EQ(bn1.num_batches_tracked.item(), 0.0);  // a rejected batch is not counted
  nn::BatchNorm3d bn3(2);
  EXPECT_ERROR(bn3(ones({2, 2, 3, 3})), "BatchNorm3d(2", "5-D", "[2,2,3,3]");
  EXPECT_ERROR(nn::BatchNorm2d(0), "BatchNorm2d:", "num_features");
  EXPECT_ERROR(nn::LayerNorm({}), "LayerNorm:", "normalized_shape");
  nn::LayerNorm lnm({5});
  EXPECT_ERROR(lnm(ones({2, 4})), "layer_norm:", "[5]", "[2,4]");
}

}  // namespace
}  // namespace minidl
