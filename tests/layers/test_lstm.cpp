// The fused LSTM op (lstm_layer, autograd/ops_lstm.cpp + cpu/lstm.cpp) and the nn::LSTM module.
//
//   - forward against a naive per-step LSTM composed here from matmul, sigmoid, tanh, mul and add, both
//     directions, odd sizes (B = 1, T = 1, H = 1, T = 7), float32 and float64, with and without biases;
//   - gradcheck (float64) w.r.t. every input, both directions, with the loss reading output only, h only,
//     c only and all three; non-contiguous x and an h0 expanded over the batch;
//   - the module: parameter names and shapes, output shapes, gradcheck of a 2-layer bidirectional LSTM
//     with learned initial states, dropout between layers only in training, bitwise-equal results with 1
//     and 2 OpenMP threads;
//   - lstm_bidirectional (both directions as one op): each direction bitwise equal to lstm_layer,
//     gradcheck of every input of both directions;
//   - errors naming the op and the shapes.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "autograd/minidl.h"
#include "layers/lstm.h"
#include "tests/autograd/expect_error.h"
#include "tests/autograd/gradcheck_helpers.h"
#include "tests/cpu/kernel_helpers.h"

namespace minidl {
namespace {

using gradcheck_test::expect_gradcheck;
using gradcheck_test::kF64;

// ---- a naive reference, one step at a time from the project's ops --------------------------------
LstmResult naive_lstm(const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh,
                      const Tensor& b_ih, const Tensor& b_hh, bool reverse) {
  const int64_t T = x.size(1), H = w_hh.size(1);
  Tensor h = h0, c = c0;
  std::vector<Tensor> outs(static_cast<size_t>(T));
  for (int64_t s = 0; s < T; ++s) {
    const int64_t t = reverse ? T - 1 - s : s;
    Tensor z = matmul(x.select(1, t), w_ih.t()) + matmul(h, w_hh.t());
    if (b_ih.defined()) z = z + b_ih;
    if (b_hh.defined()) z = z + b_hh;
    const Tensor i = sigmoid(z.narrow(1, 0, H)), f = sigmoid(z.narrow(1, H, H)), g = tanh(z.narrow(1, 2 * H, H)),
                 o = sigmoid(z.narrow(1, 3 * H, H));
    c = f * c + i * g;
    h = o * tanh(c);
    outs[t] = h;
  }
  return {stack(outs, 1), h, c};
}

struct Args {
  Tensor x, h0, c0, w_ih, w_hh, b_ih, b_hh;
  std::vector<Tensor> list() const { return {x, h0, c0, w_ih, w_hh, b_ih, b_hh}; }
};

// Weights of scale ~0.5 keep the gates away from saturation, so the Jacobians are well conditioned.
Args make_args(int64_t B, int64_t T, int64_t I, int64_t H, DType dt, uint64_t seed, bool grad = false) {
  Generator gen(seed);
  const TensorOptions o{.dtype = dt};
  Args a{rand({B, T, I}, o, &gen, -1, 1),      rand({B, H}, o, &gen, -1, 1),         rand({B, H}, o, &gen, -1, 1),
         rand({4 * H, I}, o, &gen, -0.6, 0.6), rand({4 * H, H}, o, &gen, -0.6, 0.6), rand({4 * H}, o, &gen, -0.5, 0.5),
         rand({4 * H}, o, &gen, -0.5, 0.5)};
  if (grad)
    for (Tensor* t : {&a.x, &a.h0, &a.c0, &a.w_ih, &a.w_hh, &a.b_ih, &a.b_hh}) t->requires_grad_();
  return a;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  const auto va = a.values<double>(), vb = b.values<double>();
  double m = 0;
  for (size_t k = 0; k < va.size(); ++k) m = std::max(m, std::fabs(va[k] - vb[k]));
  return m;
}

void expect_matches_naive(const Args& a, bool reverse, double tol, bool bias = true) {
  const Tensor bi = bias ? a.b_ih : Tensor(), bh = bias ? a.b_hh : Tensor();
  const LstmResult got = lstm_layer(a.x, a.h0, a.c0, a.w_ih, a.w_hh, bi, bh, reverse);
  const LstmResult want = naive_lstm(a.x, a.h0, a.c0, a.w_ih, a.w_hh, bi, bh, reverse);
  EXPECT_LE(max_abs_diff(got.output, want.output), tol);
  EXPECT_LE(max_abs_diff(got.h, want.h), tol);
  EXPECT_LE(max_abs_diff(got.c, want.c), tol);
}

// ---- forward -------------------------------------------------------------------------------------
struct Sizes {
  int64_t B, T, I, H;
};
const Sizes kOddSizes[] = {{1, 1, 1, 1}, {1, 7, 3, 1}, {3, 1, 5, 2}, {2, 7, 3, 5}, {5, 4, 17, 9}};

TEST(LstmLayer, ForwardMatchesNaiveFloat64) {
  uint64_t seed = 10;
  for (const Sizes& s : kOddSizes)
    for (bool reverse : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "B " << s.B << " T " << s.T << " I " << s.I << " H " << s.H
                                        << (reverse ? " reverse" : " forward"));
      expect_matches_naive(make_args(s.B, s.T, s.I, s.H, kFloat64, ++seed), reverse, 1e-13);
    }
}

TEST(LstmLayer, ForwardMatchesNaiveFloat32) {
  uint64_t seed = 20;
  for (const Sizes& s : kOddSizes)
    for (bool reverse : {false, true})
      expect_matches_naive(make_args(s.B, s.T, s.I, s.H, kFloat32, ++seed), reverse, 2e-6);
}

TEST(LstmLayer, ForwardWithoutBiasesAndLargerThanOneGemmBlock) {
  // H = 70: 4H = 280 spans more than one GEMM register panel; B * H >= 1024 takes the threaded pointwise pass.
  expect_matches_naive(make_args(16, 5, 33, 70, kFloat64, 31), false, 1e-12, /*bias=*/false);
  expect_matches_naive(make_args(16, 5, 33, 70, kFloat64, 32), true, 1e-12);
}

TEST(LstmLayer, UndefinedInitialStateIsZero) {
  const Args a = make_args(2, 3, 4, 3, kFloat64, 40);
  const Tensor z = zeros({2, 3}, kF64);
  const LstmResult got = lstm_layer(a.x, Tensor(), Tensor(), a.w_ih, a.w_hh, a.b_ih, a.b_hh);
  const LstmResult want = naive_lstm(a.x, z, z, a.w_ih, a.w_hh, a.b_ih, a.b_hh, false);
  EXPECT_LE(max_abs_diff(got.output, want.output), 1e-13);
}

TEST(LstmLayer, ReverseOutputAtIndexTIsTheStateAfterStepT) {
  // Reversed, index 0 is processed last: the final h equals output[:, 0], and output[:, T-1] depends on
  // x[:, T-1] only (it is the first step).
  const Args a = make_args(2, 4, 3, 2, kFloat64, 41);
  const LstmResult r = lstm_layer(a.x, a.h0, a.c0, a.w_ih, a.w_hh, a.b_ih, a.b_hh, true);
  EXPECT_EQ(max_abs_diff(r.output.select(1, 0), r.h), 0.0);
  const LstmResult one = lstm_layer(a.x.narrow(1, 3, 1), a.h0, a.c0, a.w_ih, a.w_hh, a.b_ih, a.b_hh, true);
  EXPECT_EQ(max_abs_diff(r.output.select(1, 3), one.h), 0.0);
}

TEST(LstmLayer, EmptySequenceOrBatch) {
  const Args a = make_args(2, 0, 3, 2, kFloat64, 42, /*grad=*/true);
  const LstmResult r = lstm_layer(a.x, a.h0, a.c0, a.w_ih, a.w_hh, a.b_ih, a.b_hh);
  EXPECT_EQ(r.output.shape(), (Shape{2, 0, 2}));
  EXPECT_EQ(max_abs_diff(r.h, a.h0), 0.0);
  EXPECT_EQ(max_abs_diff(r.c, a.c0), 0.0);
  (sum(r.h) + 2.0 * sum(r.c)).backward();
  EXPECT_EQ(max_abs_diff(a.h0.grad(), ones({2, 2}, kF64)), 0.0);
  EXPECT_EQ(max_abs_diff(a.c0.grad(), full({2, 2}, 2.0, kF64)), 0.0);
  EXPECT_EQ(max_abs_diff(a.w_hh.grad(), zeros({8, 2}, kF64)), 0.0);
  // An empty batch: empty outputs, zero weight gradients.
  const Args e = make_args(0, 3, 3, 2, kFloat64, 43, /*grad=*/true);
  const LstmResult re = lstm_layer(e.x, e.h0, e.c0, e.w_ih, e.w_hh, e.b_ih, e.b_hh, true);
  EXPECT_EQ(re.output.shape(), (Shape{0, 3, 2}));
  (sum(re.output) + sum(re.c)).backward();
  EXPECT_EQ(max_abs_diff(e.w_ih.grad(), zeros({8, 3}, kF64)), 0.0);
  EXPECT_EQ(max_abs_diff(e.b_hh.grad(), zeros({8}, kF64)), 0.0);
}

// ---- gradients -----------------------------------------------------------------------------------
enum class Reads { Output, H, C, All };

Tensor pick(const LstmResult& r, Reads what) {
  switch (what) {
    case Reads::Output: return r.output;
    case Reads::H: return r.h;
    case Reads::C: return r.c;
    case Reads::All: return cat({r.output.reshape({-1}), r.h.reshape({-1}), r.c.reshape({-1})});
  }
  return Tensor();
}

TEST(LstmLayer, GradcheckEveryInputEveryOutputBothDirections) {
  uint64_t seed = 100;
  for (bool reverse : {false, true})
    for (Reads what : {Reads::Output, Reads::H, Reads::C, Reads::All}) {
      SCOPED_TRACE(::testing::Message() << (reverse ? "reverse" : "forward") << ", reads " << static_cast<int>(what));
      const Args a = make_args(2, 3, 3, 2, kFloat64, ++seed, /*grad=*/true);
      expect_gradcheck(
          [reverse, what](const std::vector<Tensor>& in) {
            return pick(lstm_layer(in[0], in[1], in[2], in[3], in[4], in[5], in[6], reverse), what);
          },
          a.list());
    }
}

TEST(LstmLayer, GradcheckOddSizes) {
  uint64_t seed = 200;
  for (const Sizes& s : {Sizes{1, 1, 1, 1}, Sizes{1, 7, 2, 1}, Sizes{3, 2, 1, 3}})
    for (bool reverse : {false, true}) {
      const Args a = make_args(s.B, s.T, s.I, s.H, kFloat64, ++seed, /*grad=*/true);
      expect_gradcheck(
          [reverse](const std::vector<Tensor>& in) {
            return pick(lstm_layer(in[0], in[1], in[2], in[3], in[4], in[5], in[6], reverse), Reads::All);
          },
          a.list());
    }
}

TEST(LstmLayer, GradcheckStridedInputAndExpandedState) {
  // x is a [B, T, I] view of a [T, B, I] tensor (time-major data); h0 and c0 are one [H] vector expanded
  // over the batch (stride 0), as a learned initial state is; no biases.
  Generator gen(300);
  const int64_t B = 3, T = 4, I = 2, H = 2;
  Tensor xt = rand({T, B, I}, kF64, &gen, -1, 1);
  Tensor x = xt.transpose(0, 1);
  x.requires_grad_();
  Args a = make_args(B, T, I, H, kFloat64, 301, /*grad=*/true);
  Tensor h0 = rand({H}, kF64, &gen, -1, 1).requires_grad_(), c0 = rand({H}, kF64, &gen, -1, 1).requires_grad_();
  for (bool reverse : {false, true})
    expect_gradcheck(
        [reverse, B, H](const std::vector<Tensor>& in) {
          const LstmResult r =
              lstm_layer(in[0], in[1].expand({B, H}), in[2].expand({B, H}), in[3], in[4], Tensor(), Tensor(), reverse);
          return pick(r, Reads::All);
        },
        {x, h0, c0, a.w_ih, a.w_hh});
}

TEST(LstmLayer, OnlyInputsThatRequireGradGetOne) {
  Args a = make_args(2, 3, 3, 2, kFloat64, 400);
  a.w_hh.requires_grad_();
  a.b_hh.requires_grad_();
  const LstmResult r = lstm_layer(a.x, a.h0, a.c0, a.w_ih, a.w_hh, a.b_ih, a.b_hh);
  sum(r.output).backward();
  EXPECT_TRUE(a.w_hh.grad().defined());
  EXPECT_TRUE(a.b_hh.grad().defined());
  EXPECT_FALSE(a.x.grad().defined());
  EXPECT_FALSE(a.b_ih.grad().defined());
  // Without any input that requires grad nothing is recorded.
  const LstmResult plain = lstm_layer(a.x, a.h0, a.c0, a.w_ih, a.w_hh.detach(), a.b_ih, a.b_hh.detach());
  EXPECT_FALSE(plain.output.requires_grad());
}

TEST(LstmLayer, SecondBackwardNeedsRetainGraph) {
  const Args a = make_args(2, 3, 3, 2, kFloat64, 401, /*grad=*/true);
  const Tensor loss = sum(lstm_layer(a.x, a.h0, a.c0, a.w_ih, a.w_hh, a.b_ih, a.b_hh).output);
  loss.backward({}, /*retain_graph=*/true);
  const Tensor g1 = a.w_hh.grad().clone();
  loss.backward();
  EXPECT_LE(max_abs_diff(a.w_hh.grad(), g1 * 2.0), 1e-14);
  EXPECT_ERROR(loss.backward(), "retain_graph");
}

TEST(LstmLayer, BitwiseIdenticalWithOneAndTwoThreads) {
  // Large enough for the threaded paths: GEMMs above their parallel threshold, B * H >= 1024 cells.
  const Args a = make_args(16, 6, 48, 96, kFloat32, 500, /*grad=*/true);
  auto run = [&](int threads) {
    kernel_test::OmpThreads guard(threads);
    for (Tensor t : a.list()) t.zero_grad();
    const LstmResult r = lstm_layer(a.x, a.h0, a.c0, a.w_ih, a.w_hh, a.b_ih, a.b_hh, true);
    (sum(r.output * r.output) + sum(r.h) + sum(r.c)).backward();
    std::vector<std::vector<float>> v{r.output.values<float>(), r.h.values<float>(), r.c.values<float>()};
    for (const Tensor& t : a.list()) v.push_back(t.grad().values<float>());
    return v;
  };
  const auto one = run(1), two = run(2);
  ASSERT_EQ(one.size(), two.size());
  for (size_t k = 0; k < one.size(); ++k)
    EXPECT_EQ(0, std::memcmp(one[k].data(), two[k].data(), one[k].size() * sizeof(float))) << "tensor " << k;
}

// ---- both directions as one op (lstm_bidirectional) ---------------------------------------------
// The two directions' inputs (x shared, taken from the forward's Args) and the op run either way.
std::array<LstmResult, 2> run_directions(const Tensor& x, const LstmDirection& f, const LstmDirection& r,
                                         bool together) {
  if (together) return lstm_bidirectional(x, f, r);
  return {lstm_layer(x, f.h0, f.c0, f.w_ih, f.w_hh, f.b_ih, f.b_hh, false),
          lstm_layer(x, r.h0, r.c0, r.w_ih, r.w_hh, r.b_ih, r.b_hh, true)};
}

Tensor all_outputs(const std::array<LstmResult, 2>& r) { return cat({pick(r[0], Reads::All), pick(r[1], Reads::All)}); }

// Each direction's values and gradients are those of lstm_layer, bit for bit, and x's gradient is the sum
// of the two; with the forward direction lacking an initial state and the reverse one lacking biases.
TEST(LstmBidirectional, EachDirectionGetsTheBitsOfLstmLayer) {
  uint64_t seed = 700;
  for (DType dt : {kFloat32, kFloat64})
    for (const Sizes& s : {Sizes{1, 1, 1, 1}, Sizes{2, 7, 3, 5}, Sizes{5, 4, 17, 9}}) {
      SCOPED_TRACE(::testing::Message() << dtype_name(dt) << " B=" << s.B << " T=" << s.T << " H=" << s.H);
      const Args a = make_args(s.B, s.T, s.I, s.H, dt, ++seed, /*grad=*/true),
                 b = make_args(s.B, s.T, s.I, s.H, dt, ++seed, /*grad=*/true);
      const LstmDirection f{Tensor(), Tensor(), a.w_ih, a.w_hh, a.b_ih, a.b_hh},
          r{b.h0, b.c0, b.w_ih, b.w_hh, Tensor(), Tensor()};
      const std::vector<Tensor> leaves{a.x, a.w_ih, a.w_hh, a.b_ih, a.b_hh, b.h0, b.c0, b.w_ih, b.w_hh};
      Generator gen(seed);
      const Tensor up = randn({2 * (s.B * s.T * s.H + 2 * s.B * s.H)}, {.dtype = dt}, &gen);
      auto run = [&](bool together) {
        for (Tensor t : leaves) t.zero_grad();
        const Tensor y = all_outputs(run_directions(a.x, f, r, together));
        sum(y * up).backward();
        std::vector<std::vector<double>> v{y.values<double>()};
        for (const Tensor& t : leaves) v.push_back(t.grad().values<double>());
        return v;
      };
      const auto together = run(true), alone = run(false);
      for (size_t k = 0; k < together.size(); ++k)
        EXPECT_EQ(together[k], alone[k]) << (k == 0 ? "outputs" : "gradient of leaf " + std::to_string(k - 1));
    }
}

TEST(LstmBidirectional, GradcheckEveryInputOfBothDirections) {
  const Args a = make_args(2, 3, 3, 2, kFloat64, 710, /*grad=*/true), b = make_args(2, 3, 3, 2, kFloat64, 711, true);
  std::vector<Tensor> in = a.list();
  for (const Tensor& t : b.list()) in.push_back(t);
  in.erase(in.begin() + 7);  // one x, shared
  expect_gradcheck(
      [](const std::vector<Tensor>& v) {
        return all_outputs(
            lstm_bidirectional(v[0], {v[1], v[2], v[3], v[4], v[5], v[6]}, {v[7], v[8], v[9], v[10], v[11], v[12]}));
      },
      in);
}

// ---- the module ----------------------------------------------------------------------------------
TEST(LSTMModule, ParameterNamesShapesAndInit) {
  Generator gen(700);
  nn::LSTM lstm(5, 3, {.num_layers = 2, .bidirectional = true, .learned_initial_state = true}, &gen);
  const std::vector<std::pair<std::string, Shape>> want{{"weight_ih_l0", {12, 5}},
                                                        {"weight_hh_l0", {12, 3}},
                                                        {"bias_ih_l0", {12}},
                                                        {"bias_hh_l0", {12}},
                                                        {"weight_ih_l0_reverse", {12, 5}},
                                                        {"weight_hh_l0_reverse", {12, 3}},
                                                        {"bias_ih_l0_reverse", {12}},
                                                        {"bias_hh_l0_reverse", {12}},
                                                        {"weight_ih_l1", {12, 6}},
                                                        {"weight_hh_l1", {12, 3}},
                                                        {"bias_ih_l1", {12}},
                                                        {"bias_hh_l1", {12}},
                                                        {"weight_ih_l1_reverse", {12, 6}},
                                                        {"weight_hh_l1_reverse", {12, 3}},
                                                        {"bias_ih_l1_reverse", {12}},
                                                        {"bias_hh_l1_reverse", {12}},
                                                        {"h0", {4, 3}},
                                                        {"c0", {4, 3}}};
  const nn::NamedTensors got = lstm.named_parameters();
  ASSERT_EQ(got.size(), want.size());
  const double bound = 1.0 / std::sqrt(3.0), xavier = std::sqrt(6.0 / (4 + 3));
  for (size_t k = 0; k < want.size(); ++k) {
    EXPECT_EQ(got[k].first, want[k].first);
    EXPECT_EQ(got[k].second.shape(), want[k].second) << got[k].first;
    EXPECT_TRUE(got[k].second.requires_grad()) << got[k].first;
    const double b = k < 16 ? bound : xavier;  // torch's U(-1/sqrt(H), 1/sqrt(H)); xavier for h0, c0
    const auto v = got[k].second.values<double>();
    double lo = 1, hi = -1;
    for (double e : v) lo = std::min(lo, e), hi = std::max(hi, e);
    EXPECT_GE(lo, -b) << got[k].first;
    EXPECT_LE(hi, b) << got[k].first;
    EXPECT_LT(lo, 0.0) << got[k].first;  // drawn, not constant
    EXPECT_GT(hi, 0.0) << got[k].first;
  }
  EXPECT_EQ(lstm.parameter_count(), 2 * (60 + 36 + 24) + 2 * (72 + 36 + 24) + 24);
  EXPECT_EQ(lstm.describe(),
            "LSTM(5, 3, num_layers=2, bidirectional=true, batch_first=false, learned_initial_state=true)");
}

TEST(LSTMModule, OutputShapes) {
  const int64_t B = 2, T = 4, I = 5, H = 3;
  for (bool bidirectional : {false, true})
    for (bool batch_first : {false, true}) {
      nn::LSTM lstm(I, H, {.num_layers = 2, .bidirectional = bidirectional, .batch_first = batch_first});
      const int64_t D = bidirectional ? 2 : 1;
      const Tensor x = batch_first ? ones({B, T, I}) : ones({T, B, I});
      const nn::LSTMOutput r = lstm(x);
      EXPECT_EQ(r.output.shape(), batch_first ? (Shape{B, T, D * H}) : (Shape{T, B, D * H}));
      EXPECT_EQ(r.h_n.shape(), (Shape{2 * D, B, H}));
      EXPECT_EQ(r.c_n.shape(), (Shape{2 * D, B, H}));
    }
}

// The module against lstm_layer calls wired by hand: time-major input, both directions concatenated
// (forward first) into the next layer, h_n / c_n stacked layer by layer, an explicit initial state.
TEST(LSTMModule, MatchesTheLayersWiredByHand) {
  const int64_t B = 3, T = 5, I = 4, H = 2;
  nn::LSTM lstm(I, H, {.num_layers = 2, .bidirectional = true, .learned_initial_state = true});
  lstm.to(kFloat64);
  Generator gen(710);
  const Tensor x = rand({T, B, I}, kF64, &gen, -1, 1), h0 = rand({4, B, H}, kF64, &gen, -1, 1),
               c0 = rand({4, B, H}, kF64, &gen, -1, 1);
  for (bool explicit_state : {false, true}) {
    const nn::LSTMOutput r = explicit_state ? lstm(x, h0, c0) : lstm(x);
    Tensor seq = x.transpose(0, 1);
    std::vector<Tensor> hs, cs;
    for (int64_t l = 0; l < 2; ++l) {
      std::vector<Tensor> outs;
      for (int64_t d = 0; d < 2; ++d) {
        const auto& c = lstm.cell(l, d);
        const Tensor hk = explicit_state ? h0.select(0, 2 * l + d) : lstm.h0.select(0, 2 * l + d).expand({B, H});
        const Tensor ck = explicit_state ? c0.select(0, 2 * l + d) : lstm.c0.select(0, 2 * l + d).expand({B, H});
        const LstmResult lr = naive_lstm(seq, hk, ck, c.weight_ih, c.weight_hh, c.bias_ih, c.bias_hh, d == 1);
        outs.push_back(lr.output);
        hs.push_back(lr.h);
        cs.push_back(lr.c);
      }
      seq = cat(outs, 2);
    }
    EXPECT_LE(max_abs_diff(r.output, seq.transpose(0, 1)), 1e-13);
    EXPECT_LE(max_abs_diff(r.h_n, stack(hs, 0)), 1e-13);
    EXPECT_LE(max_abs_diff(r.c_n, stack(cs, 0)), 1e-13);
  }
}

TEST(LSTMModule, GradcheckTwoLayerBidirectionalWithLearnedState) {
  Generator gen(720);
  nn::LSTM lstm(2, 2, {.num_layers = 2, .bidirectional = true, .batch_first = true, .learned_initial_state = true},
                &gen);
  lstm.to(kFloat64);
  // gradcheck perturbs its inputs in place, so the module's own parameters can be inputs.
  std::vector<Tensor> inputs{rand({2, 3, 2}, kF64, &gen, -1, 1).requires_grad_()};
  for (const Tensor& p : lstm.parameters()) inputs.push_back(p);
  expect_gradcheck(
      [&lstm](const std::vector<Tensor>& in) {
        const nn::LSTMOutput r = lstm(in[0]);
        return cat({r.output.reshape({-1}), r.h_n.reshape({-1}), r.c_n.reshape({-1})});
      },
      inputs);
}

TEST(LSTMModule, DropoutBetweenLayersInTrainingOnly) {
  Generator gen(730), masks(731);
  nn::LSTM deep(4, 8, {.num_layers = 2, .batch_first = true, .dropout = 0.5}, &masks);
  nn::LSTM plain(4, 8, {.num_layers = 2, .batch_first = true}, &gen);
  plain.load_state_dict(deep.state_dict());
  const Tensor x = rand({3, 6, 4}, {}, &gen, -1, 1);
  // Evaluation: no dropout at all, so the same as the model without it.
  deep.eval();
  EXPECT_EQ(max_abs_diff(deep(x).output, plain(x).output), 0.0);
  // Training: the second layer sees a dropped-out input, so the output changes.
  deep.train();
  EXPECT_GT(max_abs_diff(deep(x).output, plain(x).output), 1e-3);
  // One layer: nothing lies between layers, so training and evaluation agree.
  nn::LSTM one(4, 8, {.batch_first = true, .dropout = 0.5}, &masks);
  const Tensor trained = one(x).output;
  one.eval();
  EXPECT_EQ(max_abs_diff(trained, one(x).output), 0.0);
}

TEST(LSTMModule, BitwiseIdenticalWithOneAndTwoThreads) {
  Generator gen(740);
  nn::LSTM lstm(40, 64, {.num_layers = 2, .bidirectional = true, .batch_first = true, .learned_initial_state = true},
                &gen);
  const Tensor x = rand({24, 7, 40}, {}, &gen, -1, 1).requires_grad_();
  auto run = [&](int threads) {
    kernel_test::OmpThreads guard(threads);
    lstm.zero_grad();
    x.zero_grad();
    const nn::LSTMOutput r = lstm(x);
    (sum(r.output * r.output) + sum(r.h_n) + sum(r.c_n)).backward();
    std::vector<std::vector<float>> v{r.output.values<float>(), r.h_n.values<float>(), x.grad().values<float>()};
    for (const Tensor& p : lstm.parameters()) v.push_back(p.grad().values<float>());
    return v;
  };
  const auto one = run(1), two = run(2);
  ASSERT_EQ(one.size(), two.size());
  for (size_t k = 0; k < one.size(); ++k)
    EXPECT_EQ(0, std::memcmp(one[k].data(), two[k].data(), one[k].size() * sizeof(float))) << "tensor " << k;
}

// ---- errors --------------------------------------------------------------------------------------
TEST(LstmLayerErrors, NameTheOpAndTheShapes) {
  const Args a = make_args(2, 3, 4, 5, kFloat32, 600);
  EXPECT_ERROR(lstm_layer(a.x.select(0, 0), a.h0, a.c0, a.w_ih, a.w_hh, a.b_ih, a.b_hh), "lstm_layer:", "[B, T, I]",
               "[3,4]");
  EXPECT_ERROR(lstm_layer(a.x, a.h0, a.c0, a.w_ih, a.w_hh.narrow(0, 0, 19), a.b_ih, a.b_hh),
               "lstm_layer:", "w_hh must be [4H, H]", "[19,5]");
  EXPECT_ERROR(lstm_layer(a.x, a.h0, a.c0, a.w_ih.narrow(1, 0, 3), a.w_hh, a.b_ih, a.b_hh),
               "lstm_layer:", "w_ih must be [4H, I] = [20, 4]", "w_ih [20,3]", "x [2,3,4]");
  EXPECT_ERROR(lstm_layer(a.x, a.h0, a.c0, a.w_ih, a.w_hh, a.b_ih.narrow(0, 0, 7), a.b_hh),
               "lstm_layer:", "b_ih must be [4H] = [20]", "[7]");
  EXPECT_ERROR(lstm_layer(a.x, a.h0.t(), a.c0, a.w_ih, a.w_hh, a.b_ih, a.b_hh),
               "lstm_layer:", "h0 must be [B, H] = [2,5]", "[5,2]");
  EXPECT_ERROR(lstm_layer(a.x, a.h0, a.c0.narrow(0, 0, 1), a.w_ih, a.w_hh, a.b_ih, a.b_hh), "lstm_layer:", "c0",
               "[1,5]");
  EXPECT_ERROR(lstm_layer(a.x, a.h0, a.c0, a.w_ih.to(kFloat64), a.w_hh, a.b_ih, a.b_hh),
               "lstm_layer:", "dtype mismatch", "float64[20,4]");
  EXPECT_ERROR(lstm_layer(a.x, a.h0, a.c0, Tensor(), a.w_hh, a.b_ih, a.b_hh), "lstm_layer:", "w_ih");
  EXPECT_ERROR(lstm_layer(zeros({2, 3, 4}, {.dtype = kInt64}), a.h0, a.c0, a.w_ih, a.w_hh, a.b_ih, a.b_hh),
               "lstm_layer:", "float32 or float64", "int64[2,3,4]");
  EXPECT_ERROR(
      lstm_layer(a.x, a.h0, a.c0, a.w_ih.narrow(0, 0, 0), a.w_hh.narrow(0, 0, 0).narrow(1, 0, 0), Tensor(), Tensor()),
      "lstm_layer:", "H > 0");
}

TEST(LstmBidirectionalErrors, NameTheDirection) {
  const Args a = make_args(2, 3, 4, 5, kFloat32, 620), b = make_args(2, 3, 4, 6, kFloat32, 621);
  const LstmDirection f{a.h0, a.c0, a.w_ih, a.w_hh, a.b_ih, a.b_hh};
  EXPECT_ERROR(lstm_bidirectional(a.x, f, {a.h0, a.c0, a.w_ih, a.w_hh.narrow(0, 0, 19), a.b_ih, a.b_hh}),
               "lstm_bidirectional (backward direction):", "w_hh must be [4H, H]", "[19,5]");
  EXPECT_ERROR(lstm_bidirectional(a.x, {a.h0.t(), a.c0, a.w_ih, a.w_hh, a.b_ih, a.b_hh}, f),
               "lstm_bidirectional (forward direction):", "h0 must be [B, H] = [2,5]");
  EXPECT_ERROR(lstm_bidirectional(a.x, f, {b.h0, b.c0, b.w_ih, b.w_hh, b.b_ih, b.b_hh}),
               "lstm_bidirectional:", "hidden sizes differ", "float32[24,6]", "float32[20,5]");
}

TEST(LSTMModuleErrors, NameTheModuleAndTheShapes) {
  EXPECT_ERROR(nn::LSTM(0, 3), "LSTM:", "input_size (0)");
  EXPECT_ERROR(nn::LSTM(4, 3, {.num_layers = 0}), "LSTM:", "num_layers (0)");
  EXPECT_ERROR(nn::LSTM(4, 3, {.dropout = 1.5}), "LSTM:", "dropout", "1.5");
  nn::LSTM lstm(4, 3, {.num_layers = 2, .bidirectional = true});
  EXPECT_ERROR(lstm(ones({5, 2, 6})), "LSTM:", "[T, B, input_size]", "input_size 4", "float32[5,2,6]");
  EXPECT_ERROR(lstm(ones({5, 4})), "LSTM:", "float32[5,4]");
  EXPECT_ERROR(lstm(ones({5, 2, 4}, {.dtype = kFloat64})), "LSTM:", "float64[5,2,4]", "float32[12,4]");
  EXPECT_ERROR(lstm(ones({5, 2, 4}), zeros({4, 2, 3})), "LSTM:", "both h0 and c0");
  EXPECT_ERROR(lstm(ones({5, 2, 4}), zeros({2, 2, 3}), zeros({2, 2, 3})), "LSTM:", "h0",
               "[num_layers * directions, B, H] = [4,2,3]", "[2,2,3]");
  EXPECT_ERROR(lstm.cell(2, 0), "LSTM:", "layer 2");
}

}  // namespace
}  // namespace minidl
