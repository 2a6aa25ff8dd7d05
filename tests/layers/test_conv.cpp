// conv (autograd/ops_conv.cpp, cpu/conv.cpp) and the Conv1d / Conv2d / Conv3d layers (layers/conv.h):
//   - forward against a direct convolution written here (double accumulation), 1-D to 3-D, with strides,
//     padding, dilation, groups, depthwise, pointwise, odd sizes, a kernel larger than the input, the
//     (2+1)D shapes 1x3x3 / 3x1x1 / 1x7x7, non-contiguous operands and an empty batch;
//   - all three gradients against the same direct loops (float64, a size past the GEMM's K block), and
//     gradcheck for each rank and stride / padding / dilation / groups combination;
//   - bitwise-equal forward and gradients with 1, 2 and 3 OpenMP threads (both threading paths);
//   - every argument error, with the op and the shapes in the message;
//   - the layers: names, shapes, torch's init bounds and repr, the causal Conv1d.
//
// Tolerance against the direct loops: a sum of n products computed in any order in type T is within
// n u sum|terms| of the exact sum (u = 2^-24 or 2^-53), so each element is checked against (n + 2) u
// times the sum of the absolute values of its terms.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include "autograd/minidl.h"
#include "layers/conv.h"
#include "tests/autograd/expect_error.h"
#include "tests/autograd/gradcheck_helpers.h"
#include "tests/cpu/kernel_helpers.h"

using namespace minidl;

namespace {

using gradcheck_test::expect_gradcheck;
using kernel_test::OmpThreads;
using kernel_test::same_bits;

struct ConvArgs {
  std::vector<int64_t> stride{1}, padding{0}, dilation{1};
  int64_t groups = 1;
};

// The direct convolution as a list of products: calls f(y index, x index, w index) for every
// x * w that the output element sums (flat row-major indices). Returns y's shape.
Shape for_each_tap(const Shape& xs, const Shape& ws, const ConvArgs& a,
                   const std::function<void(int64_t, int64_t, int64_t)>& f) {
  const int64_t r = static_cast<int64_t>(xs.size()) - 2, lead = 3 - r;
  auto arg = [&](const std::vector<int64_t>& v, int64_t d) { return v.size() == 1 ? v[0] : v[d]; };
  int64_t in[3], k[3], st[3], pd[3], dl[3], out[3];
  for (int64_t d = 0; d < 3; ++d) {
    const int64_t e = d - lead;
    in[d] = e < 0 ? 1 : xs[e + 2];
    k[d] = e < 0 ? 1 : ws[e + 2];
    st[d] = e < 0 ? 1 : arg(a.stride, e);
    pd[d] = e < 0 ? 0 : arg(a.padding, e);
    dl[d] = e < 0 ? 1 : arg(a.dilation, e);
    out[d] = (in[d] + 2 * pd[d] - dl[d] * (k[d] - 1) - 1) / st[d] + 1;
  }
  const int64_t B = xs[0], cin = xs[1], cout = ws[0], cg = cin / a.groups, cog = cout / a.groups;
  int64_t yi = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t co = 0; co < cout; ++co)
      for (int64_t o0 = 0; o0 < out[0]; ++o0)
        for (int64_t o1 = 0; o1 < out[1]; ++o1)
          for (int64_t o2 = 0; o2 < out[2]; ++o2, ++yi)
            for (int64_t ci = 0; ci < cg; ++ci)
              for (int64_t k0 = 0; k0 < k[0]; ++k0)
                for (int64_t k1 = 0; k1 < k[1]; ++k1)
                  for (int64_t k2 = 0; k2 < k[2]; ++k2) {
                    const int64_t i0 = o0 * st[0] - pd[0] + k0 * dl[0], i1 = o1 * st[1] - pd[1] + k1 * dl[1],
                                  i2 = o2 * st[2] - pd[2] + k2 * dl[2];
                    if (i0 < 0 || i0 >= in[0] || i1 < 0 || i1 >= in[1] || i2 < 0 || i2 >= in[2]) continue;
                    const int64_t c = co / cog * cg + ci;
                    f(yi, (((b * cin + c) * in[0] + i0) * in[1] + i1) * in[2] + i2,
                      (((co * cg + ci) * k[0] + k0) * k[1] + k1) * k[2] + k2);
                  }
  Shape ys{B, cout};
  for (int64_t d = lead; d < 3; ++d) ys.push_back(out[d]);
  return ys;
}

struct Direct {
  Shape shape;
  std::vector<double> y, abs;  // values and the sum of |terms| of each output
  int64_t terms = 0;           // the most products any output sums (plus the bias)
};

Direct direct_conv(const Tensor& x, const Tensor& w, const Tensor& b, const ConvArgs& a) {
  const std::vector<double> xv = x.values<double>(), wv = w.values<double>();
  Direct r;
  std::vector<double> y, abs;
  std::vector<int64_t> count;
  r.shape = for_each_tap(x.shape(), w.shape(), a, [&](int64_t yi, int64_t xi, int64_t wi) {
    if (yi >= static_cast<int64_t>(y.size())) y.resize(yi + 1), abs.resize(yi + 1), count.resize(yi + 1);
    y[yi] += xv[xi] * wv[wi];
    abs[yi] += std::fabs(xv[xi] * wv[wi]);
    r.terms = std::max(r.terms, ++count[yi]);
  });
  y.resize(numel_of(r.shape)), abs.resize(numel_of(r.shape));
  if (b.defined()) {
    const std::vector<double> bv = b.values<double>();
    const int64_t per = numel_of(r.shape) / std::max<int64_t>(1, r.shape[0] * r.shape[1]);
    for (size_t i = 0; i < y.size(); ++i) {
      const double bias = bv[(static_cast<int64_t>(i) / per) % r.shape[1]];
      y[i] += bias;
      abs[i] += std::fabs(bias);
    }
  }
  r.y = std::move(y);
  r.abs = std::move(abs);
  r.terms += 1;
  return r;
}

double unit(DType dt) { return dt == kFloat32 ? std::ldexp(1.0, -24) : std::ldexp(1.0, -53); }

void expect_matches(const Tensor& got, const std::vector<double>& want, const std::vector<double>& abs, int64_t terms,
                    const char* what) {
  const std::vector<double> g = got.values<double>();
  ASSERT_EQ(g.size(), want.size()) << what;
  const double u = unit(got.dtype());
  int bad = 0;
  for (size_t i = 0; i < g.size() && bad < 5; ++i) {
    const double tol = static_cast<double>(terms + 2) * u * abs[i] + 1e-300;
    if (!(std::fabs(g[i] - want[i]) <= tol)) {
      ++bad;
      ADD_FAILURE() << what << " element " << i << ": got " << g[i] << ", want " << want[i] << " (tol " << tol << ")";
    }
  }
}

Tensor random(const Shape& s, DType dt, uint64_t seed) {
  Generator gen(seed);
  return rand(s, {.dtype = dt}, &gen, -1.0, 1.0);
}

struct Case {
  const char* name;
  Shape x, w;
  ConvArgs a;
  bool bias = true;
};

std::vector<Case> forward_cases() {
  return {
      {"1d stride 2 pad 1", {2, 3, 11}, {4, 3, 3}, {{2}, {1}, {1}, 1}},
      {"1d groups 2 dilation 2", {2, 4, 9}, {6, 2, 3}, {{1}, {2}, {2}, 2}},
      {"1d all sizes 1", {1, 1, 1}, {1, 1, 1}, {}},
      {"1d depthwise", {3, 5, 7}, {5, 1, 3}, {{1}, {1}, {1}, 5}, false},
      {"1d kernel larger than input", {2, 2, 3}, {3, 2, 5}, {{1}, {2}, {1}, 1}},
      {"1d stride larger than anything", {1, 2, 5}, {3, 2, 3}, {{std::numeric_limits<int64_t>::max()}, {1}, {1}, 1}},
      {"1d pointwise", {2, 6, 7}, {4, 6, 1}, {}},
      {"1d pointwise groups 2", {2, 6, 7}, {4, 3, 1}, {{1}, {0}, {1}, 2}},
      {"2d stride, padding, dilation per dim", {2, 3, 7, 9}, {4, 3, 3, 3}, {{2, 1}, {1, 0}, {1, 2}, 1}},
      {"2d resnet stem 7x7 s2 p3", {2, 1, 13, 15}, {4, 1, 7, 7}, {{2}, {3}, {1}, 1}, false},
      {"2d depthwise", {2, 4, 6, 5}, {4, 1, 3, 3}, {{1}, {1}, {1}, 4}},
      {"2d depthwise multiplier 2", {1, 3, 5, 5}, {6, 1, 2, 2}, {{2}, {0}, {1}, 3}},
      {"2d kernel larger than input", {1, 2, 2, 3}, {3, 2, 5, 5}, {{1}, {2}, {1}, 1}},
      {"2d one pixel", {1, 1, 1, 1}, {2, 1, 1, 1}, {}},
      {"2d batch 1, gemm-threaded path", {1, 8, 20, 20}, {16, 8, 3, 3}, {{1}, {1}, {1}, 1}},
      {"2d batch 4, items in parallel", {4, 8, 16, 16}, {16, 8, 3, 3}, {{1}, {1}, {1}, 1}},
      {"3d (2+1)D spatial 1x3x3", {2, 3, 4, 7, 6}, {5, 3, 1, 3, 3}, {{1, 2, 2}, {0, 1, 1}, {1}, 1}},
      {"3d (2+1)D temporal 3x1x1", {2, 5, 7, 4, 3}, {4, 5, 3, 1, 1}, {{2, 1, 1}, {1, 0, 0}, {1}, 1}},
      {"3d stem 1x7x7", {1, 3, 3, 11, 11}, {4, 3, 1, 7, 7}, {{1, 2, 2}, {0, 3, 3}, {1}, 1}, false},
      {"3d 3x3x3 dilation groups", {1, 4, 5, 6, 7}, {4, 2, 3, 3, 3}, {{1}, {1}, {2, 1, 2}, 2}},
      {"3d 1x1x1 stride 2", {2, 3, 5, 5, 5}, {4, 3, 1, 1, 1}, {{2}, {0}, {1}, 1}},
      {"3d 3x3x3 batch 3, items in parallel", {3, 6, 4, 9, 9}, {8, 6, 3, 3, 3}, {{1}, {1}, {1}, 1}},
      {"2d col in 4 chunks of lines", {1, 64, 40, 40}, {8, 64, 3, 3}, {{1}, {1}, {1}, 1}},
      {"3d col chunks crossing od", {2, 32, 3, 11, 12}, {4, 32, 3, 3, 3}, {{1}, {1}, {1}, 1}},
      // A kx1x1 conv copies whole planes at once; its chunks (68 lines, 34 in float64) end inside a plane.
      {"3d temporal 3x1x1 col chunks inside a plane", {1, 64, 4, 20, 20}, {8, 64, 3, 1, 1}, {{1}, {1, 0, 0}, {1}, 1}},
  };
}

Tensor run_conv(const Tensor& x, const Tensor& w, const Tensor& b, const ConvArgs& a) {
  return conv(x, w, b, a.stride, a.padding, a.dilation, a.groups);
}

TEST(Conv, ForwardMatchesDirectConvolution) {
  for (const Case& c : forward_cases()) {
    for (DType dt : {kFloat32, kFloat64}) {
      SCOPED_TRACE(std::string(c.name) + (dt == kFloat32 ? " float32" : " float64"));
      const Tensor x = random(c.x, dt, 1), w = random(c.w, dt, 2);
      const Tensor b = c.bias ? random({c.w[0]}, dt, 3) : Tensor();
      const Direct d = direct_conv(x, w, b, c.a);
      const Tensor y = run_conv(x, w, b, c.a);
      EXPECT_EQ(y.shape(), d.shape);
      EXPECT_EQ(y.dtype(), dt);
      expect_matches(y, d.y, d.abs, d.terms, "y");
    }
  }
}

TEST(Conv, NonContiguousOperands) {
  // x read through a permutation, the weight through a step-2 slice.
  const Tensor xp = random({2, 6, 7, 3}, kFloat64, 4), x = xp.permute({0, 3, 1, 2});
  const Tensor wbig = random({4, 3, 3, 5}, kFloat64, 5), w = wbig.slice(-1, 0, 5, 2);
  ASSERT_FALSE(x.is_contiguous());
  ASSERT_FALSE(w.is_contiguous());
  const ConvArgs a{{1, 2}, {1}, {1}, 1};
  const Direct d = direct_conv(x, w, Tensor(), a);
  expect_matches(run_conv(x, w, Tensor(), a), d.y, d.abs, d.terms, "y");
}

TEST(Conv, EmptyBatch) {
  Tensor x = zeros({0, 3, 5}), w = ones({4, 3, 3}), b = ones({4});
  x.requires_grad_();
  w.requires_grad_();
  b.requires_grad_();
  const Tensor y = conv(x, w, b);
  EXPECT_EQ(y.shape(), (Shape{0, 4, 3}));
  sum(y).backward();
  EXPECT_EQ(x.grad().shape(), (Shape{0, 3, 5}));
  EXPECT_EQ(w.grad().values<float>(), std::vector<float>(36, 0.0f));
  EXPECT_EQ(b.grad().values<float>(), std::vector<float>(4, 0.0f));
}

// The gradients of sum(y * gy) against the direct loops, in float64, on shapes large enough for the GEMM's
// blocking (K = 32 * 9 = 288 > its K block of 256) and for both threading paths.
TEST(Conv, GradientsMatchDirectLoops) {
  const std::vector<Case> cases = {
      {"2d groups 2 K 288, items in parallel", {3, 64, 16, 15}, {8, 32, 3, 3}, {{2}, {1}, {1}, 2}},
      {"2d batch 1, gemm-threaded", {1, 16, 20, 19}, {16, 16, 3, 3}, {{1, 2}, {2, 1}, {2, 1}, 1}},
      {"3d depthwise", {2, 4, 3, 6, 5}, {4, 1, 3, 3, 3}, {{1}, {1}, {1}, 4}},
      {"1d pointwise", {3, 6, 9}, {4, 6, 1}, {}},
      {"3d col chunks crossing od, stride 2", {2, 32, 5, 21, 12}, {4, 32, 3, 3, 3}, {{1, 2, 1}, {1}, {1}, 1}},
      {"3d temporal 3x1x1 stride 2, chunks inside a plane",
       {2, 64, 4, 20, 20},
       {4, 64, 3, 1, 1},
       {{2, 1, 1}, {1, 0, 0}, {1}, 1}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Tensor x = random(c.x, kFloat64, 10), w = random(c.w, kFloat64, 11), b = random({c.w[0]}, kFloat64, 12);
    x.requires_grad_();
    w.requires_grad_();
    b.requires_grad_();
    const Tensor y = run_conv(x, w, b, c.a);
    const Tensor gy = random(y.shape(), kFloat64, 13);
    y.backward(gy);
    const std::vector<double> xv = x.values<double>(), wv = w.values<double>(), gv = gy.values<double>();
    std::vector<double> gx(xv.size()), gw(wv.size()), gb(c.w[0]), ax(xv.size()), aw(wv.size()), ab(c.w[0]);
    const int64_t per = y.numel() / (y.size(0) * y.size(1));
    for_each_tap(c.x, c.w, c.a, [&](int64_t yi, int64_t xi, int64_t wi) {
      gx[xi] += gv[yi] * wv[wi], ax[xi] += std::fabs(gv[yi] * wv[wi]);
      gw[wi] += gv[yi] * xv[xi], aw[wi] += std::fabs(gv[yi] * xv[xi]);
    });
    for (int64_t i = 0; i < y.numel(); ++i) gb[(i / per) % y.size(1)] += gv[i], ab[(i / per) % y.size(1)] += 1;
    const int64_t n = y.numel();  // a generous bound on the number of terms of any gradient element
    expect_matches(x.grad(), gx, ax, n, "dx");
    expect_matches(w.grad(), gw, aw, n, "dw");
    expect_matches(b.grad(), gb, ab, n, "db");
  }
}

using gradcheck_test::randn_leaf;

void conv_gradcheck(const Shape& xs, const Shape& ws, const ConvArgs& a, bool bias = true) {
  const Tensor x = randn_leaf(xs, 20), w = randn_leaf(ws, 21);
  const Tensor b = bias ? randn_leaf({ws[0]}, 22) : Tensor();
  std::vector<Tensor> inputs{x, w};
  if (bias) inputs.push_back(b);
  expect_gradcheck(
      [a, bias](const std::vector<Tensor>& in) { return run_conv(in[0], in[1], bias ? in[2] : Tensor(), a); }, inputs);
}

TEST(ConvGradcheck, OneD) {
  conv_gradcheck({2, 4, 7}, {6, 2, 3}, {{2}, {1}, {2}, 2});
  conv_gradcheck({1, 3, 5}, {2, 3, 4}, {{1}, {2}, {1}, 1}, false);
}

TEST(ConvGradcheck, TwoD) {
  conv_gradcheck({2, 3, 5, 6}, {4, 3, 3, 2}, {{2, 1}, {1, 1}, {1, 2}, 1});
  conv_gradcheck({1, 3, 5, 5}, {3, 1, 3, 3}, {{2}, {1}, {1}, 3});  // depthwise
  conv_gradcheck({2, 4, 3, 3}, {2, 4, 1, 1}, {});                  // pointwise
  conv_gradcheck({1, 2, 2, 3}, {2, 2, 5, 5}, {{1}, {2}, {1}, 1});  // kernel larger than the input
}

TEST(ConvGradcheck, ThreeD) {
  conv_gradcheck({1, 2, 3, 5, 4}, {3, 2, 1, 3, 3}, {{1, 2, 1}, {0, 1, 1}, {1}, 1});  // 1x3x3
  conv_gradcheck({2, 2, 4, 3, 3}, {2, 2, 3, 1, 1}, {{2, 1, 1}, {1, 0, 0}, {1}, 1});  // 3x1x1
  conv_gradcheck({1, 4, 4, 4, 4}, {2, 2, 2, 2, 2}, {{1}, {1}, {2}, 2}, false);
}

TEST(ConvGradcheck, NonContiguousLeafAndPartialGrads) {
  using gradcheck_test::strided_leaf;
  // A leaf with last stride 2 and an offset.
  const Tensor x = strided_leaf({2, 3, 6}, 23), w = randn_leaf({4, 3, 3}, 24);
  expect_gradcheck([](const std::vector<Tensor>& in) { return conv(in[0], in[1], Tensor(), {2}, {1}); }, {x, w});
  // Only one input requires grad: the saved tensors differ (x is kept only for dw, w only for dx).
  const Tensor xf = randn(Shape{2, 3, 6}, gradcheck_test::kF64), wf = randn(Shape{4, 3, 3}, gradcheck_test::kF64);
  expect_gradcheck([&](const std::vector<Tensor>& in) { return conv(in[0], wf, Tensor(), {1}, {1}); },
                   {randn_leaf({2, 3, 6}, 25)});
  expect_gradcheck([&](const std::vector<Tensor>& in) { return conv(xf, in[0], Tensor(), {1}, {1}); },
                   {randn_leaf({4, 3, 3}, 26)});
  expect_gradcheck([&](const std::vector<Tensor>& in) { return conv(xf, wf, in[0]); }, {randn_leaf({4}, 27)});
}

// Forward and every gradient, bitwise, whatever the thread count: 1 thread runs items one after another,
// 2 and 3 run them in parallel (batch > 1) or split each item's GEMM and im2col / col2im (batch 1).
TEST(Conv, BitwiseEqualWithAnyThreadCount) {
  const std::vector<Case> cases = {
      {"batch 5 grouped", {5, 8, 12, 13}, {12, 4, 3, 3}, {{1}, {1}, {1}, 2}},
      {"batch 1 large", {1, 16, 24, 24}, {32, 16, 3, 3}, {{1}, {1}, {1}, 1}},
      {"batch 3 3d", {3, 8, 4, 10, 10}, {8, 8, 3, 3, 3}, {{1, 2, 2}, {1}, {1}, 1}},
      {"batch 4 pointwise", {4, 32, 48}, {48, 32, 1}, {}},
      {"batch 2 3d col chunks", {2, 32, 4, 12, 12}, {16, 32, 3, 3, 3}, {{1}, {1}, {1}, 1}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<std::vector<float>> runs[4];
    for (int threads : {1, 2, 3}) {
      OmpThreads guard(threads);
      Tensor x = random(c.x, kFloat32, 30), w = random(c.w, kFloat32, 31), b = random({c.w[0]}, kFloat32, 32);
      x.requires_grad_();
      w.requires_grad_();
      b.requires_grad_();
      const Tensor y = run_conv(x, w, b, c.a);
      y.backward(random(y.shape(), kFloat32, 33));
      runs[0].push_back(y.values<float>());
      runs[1].push_back(x.grad().values<float>());
      runs[2].push_back(w.grad().values<float>());
      runs[3].push_back(b.grad().values<float>());
    }
    const char* names[4] = {"y", "dx", "dw", "db"};
    for (int k = 0; k < 4; ++k) {
      EXPECT_TRUE(same_bits(runs[k][0], runs[k][1])) << names[k] << ": 1 vs 2 threads";
      EXPECT_TRUE(same_bits(runs[k][0], runs[k][2])) << names[k] << ": 1 vs 3 threads";
    }
  }
}

TEST(ConvErrors, EveryBadArgumentNamesOpAndShapes) {
  using errors_test::f32;
  using errors_test::f64;
  const Tensor x = f32({2, 3, 8, 8}), w = f32({16, 3, 3, 3});
  EXPECT_ERROR(conv(f32({3, 8}), f32({4, 3})), "conv: input", "[3,8]", "1 to 3 spatial dims");
  EXPECT_ERROR(conv(f32({1, 1, 2, 2, 2, 2}), f32({1, 1, 1, 1, 1, 1})), "conv: input", "[1,1,2,2,2,2]");
  EXPECT_ERROR(conv(x, f32({16, 3, 3})), "conv: input [2,3,8,8], weight [16,3,3]", "needs a weight with 4 dims");
  EXPECT_ERROR(conv(x, f32({16, 4, 3, 3})),
               "conv: input [2,3,8,8] has 3 channels but weight [16,4,3,3] expects 4 "
               "(groups 1)");
  EXPECT_ERROR(conv(f32({2, 4, 8, 8}), f32({6, 2, 3, 3}), Tensor(), {1}, {0}, {1}, 3), "conv: input [2,4,8,8]",
               "[6,2,3,3]", "groups 3 must divide");
  EXPECT_ERROR(conv(f32({2, 4, 8, 8}), f32({6, 2, 3, 3}), Tensor(), {1}, {0}, {1}, 1), "has 4 channels",
               "expects 2 (groups 1)");
  EXPECT_ERROR(conv(x, w, Tensor(), {1}, {0}, {1}, 0), "conv: input [2,3,8,8], weight [16,3,3,3]",
               "groups must be at least 1");
  EXPECT_ERROR(conv(f32({1, 1, 4}), f32({1, 1, 7})), "conv: input [1,1,4], weight [1,1,7]", "output size -2",
               "larger than the padded input");
  EXPECT_ERROR(conv(f32({1, 1, 4, 4}), f32({1, 1, 3, 3}), Tensor(), {1}, {0}, {1, 2}), "spatial dim 1", "output size 0",
               "dilation [1,2]");
  EXPECT_ERROR(conv(x, w, Tensor(), {0}), "conv: input [2,3,8,8], weight [16,3,3,3]", "stride [0,0]");
  EXPECT_ERROR(conv(x, w, Tensor(), {1, -2}), "stride [1,-2] must be at least 1");
  EXPECT_ERROR(conv(x, w, Tensor(), {1}, {-1}), "padding [-1,-1] must not be negative");
  EXPECT_ERROR(conv(x, w, Tensor(), {1}, {0}, {0}), "dilation [0,0] must be at least 1");
  EXPECT_ERROR(conv(x, w, Tensor(), {1, 2, 3}), "conv: input [2,3,8,8], weight [16,3,3,3]", "stride [1,2,3]",
               "needs 1 or 2 values");
  EXPECT_ERROR(conv(x, w, Tensor(), {1}, {}), "padding []", "needs 1 or 2 values");
  EXPECT_ERROR(conv(x, w, Tensor(), {1}, {0}, {1, 1, 1}), "dilation [1,1,1]", "needs 1 or 2 values");
  EXPECT_ERROR(conv(x, w, Tensor(), {1}, {std::numeric_limits<int64_t>::max()}), "too large");
  EXPECT_ERROR(conv(x, f64({16, 3, 3, 3})), "conv: dtype mismatch", "float32[2,3,8,8]", "float64[16,3,3,3]");
  EXPECT_ERROR(conv(x, w, f64({16})), "conv: dtype mismatch", "float64[16]");
  EXPECT_ERROR(conv(x, w, f32({15})), "conv: input [2,3,8,8], weight [16,3,3,3]", "bias must be [16]", "float32[15]");
  EXPECT_ERROR(conv(errors_test::i64({2, 3, 8, 8}), w), "conv: expected a float32 or float64", "int64[2,3,8,8]");
  EXPECT_ERROR(conv(x, Tensor()), "conv", "weight");
  EXPECT_ERROR(conv(f32({2, 3, 0, 8}), w), "conv: input [2,3,0,8]", "empty");
  EXPECT_ERROR(conv(f32({2, 3, 8, 8}), f32({16, 3, 0, 3})), "kernel size 0");
}

// ---- layers -------------------------------------------------------------------------------------

TEST(ConvLayer, NamesShapesAndRepr) {
  Generator gen(40);
  nn::Conv2d c2(3, 8, {3, 5}, 2, {1, 2}, 1, 1, true, &gen);
  const nn::NamedTensors p = c2.named_parameters();
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].first, "weight");
  EXPECT_EQ(p[0].second.shape(), (Shape{8, 3, 3, 5}));
  EXPECT_EQ(p[1].first, "bias");
  EXPECT_EQ(p[1].second.shape(), (Shape{8}));
  EXPECT_TRUE(c2.weight.requires_grad() && c2.weight.is_leaf());
  EXPECT_EQ(c2.describe(), "Conv2d(3, 8, kernel_size=(3, 5), stride=(2, 2), padding=(1, 2))");

  nn::Conv3d stem(3, 45, {1, 7, 7}, {1, 2, 2}, {0, 3, 3}, 1, 1, false, &gen);
  ASSERT_EQ(stem.named_parameters().size(), 1u);
  EXPECT_EQ(stem.weight.shape(), (Shape{45, 3, 1, 7, 7}));
  EXPECT_EQ(stem.describe(), "Conv3d(3, 45, kernel_size=(1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False)");
  EXPECT_EQ(stem.type_name(), "Conv3d");

  nn::Conv1d tcn(4, 6, 5, 1, 0, 2, 2, true, &gen, true);
  EXPECT_EQ(tcn.weight.shape(), (Shape{6, 2, 5}));
  EXPECT_EQ(tcn.describe(), "Conv1d(4, 6, kernel_size=(5,), stride=(1,), dilation=(2,), groups=2, causal=True)");

  // Forward is the op with the layer's arguments.
  const Tensor x = random({2, 3, 9, 11}, kFloat32, 41);
  EXPECT_TRUE(same_bits(c2(x).values<float>(), conv(x, c2.weight, c2.bias, {2, 2}, {1, 2}, {1, 1}, 1).values<float>()));
}

TEST(ConvLayer, DefaultInitMatchesTorchBounds) {
  // kaiming_uniform_(a = sqrt(5)) has bound gain sqrt(3 / fan_in) with gain sqrt(2 / 6): 1 / sqrt(fan_in),
  // the same as the bias's. fan_in = in / groups * prod(kernel).
  struct Layer {
    std::shared_ptr<nn::ConvNd> conv;
    double fan_in;
  };
  Generator gen(42);
  const std::vector<Layer> layers = {
      {std::make_shared<nn::Conv2d>(16, 32, 3, 1, 0, 1, 1, true, &gen), 144},
      {std::make_shared<nn::Conv2d>(16, 32, 3, 1, 0, 1, 4, true, &gen), 36},
      {std::make_shared<nn::Conv3d>(8, 64, std::vector<int64_t>{3, 1, 1}, 1, 0, 1, 1, true, &gen), 24},
      {std::make_shared<nn::Conv1d>(64, 256, 5, 1, 0, 1, 1, true, &gen), 320},
  };
  for (const Layer& l : layers) {
    SCOPED_TRACE(l.conv->describe());
    const double bound = 1.0 / std::sqrt(l.fan_in);
    for (const Tensor& t : {l.conv->weight, l.conv->bias}) {
      double lo = 1, hi = -1;
      for (float v : t.values<float>()) lo = std::min<double>(lo, v), hi = std::max<double>(hi, v);
      EXPECT_GE(lo, -bound);
      EXPECT_LE(hi, bound);
      // Enough draws (>= 32) to come near both ends of the range.
      EXPECT_LT(lo, -0.5 * bound);
      EXPECT_GT(hi, 0.5 * bound);
    }
  }
  // The same seed gives the same layer.
  Generator g1(7), g2(7);
  nn::Conv2d a(3, 4, 3, 1, 0, 1, 1, true, &g1), b(3, 4, 3, 1, 0, 1, 1, true, &g2);
  EXPECT_TRUE(same_bits(a.weight.values<float>(), b.weight.values<float>()));
  EXPECT_TRUE(same_bits(a.bias.values<float>(), b.bias.values<float>()));
}

TEST(ConvLayer, CausalConv1dSeesOnlyThePast) {
  Generator gen(43);
  nn::Conv1d c(2, 3, 3, 1, 0, 2, 1, true, &gen, true);  // reaches back (3 - 1) * 2 = 4 steps
  c.to(kFloat64);
  const Tensor x = random({2, 2, 12}, kFloat64, 44);
  const Tensor y = c(x);
  ASSERT_EQ(y.shape(), (Shape{2, 3, 12}));
  // torch's TCN: pad (k - 1) d on both sides, convolve, chomp the last (k - 1) d steps.
  const Tensor chomped = conv(x, c.weight, c.bias, {1}, {4}, {2}).narrow(2, 0, 12);
  EXPECT_TRUE(same_bits(y.values<double>(), chomped.values<double>()));
  for (int64_t t0 : {0, 5, 11}) {
    std::vector<double> xv = x.values<double>();
    xv[1 * 24 + 1 * 12 + t0] += 1.0;  // batch 1, channel 1, step t0
    const Tensor y2 = c(from_vector(xv, x.shape(), {.dtype = kFloat64}));
    const std::vector<double> a = y.values<double>(), b = y2.values<double>();
    for (int64_t i = 0; i < y.numel(); ++i) {
      const int64_t bi = i / 36, t = i % 12;
      if (bi == 0 || t < t0 || t > t0 + 4) {
        EXPECT_EQ(a[i], b[i]) << "output " << i << " moved when input step " << t0 << " changed";
      }
    }
    EXPECT_NE(a[36 + t0], b[36 + t0]) << "output step " << t0 << " should see input step " << t0;
  }
  // Gradients flow through the left padding.
  expect_gradcheck([&](const std::vector<Tensor>& in) { return c(in[0]); }, {randn_leaf({1, 2, 6}, 45)});
}

TEST(ConvLayer, ConstructorErrors) {
  EXPECT_ERROR(nn::Conv2d(4, 6, 3, 1, 0, 1, 4), "Conv2d: groups 4", "in=4 and out=6");
  EXPECT_ERROR(nn::Conv2d(0, 6, 3), "Conv2d: needs at least one input");
  EXPECT_ERROR(nn::Conv2d(3, 6, {3, 3, 3}), "Conv2d: kernel_size [3,3,3] needs 1 or 2 values");
  EXPECT_ERROR(nn::Conv3d(3, 6, 3, {1, 2}), "Conv3d: stride [1,2] needs 1 or 3 values");
  EXPECT_ERROR(nn::Conv1d(3, 6, 0), "Conv1d: kernel_size (0,) must be at least 1");
  EXPECT_ERROR(nn::Conv1d(3, 6, 3, 0), "Conv1d: stride (0,)");
  EXPECT_ERROR(nn::Conv1d(3, 6, 3, 1, -1), "Conv1d: padding (-1,)");
  EXPECT_ERROR(nn::Conv1d(3, 6, 3, 1, 0, 0), "Conv1d: dilation (0,)");
  EXPECT_ERROR(nn::Conv1d(3, 6, 3, 1, 1, 1, 1, true, nullptr, true), "Conv1d: a causal convolution",
               "padding must be 0");
  nn::Conv1d causal(3, 6, 3, 1, 0, 1, 1, true, nullptr, true);
  EXPECT_ERROR(causal(ones({1, 3, 8, 8})), "causal Conv1d takes x [batch, channels, time]", "float32[1,3,8,8]");
  nn::Conv2d c(3, 6, 3);
  EXPECT_ERROR(c(ones({1, 4, 8, 8})), "conv: input [1,4,8,8] has 4 channels but weight [6,3,3,3] expects 3");
}

}  // namespace
