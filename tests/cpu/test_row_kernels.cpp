// CPU kernels against naive references: softmax, CCC, indexing and its backward, the Philox fills.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "autograd/minidl.h"
#include "autograd/philox.h"
#include "cpu/kernels.h"
#include "tests/cpu/kernel_helpers.h"

using namespace minidl;
using namespace kernel_test;

namespace {

// ---- softmax --------------------------------------------------------------------------------------

// Softmax / log-softmax of x along dim, element by element against the naive formula in long double.
template <class T>
void check_softmax(const Tensor& x, int64_t dim, const Tensor& y, bool log) {
  SCOPED_TRACE(std::string(log ? "log_softmax" : "softmax") + " of " + x.meta_str() + " strides " +
               shape_str(x.strides()) + " along dim " + std::to_string(dim));
  const long double u = unit_roundoff<T>();
  int bad = 0;
  Shape rows = x.shape();
  rows[dim] = 1;
  for_each_index(rows, [&](const auto& r) {  // one row at a time: its max and sum, then each element
    long double m = -INFINITY;
    auto i = r;
    for (i[dim] = 0; i[dim] < x.size(dim); ++i[dim]) m = std::max<long double>(m, at<T>(x, i));
    long double s = 0;
    for (i[dim] = 0; i[dim] < x.size(dim); ++i[dim]) s += std::exp(static_cast<long double>(at<T>(x, i)) - m);
    // The row sum of n exponentials in double: relative error <= (n + 2) 2^-53 (the exps' own errors
    // included), which shows in float64 results.
    const long double sum_err = (x.size(dim) + 2) * kU53;
    for (i[dim] = 0; i[dim] < x.size(dim); ++i[dim]) {
      const long double xv = at<T>(x, i), got = at<T>(y, i);
      bool ok;
      if (std::isinf(xv)) {  // a masked entry (-inf): exactly 0, or -inf for log_softmax
        ok = got == (log ? -INFINITY : 0.0L);
      } else if (log) {
        const long double ref = xv - m - std::log(s);
        // x - lse in T: the rounding of lse (|m| + log s) and of the difference.
        ok = std::fabs(got - ref) <= 4 * u * (std::fabs(ref) + std::fabs(m) + std::log(s)) + sum_err;
      } else {
        const long double ref = std::exp(xv - m) / s;
        // exp and the division in double, one rounding to T; the shift x - m is exact or nearly (an error
        // of u |x - m| in the exponent is a relative error u |x - m| of the result).
        ok = std::fabs(got - ref) <=
             ref * (8 * u + 4 * u * std::fabs(xv - m) + sum_err) + std::numeric_limits<T>::denorm_min();
      }
      if (!ok && bad++ < 5)
        ADD_FAILURE() << "at " << idx_str(i) << ": x " << static_cast<double>(xv) << " -> " << static_cast<double>(got);
    }
  });
  EXPECT_EQ(bad, 0);
}

TEST(Softmax, RowsMatchTheNaiveFormula) {
  for_float_types([](auto tag) {
    using T = decltype(tag);
    const DType dt = dtype_of<T>();
    std::vector<std::pair<Tensor, int64_t>> cases = {
        {rnd({7, 33}, dt, 1, -5, 5), 1},
        {rnd({7, 33}, dt, 2, -5, 5), 0},                       // along a strided dim
        {rnd({33, 7}, dt, 3, -5, 5).t(), 1},                   // permuted input
        {rnd({4, 5, 6}, dt, 4, -5, 5), 1},                     // middle dim of 3-D
        {rnd({6, 4, 5}, dt, 5, -5, 5).permute({1, 2, 0}), 2},  // permuted 3-D
        {rnd({1, 9}, dt, 6), 1},
        {rnd({9, 1}, dt, 7), 1},                   // rows of one element: all 1 (log 0)
        {rnd({200, 201}, dt, 8, -20, 20), 1},      // parallel rows
        {rnd({201, 200}, dt, 9, -20, 20).t(), 0},  // parallel, strided rows
    };
    for (const auto& [x, dim] : cases) {
      check_softmax<T>(x, dim, softmax(x, dim), false);
      check_softmax<T>(x, dim, log_softmax(x, dim), true);
      // The kernel writing into a strided output.
      Shape rev(x.shape().rbegin(), x.shape().rend());
      std::vector<int64_t> perm(x.dim());
      for (int64_t d = 0; d < x.dim(); ++d) perm[d] = x.dim() - 1 - d;
      const Tensor out = Tensor::empty(rev, dt).permute(perm);
      cpu::softmax(x, dim, false, out);
      check_softmax<T>(x, dim, out, false);
    }
  });
}

TEST(Softmax, InfinitiesAndLargeValues) {
  for_float_types([](auto tag) {
    using T = decltype(tag);
    const DType dt = dtype_of<T>();
    const double inf = std::numeric_limits<double>::infinity();
    const Tensor x = from_vector(std::vector<double>{0,     -inf,  1,      2,       // a masked entry
                                                     -inf,  3,     -inf,   -inf,    // one finite entry: exactly 1
                                                     1000,  999,   998,    -1000,   // exp(1000) overflows naively
                                                     1000,  1000,  1000,   1000,    // ties at a large value
                                                     -1000, -1001, -999.5, -1000},  // exp(-1000) underflows naively
                                 {5, 4}, {.dtype = dt});
    const Tensor y = softmax(x, 1), ly = log_softmax(x, 1);
    check_softmax<T>(x, 1, y, false);
    check_softmax<T>(x, 1, ly, true);
    for (T v : y.values<T>()) EXPECT_TRUE(std::isfinite(v));
    const auto lv = ly.values<T>();
    for (size_t k = 8; k < lv.size(); ++k) EXPECT_TRUE(std::isfinite(lv[k])) << "log_softmax element " << k;
    EXPECT_EQ(y.values<T>()[1], T(0));
    EXPECT_EQ(ly.values<T>()[1], -std::numeric_limits<T>::infinity());
    EXPECT_EQ(y.values<T>()[5], T(1));
    EXPECT_EQ(ly.values<T>()[5], T(0));
    EXPECT_EQ(y.values<T>()[4], T(0));
    EXPECT_NEAR(y.values<T>()[12], 0.25, 4 * unit_roundoff<T>());
  });
}

TEST(Softmax, BackwardKernelMatchesTheFormula) {
  for_float_types([](auto tag) {
    using T = decltype(tag);
    const DType dt = dtype_of<T>();
    const long double u = unit_roundoff<T>();
    const Tensor x = rnd({6, 5, 7}, dt, 1, -3, 3).permute({2, 0, 1});  // [7,6,5], softmax over dim 1
    const Tensor g = rnd({7, 6, 5}, dt, 2);
    for (bool log : {false, true}) {
      SCOPED_TRACE(log ? "log_softmax" : "softmax");
      const Tensor y = Tensor::empty(x.shape(), dt);
      cpu::softmax(x, 1, log, y);
      const Tensor gx = Tensor::empty({5, 6, 7}, dt).permute({2, 1, 0});
      cpu::softmax_backward(y, g, 1, log, gx);
      for_each_index(x.shape(), [&](const auto& i) {
        auto j = i;
        long double dot = 0, sg = 0, mag = 0;
        for (j[1] = 0; j[1] < 6; ++j[1]) {
          dot += static_cast<long double>(at<T>(g, j)) * at<T>(y, j);
          sg += at<T>(g, j);
          mag += std::fabs(at<T>(g, j));
        }
        const long double yv = at<T>(y, i), gv = at<T>(g, i);
        const long double ref = log ? gv - std::exp(yv) * sg : yv * (gv - dot);
        ASSERT_LE(std::fabs(at<T>(gx, i) - ref), 16 * u * (std::fabs(gv) + mag)) << idx_str(i);
      });
    }
  });
}

// ---- CCC ------------------------------------------------------------------------------------------

struct CccRef {
  long double ccc, mx, my, D, n;
};

// Population moments over the rows where mask (if any) is true, for column c of [R, C] values.
CccRef ccc_ref(const std::vector<long double>& x, const std::vector<long double>& y, const std::vector<bool>* mask,
               int64_t R, int64_t C, int64_t c, long double eps) {
  long double n = 0, sx = 0, sy = 0;
  for (int64_t r = 0; r < R; ++r)
    if (!mask || (*mask)[r]) n += 1, sx += x[r * C + c], sy += y[r * C + c];
  const long double mx = sx / n, my = sy / n;
  long double vx = 0, vy = 0, cov = 0;
  for (int64_t r = 0; r < R; ++r)
    if (!mask || (*mask)[r]) {
      vx += (x[r * C + c] - mx) * (x[r * C + c] - mx);
      vy += (y[r * C + c] - my) * (y[r * C + c] - my);
      cov += (x[r * C + c] - mx) * (y[r * C + c] - my);
    }
  vx /= n, vy /= n, cov /= n;
  const long double D = vx + vy + (mx - my) * (mx - my) + eps;
  return {2 * cov / D, mx, my, D, n};
}

TEST(Ccc, MatchesPopulationMomentsWithAndWithoutMask) {
  for_float_types([](auto tag) {
    using T = decltype(tag);
    const DType dt = dtype_of<T>();
    const long double u = unit_roundoff<T>();
    const int64_t R = 37, C = 3;
    const Tensor noise = rnd({R, C}, dt, 1), pred = rnd({R, C}, dt, 2, -1, 1);
    const Tensor target = add(mul(pred, 0.7), add(mul(noise, 0.5), 0.3));  // correlated, shifted
    std::vector<long double> x, y;
    for (T v : pred.values<T>()) x.push_back(v);
    for (T v : target.values<T>()) y.push_back(v);
    std::vector<bool> mask(R);
    for (int64_t r = 0; r < R; ++r) mask[r] = (r * 7) % 5 < 3;
    for (bool masked : {false, true}) {
      SCOPED_TRACE(masked ? "masked" : "unmasked");
      const Tensor m = masked ? from_vector(mask, {R}, {.dtype = kBool}) : Tensor();
      const double eps = 1e-8;
      const Tensor got = ccc(pred, target, m, eps);
      ASSERT_EQ(got.shape(), (Shape{C}));
      // The kernel's statistics as well.
      const Tensor kc = Tensor::empty({C}, dt), stats = Tensor::empty({C, 4}, dt);
      cpu::ccc_forward(pred, target, m, eps, kc, stats);
      const auto st = stats.values<T>();
      for (int64_t c = 0; c < C; ++c) {
        const CccRef r = ccc_ref(x, y, masked ? &mask : nullptr, R, C, c, eps);
        // Two-pass moments in double, then one rounding to T: a few u relative (ccc is O(1)).
        EXPECT_NEAR(got.values<T>()[c], static_cast<double>(r.ccc), static_cast<double>(8 * u + 1e-13L))
            << "column " << c;
        EXPECT_NEAR(kc.values<T>()[c], static_cast<double>(r.ccc), static_cast<double>(8 * u + 1e-13L));
        EXPECT_NEAR(st[c * 4 + 0], static_cast<double>(r.mx), static_cast<double>(4 * u * std::fabs(r.mx) + 1e-15L));
        EXPECT_NEAR(st[c * 4 + 1], static_cast<double>(r.my), static_cast<double>(4 * u * std::fabs(r.my) + 1e-15L));
        EXPECT_NEAR(st[c * 4 + 2], static_cast<double>(r.D), static_cast<double>(8 * u * r.D));
        EXPECT_EQ(st[c * 4 + 3], static_cast<T>(r.n));
      }
    }
    // [..., C] with a [...] mask: [4, 9, 2] and a [4, 9] mask, and a non-contiguous prediction.
    const Tensor p3 = rnd({2, 4, 9}, dt, 3).permute({1, 2, 0}), t3 = rnd({4, 9, 2}, dt, 4);
    std::vector<bool> m3(36);
    for (int i = 0; i < 36; ++i) m3[i] = i % 4 != 1;
    const Tensor got3 = ccc(p3, t3, from_vector(m3, {4, 9}, {.dtype = kBool}));
    std::vector<long double> x3, y3;
    for (T v : raw<T>(p3)) x3.push_back(v);
    for (T v : raw<T>(t3)) y3.push_back(v);
    for (int64_t c = 0; c < 2; ++c)
      EXPECT_NEAR(got3.values<T>()[c], static_cast<double>(ccc_ref(x3, y3, &m3, 36, 2, c, 1e-8).ccc),
                  static_cast<double>(8 * u + 1e-13L));
    // Identical inputs give 1 (up to eps); a copy mirrored about its column means, -1.
    for (T v : ccc(pred, pred).values<T>()) EXPECT_NEAR(v, 1.0, 8 * static_cast<double>(u) + 1e-7);
    const Tensor mirrored = sub(mul(mean(pred, {0}, true), 2.0), pred);
    for (T v : ccc(pred, mirrored).values<T>()) EXPECT_NEAR(v, -1.0, 16 * static_cast<double>(u) + 1e-7);
  });
}

// The gradient of ccc_loss (float64) against central differences of the long-double reference.
TEST(Ccc, BackwardMatchesFiniteDifferencesOfTheReference) {
  const int64_t R = 11, C = 2;
  const Tensor pred0 = rnd({R, C}, kFloat64, 5), target0 = rnd({R, C}, kFloat64, 6, -0.5, 1.5);
  std::vector<bool> mask(R);
  for (int64_t r = 0; r < R; ++r) mask[r] = r % 3 != 0;
  for (bool masked : {false, true}) {
    SCOPED_TRACE(masked ? "masked" : "unmasked");
    Tensor pred = pred0.detach().clone().requires_grad_(), target = target0.detach().clone().requires_grad_();
    ccc_loss(pred, target, masked ? from_vector(mask, {R}, {.dtype = kBool}) : Tensor()).backward();
    const auto gp = pred.grad().values<double>(), gt = target.grad().values<double>();
    std::vector<long double> x, y;
    for (double v : pred0.values<double>()) x.push_back(v);
    for (double v : target0.values<double>()) y.push_back(v);
    auto loss = [&](const std::vector<long double>& a, const std::vector<long double>& b) {
      long double l = 0;
      for (int64_t c = 0; c < C; ++c) l += 1 - ccc_ref(a, b, masked ? &mask : nullptr, R, C, c, 1e-8).ccc;
      return l;
    };
    const long double h = 1e-5L;
    for (int64_t i = 0; i < R * C; ++i) {
      for (int which = 0; which < 2; ++which) {
        auto a = x, b = y;
        auto& v = which == 0 ? a : b;
        v[i] += h;
        const long double up = loss(a, b);
        v[i] -= 2 * h;
        const long double down = loss(a, b);
        const long double fd = (up - down) / (2 * h);
        const double got = which == 0 ? gp[i] : gt[i];
        // Central differences: truncation O(h^2) ~ 1e-10 here; long-double rounding ~1e-19 / h.
        EXPECT_NEAR(got, static_cast<double>(fd), 1e-8) << (which == 0 ? "d/dpred" : "d/dtarget") << " element " << i;
      }
    }
  }
}

// ---- indexing -------------------------------------------------------------------------------------

struct IndexCase {
  Tensor x;
  int64_t dim;
  Tensor index;
};

TEST(Index, IndexSelectForwardAndBackwardWithRepeatedIndices) {
  for_float_types([](auto tag) {
    using T = decltype(tag);
    const DType dt = dtype_of<T>();
    const long double u = unit_roundoff<T>();
    const Tensor idx_long = index_tensor({3, 9, 0, 9, 3, 3, 1, 9});
    std::vector<IndexCase> cases = {
        {rnd({5, 4}, dt, 1), 0, index_tensor({3, 0, 3, 3, 1})},
        {rnd({5, 4}, dt, 2), 1, index_tensor({0, 3, 3, 2, 0, 0, 1})},
        {rnd({4, 5}, dt, 3).t(), 0, index_tensor({4, 4, 2})},                       // non-contiguous x
        {rnd({3, 6, 4}, dt, 4).permute({2, 0, 1}), 2, index_tensor({5, 1, 5, 0})},  // [4,3,6] along dim 2
        {rnd({2, 10, 3}, dt, 5), 1, idx_long.slice(0, 0, 8, 2)},                    // index with stride 2: 3 0 3 1
        {rnd({2, 10, 3}, dt, 6), -2, idx_long},
    };
    for (const auto& cs : cases) {
      const int64_t dim = cs.dim < 0 ? cs.dim + cs.x.dim() : cs.dim;
      SCOPED_TRACE(cs.x.meta_str() + " dim " + std::to_string(dim) + " index " + shape_str(cs.index.values<int64_t>()));
      const Tensor x = cs.x.detach().requires_grad_();
      const Tensor y = index_select(x, cs.dim, cs.index);
      Shape ys = x.shape();
      ys[dim] = cs.index.size(0);
      ASSERT_EQ(y.shape(), ys);
      const auto idx = cs.index.values<int64_t>();
      for_each_index(ys, [&](const auto& i) {
        auto j = i;
        j[dim] = idx[i[dim]];
        ASSERT_EQ(at<T>(y, i), at<T>(x, j)) << idx_str(i);
      });
      // Backward: index_add of the incoming gradient, repeated indices accumulating.
      const Tensor w = rnd(ys, dt, 77);
      sum(mul(y, w)).backward();
      std::vector<long double> ref(static_cast<size_t>(x.numel()), 0), mag(ref.size(), 0);
      const Strides cs_x = contiguous_strides(x.shape());
      for_each_index(ys, [&](const auto& i) {
        auto j = i;
        j[dim] = idx[i[dim]];
        int64_t k = 0;
        for (size_t d = 0; d < j.size(); ++d) k += j[d] * cs_x[d];
        ref[k] += at<T>(w, i);
        mag[k] += std::fabs(at<T>(w, i));
      });
      const Tensor gx = x.grad();
      ASSERT_EQ(gx.shape(), x.shape());
      const auto got = raw<T>(gx);
      for (size_t k = 0; k < ref.size(); ++k)
        ASSERT_LE(std::fabs(got[k] - ref[k]), 8 * u * mag[k]) << "grad element " << k;
    }
  });
}

TEST(Index, GatherForwardAndBackwardWithRepeatedIndices) {
  for_float_types([](auto tag) {
    using T = decltype(tag);
    const DType dt = dtype_of<T>();
    const long double u = unit_roundoff<T>();
    std::vector<IndexCase> cases = {
        {rnd({4, 5}, dt, 1), 0,
         from_vector(std::vector<int64_t>{3, 0, 3, 3, 1, 1, 1, 2, 0, 0, 3, 3, 3, 3, 3}, {3, 5}, {.dtype = kInt64})},
        {rnd({4, 5}, dt, 2), 1,
         from_vector(std::vector<int64_t>{4, 4, 0, 1, 4, 2, 2, 0, 0, 0, 1, 3, 3, 4}, {2, 7}, {.dtype = kInt64})},
        {rnd({5, 4, 3}, dt, 3).permute({2, 1, 0}), 2,  // [3,4,5] non-contiguous x
         from_vector(std::vector<int64_t>{0, 4, 4, 1, 2, 2, 3, 3, 0, 1, 0, 4, 4, 4, 2, 1, 0, 0, 3, 2, 1, 1, 0, 4},
                     {2, 2, 6}, {.dtype = kInt64})},
        {rnd({3, 4, 5}, dt, 4), 1,  // transposed index
         from_vector(std::vector<int64_t>{0, 3, 3, 1, 2, 2, 0, 0, 3, 3, 1, 1, 2, 2, 0}, {5, 3, 1}, {.dtype = kInt64})
             .permute({1, 2, 0})},
    };
    for (const auto& cs : cases) {
      const int64_t dim = cs.dim;
      SCOPED_TRACE(cs.x.meta_str() + " dim " + std::to_string(dim) + " index " + cs.index.meta_str());
      const Tensor x = cs.x.detach().requires_grad_();
      const Tensor y = gather(x, dim, cs.index);
      ASSERT_EQ(y.shape(), cs.index.shape());
      for_each_index(y.shape(), [&](const auto& i) {
        auto j = i;
        j[dim] = at<int64_t>(cs.index, i);
        ASSERT_EQ(at<T>(y, i), at<T>(x, j)) << idx_str(i);
      });
      const Tensor w = rnd(y.shape(), dt, 78);
      sum(mul(y, w)).backward();
      std::vector<long double> ref(static_cast<size_t>(x.numel()), 0), mag(ref.size(), 0);
      const Strides cs_x = contiguous_strides(x.shape());
      for_each_index(y.shape(), [&](const auto& i) {
        auto j = i;
        j[dim] = at<int64_t>(cs.index, i);
        int64_t k = 0;
        for (size_t d = 0; d < j.size(); ++d) k += j[d] * cs_x[d];
        ref[k] += at<T>(w, i);
        mag[k] += std::fabs(at<T>(w, i));
      });
      const auto got = raw<T>(x.grad());
      for (size_t k = 0; k < ref.size(); ++k)
        ASSERT_LE(std::fabs(got[k] - ref[k]), 8 * u * mag[k]) << "grad element " << k;
    }
  });
}

// The backward kernels on their own: they add into what `out` already holds, in index order.
TEST(Index, IndexAddAndScatterAddAccumulateIntoOut) {
  const Tensor out = from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {3, 2}, {.dtype = kFloat64});
  const Tensor src = from_vector(std::vector<double>{10, 20, 30, 40, 50, 60, 70, 80}, {4, 2}, {.dtype = kFloat64});
  cpu::index_add(src, 0, index_tensor({2, 0, 2, 2}), out);
  EXPECT_EQ(out.values<double>(), (std::vector<double>{31, 42, 3, 4, 5 + 10 + 50 + 70, 6 + 20 + 60 + 80}));

  const Tensor o2 = from_vector(std::vector<double>{1, 1, 1, 1, 1, 1}, {2, 3}, {.dtype = kFloat64});
  const Tensor s2 = from_vector(std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8}, {2, 4}, {.dtype = kFloat64});
  const Tensor i2 = from_vector(std::vector<int64_t>{2, 2, 0, 2, 1, 1, 1, 0}, {2, 4}, {.dtype = kInt64});
  cpu::scatter_add(s2, 1, i2, o2);  // row 0: cols 2,2,0,2 get 1,2,3,4; row 1: cols 1,1,1,0 get 5,6,7,8
  EXPECT_EQ(o2.values<double>(), (std::vector<double>{1 + 3, 1, 1 + 1 + 2 + 4, 1 + 8, 1 + 5 + 6 + 7, 1}));
}

// ---- random ---------------------------------------------------------------------------------------

// rand / randn / bernoulli give the same bits for the same seed with 1 and 2 threads, and follow the
// documented stream layout; sizes above the parallel grain so the fill is split across threads.
TEST(Random, SameValuesForTheSameSeedWithOneOrTwoThreads) {
  const int64_t n = 40001;  // odd: the last normal uses half a pair
  for (DType dt : {kFloat32, kFloat64}) {
    SCOPED_TRACE(dtype_name(dt));
    std::vector<std::vector<double>> r;
    for (int threads : {1, 2}) {
      OmpThreads guard(threads);
      Generator g(1234);
      std::vector<double> v = rand({n}, {.dtype = dt}, &g).values<double>();
      for (double z : randn({n}, {.dtype = dt}, &g).values<double>()) v.push_back(z);
      for (double z : bernoulli({n}, 0.3, {.dtype = dt}, &g).values<double>()) v.push_back(z);
      for (double z : rand({7, 9}, {.dtype = dt}, &g, -2.0, 3.0).values<double>()) v.push_back(z);
      r.push_back(v);
    }
    EXPECT_TRUE(same_bits(r[0], r[1])) << "random fills depend on the thread count";
    // The documented layout (autograd/random.h), checked on the 1-thread draw.
    const auto& v = r[0];
    uint64_t blocks = 0;
    if (dt == kFloat32) {
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(v[i], philox::to_unit_float(philox::stream_value(1234, 0, i))) << "uniform " << i;
      blocks = (n + 3) / 4;
    } else {
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(v[i], philox::to_unit_double(philox::stream_value(1234, 0, 2 * i),
                                               philox::stream_value(1234, 0, 2 * i + 1)))
            << "uniform " << i;
      blocks = (2 * n + 3) / 4;
    }
    // randn starts where rand stopped; element i pairs with its neighbour (2m, 2m+1).
    auto unif = [&](uint64_t off, int64_t i) {
      return dt == kFloat32 ? static_cast<double>(philox::to_unit_float(philox::stream_value(1234, off, i)))
                            : philox::to_unit_double(philox::stream_value(1234, off, 2 * i),
                                                     philox::stream_value(1234, off, 2 * i + 1));
    };
    for (int64_t i : {int64_t{0}, int64_t{1}, int64_t{2}, int64_t{777}, n - 2, n - 1}) {
      const int64_t m = i / 2;
      const double u1 = unif(blocks, 2 * m), u2 = unif(blocks, 2 * m + 1);
      const double rr = std::sqrt(-2.0 * std::log(1.0 - u1));
      const double z = (i % 2 == 0 ? rr * std::cos(6.283185307179586 * u2) : rr * std::sin(6.283185307179586 * u2));
      EXPECT_NEAR(v[n + i], dt == kFloat32 ? static_cast<double>(static_cast<float>(z)) : z, 1e-12) << "normal " << i;
    }
    // Bernoulli: P(1) = 0.3, values exactly 0 or 1.
    int64_t ones = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double b = v[2 * n + i];
      ASSERT_TRUE(b == 0.0 || b == 1.0);
      ones += b == 1.0;
    }
    EXPECT_NEAR(static_cast<double>(ones) / n, 0.3, 0.015);  // > 6 standard deviations (0.0023)
  }
}

}  // namespace
