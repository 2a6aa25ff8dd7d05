// cpu::gemm<T> and matmul against a naive triple loop accumulated in long double.
//
// Tolerance. Every element of C = A B is a sum of K products. Whatever order the blocked kernel adds
// them in (register tile over one KC chunk, then chunk after chunk into C), the result is a floating sum
// of K terms, each product rounded at most once (or not at all with FMA), so the classic bound for
// recursive summation applies:
//     |C_computed - C_exact| <= gamma_(K+1) * sum_k |a_ik| |b_kj|,   gamma_n = n u / (1 - n u),
// with u = 2^-24 (float) or 2^-53 (double). accumulate=true adds one more term (the old C, whose
// magnitude joins the scale), hence K + 2. The tests use exactly this bound (times 1.01 for the
// 1 / (1 - n u) factor): it is rigorous, so it never flakes, and it is still far below the size of any
// real bug (a lost or doubled term moves C by about scale / K, a factor ~2^24 / K^2 above the bound for
// float at K <= 600).
//
// Operand buffers are filled with NaN outside the matrix proper (padding of a leading dimension, the gaps
// of a column stride of 2): a kernel that reads outside its operand turns its result into NaN, and a
// kernel that writes outside C is caught because those NaNs must survive.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "autograd/minidl.h"
#include "cpu/kernels.h"
#include "tests/cpu/kernel_helpers.h"

using namespace minidl;
using kernel_test::OmpThreads;

namespace {

template <class T>
constexpr long double unit_roundoff() {
  return std::is_same_v<T, float> ? std::ldexp(1.0L, -24) : std::ldexp(1.0L, -53);
}

// How a matrix is laid out in its buffer.
enum class Layout {
  Row,      // rs = cols, cs = 1
  Col,      // rs = 1, cs = rows (a transposed operand)
  Padded,   // rs = cols + 3, cs = 1 (a leading dimension larger than the row)
  Stride2,  // rs = 2 cols + 1, cs = 2 (non-unit column stride)
};

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::Row: return "row";
    case Layout::Col: return "col";
    case Layout::Padded: return "padded";
    case Layout::Stride2: return "stride2";
  }
  return "?";
}

template <class T>
struct Mat {
  int64_t rows = 0, cols = 0, rs = 0, cs = 0;
  std::vector<T> buf;  // NaN everywhere except the matrix elements

  Mat(int64_t r, int64_t c, Layout layout) : rows(r), cols(c) {
    switch (layout) {
      case Layout::Row: rs = c, cs = 1; break;
      case Layout::Col: rs = 1, cs = r; break;
      case Layout::Padded: rs = c + 3, cs = 1; break;
      case Layout::Stride2: rs = 2 * c + 1, cs = 2; break;
    }
    const int64_t size = r == 0 || c == 0 ? 1 : (r - 1) * rs + (c - 1) * cs + 1 + 2;
    buf.assign(static_cast<size_t>(size), std::numeric_limits<T>::quiet_NaN());
  }
  T& at(int64_t i, int64_t j) { return buf[static_cast<size_t>(i * rs + j * cs)]; }
  T at(int64_t i, int64_t j) const { return buf[static_cast<size_t>(i * rs + j * cs)]; }
  T* data() { return buf.data(); }
  const T* data() const { return buf.data(); }
  void randomize(std::mt19937& rng) {
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) at(i, j) = static_cast<T>(u(rng));
  }
  // True where buf[k] is not an element of the matrix.
  std::vector<bool> outside() const {
    std::vector<bool> o(buf.size(), true);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) o[static_cast<size_t>(i * rs + j * cs)] = false;
    return o;
  }
};

// Runs C (+)= A B with the given layouts and compares every element with the long-double reference.
template <class T>
void check_gemm(int64_t M, int64_t N, int64_t K, Layout la, Layout lb, Layout lc, bool accumulate, uint32_t seed = 1) {
  SCOPED_TRACE(std::string(std::is_same_v<T, float> ? "float" : "double") + " M=" + std::to_string(M) +
               " N=" + std::to_string(N) + " K=" + std::to_string(K) + " A:" + layout_name(la) +
               " B:" + layout_name(lb) + " C:" + layout_name(lc) + (accumulate ? " accumulate" : ""));
  std::mt19937 rng(seed);
  Mat<T> A(M, K, la), B(K, N, lb), C(M, N, lc);
  A.randomize(rng);
  B.randomize(rng);
  if (accumulate) C.randomize(rng);  // else C holds NaN: the kernel must overwrite, never read it
  const Mat<T> C0 = C;

  cpu::gemm<T>(M, N, K, A.data(), A.rs, A.cs, B.data(), B.rs, B.cs, C.data(), C.rs, C.cs, accumulate);

  const long double u = unit_roundoff<T>();
  int bad = 0;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      long double ref = accumulate ? static_cast<long double>(C0.at(i, j)) : 0.0L;
      long double scale = accumulate ? std::fabs(static_cast<long double>(C0.at(i, j))) : 0.0L;
      for (int64_t k = 0; k < K; ++k) {
        const long double p = static_cast<long double>(A.at(i, k)) * static_cast<long double>(B.at(k, j));
        ref += p;
        scale += std::fabs(p);
      }
      const long double tol = 1.01L * static_cast<long double>(K + 2) * u * scale;
      const long double got = C.at(i, j);
      if (!(std::fabs(got - ref) <= tol) && bad++ < 5)
        ADD_FAILURE() << "C(" << i << "," << j << ") = " << static_cast<double>(got) << ", reference "
                      << static_cast<double>(ref) << ", |diff| " << static_cast<double>(std::fabs(got - ref))
                      << " > tol " << static_cast<double>(tol);
    }
  EXPECT_EQ(bad, 0) << bad << " wrong elements";
  // Nothing outside C was written.
  const auto out = C.outside();
  int64_t touched = 0;
  for (size_t k = 0; k < out.size(); ++k)
    if (out[k] && !std::isnan(C.buf[k])) ++touched;
  EXPECT_EQ(touched, 0) << "gemm wrote outside C";
}

template <class T>
class Gemm : public ::testing::Test {};
using GemmTypes = ::testing::Types<float, double>;
TYPED_TEST_SUITE(Gemm, GemmTypes);

TYPED_TEST(Gemm, SmallOddSizes) {
  for (int64_t M : {1, 7, 33})
    for (int64_t N : {1, 7, 33})
      for (int64_t K : {1, 7, 33}) check_gemm<TypeParam>(M, N, K, Layout::Row, Layout::Row, Layout::Row, false);
}

// Sizes that cross KC = 256 (twice with a ragged tail), MC = MR * 24 (at most 192) and, for N, NC =
// NR * 128 (4096 floats / 2048 doubles with AVX-512, half that with AVX2), with edges that are not a
// multiple of the MR x NR tile. All are large enough to take the parallel path.
TYPED_TEST(Gemm, SizesThatCrossTheBlocking) {
  check_gemm<TypeParam>(259, 517, 263, Layout::Row, Layout::Row, Layout::Row, false);
  check_gemm<TypeParam>(401, 97, 517, Layout::Row, Layout::Row, Layout::Row, false, 2);
  check_gemm<TypeParam>(5, 4100, 37, Layout::Row, Layout::Row, Layout::Row, false, 3);  // crosses NC
  check_gemm<TypeParam>(3, 2100, 300, Layout::Row, Layout::Row, Layout::Row, false, 4);
}

TYPED_TEST(Gemm, DegenerateDimensionsOfOne) {
  check_gemm<TypeParam>(1, 300, 257, Layout::Row, Layout::Row, Layout::Row, false);  // a row vector times B
  check_gemm<TypeParam>(300, 1, 257, Layout::Row, Layout::Row, Layout::Row, false);  // A times a column
  check_gemm<TypeParam>(1, 1, 600, Layout::Row, Layout::Row, Layout::Row, false);    // a dot product
  check_gemm<TypeParam>(257, 300, 1, Layout::Row, Layout::Row, Layout::Row, false);  // an outer product
  check_gemm<TypeParam>(1, 1, 1, Layout::Row, Layout::Row, Layout::Row, false);
  check_gemm<TypeParam>(1, 300, 257, Layout::Col, Layout::Col, Layout::Stride2, true);
  check_gemm<TypeParam>(300, 1, 257, Layout::Col, Layout::Padded, Layout::Col, true);
}

// K = 0: C = A B is all zeros; with accumulate it is left exactly as it was. M = 0 or N = 0: nothing.
TYPED_TEST(Gemm, EmptyInnerDimension) {
  using T = TypeParam;
  for (Layout lc : {Layout::Row, Layout::Col, Layout::Stride2}) {
    SCOPED_TRACE(layout_name(lc));
    std::mt19937 rng(7);
    Mat<T> C(5, 7, lc);
    C.randomize(rng);
    const Mat<T> C0 = C;
    cpu::gemm<T>(5, 7, 0, nullptr, 0, 1, nullptr, 7, 1, C.data(), C.rs, C.cs, true);
    for (int64_t i = 0; i < 5; ++i)
      for (int64_t j = 0; j < 7; ++j) EXPECT_EQ(C.at(i, j), C0.at(i, j)) << "accumulate with K = 0 changed C";
    cpu::gemm<T>(5, 7, 0, nullptr, 0, 1, nullptr, 7, 1, C.data(), C.rs, C.cs, false);
    for (int64_t i = 0; i < 5; ++i)
      for (int64_t j = 0; j < 7; ++j) EXPECT_EQ(C.at(i, j), T(0)) << "K = 0 must zero C at (" << i << "," << j << ")";
    const auto out = C.outside();
    for (size_t k = 0; k < out.size(); ++k)
      if (out[k]) {
        EXPECT_TRUE(std::isnan(C.buf[k])) << "K = 0 wrote outside C at buffer index " << k;
      }
  }
  // M = 0 or N = 0: C has no elements; the call must not touch the buffer.
  std::vector<T> c(8, T(3)), a(8, T(1)), b(8, T(1));
  cpu::gemm<T>(0, 2, 2, a.data(), 2, 1, b.data(), 2, 1, c.data(), 2, 1, false);
  cpu::gemm<T>(2, 0, 2, a.data(), 2, 1, b.data(), 2, 1, c.data(), 2, 1, false);
  EXPECT_EQ(c, std::vector<T>(8, T(3)));
}

// Every combination of operand layouts: transposes given by strides (rsa = 1, csa = M ...), padded
// leading dimensions, column strides of 2, on a shape that crosses KC and takes the parallel path,
// without and with accumulate.
TYPED_TEST(Gemm, StridedAndTransposedOperands) {
  const Layout all[] = {Layout::Row, Layout::Col, Layout::Padded, Layout::Stride2};
  uint32_t seed = 10;
  for (Layout la : all)
    for (Layout lb : all)
      for (Layout lc : {Layout::Row, Layout::Col, Layout::Stride2})
        for (bool acc : {false, true}) check_gemm<TypeParam>(37, 45, 270, la, lb, lc, acc, seed++);
  // And one transposed product big enough to cross MC and KC on every axis.
  check_gemm<TypeParam>(263, 205, 517, Layout::Col, Layout::Col, Layout::Stride2, false, 99);
}

// accumulate=true adds into C; with K > KC the first K chunk also accumulates (not only the later ones).
TYPED_TEST(Gemm, AccumulateAddsIntoExistingC) {
  check_gemm<TypeParam>(259, 517, 263, Layout::Row, Layout::Row, Layout::Row, true, 21);
  check_gemm<TypeParam>(33, 7, 1, Layout::Row, Layout::Row, Layout::Row, true, 22);
  check_gemm<TypeParam>(7, 33, 600, Layout::Padded, Layout::Col, Layout::Row, true, 23);
  check_gemm<TypeParam>(5, 4100, 20, Layout::Row, Layout::Row, Layout::Row, true, 24);
}

// Products with few rows of C (the conv's output channels) skip packing the operand with many columns:
// with a transposed B and long rows they are dot products of contiguous rows (at most 24 rows, K of at
// least 16 vectors), with a row-major B its full panels are read in place (at most 64 rows). Edges of
// both: tile remainders in M and N, a dot whose length is not a multiple of the vector, the last panel.
TYPED_TEST(Gemm, FewRowsAsDotProductsAndWithBInPlace) {
  uint32_t seed = 40;
  for (int64_t M : {1, 2, 3, 4, 23, 24, 25})
    for (int64_t N : {1, 8, 9, 47})
      for (int64_t K : {256, 301, 1000}) {
        check_gemm<TypeParam>(M, N, K, Layout::Row, Layout::Col, Layout::Row, false, seed++);
        check_gemm<TypeParam>(M, N, K, Layout::Padded, Layout::Col, Layout::Stride2, true, seed++);
      }
  for (int64_t M : {1, 8, 63, 64})
    for (int64_t N : {31, 32, 33, 100})
      for (int64_t K : {37, 300}) {
        check_gemm<TypeParam>(M, N, K, Layout::Row, Layout::Row, Layout::Row, false, seed++);
        check_gemm<TypeParam>(M, N, K, Layout::Col, Layout::Padded, Layout::Col, true, seed++);
      }
  check_gemm<TypeParam>(6, 4200, 147, Layout::Row, Layout::Row, Layout::Row, false, seed++);  // crosses NC
}

// The thread count must not change a single bit: each C tile is summed over K in one fixed order.
TYPED_TEST(Gemm, BitwiseIdenticalAcrossThreadCounts) {
  using T = TypeParam;
  for (auto [M, N, K] : {std::array<int64_t, 3>{259, 517, 263}, std::array<int64_t, 3>{401, 97, 517},
                         std::array<int64_t, 3>{64, 64, 64}, std::array<int64_t, 3>{6, 147, 1800}}) {
    SCOPED_TRACE("M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K));
    ASSERT_GE(static_cast<double>(M) * N * K, double(1 << 18)) << "the test wants the parallel path";
    std::mt19937 rng(5);
    Mat<T> A(M, K, Layout::Row), B(K, N, Layout::Col);
    A.randomize(rng);
    B.randomize(rng);
    std::vector<std::vector<T>> results;
    for (int threads : {1, 2, 3}) {
      OmpThreads guard(threads);
      Mat<T> C(M, N, Layout::Row);
      cpu::gemm<T>(M, N, K, A.data(), A.rs, A.cs, B.data(), B.rs, B.cs, C.data(), C.rs, C.cs, false);
      results.push_back(C.buf);
    }
    for (size_t r = 1; r < results.size(); ++r)
      EXPECT_EQ(std::memcmp(results[0].data(), results[r].data(), results[0].size() * sizeof(T)), 0)
          << "gemm with " << (r + 1) << " threads differs from 1 thread";
  }
}

// ---- matmul (batched, any strides) --------------------------------------------------------------

template <class T>
Tensor random_tensor(const Shape& shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<double> v(static_cast<size_t>(numel_of(shape)));
  for (auto& x : v) x = u(rng);
  return from_vector(v, shape, {.dtype = dtype_of<T>()});
}

// Compares out [batch..., M, N] with a [batch..., M, K] @ b [batch..., K, N], all three already of the
// same batch shape (stride-0 views allowed), element by element, reading each through its own strides.
template <class T>
void check_batched(const Tensor& a, const Tensor& b, const Tensor& out) {
  const int64_t nd = out.dim();
  ASSERT_GE(nd, 2);
  ASSERT_EQ(a.dim(), nd);
  ASSERT_EQ(b.dim(), nd);
  const int64_t M = out.size(-2), N = out.size(-1), K = a.size(-1);
  const Shape batch(out.shape().begin(), out.shape().end() - 2);
  const int64_t nb = numel_of(batch);
  const long double u = unit_roundoff<T>();
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  const T* po = out.data<T>();
  const int64_t am = a.stride(-2), ak = a.stride(-1), bk = b.stride(-2), bn = b.stride(-1);
  const int64_t om = out.stride(-2), on = out.stride(-1);
  int bad = 0;
  for (int64_t n = 0; n < nb; ++n) {
    int64_t oa = 0, ob = 0, oo = 0;
    for (int64_t r = n, d = static_cast<int64_t>(batch.size()) - 1; d >= 0; --d) {
      const int64_t i = r % batch[d];
      r /= batch[d];
      oa += i * a.stride(d);
      ob += i * b.stride(d);
      oo += i * out.stride(d);
    }
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        long double ref = 0, scale = 0;
        for (int64_t k = 0; k < K; ++k) {
          const long double p = static_cast<long double>(pa[oa + i * am + k * ak]) * pb[ob + k * bk + j * bn];
          ref += p;
          scale += std::fabs(p);
        }
        const long double got = po[oo + i * om + j * on];
        const long double tol = 1.01L * (K + 2) * u * scale;
        if (!(std::fabs(got - ref) <= tol) && bad++ < 5)
          ADD_FAILURE() << "batch " << n << " (" << i << "," << j << "): " << static_cast<double>(got)
                        << " vs reference " << static_cast<double>(ref);
      }
  }
  EXPECT_EQ(bad, 0) << bad << " wrong elements";
}

template <class T>
class Matmul : public ::testing::Test {};
TYPED_TEST_SUITE(Matmul, GemmTypes);

// The kernel with broadcast batch dims (stride 0), a transposed b, and a transposed output; once with
// small products (the across-batch parallel path) and once with products big enough to be parallel
// inside the GEMM.
TYPED_TEST(Matmul, KernelBroadcastBatchDims) {
  using T = TypeParam;
  const DType dt = dtype_of<T>();
  for (auto [M, N, K] : {std::array<int64_t, 3>{13, 29, 70}, std::array<int64_t, 3>{70, 90, 61}}) {
    SCOPED_TRACE("M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K));
    const Tensor a = random_tensor<T>({3, 1, M, K}, 1).expand({3, 4, M, K});  // stride 0 on dim 1
    const Tensor b = random_tensor<T>({4, N, K}, 2).transpose(-1, -2).unsqueeze(0).expand({3, 4, K, N});
    ASSERT_EQ(a.stride(1), 0);
    ASSERT_EQ(b.stride(0), 0);
    const Tensor out = Tensor::empty({3, 4, M, N}, dt);
    cpu::matmul(a, b, out);
    check_batched<T>(a, b, out);
    const Tensor out_t = Tensor::empty({3, 4, N, M}, dt).transpose(-1, -2);  // column-major results
    cpu::matmul(a, b, out_t);
    check_batched<T>(a, b, out_t);
  }
}

// The public op: NumPy broadcasting of batch dims and 1-D promotion.
TYPED_TEST(Matmul, PublicOpBroadcastsAndPromotes) {
  using T = TypeParam;
  const Tensor a = random_tensor<T>({3, 1, 9, 17}, 3), b = random_tensor<T>({4, 17, 11}, 4);
  const Tensor c = matmul(a, b);
  ASSERT_EQ(c.shape(), (Shape{3, 4, 9, 11}));
  check_batched<T>(a.expand({3, 4, 9, 17}), b.unsqueeze(0).expand({3, 4, 17, 11}), c);

  const Tensor v = random_tensor<T>({17}, 5), m = random_tensor<T>({17, 6}, 6), w = random_tensor<T>({9, 17}, 7);
  const Tensor vm = matmul(v, m);  // [17] @ [17, 6] -> [6]
  ASSERT_EQ(vm.shape(), (Shape{6}));
  check_batched<T>(v.unsqueeze(0), m, vm.unsqueeze(0));
  const Tensor wv = matmul(w, v);  // [9, 17] @ [17] -> [9]
  ASSERT_EQ(wv.shape(), (Shape{9}));
  check_batched<T>(w, v.unsqueeze(1), wv.unsqueeze(1));
  const Tensor vv = matmul(v, v);  // [17] @ [17] -> []
  ASSERT_EQ(vv.dim(), 0);
  check_batched<T>(v.unsqueeze(0), v.unsqueeze(1), vv.reshape({1, 1}));

  // Operands that are themselves broadcast inside the matrix (row stride 0, column stride 0).
  const Tensor rows = random_tensor<T>({1, 70}, 14).expand({13, 70});  // every row the same: rsa = 0
  const Tensor cols = random_tensor<T>({70, 1}, 15).expand({70, 29});  // every column the same: csb = 0
  check_batched<T>(rows, cols, matmul(rows, cols));
  const Tensor big_rows = random_tensor<T>({1, 300}, 16).expand({80, 300});  // parallel path, rsa = 0
  const Tensor bm = random_tensor<T>({300, 40}, 17);
  check_batched<T>(big_rows, bm, matmul(big_rows, bm));

  // Empty operands: K = 0 gives zeros; M = 0 or N = 0 an empty result.
  const Tensor z = matmul(random_tensor<T>({3, 0}, 18), random_tensor<T>({0, 4}, 19));
  ASSERT_EQ(z.shape(), (Shape{3, 4}));
  EXPECT_EQ(z.values<T>(), std::vector<T>(12, T(0)));
  EXPECT_EQ(matmul(random_tensor<T>({0, 5}, 20), random_tensor<T>({5, 3}, 21)).shape(), (Shape{0, 3}));
  EXPECT_EQ(matmul(random_tensor<T>({2, 4, 5}, 22), random_tensor<T>({5, 0}, 23)).shape(), (Shape{2, 4, 0}));
}

// Many small products (64 batches of 16 x 16 x 16): one product per thread. Correct, and bitwise the
// same with 1 and 2 threads.
TYPED_TEST(Matmul, ManySmallBatchedProducts) {
  using T = TypeParam;
  const DType dt = dtype_of<T>();
  const Tensor a = random_tensor<T>({64, 16, 16}, 8);
  const Tensor b = random_tensor<T>({64, 16, 16}, 9).transpose(-1, -2);
  ASSERT_LT(16.0 * 16 * 16, double(1 << 18)) << "each product must be below the GEMM's parallel threshold";
  std::vector<std::vector<T>> results;
  for (int threads : {1, 2}) {
    OmpThreads guard(threads);
    const Tensor out = Tensor::empty({64, 16, 16}, dt);
    cpu::matmul(a, b, out);
    check_batched<T>(a, b, out);
    results.push_back(out.values<T>());
  }
  EXPECT_EQ(std::memcmp(results[0].data(), results[1].data(), results[0].size() * sizeof(T)), 0)
      << "batched matmul depends on the thread count";
  // The same through the public op with a broadcast batch: [2, 1, 16, 16] @ [32, 16, 16].
  const Tensor a2 = random_tensor<T>({2, 1, 16, 16}, 10), b2 = random_tensor<T>({32, 16, 16}, 11);
  const Tensor c2 = matmul(a2, b2);
  ASSERT_EQ(c2.shape(), (Shape{2, 32, 16, 16}));
  check_batched<T>(a2.expand({2, 32, 16, 16}), b2.unsqueeze(0).expand({2, 32, 16, 16}), c2);
}

// A batch of products that are each big enough for the GEMM's own parallel loop: same bits for any thread
// count too.
TYPED_TEST(Matmul, LargeBatchedProductsAreDeterministic) {
  using T = TypeParam;
  const Tensor a = random_tensor<T>({2, 96, 80}, 12), b = random_tensor<T>({2, 80, 72}, 13);
  std::vector<std::vector<T>> results;
  for (int threads : {1, 2, 3}) {
    OmpThreads guard(threads);
    const Tensor out = Tensor::empty({2, 96, 72}, dtype_of<T>());
    cpu::matmul(a, b, out);
    results.push_back(out.values<T>());
  }
  check_batched<T>(
      a, b,
      from_vector(std::vector<double>(results[0].begin(), results[0].end()), {2, 96, 72}, {.dtype = dtype_of<T>()}));
  for (size_t r = 1; r < results.size(); ++r)
    EXPECT_EQ(std::memcmp(results[0].data(), results[r].data(), results[0].size() * sizeof(T)), 0)
        << "matmul with " << (r + 1) << " threads differs from 1 thread";
}

}  // namespace
