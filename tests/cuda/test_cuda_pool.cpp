// CUDA pooling (cuda/pool.cu) against the CPU (cpu/pool.cpp): max_pool, avg_pool and adaptive_avg_pool,
// forward and backward, over 1, 2 and 3 spatial dims; overlapping windows (stride < kernel), gaps
// (stride > kernel), padding, odd sizes, adaptive cells that do and do not divide the input, and ties.
//
// Tolerances. Max pooling is exact: both sides make the same comparisons in the same order, so they pick
// the same element (the first maximum; a NaN wins and stays), and the gradient adds the same float terms
// in the same order (row-major outputs into a zero). Since the gradient lands on the chosen element, it
// also checks the indices, which are not visible otherwise. Average pooling: both sides sum each window in
// double in the same order and divide once in double; the backward rounds each share gy / divisor to
// float the same way and adds the shares in row-major output order into a zero. The results are expected
// to be bit-equal (AverageIsBitEqualToTheCpu checks that on one case); compare_op allows one float32 ulp
// (|diff| <= 2^-23 |cpu|, no absolute slack) so a compiler's choice of rounding cannot break it, while a
// wrong window or a wrong divisor, off by far more, still fails.
#include <cstring>

#include "tests/cuda/cuda_test_helpers.h"

using namespace minidl;
using namespace minidl::cuda_test;

namespace {
const Tolerance kExact{0, 0}, kUlp{0, 1.1920928955078125e-07};  // 2^-23

using Ints = std::vector<int64_t>;

// Sliding-window cases: the input shape, kernel, stride, padding.
struct Case {
  Shape shape;
  Ints kernel, stride, padding;
};

std::string case_str(const Case& c) {
  return shape_str(c.shape) + " kernel " + shape_str(c.kernel) + " stride " + shape_str(c.stride) + " padding " +
         shape_str(c.padding);
}

std::vector<Case> sliding_cases() {
  return {
      // 1-D
      {{2, 3, 33}, {3}, {1}, {0}},  // overlap
      {{2, 3, 33}, {3}, {2}, {1}},  // overlap with padding
      {{2, 3, 33}, {2}, {5}, {0}},  // stride > kernel: inputs no window reaches
      {{1, 1, 7}, {7}, {1}, {3}},   // kernel = input, half-kernel padding
      {{3, 2, 1}, {1}, {1}, {0}},   // a single element
      // 2-D
      {{2, 3, 7, 7}, {3, 3}, {1}, {1}},
      {{2, 3, 7, 33}, {3, 2}, {2, 1}, {1, 0}},
      {{2, 3, 33, 7}, {2, 3}, {3, 4}, {0, 1}},  // stride > kernel in both dims
      {{4, 5, 8, 8}, {2, 2}, {}, {0}},          // stride defaults to the kernel
      {{1, 2, 7, 5}, {5, 4}, {1, 3}, {2, 2}},   // large overlap along the first dim
      // 3-D
      {{2, 2, 7, 6, 5}, {3, 3, 3}, {2}, {1}},
      {{2, 3, 5, 7, 9}, {3, 2, 3}, {1, 2, 2}, {1, 0, 1}},
      {{1, 2, 4, 33, 7}, {2, 3, 1}, {3, 1, 1}, {1, 1, 0}},
  };
}

// Runs f on CPU and GPU copies of the given values (not random ones, so ties can be built), and compares
// the outputs and the input gradients exactly.
void compare_on_values(const std::string& what, const Tensor& values, const std::function<Tensor(const Tensor&)>& f,
                       uint64_t seed = 11) {
  SCOPED_TRACE(what);
  const Tensor xc = values.detach().requires_grad_(), xg = values.to(kGpu).detach().requires_grad_();
  const Tensor yc = f(xc), yg = f(xg);
  ASSERT_TRUE(yg.device().is_cuda()) << "the op did not run on the GPU";
  EXPECT_EQ(compare_bits(yg, yc), "") << "forward";
  Generator gen(seed);
  const Tensor up = randn(yc.shape(), {}, &gen);
  yc.backward(up);
  yg.backward(up.to(kGpu));
  ASSERT_TRUE(xc.grad().defined() && xg.grad().defined());
  EXPECT_EQ(compare_bits(xg.grad(), xc.grad()), "") << "gradient (it shows which element each window chose)";
}

// Few distinct values in long runs and repeats, so that most windows hold several equal maxima.
Tensor plateaus(const Shape& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = static_cast<double>((i / 3 + i / 7) % 4);
  return from_vector(v, shape);
}
}  // namespace

TEST(CudaPool, MaxPoolSlidingWindows) {
  REQUIRE_GPU();
  for (const Case& c : sliding_cases())
    compare_op(
        "max_pool " + case_str(c),
        [&](const std::vector<Tensor>& v) { return max_pool(v[0], c.kernel, c.stride, c.padding); }, {{c.shape}},
        kExact, kExact);
}

TEST(CudaPool, AvgPoolSlidingWindowsWithAndWithoutPadInTheCount) {
  REQUIRE_GPU();
  for (const Case& c : sliding_cases())
    for (bool include_pad : {true, false})
      compare_op(
          "avg_pool " + case_str(c) + (include_pad ? " count_include_pad" : " excluding pad"),
          [&](const std::vector<Tensor>& v) { return avg_pool(v[0], c.kernel, c.stride, c.padding, include_pad); },
          {{c.shape}}, kUlp, kUlp);
}

TEST(CudaPool, AdaptiveAvgPoolDividingAndNotDividingTheInput) {
  REQUIRE_GPU();
  const std::vector<std::pair<Shape, Ints>> cases = {
      {{2, 3, 7}, {3}},    // 7 -> 3: cells of 3, 3, 3 overlapping by one
      {{2, 3, 5}, {1}},    // 5 -> 1: the whole dim
      {{2, 3, 1}, {1}},    // 1 -> 1
      {{2, 3, 33}, {11}},  // divides: disjoint cells of 3
      {{2, 3, 3}, {7}},    // more outputs than inputs: every input in two or three cells
      {{2, 3, 7, 5}, {3, 1}},
      {{2, 3, 33, 7}, {4, 7}},  // 7 -> 7 is the identity
      {{1, 2, 1, 1}, {1, 1}},
      {{2, 2, 7, 6, 5}, {3, 4, 2}},
      {{1, 2, 5, 7, 9}, {1, 1, 1}},  // a global average pool in 3-D
  };
  for (const auto& [shape, out] : cases)
    compare_op(
        "adaptive_avg_pool " + shape_str(shape) + " to " + shape_str(out),
        [&](const std::vector<Tensor>& v) { return adaptive_avg_pool(v[0], out); }, {{shape}}, kUlp, kUlp);
}

TEST(CudaPool, ResNetStemAndHead) {
  REQUIRE_GPU();
  const auto stem = [](const std::vector<Tensor>& v) { return max_pool(v[0], {3, 3}, {2}, {1}); };
  compare_op("max_pool 3x3/2 pad 1 on [2, 8, 33, 27]", stem, {{{2, 8, 33, 27}}}, kExact, kExact);
  // Enough elements that the grid-stride loops go round more than once.
  compare_op(
      "global average pool of [16, 512, 9, 9]",
      [](const std::vector<Tensor>& v) {
        return adaptive_avg_pool(v[0], {1, 1});
      },
      {{{16, 512, 9, 9}}}, kUlp, kUlp);
  compare_op("max_pool 3x3/2 pad 1 on [16, 64, 56, 56]", stem, {{{16, 64, 56, 56}}}, kExact, kExact);
}

TEST(CudaPool, MaxPoolTiesPickTheCpusElement) {
  REQUIRE_GPU();
  compare_on_values("plateaus, 1-D overlap", plateaus({2, 3, 33}),
                    [](const Tensor& x) { return max_pool(x, {4}, {1}, {2}); });
  compare_on_values("plateaus, 2-D 3x3/2 pad 1", plateaus({2, 8, 33, 27}), [](const Tensor& x) {
    return max_pool(x, {3, 3}, {2}, {1});
  });
  compare_on_values("plateaus, 3-D", plateaus({2, 2, 7, 6, 5}), [](const Tensor& x) {
    return max_pool(x, {3, 2, 3}, {1, 2, 2}, {1, 1, 1});
  });
  compare_on_values("all equal", full({2, 3, 7, 7}, 1.5), [](const Tensor& x) {
    return max_pool(x, {3, 3}, {1}, {1});
  });
  // NaN wins its windows and stays, -inf windows fall back on their first element.
  const double nan = std::nan(""), inf = INFINITY;
  const Tensor special = from_vector({1, nan, 2, nan, 0, -inf, -inf, -inf, -inf, 3, 3, nan, -inf, 2, 2, 2}, {1, 2, 8});
  compare_on_values("NaN and -inf", special, [](const Tensor& x) { return max_pool(x, {3}, {1}, {1}); });
  compare_on_values("NaN and -inf, 2-D", special.reshape({1, 1, 4, 4}), [](const Tensor& x) {
    return max_pool(x, {2, 2}, {1}, {0});
  });
}

TEST(CudaPool, AverageIsBitEqualToTheCpu) {
  REQUIRE_GPU();
  Generator gen(3);
  const Tensor x = randn({2, 3, 7, 33}, {}, &gen);
  compare_on_values("avg_pool 3x3/1 pad 1", x, [](const Tensor& t) { return avg_pool(t, {3, 3}, {1}, {1}, false); });
  compare_on_values("adaptive 7x33 to 3x5", x, [](const Tensor& t) { return adaptive_avg_pool(t, {3, 5}); });
}

TEST(CudaPool, SameBitsEveryRun) {
  REQUIRE_GPU();
  // Overlapping windows: a scatter with atomics would add each input's terms in a varying order.
  Generator gen(5);
  const Tensor x = randn({4, 16, 33, 27}, {.device = kGpu}, &gen).requires_grad_();
  const Tensor up = randn({4, 16, 17, 14}, {.device = kGpu}, &gen);
  std::vector<float> first;
  for (int run = 0; run < 3; ++run) {
    x.zero_grad();
    max_pool(x, {3, 3}, {2}, {1}).backward(up);
    avg_pool(x, {3, 3}, {2}, {1}).backward(up);
    const std::vector<float> g = x.grad().values<float>();
    if (run == 0) first = g;
    EXPECT_EQ(g, first) << "run " << run;
  }
}

TEST(CudaPool, EmptyBatch) {
  REQUIRE_GPU();
  compare_op(
      "max_pool of an empty batch",
      [](const std::vector<Tensor>& v) {
        return max_pool(v[0], {3, 3}, {2}, {1});
      },
      {{{0, 3, 7, 7}}}, kExact, kExact);
  compare_op(
      "avg_pool of an empty batch", [](const std::vector<Tensor>& v) { return avg_pool(v[0], {2}); }, {{{0, 3, 7}}},
      kExact, kExact);
  compare_op(
      "adaptive_avg_pool of an empty batch", [](const std::vector<Tensor>& v) { return adaptive_avg_pool(v[0], {3}); },
      {{{2, 0, 7}}}, kExact, kExact);
}

TEST(CudaPool, Float64IsRefusedWithAClearError) {
  REQUIRE_GPU();
  const Tensor x = zeros({1, 1, 4}, {.dtype = kFloat64, .device = kGpu});
  for (const auto& f :
       std::vector<std::function<Tensor()>>{[&] { return max_pool(x, {2}); }, [&] { return avg_pool(x, {2}); },
                                            [&] { return adaptive_avg_pool(x, {2}); }}) {
    try {
      f();
      ADD_FAILURE() << "no error for a float64 CUDA input";
    } catch (const Error& e) {
      EXPECT_NE(std::strstr(e.what(), "float32"), nullptr) << e.what();
    }
  }
}
