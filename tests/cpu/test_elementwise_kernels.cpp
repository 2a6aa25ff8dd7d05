// CPU kernels against naive references: elementwise maps, the strided loop's dim merging, copies between dtypes.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "autograd/minidl.h"
#include "cpu/kernels.h"
#include "cpu/strided_loop.h"
#include "tests/cpu/kernel_helpers.h"

using namespace minidl;
using namespace kernel_test;

namespace {

// ---- elementwise ----------------------------------------------------------------------------------

// Operand pairs of ranks 0-4: broadcasting, size-1 dims, permuted, sliced and expanded views, a dim of
// 4097, a 1000 x 3 shape, and non-contiguous operands large enough for the parallel split.
std::vector<std::tuple<std::string, Tensor, Tensor>> operand_pairs(DType dt) {
  const double lo = 0.5, hi = 2.0;  // safe for div and pow
  std::vector<std::tuple<std::string, Tensor, Tensor>> p;
  p.emplace_back("0-d op 0-d", rnd({}, dt, 1, lo, hi), rnd({}, dt, 2, lo, hi));
  p.emplace_back("0-d op 4-d", rnd({}, dt, 3, lo, hi), rnd({2, 3, 4, 5}, dt, 4, lo, hi));
  p.emplace_back("4097 op 1", rnd({4097}, dt, 5, lo, hi), rnd({1}, dt, 6, lo, hi));
  p.emplace_back("1000x3 op 3", rnd({1000, 3}, dt, 7, lo, hi), rnd({3}, dt, 8, lo, hi));
  p.emplace_back("1000x3 op 1000x1", rnd({1000, 3}, dt, 9, lo, hi), rnd({1000, 1}, dt, 10, lo, hi));
  p.emplace_back("1x3 op 1000x1 (outer)", rnd({1, 3}, dt, 9, lo, hi), rnd({1000, 1}, dt, 10, lo, hi));
  p.emplace_back("2x1x3x5 op 4x1x5", rnd({2, 1, 3, 5}, dt, 11, lo, hi), rnd({4, 1, 5}, dt, 12, lo, hi));
  p.emplace_back("1x7x1x3 op 1x1x4x1", rnd({1, 7, 1, 3}, dt, 13, lo, hi), rnd({1, 1, 4, 1}, dt, 14, lo, hi));
  p.emplace_back("permuted 4-d op 5x1", rnd({3, 4, 5, 2}, dt, 15, lo, hi).permute({3, 0, 2, 1}),
                 rnd({5, 1}, dt, 16, lo, hi));
  p.emplace_back("sliced op transposed", rnd({6, 10}, dt, 17, lo, hi).slice(1, 1, 9, 2),
                 rnd({4, 6}, dt, 18, lo, hi).t());
  p.emplace_back("expanded op permuted", rnd({3, 1, 5}, dt, 19, lo, hi).expand({3, 4, 5}),
                 rnd({5, 4, 3}, dt, 20, lo, hi).permute({2, 1, 0}));
  p.emplace_back("1-d op 3-d", rnd({1}, dt, 21, lo, hi), rnd({2, 1, 3}, dt, 22, lo, hi));
  p.emplace_back("large transposed op row", rnd({129, 300}, dt, 23, lo, hi).t(), rnd({129}, dt, 24, lo, hi));
  p.emplace_back("large 4097x9 narrowed op column", rnd({4097, 10}, dt, 25, lo, hi).narrow(1, 1, 9),
                 rnd({4097, 1}, dt, 26, lo, hi));
  p.emplace_back("large permuted 3-d op permuted 3-d", rnd({40, 30, 33}, dt, 27, lo, hi).permute({2, 0, 1}),
                 rnd({33, 30, 40}, dt, 28, lo, hi).permute({0, 2, 1}));
  return p;
}

template <class T>
T binary_ref(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Div: return a / b;
    case BinaryOp::Pow: return static_cast<T>(std::pow(static_cast<long double>(a), static_cast<long double>(b)));
  }
  return 0;
}

TEST(Elementwise, BinaryOverBroadcastAndStridedOperands) {
  for_float_types([](auto tag) {
    using T = decltype(tag);
    const DType dt = dtype_of<T>();
    const long double u = unit_roundoff<T>();
    for (const auto& [name, a, b] : operand_pairs(dt)) {
      SCOPED_TRACE(name + ": " + a.meta_str() + " op " + b.meta_str());
      const Shape shape = broadcast_shapes("test", a.shape(), b.shape());
      for (BinaryOp op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Pow}) {
        SCOPED_TRACE(binary_name(op));
        const Tensor out = Tensor::empty(shape, dt);
        cpu::binary(op, a, b, out);
        int bad = 0;
        for_each_index(shape, [&](const auto& i) {
          const T x = bat<T>(a, i), y = bat<T>(b, i), got = at<T>(out, i), ref = binary_ref(op, x, y);
          const bool ok = op == BinaryOp::Pow ? std::fabs(static_cast<long double>(got) - ref) <= 8 * u * std::fabs(ref)
                                              : got == ref;
          if (!ok && bad++ < 3) ADD_FAILURE() << "at " << idx_str(i) << ": " << got << " vs " << ref;
        });
        EXPECT_EQ(bad, 0);
      }
      // The public ops agree with the kernel (and broadcast to the same shape).
      const Tensor s = add(a, b), m = mul(a, b);
      ASSERT_EQ(s.shape(), shape);
      int bad = 0;
      for_each_index(shape, [&](const auto& i) {
        if ((at<T>(s, i) != bat<T>(a, i) + bat<T>(b, i) || at<T>(m, i) != bat<T>(a, i) * bat<T>(b, i)) && bad++ < 3)
          ADD_FAILURE() << "public add/mul wrong at " << idx_str(i);
      });
    }
  });
}

// The output is written through its strides (a transposed output), and may alias the first input.
TEST(Elementwise, StridedOutputAndInPlace) {
  for_float_types([](auto tag) {
    using T = decltype(tag);
    const DType dt = dtype_of<T>();
    const Tensor a = rnd({7, 300}, dt, 1), b = rnd({300}, dt, 2);
    const Tensor out = Tensor::empty({300, 7}, dt).t();  // [7, 300] with strides [1, 7]
    cpu::binary(BinaryOp::Sub, a, b, out);
    for_each_index(out.shape(), [&](const auto& i) { ASSERT_EQ(at<T>(out, i), at<T>(a, i) - bat<T>(b, i)); });

    const Tensor big = rnd({200, 201}, dt, 3).t();  // 40200 elements: the parallel split, strided in place
    const std::vector<T> before = raw<T>(big);
    const Tensor row = rnd({200}, dt, 4);
    cpu::binary(BinaryOp::Mul, big, row, big);
    size_t k = 0;
    for_each_index(big.shape(), [&](const auto& i) { ASSERT_EQ(at<T>(big, i), before[k++] * bat<T>(row, i)); });

    const Tensor y = rnd({5, 9}, dt, 5), x = rnd({9}, dt, 6);
    const std::vector<T> y0 = raw<T>(y);
    cpu::axpy(-2.5, x, y);  // y += alpha x, x broadcast
    k = 0;
    for_each_index(y.shape(), [&](const auto& i) {
      const T ref = y0[k++] + static_cast<T>(-2.5) * bat<T>(x, i);
      ASSERT_NEAR(at<T>(y, i), ref, 2 * unit_roundoff<T>() * 4);
    });
  });
}

// Tensors with no elements: the loop does nothing, and the result has the broadcast shape.
TEST(Elementwise, EmptyTensors) {
  const Tensor a = zeros({0, 3}), b = rnd({3}, kFloat32, 1);
  EXPECT_EQ(add(a, b).shape(), (Shape{0, 3}));
  EXPECT_EQ(exp(a).shape(), (Shape{0, 3}));
  const Tensor out = Tensor::empty({2, 0, 3}, kFloat64);
  cpu::copy(a, out);
  cpu::binary(BinaryOp::Mul, a.to(kFloat64), b.to(kFloat64), out);
  EXPECT_EQ(out.numel(), 0);
}

long double unary_ref(UnaryOp op, const UnaryParams& p, long double x) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Exp: return std::exp(x);
    case UnaryOp::Log: return std::log(x);
    case UnaryOp::Sqrt: return std::sqrt(x);
    case UnaryOp::Abs: return std::fabs(x);
    case UnaryOp::Tanh: return std::tanh(x);
    case UnaryOp::Sigmoid: return 1.0L / (1.0L + std::exp(-x));
    case UnaryOp::Relu: return x > 0 ? x : 0;
    case UnaryOp::LeakyRelu: return x > 0 ? x : x * p.p0;
    case UnaryOp::Clamp: return x < p.p0 ? p.p0 : (x > p.p1 ? p.p1 : x);
  }
  return 0;
}

TEST(Elementwise, UnaryOverStridedOperands) {
  const UnaryOp ops[] = {UnaryOp::Neg,  UnaryOp::Exp,     UnaryOp::Log,  UnaryOp::Sqrt,      UnaryOp::Abs,
                         UnaryOp::Tanh, UnaryOp::Sigmoid, UnaryOp::Relu, UnaryOp::LeakyRelu, UnaryOp::Clamp};
  for_float_types([&](auto tag) {
    using T = decltype(tag);
    const DType dt = dtype_of<T>();
    const long double u = unit_roundoff<T>();
    std::vector<std::pair<std::string, Tensor>> xs;
    xs.emplace_back("0-d", rnd({}, dt, 1, -3, 3));
    xs.emplace_back("4097", rnd({4097}, dt, 2, -3, 3));
    xs.emplace_back("1000x3 transposed", rnd({3, 1000}, dt, 3, -3, 3).t());
    xs.emplace_back("permuted 4-d", rnd({2, 3, 4, 5}, dt, 4, -3, 3).permute({2, 0, 3, 1}));
    xs.emplace_back("expanded", rnd({3, 1, 5}, dt, 5, -3, 3).expand({3, 4, 5}));
    xs.emplace_back("sliced, step 3", rnd({9, 12}, dt, 6, -3, 3).slice(0, 1, 9, 3));
    xs.emplace_back("large transposed", rnd({190, 190}, dt, 7, -30, 30).t());
    for (const auto& [name, x0] : xs)
      for (UnaryOp op : ops) {
        SCOPED_TRACE(name + " " + unary_name(op));
        // log and sqrt need positive inputs: take |x| + 0.1 (as a strided view of the same geometry).
        Tensor x = x0;
        if (op == UnaryOp::Log || op == UnaryOp::Sqrt) {
          x = Tensor::empty(x0.shape(), dt);
          for_each_index(x0.shape(), [&](const auto& i) {
            int64_t off = 0;
            for (size_t d = 0; d < i.size(); ++d) off += i[d] * x.stride(static_cast<int64_t>(d));
            x.data<T>()[off] = std::fabs(at<T>(x0, i)) + T(0.1);
          });
        }
        const UnaryParams p{0.03, op == UnaryOp::Clamp ? 0.7 : 0.0};
        const UnaryParams pc = op == UnaryOp::Clamp ? UnaryParams{-0.4, 0.7} : p;
        // Output with reversed strides (a permuted view of a fresh tensor), to exercise strided writes.
        Shape rev(x.shape().rbegin(), x.shape().rend());
        std::vector<int64_t> perm(x.dim());
        for (int64_t d = 0; d < x.dim(); ++d) perm[d] = x.dim() - 1 - d;
        const Tensor out = Tensor::empty(rev, dt).permute(perm);
        cpu::unary(op, pc, x, out);
        const bool exact = op == UnaryOp::Neg || op == UnaryOp::Abs || op == UnaryOp::Relu || op == UnaryOp::Clamp;
        int bad = 0;
        for_each_index(x.shape(), [&](const auto& i) {
          const T xv = at<T>(x, i), got = at<T>(out, i);
          bool ok;
          if (exact) {
            ok = got == static_cast<T>(unary_ref(op, pc, xv));
          } else if (op == UnaryOp::LeakyRelu) {
            ok = got == (xv > 0 ? xv : xv * static_cast<T>(pc.p0));  // one rounding, in T
          } else {
            const long double ref = unary_ref(op, pc, xv);
            ok = std::fabs(got - ref) <= 8 * u * std::fabs(ref) + std::numeric_limits<T>::denorm_min();
          }
          if (!ok && bad++ < 3) ADD_FAILURE() << "x" << idx_str(i) << " = " << xv << " -> " << got;
        });
        EXPECT_EQ(bad, 0);
      }
  });
}

// Gradients of a few unary ops through the backward kernel, with permuted operands.
TEST(Elementwise, UnaryBackwardOverStridedOperands) {
  for_float_types([](auto tag) {
    using T = decltype(tag);
    const DType dt = dtype_of<T>();
    const Tensor x = rnd({4, 5, 6}, dt, 1, -2, 2).permute({2, 0, 1});
    const Tensor g = rnd({6, 4, 5}, dt, 2);
    const Tensor y = Tensor::empty(x.shape(), dt);
    cpu::unary(UnaryOp::Tanh, {}, x, y);
    const Tensor gx = Tensor::empty(x.shape(), dt);
    cpu::unary_backward(UnaryOp::Tanh, {}, y, g, gx);  // reads the output
    for_each_index(x.shape(), [&](const auto& i) {
      // g (1 - y^2): a few roundings in T (the kernel may fuse them into FMAs).
      const long double yv = at<T>(y, i), ref = at<T>(g, i) * (1 - yv * yv);
      ASSERT_LE(std::fabs(at<T>(gx, i) - ref), 4 * unit_roundoff<T>() * std::fabs(at<T>(g, i))) << idx_str(i);
    });
    cpu::unary_backward(UnaryOp::Relu, {}, x, g.expand({6, 4, 5}), gx);  // reads the input
    for_each_index(x.shape(),
                   [&](const auto& i) { ASSERT_EQ(at<T>(gx, i), at<T>(x, i) > 0 ? at<T>(g, i) : T(0)) << idx_str(i); });
  });
}

TEST(Elementwise, CompareAndWhereBroadcast) {
  // a [4,1,6] vs c [5,1] -> [4,5,6], with ties (small integers).
  const Tensor a = ints({4, 1, 6}, kFloat32, 1, 3);
  const Tensor c = ints({5, 1}, kFloat32, 3, 3);
  const CompareOp ops[] = {CompareOp::Gt, CompareOp::Ge, CompareOp::Lt, CompareOp::Le, CompareOp::Eq, CompareOp::Ne};
  const Shape shape{4, 5, 6};
  for (CompareOp op : ops) {
    SCOPED_TRACE(compare_name(op));
    const Tensor out = Tensor::empty(shape, kBool);
    cpu::compare(op, a, c, out);
    for_each_index(shape, [&](const auto& i) {
      const float x = bat<float>(a, i), y = bat<float>(c, i);
      const bool ref = op == CompareOp::Gt   ? x > y
                       : op == CompareOp::Ge ? x >= y
                       : op == CompareOp::Lt ? x < y
                       : op == CompareOp::Le ? x <= y
                       : op == CompareOp::Eq ? x == y
                                             : x != y;
      ASSERT_EQ(at<bool>(out, i), ref) << idx_str(i);
    });
  }
  // int64 operands compare too.
  const Tensor ia = from_vector(std::vector<int64_t>{1, 5, -3}, {3}, {.dtype = kInt64}),
               ib = from_vector(std::vector<int64_t>{2}, {1}, {.dtype = kInt64});
  const Tensor io = Tensor::empty({3}, kBool);
  cpu::compare(CompareOp::Lt, ia, ib, io);
  EXPECT_EQ(io.values<bool>(), (std::vector<bool>{true, false, true}));
  // where: cond [4,1,6] bool, a permuted [4,5,6], b 0-d.
  const Tensor cond = Tensor::empty({4, 1, 6}, kBool);
  cpu::compare(CompareOp::Gt, a, scalar_tensor(0.5), cond);
  const Tensor x = rnd({6, 4, 5}, kFloat32, 4).permute({1, 2, 0}), y = scalar_tensor(-7.0);
  const Tensor w = Tensor::empty(shape, kFloat32);
  cpu::where(cond, x, y, w);
  for_each_index(shape, [&](const auto& i) {
    ASSERT_EQ(at<float>(w, i), bat<bool>(cond, i) ? at<float>(x, i) : -7.0f) << idx_str(i);
  });
}

// ---- the strided loop ------------------------------------------------------------------------------

TEST(StridedLoop, MergesDimsLaidOutBackToBack) {
  const Tensor x = rnd({2, 3, 4, 5}, kFloat32, 1);
  {
    const Tensor out = Tensor::empty({2, 3, 4, 5}, kFloat32);
    const auto L = make_loop<2>(out.shape(), {&out, &x});
    EXPECT_EQ(L.shape, (std::vector<int64_t>{120})) << "a contiguous 4-D tensor is one run";
    EXPECT_EQ(L.strides[0], (std::vector<int64_t>{1}));
    EXPECT_EQ(L.strides[1], (std::vector<int64_t>{1}));
    EXPECT_EQ(L.numel, 120);
  }
  {
    // Swapping the last two dims: the outer two still merge (6 rows), the inner two cannot.
    const Tensor p = x.permute({0, 1, 3, 2});  // [2,3,5,4], strides [60,20,1,5]
    const Tensor out = Tensor::empty(p.shape(), kFloat32);
    const auto L = make_loop<2>(out.shape(), {&out, &p});
    EXPECT_EQ(L.shape, (std::vector<int64_t>{6, 5, 4}));
    EXPECT_EQ(L.strides[0], (std::vector<int64_t>{20, 4, 1}));
    EXPECT_EQ(L.strides[1], (std::vector<int64_t>{20, 1, 5}));
  }
  {
    // A full reversal merges nothing.
    const Tensor p = x.permute({3, 2, 1, 0});
    const Tensor out = Tensor::empty(p.shape(), kFloat32);
    const auto L = make_loop<2>(out.shape(), {&out, &p});
    EXPECT_EQ(L.shape, (std::vector<int64_t>{5, 4, 3, 2}));
    EXPECT_EQ(L.strides[1], (std::vector<int64_t>{1, 5, 20, 60}));
  }
  {
    // Permuted the same way in every operand: merges as if contiguous.
    const Tensor p = x.permute({1, 0, 2, 3});  // [3,2,4,5] strides [20,60,5,1]: the inner 4x5 merge
    const Tensor q = Tensor::empty({2, 3, 4, 5}, kFloat32).permute({1, 0, 2, 3});
    const auto L = make_loop<2>(p.shape(), {&q, &p});
    EXPECT_EQ(L.shape, (std::vector<int64_t>{3, 2, 20}));
  }
  {
    // A broadcast row is a stride-0 operand of the outer dim; size-1 dims vanish.
    const Tensor row = rnd({1, 5}, kFloat32, 2);
    const Tensor out = Tensor::empty({4, 1, 5}, kFloat32);
    const auto L = make_loop<2>(out.shape(), {&out, &row});
    EXPECT_EQ(L.shape, (std::vector<int64_t>{4, 5}));
    EXPECT_EQ(L.strides[0], (std::vector<int64_t>{5, 1}));
    EXPECT_EQ(L.strides[1], (std::vector<int64_t>{0, 1}));
  }
  {
    // A 0-d tensor is a single element.
    const Tensor s = scalar_tensor(1.0);
    const auto L = make_loop<1>(s.shape(), {&s});
    EXPECT_EQ(L.shape, (std::vector<int64_t>{1}));
    EXPECT_EQ(L.numel, 1);
  }
}

// Any split of the element range into pieces visits every element exactly once, in order.
TEST(StridedLoop, RangesCoverEveryElementOnce) {
  const Tensor x = rnd({3, 4, 5, 7}, kFloat64, 1).permute({2, 0, 3, 1}).slice(2, 1, 7, 2);  // [5,3,3,4]
  const Tensor out = Tensor::empty(x.shape(), kFloat64);
  const auto L = make_loop<2>(out.shape(), {&out, &x});
  std::vector<double> expect = raw<double>(x);
  for (int64_t piece : {1, 2, 5, 7, 13, 64, 1000}) {
    std::vector<double> seen;
    auto body = [&](int64_t n, const std::array<char*, 2>& p, const std::array<int64_t, 2>& s) {
      const double* a = reinterpret_cast<const double*>(p[1]);
      for (int64_t k = 0; k < n; ++k) seen.push_back(a[k * s[1]]);
    };
    for (int64_t b = 0; b < L.numel; b += piece) cpu::run_loop_range(L, b, std::min(L.numel, b + piece), body);
    EXPECT_EQ(seen, expect) << "pieces of " << piece;
  }
}

// ---- copy ------------------------------------------------------------------------------------------

template <class D, class S>
D convert_ref(S v) {
  if constexpr (std::is_same_v<D, bool>)
    return v != S(0);
  else
    return static_cast<D>(v);
}

template <class F>
void dispatch_dtype(DType dt, F&& f) {
  switch (dt) {
    case DType::Float32: f(float{}); return;
    case DType::Float64: f(double{}); return;
    case DType::Int64: f(int64_t{}); return;
    case DType::Bool: f(bool{}); return;
  }
}

TEST(Copy, EveryDtypePairOverStridedAndBroadcastOperands) {
  const DType dtypes[] = {kFloat32, kFloat64, kInt64, kBool};
  // Values with fractions, negatives and zeros (for the truncation to int64 and the != 0 of bool).
  std::vector<double> base;
  for (int i = 0; i < 45000; ++i) base.push_back((i % 7 == 0) ? 0.0 : (i % 13) - 6.25 + 0.5 * (i % 3));
  for (DType sd : dtypes)
    for (DType dd : dtypes) {
      SCOPED_TRACE(std::string(dtype_name(sd)) + " -> " + dtype_name(dd));
      const Tensor src_all = from_vector(base, {45000}, {.dtype = sd});
      std::vector<std::pair<Tensor, Tensor>> cases;  // (src, dst)
      cases.emplace_back(src_all.narrow(0, 0, 15).reshape({3, 5}), Tensor::empty({3, 5}, dd));
      cases.emplace_back(src_all.narrow(0, 0, 15).reshape({5, 3}).t(), Tensor::empty({3, 5}, dd));
      cases.emplace_back(src_all.narrow(0, 3, 5), Tensor::empty({4, 5}, dd));              // broadcast rows
      cases.emplace_back(src_all.narrow(0, 0, 1).reshape({}), Tensor::empty({2, 3}, dd));  // 0-d broadcast
      cases.emplace_back(src_all.narrow(0, 0, 40000).reshape({200, 200}).t(),
                         Tensor::empty({200, 400}, dd).slice(1, 0, 400, 2));  // large, both strided
      cases.emplace_back(src_all, Tensor::empty({45000}, dd));                // large contiguous
      for (const auto& [src, dst] : cases) {
        SCOPED_TRACE(src.meta_str() + " -> " + dst.meta_str());
        cpu::copy(src, dst);
        dispatch_dtype(sd, [&](auto stag) {
          using S = decltype(stag);
          dispatch_dtype(dd, [&](auto dtag) {
            using D = decltype(dtag);
            int bad = 0;
            for_each_index(dst.shape(), [&](const auto& i) {
              const D ref = convert_ref<D>(bat<S>(src, i)), got = at<D>(dst, i);
              if (!(got == ref) && bad++ < 3) ADD_FAILURE() << idx_str(i) << ": " << got << " vs " << ref;
            });
            EXPECT_EQ(bad, 0);
          });
        });
      }
    }
}

}  // namespace
