// CUDA reductions (cuda/reduce.cu) and row ops (cuda/softmax.cu, cuda/loss.cu) against the CPU.
//
// Tolerances. Both sides sum in double and round once to float32, so sums and means agree to the last
// bit in almost every case; 1e-6 relative leaves room for the different association order of the two
// double sums. max, min and argmax are exact. var: Welford in double (GPU) against two-pass double
// (CPU): 1e-6 relative. softmax: the exponentials are double on both sides; 1e-6 relative. The CCC's
// moments are double sums on both sides: 1e-6.
#include "tests/cuda/cuda_test_helpers.h"

using namespace minidl;
using namespace minidl::cuda_test;

namespace {
const Tolerance kSum{1e-6, 1e-6}, kExact{0, 0};

// Every subset of the dims of a rank-r tensor (as dim lists), the empty one (= all dims) included.
std::vector<std::vector<int64_t>> dim_subsets(int64_t rank) {
  std::vector<std::vector<int64_t>> out;
  for (int64_t mask = 0; mask < (int64_t{1} << rank); ++mask) {
    std::vector<int64_t> d;
    for (int64_t i = 0; i < rank; ++i)
      if (mask & (int64_t{1} << i)) d.push_back(i);
    out.push_back(d);
  }
  return out;
}
}  // namespace

TEST(CudaReduce, SumMeanMaxMinVarOverEverySetOfDims) {
  REQUIRE_GPU();
  for (const Shape& shape : std::vector<Shape>{{7, 33, 5}, {3, 1, 4097}}) {
    for (const auto& dims : dim_subsets(3)) {
      const std::string at = shape_str(shape) + " over " + dims_str(dims);
      compare_op(
          "sum " + at, [&](const std::vector<Tensor>& v) { return sum(v[0], dims); }, {{shape}}, kSum, kExact);
      compare_op(
          "mean " + at, [&](const std::vector<Tensor>& v) { return mean(v[0], dims, true); }, {{shape}}, kSum, kSum);
      compare_op(
          "max " + at, [&](const std::vector<Tensor>& v) { return max(v[0], dims); }, {{shape}}, kExact, kExact);
      compare_op(
          "min " + at, [&](const std::vector<Tensor>& v) { return min(v[0], dims); }, {{shape}}, kExact, kExact);
      // The unbiased variance needs two values per output; dim 1 of [3, 1, 4097] alone has one.
      int64_t count = 1;
      for (int d : dims) count *= shape[d];
      const int ddof = count > 1 ? 1 : 0;
      compare_op(
          "var " + at, [&](const std::vector<Tensor>& v) { return var(v[0], dims, ddof); }, {{shape}}, kSum, kSum);
    }
  }
}

TEST(CudaReduce, ViewsAndTheLayoutsOfEachKernelPath) {
  REQUIRE_GPU();
  // Reduced dims innermost (a group of threads per output), outermost (a thread per output), a full
  // reduction long enough for several segments, and the bias-gradient shape [rows, C] over rows.
  compare_op(
      "sum of a transpose over rows", [](const std::vector<Tensor>& v) { return sum(v[0].t(), {0}); }, {{{33, 1000}}},
      kSum, kExact);
  compare_op(
      "sum over the batch (bias gradient)", [](const std::vector<Tensor>& v) { return sum(v[0], {0}); },
      {{{100000, 3}}}, kSum, kExact);
  compare_op(
      "mean of 2^21 + 5 elements", [](const std::vector<Tensor>& v) { return mean(v[0]); }, {{{(1 << 21) + 5}}}, kSum,
      kSum);
  compare_op(
      "var of a strided slice", [](const std::vector<Tensor>& v) { return var(v[0].slice(1, 0, 65, 2), {1}, 0); },
      {{{9, 65}}}, kSum, kSum);
  compare_op(
      "max of an expand",
      [](const std::vector<Tensor>& v) {
        return max(v[0].expand({4, 7, 33}), {0, 2});
      },
      {{{1, 7, 33}}}, kExact, kExact);
  compare_op(
      "sum of a single element", [](const std::vector<Tensor>& v) { return sum(v[0]); }, {{{1}}}, kExact, kExact);
}

// A NaN anywhere in a reduced run makes max and min NaN, on both devices, whichever segment and lane it
// falls in (the partial results of other lanes must not replace it when they merge).
TEST(CudaReduce, NanWinsInMaxAndMinAsOnTheCpu) {
  REQUIRE_GPU();
  Generator gen(4);
  std::vector<double> v = rand({7, 33, 5}, {}, &gen, -2, 2).values<double>();
  for (size_t i : {size_t{3}, size_t{170}, size_t{171}, size_t{1154}}) v[i] = std::nan("");
  const Tensor x = from_vector(v, {7, 33, 5});
  for (const auto& dims : dim_subsets(3)) {
    SCOPED_TRACE("over " + dims_str(dims));
    EXPECT_CLOSE(max(x.to(kGpu), dims), max(x, dims), 0, 0);
    EXPECT_CLOSE(min(x.to(kGpu), dims), min(x, dims), 0, 0);
  }
}

TEST(CudaReduce, ArgmaxPicksTheFirstMaximumLikeTheCpu) {
  REQUIRE_GPU();
  const Tensor x = from_vector({1.0, 3.0, 3.0, -1.0, 2.0, 2.0, 2.0, 0.0, 5.0, NAN, 5.0, NAN}, {3, 4});
  for (int64_t dim : {0, 1}) {
    SCOPED_TRACE(dim);
    EXPECT_EQ(argmax(x.to(kGpu), dim).values<int64_t>(), argmax(x, dim).values<int64_t>());
  }
  Generator gen(2);
  const Tensor r = randn({33, 4097}, {}, &gen);
  EXPECT_EQ(argmax(r.to(kGpu), 1).values<int64_t>(), argmax(r, 1).values<int64_t>());
  EXPECT_EQ(argmax(r.to(kGpu), 0).values<int64_t>(), argmax(r, 0).values<int64_t>());
}

TEST(CudaReduce, SameBitsEveryRun) {
  REQUIRE_GPU();
  Generator gen(4);
  const Tensor x = randn({(1 << 22) + 11}, {.device = kGpu}, &gen);
  const std::vector<float> first = sum(x).values<float>();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(sum(x).values<float>(), first);
}

TEST(CudaSoftmax, RowsShortLongAndStrided) {
  REQUIRE_GPU();
  // 1e-9 absolute: a row of 4097 has values near 2e-4, which a looser floor would let drift by percents.
  const Tolerance tol{1e-9, 1e-6};
  for (bool log : {false, true}) {
    auto f = [log](const Tensor& x, int64_t d) { return log ? log_softmax(x, d) : softmax(x, d); };
    const std::string name = log ? "log_softmax" : "softmax";
    compare_op(
        name + " rows of 16", [&](const std::vector<Tensor>& v) { return f(v[0], -1); }, {{{64, 16, 16}, -4, 4}}, tol,
        tol);
    compare_op(
        name + " rows of 4097", [&](const std::vector<Tensor>& v) { return f(v[0], 1); }, {{{3, 4097}, -4, 4}}, tol,
        tol);
    compare_op(
        name + " along dim 0", [&](const std::vector<Tensor>& v) { return f(v[0], 0); }, {{{33, 7, 5}, -4, 4}}, tol,
        tol);
    compare_op(
        name + " of a transpose", [&](const std::vector<Tensor>& v) { return f(v[0].t(), -1); }, {{{7, 33}, -4, 4}},
        tol, tol);
  }
}

TEST(CudaSoftmax, RowOfMinusInfinityIsNanOnBothSides) {
  REQUIRE_GPU();
  const Tensor x = full({2, 3}, -INFINITY);
  EXPECT_EQ(compare(softmax(x.to(kGpu), 1), softmax(x, 1), 0, 0), "");
  EXPECT_EQ(compare(log_softmax(x.to(kGpu), 1), log_softmax(x, 1), 0, 0), "");
}

TEST(CudaLoss, CccAndItsGradientWithAMask) {
  REQUIRE_GPU();
  // 1e-9 absolute: the gradient of one of 1000 rows is near 1e-3, so 1e-6 would hide a wrong row.
  const Tolerance tol{1e-9, 1e-6};
  compare_op(
      "ccc_loss", [](const std::vector<Tensor>& v) { return ccc_loss(v[0], v[1]); }, {{{64, 16, 2}}, {{64, 16, 2}}},
      tol, tol);
  Generator gen(9);
  const Tensor mask = lt(rand({1000}, {}, &gen), 0.8);
  compare_op(
      "ccc with a mask",
      [&](const std::vector<Tensor>& v) { return ccc(v[0], v[1], v[0].device().is_cuda() ? mask.to(kGpu) : mask); },
      {{{1000, 2}}, {{1000, 2}}}, tol, tol);
}

TEST(CudaIndex, GatherIndexSelectAndTheirBackward) {
  REQUIRE_GPU();
  const Tensor idx = from_vector(std::vector<int64_t>{4, 0, 4, 2, 1, 4}, {}, {.dtype = kInt64});
  compare_op(
      "index_select dim 0 with repeats",
      [&](const std::vector<Tensor>& v) { return index_select(v[0], 0, v[0].device().is_cuda() ? idx.to(kGpu) : idx); },
      {{{5, 33}}}, kExact, kExact);
  compare_op(
      "index_select dim 1 of a transpose",
      [&](const std::vector<Tensor>& v) {
        return index_select(v[0].t(), 1, v[0].device().is_cuda() ? idx.to(kGpu) : idx);
      },
      {{{5, 7}}}, kExact, kExact);
  Generator gen(6);
  const Tensor gidx = rand({7, 4}, {}, &gen, 0, 5).to(kInt64);
  compare_op(
      "gather dim 1 with repeats",
      [&](const std::vector<Tensor>& v) { return gather(v[0], 1, v[0].device().is_cuda() ? gidx.to(kGpu) : gidx); },
      {{{7, 5}}}, kExact, {1e-7, 1e-6});
}
