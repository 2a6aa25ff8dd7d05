// CUDA elementwise kernels (cuda/elementwise.cu) against the CPU: unary math and its backward, binary
// arithmetic with broadcasting, comparisons, where, dtype conversions, fills and in-place updates, and
// the joining ops that are strided copies (cat, stack, split, pad), at odd sizes and on views.
//
// Tolerances. +, -, *, / and the comparisons are exactly rounded IEEE operations on both sides: bit
// equality. exp, log, tanh, sigmoid, pow differ between glibc and CUDA's libdevice by a few units in the
// last place (CUDA documents at most 2 ulp for expf, logf and tanhf, 4 for powf in general), so 1e-6
// relative (8 ulp of float32) plus 1e-7 absolute for results near 0. Gradients chain one more rounded
// operation: 2e-6 relative.
#include "tests/cuda/cuda_test_helpers.h"

using namespace minidl;
using namespace minidl::cuda_test;

namespace {

const Tolerance kMath{1e-7, 1e-6}, kMathGrad{1e-7, 2e-6}, kExact{0, 0};

struct UnaryCase {
  const char* name;
  std::function<Tensor(const Tensor&)> f;
  double lo, hi;
  Tolerance fwd, bwd;
};

std::vector<UnaryCase> unary_cases() {
  return {
      {"neg", [](const Tensor& x) { return neg(x); }, -2, 2, kExact, kExact},
      {"exp", [](const Tensor& x) { return exp(x); }, -3, 3, kMath, kMathGrad},
      {"log", [](const Tensor& x) { return log(x); }, 0.1, 4, kMath, kMathGrad},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, 0.1, 4, kExact, kMathGrad},  // sqrt is exactly rounded
      {"abs", [](const Tensor& x) { return abs(x); }, -2, 2, kExact, kExact},
      {"tanh", [](const Tensor& x) { return tanh(x); }, -3, 3, kMath, kMathGrad},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, -6, 6, kMath, kMathGrad},
      {"relu", [](const Tensor& x) { return relu(x); }, -2, 2, kExact, kExact},
      {"leaky_relu", [](const Tensor& x) { return leaky_relu(x, 0.2); }, -2, 2, kExact, kExact},
      {"clamp", [](const Tensor& x) { return clamp(x, -0.5, 0.7); }, -2, 2, kExact, kExact},
  };
}

}  // namespace

TEST(CudaElementwise, UnaryOpsAtOddSizes) {
  REQUIRE_GPU();
  for (const UnaryCase& c : unary_cases())
    for (const Shape& s : odd_shapes())
      compare_op(
          std::string(c.name) + " " + shape_str(s), [&](const std::vector<Tensor>& v) { return c.f(v[0]); },
          {{s, c.lo, c.hi}}, c.fwd, c.bwd);
}

TEST(CudaElementwise, UnaryOpsOnViews) {
  REQUIRE_GPU();
  for (const UnaryCase& c : unary_cases()) {
    compare_op(
        std::string(c.name) + " of a transpose", [&](const std::vector<Tensor>& v) { return c.f(v[0].t()); },
        {{{33, 7}, c.lo, c.hi}}, c.fwd, c.bwd);
    compare_op(
        std::string(c.name) + " of a strided slice",
        [&](const std::vector<Tensor>& v) { return c.f(v[0].slice(1, 1, 33, 3)); }, {{{5, 33}, c.lo, c.hi}}, c.fwd,
        c.bwd);
    compare_op(
        std::string(c.name) + " of an expand",
        [&](const std::vector<Tensor>& v) {
          return c.f(v[0].expand({9, 33}));
        },
        {{{1, 33}, c.lo, c.hi}}, c.fwd, c.bwd);
  }
}

TEST(CudaElementwise, LongVectorsTakeTheVectorPathAndItsTail) {
  REQUIRE_GPU();
  // 2^20 + 3: float4 groups plus a three-element tail; offset by one element: misaligned, scalar path.
  compare_op(
      "exp, 2^20 + 3", [](const std::vector<Tensor>& v) { return exp(v[0]); }, {{{(1 << 20) + 3}, -2, 2}}, kMath,
      kMathGrad);
  compare_op(
      "mul, misaligned", [](const std::vector<Tensor>& v) { return v[0].slice(0, 1, 4098) * v[1]; },
      {{{4098}}, {{4097}}}, kExact, kExact);
}

TEST(CudaElementwise, BinaryOpsBroadcast) {
  REQUIRE_GPU();
  struct Case {
    const char* name;
    std::function<Tensor(const Tensor&, const Tensor&)> f;
    double lo;
    Tolerance tol;
  };
  const std::vector<Case> cases = {
      {"add", [](const Tensor& a, const Tensor& b) { return a + b; }, -2, kExact},
      {"sub", [](const Tensor& a, const Tensor& b) { return a - b; }, -2, kExact},
      {"mul", [](const Tensor& a, const Tensor& b) { return a * b; }, -2, kExact},
      {"div", [](const Tensor& a, const Tensor& b) { return a / b; }, 0.5, {0, 1e-6}},  // gradient: -g a / b^2
      {"pow", [](const Tensor& a, const Tensor& b) { return pow(a, b); }, 0.5, kMathGrad},
  };
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{7, 33}, {7, 33}}, {{7, 1, 33}, {5, 1}}, {{1000, 3}, {3}}, {{4097}, {1}}, {{1}, {33}}};
  for (const Case& c : cases)
    for (const auto& [sa, sb] : shapes) {
      // div's forward is exactly rounded; its backward (-g a / (b b)) and pow's are not single operations.
      const Tolerance fwd = std::string(c.name) == "pow" ? kMath : kExact;
      compare_op(
          std::string(c.name) + " " + shape_str(sa) + " with " + shape_str(sb),
          [&](const std::vector<Tensor>& v) { return c.f(v[0], v[1]); }, {{sa, c.lo, 2}, {sb, c.lo, 2}}, fwd, c.tol);
    }
}

TEST(CudaElementwise, ScalarFormsAndChains) {
  REQUIRE_GPU();
  compare_op("scalar forms",
             [](const std::vector<Tensor>& v) {
               const Tensor& x = v[0];
               return (x + 1.5) * 2.0 - 0.25 / (x + 3.0) + pow(x + 3.0, 1.5) + pow(2.0, x) - (1.0 - x);
             },
             {{{7, 33}}}, {1e-6, 2e-6}, {1e-6, 4e-6});
}

TEST(CudaElementwise, ComparisonsWhereAndMaskedFill) {
  REQUIRE_GPU();
  Generator gen(3);
  const Tensor a = rand({7, 33}, {}, &gen), b = rand({33}, {}, &gen);
  const Tensor ga = a.to(kGpu), gb = b.to(kGpu);
  const std::vector<std::pair<const char*, std::function<Tensor(const Tensor&, const Tensor&)>>> ops = {
      {"gt", [](const Tensor& x, const Tensor& y) { return gt(x, y); }},
      {"ge", [](const Tensor& x, const Tensor& y) { return ge(x, y); }},
      {"lt", [](const Tensor& x, const Tensor& y) { return lt(x, y); }},
      {"le", [](const Tensor& x, const Tensor& y) { return le(x, y); }},
      {"eq",
       [](const Tensor& x, const Tensor& y) {
         return eq(x, y.expand({7, 33}));
       }},
      {"ne", [](const Tensor& x, const Tensor& y) { return ne(x, y); }},
  };
  for (const auto& [name, f] : ops) {
    SCOPED_TRACE(name);
    const Tensor c = f(a, b), g = f(ga, gb);
    EXPECT_EQ(g.dtype(), kBool);
    EXPECT_EQ(g.values<bool>(), c.values<bool>());
  }
  EXPECT_EQ(eq(ga, ga).values<bool>(), std::vector<bool>(7 * 33, true));
  compare_op(
      "where", [](const std::vector<Tensor>& v) { return where(gt(v[0], 0.0), v[0], v[1] * 3.0); }, {{{7, 33}}, {{33}}},
      kExact, kExact);
  compare_op(
      "masked_fill", [](const std::vector<Tensor>& v) { return masked_fill(v[0], lt(v[0], 0.3), -4.0); }, {{{1000, 3}}},
      kExact, kExact);
}

TEST(CudaElementwise, DtypeConversionsMatchTheCpu) {
  REQUIRE_GPU();
  const Tensor x = from_vector({-2.7, -0.5, 0.0, 0.4, 1.0, 3.9, 1e30, -1e30, NAN});
  for (DType from : {kFloat32, kFloat64, kInt64, kBool})
    for (DType to : {kFloat32, kFloat64, kInt64, kBool}) {
      SCOPED_TRACE(std::string(dtype_name(from)) + " -> " + dtype_name(to));
      const Tensor src = x.to(from);
      const Tensor c = src.to(to), g = src.to(kGpu).to(to);
      EXPECT_EQ(g.dtype(), to);
      EXPECT_EQ(g.values<double>().size(), c.values<double>().size());
      const std::vector<double> cv = c.values<double>(), gv = g.values<double>();
      for (size_t i = 0; i < cv.size(); ++i)
        EXPECT_TRUE(cv[i] == gv[i] || (std::isnan(cv[i]) && std::isnan(gv[i])))
            << i << ": " << gv[i] << " vs " << cv[i];
    }
}

TEST(CudaElementwise, ClonesFillsAndInPlaceUpdates) {
  REQUIRE_GPU();
  Generator gen(5);
  const Tensor x = randn({4, 6, 5}, {}, &gen);
  const Tensor gx = x.to(kGpu);
  EXPECT_EQ(compare_bits(gx.permute({2, 0, 1}).contiguous(), x.permute({2, 0, 1}).contiguous()), "");
  EXPECT_EQ(compare_bits(gx.slice(1, 1, 6, 2).clone(), x.slice(1, 1, 6, 2).clone()), "");

  Tensor c = zeros({4, 6, 5}), g = zeros({4, 6, 5}, {.device = kGpu});
  c.narrow(1, 2, 3).fill_(2.5);
  g.narrow(1, 2, 3).fill_(2.5);
  EXPECT_EQ(compare_bits(g, c), "");
  c.copy_(x.select(0, 1));  // broadcast over dim 0
  g.copy_(gx.select(0, 1));
  EXPECT_EQ(compare_bits(g, c), "");
  c.add_(x, -0.5);
  g.add_(gx, -0.5);
  EXPECT_EQ(compare_bits(g, c), "");
  c.mul_(3.0);
  g.mul_(3.0);
  EXPECT_EQ(compare_bits(g, c), "");
  g.copy_(x);  // from the host
  EXPECT_EQ(compare_bits(g, x), "");
  g.zero_();
  EXPECT_EQ(g.values<float>(), std::vector<float>(x.numel(), 0.0f));
  const Tensor bools = full({5}, 1.0, {.dtype = kBool, .device = kGpu});
  EXPECT_EQ(bools.values<bool>(), std::vector<bool>(5, true));
}

TEST(CudaElementwise, JoiningOpsAreStridedCopies) {
  REQUIRE_GPU();
  compare_op(
      "cat",
      [](const std::vector<Tensor>& v) {
        return cat({v[0], v[1].t(), v[0] * 2.0}, 1);
      },
      {{{7, 5}}, {{3, 7}}}, kExact, kExact);
  compare_op(
      "stack",
      [](const std::vector<Tensor>& v) {
        return stack({v[0], v[1]}, 1);
      },
      {{{33, 2}}, {{33, 2}}}, kExact, kExact);
  compare_op(
      "split",
      [](const std::vector<Tensor>& v) {
        const auto parts = split(v[0], 3, 0);
        return parts[0] * 2.0 + parts[1] - parts[2];
      },
      {{{9, 4}}}, kExact, kExact);
  compare_op(
      "pad",
      [](const std::vector<Tensor>& v) {
        return pad(v[0], {2, 1, 0, 3}, 0.5);
      },
      {{{7, 33}}}, kExact, kExact);
}
