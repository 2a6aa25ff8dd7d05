// The CPU kernels (cpu/kernels.h) and the ops built on them against naive references written here:
// elementwise maps over broadcast and non-contiguous operands, the strided loop's dim merging, copies
// between every pair of dtypes, reductions over every subset of dims, softmax, CCC, indexing and its
// backward, and the Philox fills. Every reference reads its inputs through their own strides (never
// through a library copy). The kernels whose summation order could depend on the thread count (the
// reductions) and the random fills are also checked for bitwise-identical results with 1 and 2 OpenMP
// threads.
//
// Tolerances, with u = 2^-24 (float32) or 2^-53 (float64), the unit roundoff of the kernel's type:
//   - +, -, *, / and every pure data movement (copy, max, min, argmax, index_select, gather) are exact:
//     IEEE operations are correctly rounded, so the reference computes the same operation in the same
//     type and compares bit for bit.
//   - transcendental unary ops (exp, log, tanh, sigmoid, sqrt, pow) use libm in the kernel's type; they
//     are compared with the double (long double) value within 8 u relative (a few ulp of libm error plus
//     one or two roundings of the formula).
//   - sums accumulate in double: the result is the double sum (error <= (n-1) 2^-53 sum|x|) rounded once
//     to T (error <= u |result|), so |got - exact| <= u |exact| + (n + 1) 2^-53 sum|x|.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "autograd/minidl.h"
#include "autograd/philox.h"
#include "cpu/kernels.h"
#include "cpu/strided_loop.h"

using namespace minidl;

namespace {

// ---- helpers --------------------------------------------------------------------------------------

// Sets the OpenMP thread count for one scope and restores the previous value after.
class OmpThreads {
 public:
  explicit OmpThreads(int n) : saved_(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~OmpThreads() { omp_set_num_threads(saved_); }
  OmpThreads(const OmpThreads&) = delete;
  OmpThreads& operator=(const OmpThreads&) = delete;

 private:
  int saved_;
};

constexpr long double kU53 = 1.1102230246251565404e-16L;  // 2^-53

template <class T>
constexpr long double unit_roundoff() {
  return std::is_same_v<T, float> ? std::ldexp(1.0L, -24) : std::ldexp(1.0L, -53);
}

// A tensor of the given shape (0-d allowed) with values uniform in [lo, hi).
Tensor rnd(const Shape& shape, DType dt, uint32_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(static_cast<size_t>(numel_of(shape)));
  for (auto& x : v) x = u(rng);
  if (shape.empty()) return scalar_tensor(v[0], {.dtype = dt});
  return from_vector(v, shape, {.dtype = dt});
}

// Integers in [0, k) as a floating tensor: many ties for max / min / argmax.
Tensor ints(const Shape& shape, DType dt, uint32_t seed, int k) {
  std::mt19937 rng(seed);
  std::vector<double> v(static_cast<size_t>(numel_of(shape)));
  for (auto& x : v) x = static_cast<double>(rng() % static_cast<uint32_t>(k));
  return from_vector(v, shape, {.dtype = dt});
}

Tensor index_tensor(const std::vector<int64_t>& v) {
  return from_vector(v, {static_cast<int64_t>(v.size())}, {.dtype = kInt64});
}

// Calls f(idx) for every multi-index of `shape` in row-major order (once, with an empty index, for 0-d).
template <class F>
void for_each_index(const Shape& shape, F&& f) {
  const int64_t n = numel_of(shape);
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t k = 0; k < n; ++k) {
    f(static_cast<const std::vector<int64_t>&>(idx));
    for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

// The element of t at idx, through t's strides.
template <class T>
T at(const Tensor& t, const std::vector<int64_t>& idx) {
  int64_t off = 0;
  for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * t.stride(static_cast<int64_t>(d));
  return t.data<T>()[off];
}

// The element of t broadcast (NumPy rules) to a tensor whose index is out_idx.
template <class T>
T bat(const Tensor& t, const std::vector<int64_t>& out_idx) {
  const int64_t lead = static_cast<int64_t>(out_idx.size()) - t.dim();
  int64_t off = 0;
  for (int64_t d = 0; d < t.dim(); ++d) off += (t.size(d) == 1 ? 0 : out_idx[lead + d]) * t.stride(d);
  return t.data<T>()[off];
}

template <class T>
std::vector<T> raw(const Tensor& t) {  // row-major values through the strides (test's own reader)
  std::vector<T> v;
  for_each_index(t.shape(), [&](const auto& i) { v.push_back(at<T>(t, i)); });
  return v;
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

std::string idx_str(const std::vector<int64_t>& idx) { return shape_str(idx); }

// Calls f(T{}) for float and double.
template <class F>
void for_float_types(F&& f) {
  {
    SCOPED_TRACE("float32");
    f(float{});
  }
  {
    SCOPED_TRACE("float64");
    f(double{});
  }
}

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
    const auto L = cpu::make_loop<2>(out.shape(), {&out, &x});
    EXPECT_EQ(L.shape, (std::vector<int64_t>{120})) << "a contiguous 4-D tensor is one run";
    EXPECT_EQ(L.strides[0], (std::vector<int64_t>{1}));
    EXPECT_EQ(L.strides[1], (std::vector<int64_t>{1}));
    EXPECT_EQ(L.numel, 120);
  }
  {
    // Swapping the last two dims: the outer two still merge (6 rows), the inner two cannot.
    const Tensor p = x.permute({0, 1, 3, 2});  // [2,3,5,4], strides [60,20,1,5]
    const Tensor out = Tensor::empty(p.shape(), kFloat32);
    const auto L = cpu::make_loop<2>(out.shape(), {&out, &p});
    EXPECT_EQ(L.shape, (std::vector<int64_t>{6, 5, 4}));
    EXPECT_EQ(L.strides[0], (std::vector<int64_t>{20, 4, 1}));
    EXPECT_EQ(L.strides[1], (std::vector<int64_t>{20, 1, 5}));
  }
  {
    // A full reversal merges nothing.
    const Tensor p = x.permute({3, 2, 1, 0});
    const Tensor out = Tensor::empty(p.shape(), kFloat32);
    const auto L = cpu::make_loop<2>(out.shape(), {&out, &p});
    EXPECT_EQ(L.shape, (std::vector<int64_t>{5, 4, 3, 2}));
    EXPECT_EQ(L.strides[1], (std::vector<int64_t>{1, 5, 20, 60}));
  }
  {
    // Permuted the same way in every operand: merges as if contiguous.
    const Tensor p = x.permute({1, 0, 2, 3});  // [3,2,4,5] strides [20,60,5,1]: the inner 4x5 merge
    const Tensor q = Tensor::empty({2, 3, 4, 5}, kFloat32).permute({1, 0, 2, 3});
    const auto L = cpu::make_loop<2>(p.shape(), {&q, &p});
    EXPECT_EQ(L.shape, (std::vector<int64_t>{3, 2, 20}));
  }
  {
    // A broadcast row is a stride-0 operand of the outer dim; size-1 dims vanish.
    const Tensor row = rnd({1, 5}, kFloat32, 2);
    const Tensor out = Tensor::empty({4, 1, 5}, kFloat32);
    const auto L = cpu::make_loop<2>(out.shape(), {&out, &row});
    EXPECT_EQ(L.shape, (std::vector<int64_t>{4, 5}));
    EXPECT_EQ(L.strides[0], (std::vector<int64_t>{5, 1}));
    EXPECT_EQ(L.strides[1], (std::vector<int64_t>{0, 1}));
  }
  {
    // A 0-d tensor is a single element.
    const Tensor s = scalar_tensor(1.0);
    const auto L = cpu::make_loop<1>(s.shape(), {&s});
    EXPECT_EQ(L.shape, (std::vector<int64_t>{1}));
    EXPECT_EQ(L.numel, 1);
  }
}

// Any split of the element range into pieces visits every element exactly once, in order.
TEST(StridedLoop, RangesCoverEveryElementOnce) {
  const Tensor x = rnd({3, 4, 5, 7}, kFloat64, 1).permute({2, 0, 3, 1}).slice(2, 1, 7, 2);  // [5,3,3,4]
  const Tensor out = Tensor::empty(x.shape(), kFloat64);
  const auto L = cpu::make_loop<2>(out.shape(), {&out, &x});
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
  if constexpr (std::is_same_v<D, bool>) return v != S(0);
  else return static_cast<D>(v);
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
  auto run = [&](cpu::ReduceOp op) {
    const Tensor out = Tensor::empty(ks, dt);
    cpu::reduce(op, x, dims, out);
    return out.values<T>();
  };
  const auto sum = run(cpu::ReduceOp::Sum), mean = run(cpu::ReduceOp::Mean), mx = run(cpu::ReduceOp::Max),
             mn = run(cpu::ReduceOp::Min);
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
  auto red = [](cpu::ReduceOp op, const Tensor& x, std::vector<int64_t> dims) {
    const Tensor out = Tensor::empty(kept_shape(x, dims), x.dtype());
    cpu::reduce(op, x, dims, out);
    return out;
  };
  std::vector<Case> cases = {
      {"full sum", [&] { return red(cpu::ReduceOp::Sum, flat, {0}); }},
      {"full mean strided",
       [&] {
         return red(cpu::ReduceOp::Mean, tr, {0, 1});
       }},
      {"full max", [&] { return red(cpu::ReduceOp::Max, flat, {0}); }},
      {"rows sum", [&] { return red(cpu::ReduceOp::Sum, rows, {0}); }},
      {"general sum over dim 1", [&] { return red(cpu::ReduceOp::Sum, general, {1}); }},
      {"general sum over dims 0,2 permuted",
       [&] {
         return red(cpu::ReduceOp::Sum, big3, {0, 2});
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
