// max_pool, avg_pool, adaptive_avg_pool (autograd/ops_pool.cpp, cpu/pool.cpp) and the pooling layers
// (layers/pool.h):
//   - forward and backward against direct loops written here, over 1-3 trailing dims, with strides,
//     padding, odd sizes and (adaptive) cell counts that do not divide the input or exceed it;
//   - max pooling's tie rule (the first maximum gets the gradient), its -inf padding and NaN propagation;
//   - gradcheck in float64 (max_pool on inputs with distinct values, so no window holds a tie);
//   - bitwise-equal results with 1, 2 and 3 OpenMP threads;
//   - every argument error, and the layers' repr and checks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include "autograd/minidl.h"
#include "layers/pool.h"
#include "tests/autograd/expect_error.h"
#include "tests/autograd/gradcheck_helpers.h"
#include "tests/cpu/kernel_helpers.h"

using namespace minidl;

namespace {

using gradcheck_test::expect_gradcheck;
using kernel_test::OmpThreads;
using kernel_test::same_bits;

enum class Kind { Max, Avg, AvgNoPad, Adaptive };

struct PoolArgs {
  std::vector<int64_t> kernel{}, stride{}, padding{0};  // kernel: the output size for Adaptive
};

struct Direct {
  Shape shape;
  std::vector<double> y;
  std::vector<int64_t> argmax;  // Max: flat index in the input plane
};

// Pooling by direct loops over every window of every plane of x [B, C, *spatial].
Direct direct_pool(Kind kind, const Tensor& x, const PoolArgs& a) {
  const int64_t r = static_cast<int64_t>(a.kernel.size()), lead = 3 - r;
  auto arg = [](const std::vector<int64_t>& v, int64_t d, const std::vector<int64_t>& dflt) {
    return v.empty() ? dflt[d] : v.size() == 1 ? v[0] : v[d];
  };
  int64_t in[3], out[3];
  std::function<std::pair<int64_t, int64_t>(int64_t, int64_t)> window[3];  // (dim, o) -> [start, end) unclipped
  for (int64_t d = 0; d < 3; ++d) {
    const int64_t e = d - lead;
    in[d] = e < 0 ? 1 : x.size(e + 2);
    if (e < 0) {
      out[d] = 1;
      window[d] = [](int64_t, int64_t) { return std::pair<int64_t, int64_t>{0, 1}; };
    } else if (kind == Kind::Adaptive) {
      const int64_t n = in[d], m = a.kernel[e];
      out[d] = m;
      window[d] = [n, m](int64_t, int64_t o) {
        return std::pair<int64_t, int64_t>{o * n / m, ((o + 1) * n + m - 1) / m};
      };
    } else {
      const int64_t k = a.kernel[e], s = arg(a.stride, e, a.kernel), p = arg(a.padding, e, a.kernel);
      out[d] = (in[d] + 2 * p - k) / s + 1;
      window[d] = [k, s, p](int64_t, int64_t o) { return std::pair<int64_t, int64_t>{o * s - p, o * s - p + k}; };
    }
  }
  const std::vector<double> xv = x.values<double>();
  const int64_t planes = x.size(0) * x.size(1), plane = in[0] * in[1] * in[2];
  Direct r2;
  r2.shape = {x.size(0), x.size(1)};
  for (int64_t d = lead; d < 3; ++d) r2.shape.push_back(out[d]);
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t o0 = 0; o0 < out[0]; ++o0)
      for (int64_t o1 = 0; o1 < out[1]; ++o1)
        for (int64_t o2 = 0; o2 < out[2]; ++o2) {
          const auto [s0, e0] = window[0](0, o0);
          const auto [s1, e1] = window[1](1, o1);
          const auto [s2, e2] = window[2](2, o2);
          double best = -std::numeric_limits<double>::infinity(), sum = 0;
          int64_t best_at = -1, count = 0;
          for (int64_t i0 = s0; i0 < e0; ++i0)
            for (int64_t i1 = s1; i1 < e1; ++i1)
              for (int64_t i2 = s2; i2 < e2; ++i2) {
                if (i0 < 0 || i0 >= in[0] || i1 < 0 || i1 >= in[1] || i2 < 0 || i2 >= in[2]) continue;
                const int64_t at = (i0 * in[1] + i1) * in[2] + i2;
                const double v = xv[p * plane + at];
                if (best_at < 0 || v > best) best = v, best_at = at;
                sum += v;
                ++count;
              }
          const double full = static_cast<double>((e0 - s0) * (e1 - s1) * (e2 - s2));
          r2.y.push_back(kind == Kind::Max ? best : sum / (kind == Kind::Avg ? full : static_cast<double>(count)));
          r2.argmax.push_back(best_at);
        }
  return r2;
}

Tensor run_pool(Kind kind, const Tensor& x, const PoolArgs& a) {
  switch (kind) {
    case Kind::Max: return max_pool(x, a.kernel, a.stride, a.padding);
    case Kind::Avg: return avg_pool(x, a.kernel, a.stride, a.padding, true);
    case Kind::AvgNoPad: return avg_pool(x, a.kernel, a.stride, a.padding, false);
    case Kind::Adaptive: return adaptive_avg_pool(x, a.kernel);
  }
  return Tensor();
}

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::Max: return "max_pool";
    case Kind::Avg: return "avg_pool count_include_pad";
    case Kind::AvgNoPad: return "avg_pool without padding in the count";
    case Kind::Adaptive: return "adaptive_avg_pool";
  }
  return "?";
}

Tensor random(const Shape& s, DType dt, uint64_t seed) {
  Generator gen(seed);
  return rand(s, {.dtype = dt}, &gen, -1.0, 1.0);
}

struct Case {
  Shape x;
  PoolArgs a;
};

std::vector<Case> window_cases() {
  return {
      {{2, 3, 11}, {{3}, {2}, {1}}},
      {{1, 2, 1}, {{1}, {}, {0}}},
      {{2, 2, 7}, {{2}, {}, {1}}},  // stride defaults to the kernel
      {{2, 3, 9, 8}, {{3, 2}, {2, 1}, {1, 0}}},
      {{1, 2, 13, 15}, {{3, 3}, {2}, {1}}},  // ResNet's stem pool
      {{2, 2, 7, 7}, {{7, 7}, {1}, {3}}},    // kernel as large as the input, padded
      {{1, 2, 4, 7, 6}, {{1, 3, 3}, {1, 2, 2}, {0, 1, 1}}},
      {{2, 1, 5, 3, 4}, {{2, 1, 2}, {2, 1, 1}, {1, 0, 0}}},
  };
}

std::vector<Case> adaptive_cases() {
  return {
      {{2, 3, 7}, {{3}}},
      {{1, 2, 3}, {{5}}},  // more cells than inputs: cells overlap
      {{2, 2, 7, 5}, {{3, 2}}},
      {{2, 3, 6, 6}, {{1, 1}}},
      {{1, 2, 4, 5, 3}, {{3, 2, 2}}},
      {{2, 2, 4, 7, 7}, {{1, 1, 1}}},
  };
}

void expect_close(const std::vector<double>& got, const std::vector<double>& want, double tol, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tol * (1 + std::fabs(want[i]))) << what << " element " << i;
}

// Forward, and the gradient of sum(y * gy) (scattered through the direct windows), for every kind.
TEST(Pool, ForwardAndBackwardMatchDirectLoops) {
  for (Kind kind : {Kind::Max, Kind::Avg, Kind::AvgNoPad, Kind::Adaptive}) {
    for (const Case& c : kind == Kind::Adaptive ? adaptive_cases() : window_cases()) {
      for (DType dt : {kFloat32, kFloat64}) {
        SCOPED_TRACE(std::string(kind_name(kind)) + " on " + shape_str(c.x) + " kernel/size " + shape_str(c.a.kernel) +
                     (dt == kFloat32 ? " float32" : " float64"));
        Tensor x = random(c.x, dt, 1);
        x.requires_grad_();
        const Direct d = direct_pool(kind, x, c.a);
        const Tensor y = run_pool(kind, x, c.a);
        ASSERT_EQ(y.shape(), d.shape);
        const double tol = dt == kFloat32 ? 1e-6 : 1e-14;
        if (kind == Kind::Max) {
          EXPECT_EQ(y.values<double>(), d.y);  // a maximum is exact
        } else {
          expect_close(y.values<double>(), d.y, tol, "y");
        }
        // Backward: a direct scatter of each output's gradient.
        const Tensor gy = random(y.shape(), dt, 2);
        y.backward(gy);
        const std::vector<double> gv = gy.values<double>();
        std::vector<double> gx(static_cast<size_t>(x.numel()), 0.0);
        const int64_t plane = x.numel() / (x.size(0) * x.size(1)), per = y.numel() / (y.size(0) * y.size(1));
        if (kind == Kind::Max) {
          for (int64_t i = 0; i < y.numel(); ++i) gx[(i / per) * plane + d.argmax[i]] += gv[i];
        } else {
          // avg: d(y_o)/d(x_i) is y's own formula with x = one-hot; get it from the direct loops.
          for (int64_t i = 0; i < x.numel(); ++i) {
            std::vector<double> e(static_cast<size_t>(x.numel()), 0.0);
            e[i] = 1.0;
            const Direct di = direct_pool(kind, from_vector(e, x.shape(), {.dtype = kFloat64}), c.a);
            for (int64_t o = 0; o < y.numel(); ++o) gx[i] += gv[o] * di.y[o];
          }
        }
        expect_close(x.grad().values<double>(), gx, tol * 4, "dx");
      }
    }
  }
}

TEST(Pool, MaxTiesGoToTheFirstMaximumAndPaddingIsMinusInfinity) {
  Tensor x = ones({1, 1, 5});
  x.requires_grad_();
  sum(max_pool(x, {3}, {1})).backward();
  EXPECT_EQ(x.grad().values<float>(), (std::vector<float>{1, 1, 1, 0, 0}));

  // All values negative: a zero padding would win; -inf padding never does.
  Tensor n = full({1, 1, 3}, -1.0);
  n.requires_grad_();
  const Tensor y = max_pool(n, {3}, {1}, {1});
  EXPECT_EQ(y.values<float>(), (std::vector<float>{-1, -1, -1}));
  sum(y).backward();
  EXPECT_EQ(n.grad().values<float>(), (std::vector<float>{2, 1, 0}));

  // 2-D ties: the first in row-major order.
  Tensor t = from_vector({0, 2, 2, 0, 2, 2, 0, 0, 0}, {1, 1, 3, 3});
  t.requires_grad_();
  const Tensor yt = max_pool(t, {2, 2}, {1});
  EXPECT_EQ(yt.values<float>(), (std::vector<float>{2, 2, 2, 2}));
  sum(yt).backward();
  EXPECT_EQ(t.grad().values<float>(), (std::vector<float>{0, 2, 0, 0, 2, 0, 0, 0, 0}));

  // NaN propagates, as in torch.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> r = max_pool(from_vector({1, nan, 3, 2}, {1, 1, 4}), {2}).values<float>();
  EXPECT_TRUE(std::isnan(r[0]));
  EXPECT_EQ(r[1], 3.0f);
}

TEST(Pool, GlobalAverageIsTheMean) {
  const Tensor x = random({2, 3, 4, 5, 6}, kFloat64, 3);
  const std::vector<double> a = adaptive_avg_pool(x, {1, 1, 1}).values<double>();
  const std::vector<double> m = mean(x, {2, 3, 4}).values<double>();
  expect_close(a, m, 1e-15, "global average");
}

using gradcheck_test::distinct_leaf;
using gradcheck_test::randn_leaf;

TEST(PoolGradcheck, MaxPool) {
  auto check = [](const Shape& s, PoolArgs a, uint64_t seed) {
    expect_gradcheck([a](const std::vector<Tensor>& in) { return max_pool(in[0], a.kernel, a.stride, a.padding); },
                     {distinct_leaf(s, seed)});
  };
  check({2, 2, 9}, {{3}, {2}, {1}}, 1);
  check({1, 2, 5, 6}, {{2, 3}, {1, 2}, {1, 1}}, 2);
  check({1, 2, 3, 4, 5}, {{1, 3, 3}, {1, 2, 2}, {0, 1, 1}}, 3);
}

TEST(PoolGradcheck, AvgPoolBothPaddingModes) {
  for (bool include : {true, false}) {
    SCOPED_TRACE(include ? "count_include_pad" : "padding not counted");
    auto check = [include](const Shape& s, PoolArgs a, uint64_t seed) {
      expect_gradcheck(
          [a, include](const std::vector<Tensor>& in) {
            return avg_pool(in[0], a.kernel, a.stride, a.padding, include);
          },
          {randn_leaf(s, seed)});
    };
    check({2, 2, 7}, {{3}, {2}, {1}}, 4);
    check({1, 2, 5, 6}, {{3, 2}, {1}, {1, 1}}, 5);
    check({1, 1, 3, 4, 5}, {{3, 2, 3}, {2, 1, 2}, {1, 0, 1}}, 6);
  }
}

TEST(PoolGradcheck, AdaptiveAvgPoolNonDividingSizes) {
  auto check = [](const Shape& s, std::vector<int64_t> out, uint64_t seed) {
    expect_gradcheck([out](const std::vector<Tensor>& in) { return adaptive_avg_pool(in[0], out); },
                     {randn_leaf(s, seed)});
  };
  check({2, 2, 7}, {3}, 7);
  check({1, 2, 3}, {5}, 8);
  check({1, 2, 5, 7}, {2, 3}, 9);
  check({1, 1, 4, 5, 3}, {3, 2, 2}, 10);
  // A non-contiguous leaf (last stride 2).
  expect_gradcheck([](const std::vector<Tensor>& in) { return adaptive_avg_pool(in[0], {2}); },
                   {gradcheck_test::strided_leaf({2, 2, 5}, 11)});
}

TEST(Pool, BitwiseEqualWithAnyThreadCount) {
  for (Kind kind : {Kind::Max, Kind::Avg, Kind::AvgNoPad, Kind::Adaptive}) {
    SCOPED_TRACE(kind_name(kind));
    const PoolArgs a = kind == Kind::Adaptive ? PoolArgs{{5, 7}} : PoolArgs{{3, 3}, {1}, {1}};  // windows overlap
    std::vector<std::vector<float>> y, gx;
    for (int threads : {1, 2, 3}) {
      OmpThreads guard(threads);
      Tensor x = random({4, 16, 24, 24}, kFloat32, 12);  // enough planes and elements to split
      x.requires_grad_();
      const Tensor out = run_pool(kind, x, a);
      out.backward(random(out.shape(), kFloat32, 13));
      y.push_back(out.values<float>());
      gx.push_back(x.grad().values<float>());
    }
    for (int k : {1, 2}) {
      EXPECT_TRUE(same_bits(y[0], y[k])) << "y: 1 vs " << k + 1 << " threads";
      EXPECT_TRUE(same_bits(gx[0], gx[k])) << "dx: 1 vs " << k + 1 << " threads";
    }
  }
}

TEST(PoolErrors, EveryBadArgumentNamesOpAndShapes) {
  using errors_test::f32;
  const Tensor x = f32({2, 3, 8, 8});
  EXPECT_ERROR(max_pool(f32({3, 8, 8}), {2, 2}), "max_pool: input float32[3,8,8]", "2 spatial dims", "kernel [2,2]");
  EXPECT_ERROR(avg_pool(x, {2}), "avg_pool: input float32[2,3,8,8]", "1 spatial dims");
  EXPECT_ERROR(max_pool(x, {}), "max_pool: kernel []", "1 to 3 values", "[2,3,8,8]");
  EXPECT_ERROR(max_pool(f32({1, 1, 2, 2, 2, 2}), {1, 1, 1, 1}), "max_pool: kernel [1,1,1,1]", "1 to 3 values");
  EXPECT_ERROR(max_pool(x, {2, 0}), "max_pool: input [2,3,8,8], kernel [2,0]", "at least 1");
  EXPECT_ERROR(max_pool(x, {2, 2}, {0}), "stride [0,0] must be at least 1");
  EXPECT_ERROR(avg_pool(x, {2, 2}, {1, 2, 3}), "avg_pool: input [2,3,8,8]", "stride [1,2,3]", "needs 1 or 2 values");
  EXPECT_ERROR(avg_pool(x, {2, 2}, {}, {0, 0, 0}), "padding [0,0,0]", "needs 1 or 2 values");
  EXPECT_ERROR(max_pool(x, {3, 3}, {}, {2}), "max_pool: input [2,3,8,8], kernel [3,3]", "padding [2,2]",
               "half the kernel");
  EXPECT_ERROR(avg_pool(x, {3, 3}, {}, {-1}), "padding [-1,-1]");
  EXPECT_ERROR(max_pool(f32({1, 1, 4}), {5}), "max_pool: input [1,1,4], kernel [5]", "output size 0",
               "larger than the padded input");
  EXPECT_ERROR(max_pool(errors_test::i64({1, 1, 4}), {2}), "max_pool: expected a float32 or float64", "int64[1,1,4]");
  EXPECT_ERROR(avg_pool(f32({1, 1, 0}), {1}), "avg_pool: input [1,1,0] has an empty spatial dim");
  EXPECT_ERROR(max_pool(Tensor(), {2}), "max_pool", "undefined");
  EXPECT_ERROR(adaptive_avg_pool(x, {0, 1}), "adaptive_avg_pool: input [2,3,8,8]", "output_size [0,1]", "at least 1");
  EXPECT_ERROR(adaptive_avg_pool(x, {1, 1, 1}), "adaptive_avg_pool: input float32[2,3,8,8]", "3 spatial dims",
               "output_size [1,1,1]");
  EXPECT_ERROR(adaptive_avg_pool(x, {}), "adaptive_avg_pool: output_size []", "1 to 3 values");
  EXPECT_ERROR(adaptive_avg_pool(errors_test::f64({1, 1, 0}), {1}), "adaptive_avg_pool", "empty spatial dim");
}

// ---- layers -------------------------------------------------------------------------------------

TEST(PoolLayer, ReprForwardAndChecks) {
  nn::MaxPool2d mp(3, 2, 1);
  EXPECT_EQ(mp.type_name(), "MaxPool2d");
  EXPECT_EQ(mp.describe(), "MaxPool2d(kernel_size=3, stride=2, padding=1)");
  EXPECT_TRUE(mp.named_parameters().empty());
  nn::MaxPool3d mp3({1, 3, 3}, {1, 2, 2}, {0, 1, 1});
  EXPECT_EQ(mp3.describe(), "MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))");
  nn::AvgPool1d ap(4);
  EXPECT_EQ(ap.describe(), "AvgPool1d(kernel_size=4, stride=4, padding=0)");
  nn::AvgPool2d ap2(3, 1, 1, false);
  EXPECT_EQ(ap2.describe(), "AvgPool2d(kernel_size=3, stride=1, padding=1, count_include_pad=False)");
  nn::AdaptiveAvgPool3d gap({1, 1, 1});
  EXPECT_EQ(gap.describe(), "AdaptiveAvgPool3d(output_size=(1, 1, 1))");
  nn::AdaptiveAvgPool2d gap2(1);
  EXPECT_EQ(gap2.describe(), "AdaptiveAvgPool2d(output_size=1)");

  const Tensor x = random({2, 3, 9, 10}, kFloat32, 20);
  EXPECT_TRUE(same_bits(mp(x).values<float>(), max_pool(x, {3, 3}, {2, 2}, {1, 1}).values<float>()));
  EXPECT_TRUE(same_bits(ap2(x).values<float>(), avg_pool(x, {3, 3}, {1, 1}, {1, 1}, false).values<float>()));
  EXPECT_TRUE(same_bits(gap2(x).values<float>(), adaptive_avg_pool(x, {1, 1}).values<float>()));
  EXPECT_EQ(nn::AdaptiveAvgPool1d(4)(random({2, 3, 9}, kFloat32, 21)).shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(nn::MaxPool1d(2)(random({2, 3, 9}, kFloat32, 22)).shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(nn::AvgPool3d({1, 2, 2})(random({1, 2, 3, 4, 4}, kFloat32, 23)).shape(), (Shape{1, 2, 3, 2, 2}));

  EXPECT_ERROR(nn::MaxPool2d(0), "MaxPool2d: kernel_size 0 must be at least 1");
  EXPECT_ERROR(nn::MaxPool2d({3, 3, 3}), "MaxPool2d: kernel_size [3,3,3] needs 1 or 2 values");
  EXPECT_ERROR(nn::AvgPool1d(3, 0), "AvgPool1d: stride 0 must be at least 1");
  EXPECT_ERROR(nn::AvgPool2d(3, 1, 2), "AvgPool2d: padding 2 must be between 0 and half the kernel_size 3");
  EXPECT_ERROR(nn::AdaptiveAvgPool2d({1, 0}), "AdaptiveAvgPool2d: output_size (1, 0) must be at least 1");
  EXPECT_ERROR(nn::AdaptiveAvgPool1d({1, 1}), "AdaptiveAvgPool1d: output_size [1,1] needs 1 value");
  EXPECT_ERROR(mp(ones({2, 3, 8})), "max_pool: input float32[2,3,8]", "2 spatial dims");
}

}  // namespace
