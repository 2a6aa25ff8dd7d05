// CPU reduction kernels against naive references, over every subset of dims and across thread counts.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "autograd/minidl.h"
#include "cpu/kernels.h"
#include "tests/cpu/kernel_helpers.h"

using namespace minidl;
using namespace kernel_test;

namespace {

// ---- reductions --------------------------------------------------------------------------------------

// Values of each output's block (the reduced elements, in row-major order of the reduced dims), one block
// per kept position in row-major order.
template <class T>
std::vector<std::vector<T>> blocks_of(const Tensor& x, const std::vector<int64_t>& dims) {
  Shape kept;
  std::vector<bool> red(x.dim(), false);
  for (int64_t d : dims) red[d] = true;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (!red[d]) kept.push_back(x.size(d));
  std::vector<std::vector<T>> blocks(static_cast<size_t>(numel_of(kept)));
  for_each_index(x.shape(), [&](const auto& i) {
    int64_t k = 0;
    for (int64_t d = 0; d < x.dim(); ++d)
      if (!red[d]) k = k * x.size(d) + i[d];
    blocks[k].push_back(at<T>(x, i));
  });
  return blocks;
}

Shape kept_shape(const Tensor& x, const std::vector<int64_t>& dims) {
  Shape s;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (std::find(dims.begin(), dims.end(), d) == dims.end()) s.push_back(x.size(d));
  return s;
}

// Checks sum, mean, max, min, var (ddof 0 and 1) of x over dims through the kernels.
template <class T>
void check_reductions(const Tensor& x, const std::vector<int64_t>& dims) {
  SCOPED_TRACE(x.meta_str() + " strides " + shape_str(x.strides()) + " over dims " + shape_str(dims));
  const DType dt = dtype_of<T>();
  const long double u = unit_roundoff<T>();
  const auto blocks = blocks_of<T>(x, dims);
  const Shape ks = kept_shape(x, dims);
  auto run = [&](ReduceOp op) {
    const Tensor out = Tensor::empty(ks, dt);
    cpu::reduce(op, x, dims, out);
    return out.values<T>();
  };
  const auto sum = run(ReduceOp::Sum), mean = run(ReduceOp::Mean), mx = run(ReduceOp::Max), mn = run(ReduceOp::Min);
  std::array<std::vector<T>, 2> var;
  for (int64_t ddof : {0, 1}) {
    const Tensor out = Tensor::empty(ks, dt);
    cpu::var(x, dims, ddof, out);
    var[ddof] = out.values<T>();
  }
  ASSERT_EQ(sum.size(), blocks.size());
  int bad = 0;
  auto fail = [&](const char* what, size_t k, long double got, long double ref) {
    if (bad++ < 5)
      ADD_FAILURE() << what << " of output " << k << ": " << static_cast<double>(got) << " vs reference "
                    << static_cast<double>(ref);
  };
  for (size_t k = 0; k < blocks.size(); ++k) {
    const auto& b = blocks[k];
    const long double n = static_cast<long double>(b.size());
    long double s = 0, sa = 0, s2 = 0;
    T bmax = -std::numeric_limits<T>::infinity(), bmin = std::numeric_limits<T>::infinity();
    for (T v : b) {
      s += v;
      sa += std::fabs(static_cast<long double>(v));
      s2 += static_cast<long double>(v) * v;
      bmax = std::max(bmax, v);
      bmin = std::min(bmin, v);
    }
    const long double tol = 1.01L * (u * std::fabs(s) + (n + 1) * kU53 * sa);
    if (!(std::fabs(sum[k] - s) <= tol)) fail("sum", k, sum[k], s);
    if (!(std::fabs(mean[k] - s / n) <= tol / n + u * std::fabs(s / n))) fail("mean", k, mean[k], s / n);
    if (mx[k] != bmax) fail("max", k, mx[k], bmax);
    if (mn[k] != bmin) fail("min", k, mn[k], bmin);
    const long double m = s / n;
    long double ss = 0;
    for (T v : b) ss += (v - m) * (v - m);
    for (int64_t ddof : {0, 1}) {
      const long double div = n - ddof;
      if (div <= 0) {
        if (!std::isnan(var[ddof][k]))
          fail(ddof ? "var(ddof 1) of one element (NaN expected)" : "var", k, var[ddof][k], NAN);
        continue;
      }
      const long double ref = ss / div;
      // Two passes in double, then one rounding to T: the deviations are computed from a mean with
      // error ~ n 2^-53 sum|x| / n, and their squares summed with error ~ n 2^-53 sum x^2.
      const long double vtol = 2 * u * ref + 8 * (n + 2) * kU53 * s2 / div;
      if (!(std::fabs(var[ddof][k] - ref) <= vtol)) fail(ddof ? "var(ddof 1)" : "var(ddof 0)", k, var[ddof][k], ref);
    }
  }
  EXPECT_EQ(bad, 0) << bad << " wrong outputs";
}

// argmax along each dim: the first maximum wins.
template <class T>
void check_argmax(const Tensor& x) {
  for (int64_t d = 0; d < x.dim(); ++d) {
    SCOPED_TRACE(x.meta_str() + " argmax over dim " + std::to_string(d));
    const auto blocks = blocks_of<T>(x, {d});
    const Tensor out = Tensor::empty(kept_shape(x, {d}), kInt64);
    cpu::argmax(x, d, out);
    const auto got = out.values<int64_t>();
    for (size_t k = 0; k < blocks.size(); ++k) {
      int64_t best = 0;
      for (size_t i = 1; i < blocks[k].size(); ++i)
        if (blocks[k][i] > blocks[k][best]) best = static_cast<int64_t>(i);
      ASSERT_EQ(got[k], best) << "output " << k;
    }
  }
}

std::vector<std::vector<int64_t>> all_subsets(int64_t nd) {
  std::vector<std::vector<int64_t>> r;
  for (int64_t mask = 0; mask < (int64_t{1} << nd); ++mask) {
    std::vector<int64_t> dims;
    for (int64_t d = 0; d < nd; ++d)
      if (mask >> d & 1) dims.push_back(d);
    r.push_back(dims);
  }
  return r;
}

TEST(Reduce, EverySubsetOfDimsOfSmall3DAnd4DTensors) {
  for_float_types([](auto tag) {
    using T = decltype(tag);
    const DType dt = dtype_of<T>();
    std::vector<Tensor> xs = {
        rnd({3, 4, 5}, dt, 1),
        rnd({5, 3, 4}, dt, 2).permute({1, 2, 0}),  // [3,4,5], permuted
        rnd({3, 8, 5}, dt, 3).slice(1, 0, 8, 2),   // [3,4,5], sliced
        rnd({2, 3, 4, 5}, dt, 4),
        rnd({5, 2, 4, 3}, dt, 5).permute({1, 3, 2, 0}),  // [2,3,4,5], permuted
        rnd({2, 1, 4, 5}, dt, 6).expand({2, 3, 4, 5}),   // a broadcast (stride 0) dim
        rnd({2, 1, 3, 1}, dt, 7),                        // size-1 dims
    };
    for (const Tensor& x : xs) {
      for (const auto& dims : all_subsets(x.dim())) check_reductions<T>(x, dims);
      check_argmax<T>(x);
    }
    // Ties everywhere: max/min/argmax pick exact values and the first maximum.
    for (const Tensor& x : {ints({3, 4, 5}, dt, 8, 3), ints({5, 3, 4}, dt, 9, 2).permute({2, 0, 1})}) {
      for (const auto& dims : all_subsets(x.dim())) check_reductions<T>(x, dims);
      check_argmax<T>(x);
    }
  });
}

// Through the public ops: negative dims, keepdim, "empty dims = all", 0-d inputs, empty dims.
TEST(Reduce, PublicOpsShapesAndValues) {
  const Tensor x = rnd({3, 4, 5}, kFloat64, 1);
  const Tensor s = sum(x, {-1, 0}, true);
  EXPECT_EQ(s.shape(), (Shape{1, 4, 1}));
  const auto b = blocks_of<double>(x, {0, 2});
  for (int64_t j = 0; j < 4; ++j) {
    long double r = 0;
    for (double v : b[j]) r += v;
    EXPECT_NEAR(s.values<double>()[j], static_cast<double>(r), 1e-14);
  }
  EXPECT_EQ(mean(x).dim(), 0);
  EXPECT_NEAR(mean(x).item(), sum(x).item() / 60, 1e-15);
  EXPECT_EQ(var(x, {1}).shape(), (Shape{3, 5}));
  EXPECT_EQ(max(x, {2}, false).shape(), (Shape{3, 4}));
  EXPECT_EQ(argmax(x, -1, true).shape(), (Shape{3, 4, 1}));
  EXPECT_EQ(argmax(x, -1, true).dtype(), kInt64);
  EXPECT_DOUBLE_EQ(sum(scalar_tensor(3.5)).item(), 3.5);
  EXPECT_DOUBLE_EQ(max(scalar_tensor(-2.0)).item(), -2.0);
  // Reducing an empty dim: the sum is 0 (torch does the same), the mean NaN.
  const Tensor e = zeros({0, 5});
  EXPECT_EQ(sum(e, {0}).values<float>(), std::vector<float>(5, 0.f));
  for (float v : mean(e, {0}).values<float>()) EXPECT_TRUE(std::isnan(v));
  const Tensor e2 = zeros({3, 0, 4});
  EXPECT_EQ(sum(e2, {1}).values<float>(), std::vector<float>(12, 0.f));
}

// A full reduction of more than 100k elements: fixed blocks summed in parallel, partials in order.
TEST(Reduce, FullReductionOfALargeTensor) {
  for_float_types([](auto tag) {
    using T = decltype(tag);
    const DType dt = dtype_of<T>();
    // Non-zero mean (so the sum is large and its rounding matters) and a spread of magnitudes.
    const Tensor flat = rnd({131085}, dt, 1, -0.5, 2.0);
    check_reductions<T>(flat, {0});
    const Tensor tr = rnd({361, 363}, dt, 2, -0.5, 2.0).t();  // a strided full reduction
    check_reductions<T>(tr, {0, 1});
    const Tensor p3 = rnd({50, 60, 41}, dt, 3).permute({2, 0, 1});
    check_reductions<T>(p3, {0, 1, 2});
    // Through the public op (empty dims = all).
    const auto blocks = blocks_of<T>(flat, {0});
    long double ref = 0, sa = 0;
    for (T v : blocks[0]) ref += v, sa += std::fabs(v);
    const long double got = sum(flat).item();
    EXPECT_LE(std::fabs(got - ref), 1.01L * (unit_roundoff<T>() * std::fabs(ref) + 131086 * kU53 * sa));
  });
}

// Sum over the leading dims of a contiguous block ([N, C] summed over N: a bias gradient): rows are added
// into column accumulators, column chunks of 256 in parallel.
TEST(Reduce, RowsOfAContiguousBlock) {
  for_float_types([](auto tag) {
    using T = decltype(tag);
    const DType dt = dtype_of<T>();
    check_reductions<T>(rnd({129, 300}, dt, 1), {0});                          // parallel, two column chunks, ragged
    check_reductions<T>(rnd({5, 3}, dt, 2), {0});                              // tiny
    check_reductions<T>(rnd({40, 256}, dt, 3), {0});                           // exactly one chunk
    check_reductions<T>(rnd({40, 257}, dt, 4), {0});                           // one column past it
    check_reductions<T>(rnd({7, 11, 300}, dt, 5), {0, 1});                     // two leading dims
    check_reductions<T>(rnd({11, 7, 300}, dt, 6).permute({1, 0, 2}), {0, 1});  // reduced dims permuted
    check_reductions<T>(rnd({20, 300}, dt, 7).slice(0, 0, 20, 2), {0});        // rows with a gap between
    check_reductions<T>(rnd({9, 4, 70}, dt, 8), {0});                          // kept block [4, 70] merges into one row
    check_reductions<T>(rnd({4, 9, 70}, dt, 9).permute({1, 0, 2}), {0});       // kept [4,70] not mergeable
  });
}

// Results do not depend on the thread count, bit for bit, on every reduction path (float64 data, so
// that a different summation order would show).
TEST(Reduce, BitwiseIdenticalAcrossThreadCounts) {
  const Tensor flat = rnd({131085}, kFloat64, 1, -0.5, 2.0);
  const Tensor rows = rnd({129, 300}, kFloat64, 2);
  const Tensor general = rnd({300, 129}, kFloat64, 3);
  const Tensor tr = rnd({200, 200}, kFloat64, 4).t();
  const Tensor big3 = rnd({40, 30, 33}, kFloat64, 5).permute({2, 0, 1});
  struct Case {
    std::string name;
    std::function<Tensor()> run;
  };
  auto red = [](ReduceOp op, const Tensor& x, std::vector<int64_t> dims) {
    const Tensor out = Tensor::empty(kept_shape(x, dims), x.dtype());
    cpu::reduce(op, x, dims, out);
    return out;
  };
  std::vector<Case> cases = {
      {"full sum", [&] { return red(ReduceOp::Sum, flat, {0}); }},
      {"full mean strided",
       [&] {
         return red(ReduceOp::Mean, tr, {0, 1});
       }},
      {"full max", [&] { return red(ReduceOp::Max, flat, {0}); }},
      {"rows sum", [&] { return red(ReduceOp::Sum, rows, {0}); }},
      {"general sum over dim 1", [&] { return red(ReduceOp::Sum, general, {1}); }},
      {"general sum over dims 0,2 permuted",
       [&] {
         return red(ReduceOp::Sum, big3, {0, 2});
       }},
      {"var ddof 1 strided",
       [&] {
         const Tensor out = Tensor::empty({200}, kFloat64);
         cpu::var(tr, {0}, 1, out);
         return out;
       }},
      {"var full",
       [&] {
         const Tensor out = Tensor::empty({}, kFloat64);
         cpu::var(flat, {0}, 0, out);
         return out;
       }},
      {"public sum", [&] { return sum(big3, {1}); }},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<std::vector<double>> r;
    for (int threads : {1, 2, 3}) {
      OmpThreads guard(threads);
      r.push_back(c.run().values<double>());
    }
    EXPECT_TRUE(same_bits(r[0], r[1])) << "1 vs 2 threads";
    EXPECT_TRUE(same_bits(r[0], r[2])) << "1 vs 3 threads";
  }
  // float32 too (the float32 kernels are separate instantiations).
  const Tensor f = rnd({131085}, kFloat32, 6);
  std::vector<std::vector<float>> r;
  for (int threads : {1, 2}) {
    OmpThreads guard(threads);
    r.push_back(sum(f).values<float>());
    const auto m = sum(rnd({129, 300}, kFloat32, 7), {0}).values<float>();
    r.back().insert(r.back().end(), m.begin(), m.end());
  }
  EXPECT_TRUE(same_bits(r[0], r[1]));
}

}  // namespace
