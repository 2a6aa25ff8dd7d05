// The odd-shape sweep of the CUDA issue for the ops outside test_cuda_elementwise.cpp: reductions,
// argmax, softmax, the CCC, matrix products, indexing, joining ops and dropout, each at the sizes of
// odd_shapes() ({1}, {7}, {33}, {1000, 3} along either dim, {4097}), on views (transposes, strided
// slices) and on broadcast (expanded, stride 0) inputs, forward and backward against the CPU.
//
// Sizes are chosen for the emulator (-DMINIDL_CUDA=EMULATE), which runs each GPU thread as a fiber on the
// CPU: a product has 4097 along one dimension only, so the file stays within a few seconds there.
//
// Tolerances, per op (the reasons are those of the neighbouring files):
//   sums, means, var: double accumulation on both sides in different association orders, rounded once
//     to float32: 1e-6 relative (about 8 ulp) plus 1e-6 absolute for results near 0;
//   max, min, argmax, sum's backward (a broadcast) and every copy (cat, stack, split, pad, index_select,
//     gather): exact. max and min share the gradient as g / ties times a 0/1 mask: single roundings
//     on both sides. The backward of index_select and gather adds the same float32 terms in index
//     order onto zeros on both sides (cpu/index.cpp, cuda/index.cu): exact as well. Where a leaf is
//     expanded, its gradient is a double sum of a few floats, rounded once: exact in practice;
//   softmax: both sides evaluate the same formulas (cpu/softmax.cpp, cuda/softmax.cu) in double from
//     float32 values and round once; only the order of the double sums differs (about 1e-16 relative),
//     so 1e-6 relative suffices, and 1e-9 absolute covers results near 0. The 1e-7 absolute of
//     test_cuda_reduce.cpp is most of a value in rows of 1000 (about 1e-3), and missed a 3e-6 relative
//     error there;
//   CCC: moments, ccc and its gradient in double from float32 values on both sides, rounded once:
//     1e-6 relative and 1e-9 absolute (the gradients of 4097 rows are about 1e-4, so a 1e-6 absolute
//     tolerance would hide a wrong gradient of a row);
//   GEMM: float32 sums of K terms in different orders: float_sums(K) (TF32: tf32_sums(K));
//   dropout: the same Philox mask (bit for bit, test_cuda_random.cpp) times x, one rounding: exact.
#include <algorithm>
#include <cmath>

#include "cuda/kernels.h"
#include "tests/cuda/cuda_test_helpers.h"

using namespace minidl;
using namespace minidl::cuda_test;

namespace {

const Tolerance kSum{1e-6, 1e-6}, kExact{0, 0}, kSoftmax{1e-9, 1e-6}, kCcc{1e-9, 1e-6};

// Index and mask tensors live beside the op's first input: on the CPU for the CPU run, on the GPU for
// the GPU run.
Tensor beside(const Tensor& t, const Tensor& like) { return like.device().is_cuda() ? t.to(kGpu) : t; }

// The dim sets a reduction of `shape` is tested over: the only dim of a vector, each dim of a matrix and
// both together.
std::vector<std::vector<int64_t>> reduction_dims(const Shape& shape) {
  if (shape.size() == 1) return {{0}};
  return {{0}, {1}, {0, 1}};
}

int64_t count_over(const Shape& shape, const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= shape[d];
  return n;
}

// sum, mean, max, min and var of view(leaf) over dims, each compared with compare_op. `view` makes the
// tensor the kernels see (identity, a transpose, a slice, an expand) from the leaf of shape `leaf`.
void compare_reductions(const std::string& what, const Shape& leaf, const std::function<Tensor(const Tensor&)>& view,
                        const std::vector<int64_t>& dims) {
  const std::string at = what + " over " + dims_str(dims);
  const Shape seen = view(zeros(leaf)).shape();
  const int64_t n = count_over(seen, dims);
  // An unbiased variance needs two values per output; a single one gets the population variance.
  const int64_t ddof = n > 1 ? 1 : 0;
  compare_op(
      "sum " + at, [&](const std::vector<Tensor>& v) { return sum(view(v[0]), dims); }, {{leaf}}, kSum, kExact);
  compare_op(
      "mean " + at, [&](const std::vector<Tensor>& v) { return mean(view(v[0]), dims, true); }, {{leaf}}, kSum, kSum);
  compare_op(
      "max " + at, [&](const std::vector<Tensor>& v) { return max(view(v[0]), dims); }, {{leaf}}, kExact, kExact);
  compare_op(
      "min " + at, [&](const std::vector<Tensor>& v) { return min(view(v[0]), dims, true); }, {{leaf}}, kExact, kExact);
  compare_op(
      "var " + at, [&](const std::vector<Tensor>& v) { return var(view(v[0]), dims, ddof); }, {{leaf}}, kSum, kSum);
}

// compare_op for given leaf values (compare_op draws its own): the CPU leaves, their GPU copies, the same
// upstream gradient (ones, so that degenerate cases stay predictable), outputs and gradients compared.
void compare_on_values(const std::string& what, const OpFn& f, const std::vector<Tensor>& leaves, Tolerance tol) {
  SCOPED_TRACE(what);
  std::vector<Tensor> cpu_in, gpu_in;
  for (const Tensor& t : leaves) {
    cpu_in.push_back(t.detach().clone().requires_grad_());
    gpu_in.push_back(t.to(kGpu).detach().requires_grad_());
  }
  const Tensor yc = f(cpu_in), yg = f(gpu_in);
  ASSERT_TRUE(yg.device().is_cuda());
  EXPECT_CLOSE(yg, yc, tol.atol, tol.rtol);
  yc.backward(ones(yc.shape()));
  yg.backward(ones(yc.shape(), {.device = kGpu}));
  for (size_t i = 0; i < leaves.size(); ++i) {
    SCOPED_TRACE("gradient of input " + std::to_string(i));
    ASSERT_TRUE(cpu_in[i].grad().defined() && gpu_in[i].grad().defined());
    EXPECT_CLOSE(gpu_in[i].grad(), cpu_in[i].grad(), tol.atol, tol.rtol);
  }
}

Tensor ident(const Tensor& x) { return x; }

}  // namespace

// ---- reductions ------------------------------------------------------------------------------------

// The sizes land on every path of cuda/reduce.cu: [1000, 3] over dim 0 is strided (a thread per output,
// the column cut into 32 segments that a second kernel folds), over dim 1 a warp folds 3 elements, and
// {4097} takes a block-wide group with a tail of one element past the last full warp.
TEST(CudaShapes, ReductionsAtOddShapes) {
  REQUIRE_GPU();
  for (const Shape& s : odd_shapes())
    for (const auto& dims : reduction_dims(s)) compare_reductions(shape_str(s), s, ident, dims);
}

// A transpose (the reduced dim strided, the kept one contiguous, and the reverse), a strided slice of
// 4097 elements (not contiguous: 129 segments of one thread each, folded by a second kernel), expands, where the
// reduced or the kept dim has stride 0: every element of a run is the same value, so max and min meet 1000 ties whose
// gradient shares must add back up on the leaf.
TEST(CudaShapes, ReductionsOfViewsAndBroadcasts) {
  REQUIRE_GPU();
  for (const auto& dims : reduction_dims({1000, 3})) {
    compare_reductions(
        "transpose of [3, 1000]", {3, 1000}, [](const Tensor& x) { return x.t(); }, dims);
    compare_reductions(
        "[1, 3] expanded to [1000, 3]", {1, 3},
        [](const Tensor& x) {
          return x.expand({1000, 3});
        },
        dims);
    compare_reductions(
        "[1000, 1] expanded to [1000, 3]", {1000, 1},
        [](const Tensor& x) {
          return x.expand({1000, 3});
        },
        dims);
  }
  compare_reductions("every other of 8193", {8193}, [](const Tensor& x) { return x.slice(0, 0, 8193, 2); }, {0});
  compare_reductions("{1} expanded to {4097}", {1}, [](const Tensor& x) { return x.expand({4097}); }, {0});
  compare_reductions("{1} expanded to {33}", {1}, [](const Tensor& x) { return x.expand({33}); }, {0});
}

// argmax has no gradient: its indices are compared directly. On an expand every element ties, and the
// first (index 0) must win on both devices.
TEST(CudaShapes, ArgmaxAtOddShapesOnViewsAndTies) {
  REQUIRE_GPU();
  Generator gen(3);
  auto expect_same = [](const std::string& what, const Tensor& x, int64_t dim) {
    SCOPED_TRACE(what + " along " + std::to_string(dim));
    const std::vector<int64_t> want = argmax(x, dim).values<int64_t>();
    EXPECT_EQ(argmax(x.to(kGpu), dim).values<int64_t>(), want);
    EXPECT_EQ(argmax(x.to(kGpu), dim, true).values<int64_t>(), want);
  };
  for (const Shape& s : odd_shapes()) {
    const Tensor x = randn(s, {}, &gen);
    for (int64_t d = 0; d < static_cast<int64_t>(s.size()); ++d) expect_same(shape_str(s), x, d);
  }
  const Tensor wide = randn({3, 1000}, {}, &gen);
  // The kernels must see the views: a CPU view moved to the GPU would arrive contiguous.
  for (int64_t d : {0, 1}) {
    SCOPED_TRACE("views, along " + std::to_string(d));
    const Tensor g = wide.to(kGpu);
    EXPECT_EQ(argmax(g.t(), d).values<int64_t>(), argmax(wide.t(), d).values<int64_t>());
    const Tensor row = wide.narrow(0, 0, 1), grow = g.narrow(0, 0, 1);
    EXPECT_EQ(argmax(grow.expand({7, 1000}), d).values<int64_t>(), argmax(row.expand({7, 1000}), d).values<int64_t>());
  }
  const Tensor flat = randn({8193}, {}, &gen);
  EXPECT_EQ(argmax(flat.to(kGpu).slice(0, 1, 8193, 2), 0).values<int64_t>(),
            argmax(flat.slice(0, 1, 8193, 2), 0).values<int64_t>());
  EXPECT_EQ(argmax(full({1}, 2.0, {.device = kGpu}).expand({4097}), 0).values<int64_t>(), std::vector<int64_t>{0});
}

// A NaN in the last element of an odd-sized run (the tail that no full warp or vector covers) or in the
// last row of a strided column must still win max and min, and argmax must agree with the CPU about it.
TEST(CudaShapes, NanInTheTailOfOddSizes) {
  REQUIRE_GPU();
  Generator gen(5);
  for (const Shape& s : odd_shapes()) {
    std::vector<double> v = rand(s, {}, &gen, -2, 2).values<double>();
    v.back() = std::nan("");
    const Tensor x = from_vector(v, s);
    for (const auto& dims : reduction_dims(s)) {
      SCOPED_TRACE(shape_str(s) + " over " + dims_str(dims));
      EXPECT_CLOSE(max(x.to(kGpu), dims), max(x, dims), 0, 0);
      EXPECT_CLOSE(min(x.to(kGpu), dims), min(x, dims), 0, 0);
      if (dims.size() == 1) {
        EXPECT_EQ(argmax(x.to(kGpu), dims[0]).values<int64_t>(), argmax(x, dims[0]).values<int64_t>());
      }
    }
  }
}

// ---- softmax ---------------------------------------------------------------------------------------

// Rows of one element (softmax 1, log_softmax 0, gradient 0), short contiguous rows (a warp each), rows
// of 1000 with stride 3 (a thread each), one long row (a block), and expands: stride 0 across rows (all
// rows the same) and along them (every element of a row the same: softmax 1/n).
TEST(CudaShapes, SoftmaxAndLogSoftmaxAtOddShapesViewsAndBroadcasts) {
  REQUIRE_GPU();
  struct Case {
    const char* name;
    Shape leaf;
    std::function<Tensor(const Tensor&)> view;
    int64_t dim;
  };
  const std::vector<Case> cases = {
      {"{1}", {1}, ident, 0},
      {"{7}", {7}, ident, 0},
      {"{33}", {33}, ident, 0},
      {"{4097}", {4097}, ident, 0},
      {"[1000, 3] along 0", {1000, 3}, ident, 0},
      {"[1000, 3] along 1", {1000, 3}, ident, 1},
      {"[1, 1] along 1", {1, 1}, ident, 1},
      {"transpose of [3, 1000] along 0", {3, 1000}, [](const Tensor& x) { return x.t(); }, 0},
      {"transpose of [3, 1000] along 1", {3, 1000}, [](const Tensor& x) { return x.t(); }, 1},
      {"every other of [7, 65] along 1", {7, 65}, [](const Tensor& x) { return x.slice(1, 0, 65, 2); }, 1},
      {"[1, 33] expanded to [7, 33] along 1",
       {1, 33},
       [](const Tensor& x) {
         return x.expand({7, 33});
       },
       1},
      {"[1, 33] expanded to [7, 33] along 0",
       {1, 33},
       [](const Tensor& x) {
         return x.expand({7, 33});
       },
       0},
      {"[1000, 1] expanded to [1000, 3] along 1",
       {1000, 1},
       [](const Tensor& x) {
         return x.expand({1000, 3});
       },
       1},
      {"{1} expanded to {4097}", {1}, [](const Tensor& x) { return x.expand({4097}); }, 0},
  };
  for (bool log : {false, true})
    for (const Case& c : cases)
      compare_op(
          std::string(log ? "log_softmax " : "softmax ") + c.name,
          [&](const std::vector<Tensor>& v) {
            return log ? log_softmax(c.view(v[0]), c.dim) : softmax(c.view(v[0]), c.dim);
          },
          {{c.leaf, -4, 4}}, kSoftmax, kSoftmax);
}

// ---- CCC -------------------------------------------------------------------------------------------

// Rows from 1 to 4097 (one row: no variance, no covariance, ccc = 0 and every gradient 0 on the CPU),
// more than two columns, a leading batch dim, views, and a target expanded along the rows (constant per
// column: var(y) = cov = 0, so ccc = 0 with a gradient for the target only).
TEST(CudaShapes, CccAtOddRowCountsOnViewsAndBroadcasts) {
  REQUIRE_GPU();
  for (int64_t R : {1, 7, 33, 4097})
    compare_op(
        "ccc of " + std::to_string(R) + " rows", [](const std::vector<Tensor>& v) { return ccc(v[0], v[1]); },
        {{{R, 2}}, {{R, 2}}}, kCcc, kCcc);
  compare_op(
      "ccc_loss [1000, 3]", [](const std::vector<Tensor>& v) { return ccc_loss(v[0], v[1]); },
      {{{1000, 3}}, {{1000, 3}}}, kCcc, kCcc);
  compare_op(
      "ccc [1, 7, 1]", [](const std::vector<Tensor>& v) { return ccc(v[0], v[1]); }, {{{1, 7, 1}}, {{1, 7, 1}}}, kCcc,
      kCcc);
  compare_op(
      "ccc of transposes", [](const std::vector<Tensor>& v) { return ccc(v[0].t(), v[1].t()); }, {{{2, 33}}, {{2, 33}}},
      kCcc, kCcc);
  compare_op(
      "ccc of every other row", [](const std::vector<Tensor>& v) { return ccc(v[0].slice(0, 0, 4097, 2), v[1]); },
      {{{4097, 2}}, {{2049, 2}}}, kCcc, kCcc);
  compare_op(
      "ccc with a target expanded along the rows",
      [](const std::vector<Tensor>& v) {
        return ccc(v[0], v[1].expand({33, 2}));
      },
      {{{33, 2}}, {{1, 2}}}, kCcc, kCcc);
  Generator gen(9);
  const Tensor mask7 =
      from_vector(std::vector<bool>{true, false, true, true, false, false, true}, {7}, {.dtype = kBool});
  const Tensor mask4097 = lt(rand({4097}, {}, &gen), 0.7);
  Tensor mask_one = zeros({33}, {.dtype = kBool});
  mask_one.narrow(0, 32, 1).fill_(1.0);  // only the last row: the single-row case through the mask
  for (const auto& [name, mask] : {std::pair{"7 rows, 4 kept", mask7}, std::pair{"4097 rows, 70% kept", mask4097},
                                   std::pair{"33 rows, the last kept", mask_one}}) {
    const Tensor m = mask;
    compare_op(
        std::string("ccc with a mask, ") + name,
        [&](const std::vector<Tensor>& v) { return ccc(v[0], v[1], beside(m, v[0])); },
        {{{m.size(0), 2}}, {{m.size(0), 2}}}, kCcc, kCcc);
  }
}

// Degenerate columns. What the CPU gives (cpu/loss.cpp): with eps = 0 and a column whose pred and target
// are the same constant, D = 0 and ccc = 0 / 0 = NaN, and the backward's 2 / (N D) = inf times a zero
// makes every gradient of that column NaN; the default eps keeps it finite (ccc 0). The GPU must give
// the same, NaN where the CPU has NaN. A constant prediction against a varying target has ccc 0 and a
// finite gradient for the prediction only.
TEST(CudaShapes, CccOfDegenerateColumnsMatchesTheCpu) {
  REQUIRE_GPU();
  // Column 0: pred == target == 0.5; column 1: pred 0.25, target 1.5.
  const Tensor one_p = from_vector({0.5, 0.25}, {1, 2}), one_t = from_vector({0.5, 1.5}, {1, 2});
  {
    const Tensor c = ccc(one_p, one_t, Tensor(), 0.0);
    ASSERT_TRUE(std::isnan(c.values<double>()[0])) << "the CPU's CCC of one equal pair with eps 0 is no longer NaN";
    ASSERT_EQ(c.values<double>()[1], 0.0);
  }
  const auto ccc_eps0 = [](const std::vector<Tensor>& v) { return ccc(v[0], v[1], Tensor(), 0.0); };
  const auto ccc_default = [](const std::vector<Tensor>& v) { return ccc(v[0], v[1]); };
  compare_on_values("one row, eps 0", ccc_eps0, {one_p, one_t}, kCcc);
  compare_on_values("one row, default eps", ccc_default, {one_p, one_t}, kCcc);
  Generator gen(10);
  const Tensor varying = rand({7, 1}, {}, &gen, -1, 1);
  const Tensor constant = full({7, 1}, 0.3);
  compare_on_values("7 equal constants, eps 0", ccc_eps0, {constant, constant}, kCcc);
  compare_on_values("7 equal constants, default eps", ccc_default, {constant, constant}, kCcc);
  compare_on_values("constant prediction, eps 0", ccc_eps0, {constant, varying}, kCcc);
  compare_on_values("constant target, eps 0", ccc_eps0, {varying, constant}, kCcc);
  // The CPU's gradients of the NaN column are NaN, so that the comparison above tested NaN against NaN.
  Tensor p = one_p.detach().clone().requires_grad_();
  ccc(p, one_t, Tensor(), 0.0).backward(ones({2}));
  EXPECT_TRUE(std::isnan(p.grad().values<double>()[0]));
  EXPECT_EQ(p.grad().values<double>()[1], 0.0);
}

// ---- matrix products -------------------------------------------------------------------------------

// One dimension 4097 (M, N or K in turn), the others 1, 7 or 33; the gradient of A sums N terms, that of
// B M terms. These sizes are too narrow for the tensor cores (M, N >= 64), so they run on SIMT on either
// path. The last case is one that the TF32 kernel takes in all three products: forward with a partial
// last row tile, B's gradient with K = 4097 (a partial last slice of K), on both paths.
TEST(CudaShapes, MatmulWithA4097Dimension) {
  REQUIRE_GPU();
  struct Size {
    int64_t M, N, K;
  };
  const GemmPathScope simt(cuda::GemmPath::Simt);
  for (const Size& s : std::vector<Size>{
           {4097, 7, 33}, {33, 4097, 7}, {7, 33, 4097}, {1, 4097, 1}, {4097, 1, 7}, {1, 1, 4097}, {1, 1, 1}}) {
    compare_op(
        "matmul " + std::to_string(s.M) + "x" + std::to_string(s.N) + "x" + std::to_string(s.K),
        [](const std::vector<Tensor>& v) { return matmul(v[0], v[1]); }, {{{s.M, s.K}}, {{s.K, s.N}}}, float_sums(s.K),
        float_sums(std::max(s.M, s.N)));
  }
  for (auto [path, name] : {std::pair{cuda::GemmPath::Simt, "simt"}, std::pair{cuda::GemmPath::Tf32, "tf32"}}) {
    const GemmPathScope scope(path);
    const auto sums = path == cuda::GemmPath::Simt ? float_sums : tf32_sums;
    compare_op(
        std::string(name) + " matmul 4097x64x64", [](const std::vector<Tensor>& v) { return matmul(v[0], v[1]); },
        {{{4097, 64}}, {{64, 64}}}, sums(64), sums(4097));
  }
}

// Batches (bmm-like 3-D products), a batch broadcast against a 2-D operand (its gradient sums over the
// batch as well), an expanded batch, transposed views, vectors, and linear with its bias gradient (a sum
// over all rows).
TEST(CudaShapes, BatchedBroadcastViewsVectorsAndLinearAtOddSizes) {
  REQUIRE_GPU();
  const GemmPathScope simt(cuda::GemmPath::Simt);
  const auto mm = [](const std::vector<Tensor>& v) { return matmul(v[0], v[1]); };
  compare_op("batched [7, 33, 1] @ [7, 1, 4097]", mm, {{{7, 33, 1}}, {{7, 1, 4097}}}, float_sums(1), float_sums(4097));
  compare_op("batched [3, 4097, 7] @ [3, 7, 1]", mm, {{{3, 4097, 7}}, {{3, 7, 1}}}, float_sums(7), float_sums(4097));
  // A's gradient adds the batch's three 5-term products; B's sums 4097 terms.
  compare_op("[4097, 7] @ batch [3, 7, 5]", mm, {{{4097, 7}}, {{3, 7, 5}}}, float_sums(7), float_sums(4097));
  compare_op(
      "[1, 7, 33] expanded to a batch of 3 @ [3, 33, 1000]",
      [](const std::vector<Tensor>& v) {
        return matmul(v[0].expand({3, 7, 33}), v[1]);
      },
      {{{1, 7, 33}}, {{3, 33, 1000}}}, float_sums(33), float_sums(3 * 1000));
  compare_op(
      "A^T with A [33, 4097], B^T with B [7, 33]",
      [](const std::vector<Tensor>& v) { return matmul(v[0].t(), v[1].t()); }, {{{33, 4097}}, {{7, 33}}},
      float_sums(33), float_sums(4097));
  compare_op(
      "every other row of A", [](const std::vector<Tensor>& v) { return matmul(v[0].slice(0, 0, 4097, 2), v[1]); },
      {{{4097, 7}}, {{7, 33}}}, float_sums(7), float_sums(2049));
  compare_op("vector . vector, 4097", mm, {{{4097}}, {{4097}}}, float_sums(4097), float_sums(1));
  compare_op("vector {4097} @ [4097, 7]", mm, {{{4097}}, {{4097, 7}}}, float_sums(4097), float_sums(7));
  compare_op("[33, 4097] @ vector {4097}", mm, {{{33, 4097}}, {{4097}}}, float_sums(4097), float_sums(33));
  compare_op("vector {1} @ [1, 33]", mm, {{{1}}, {{1, 33}}}, float_sums(1), float_sums(33));
  const auto lin = [](const std::vector<Tensor>& v) { return linear(v[0], v[1], v[2]); };
  compare_op("linear [4097, 7] -> 33", lin, {{{4097, 7}}, {{33, 7}}, {{33}}}, float_sums(7), float_sums(4097));
  compare_op("linear [1, 33] -> 1", lin, {{{1, 33}}, {{1, 33}}, {{1}}}, float_sums(33), float_sums(1));
  compare_op("linear [3, 1, 4097] -> 7", lin, {{{3, 1, 4097}}, {{7, 4097}}, {{7}}}, float_sums(4097), float_sums(7));
  compare_op(
      "linear of a transposed input, [1000, 3] -> 33",
      [](const std::vector<Tensor>& v) { return linear(v[0].t(), v[1], v[2]); }, {{{3, 1000}}, {{33, 3}}, {{33}}},
      float_sums(3), float_sums(1000));
}

// ---- indexing --------------------------------------------------------------------------------------

// index_select and gather at the odd sizes, with repeated indices (whose backward adds several terms into
// one destination), on views, with an expanded input and a strided index.
TEST(CudaShapes, IndexSelectAndGatherAtOddSizes) {
  REQUIRE_GPU();
  Generator gen(6);
  auto indices = [&](const Shape& shape, int64_t bound) {
    // Drawn in float64: a float32 draw just below `bound` may round up to it, out of range.
    return rand(shape, {.dtype = kFloat64}, &gen, 0, static_cast<double>(bound)).to(kInt64);
  };
  auto select = [](int64_t dim, const Tensor& idx, std::function<Tensor(const Tensor&)> view = ident) {
    return [=](const std::vector<Tensor>& v) { return index_select(view(v[0]), dim, beside(idx, v[0])); };
  };
  auto take = [](int64_t dim, const Tensor& idx, std::function<Tensor(const Tensor&)> view = ident) {
    return [=](const std::vector<Tensor>& v) { return gather(view(v[0]), dim, beside(idx, v[0])); };
  };
  const Tensor seven_zeros = zeros({7}, {.dtype = kInt64});
  const Tensor repeats = from_vector(std::vector<int64_t>{2, 0, 2, 1, 2, 0, 2}, {7}, {.dtype = kInt64});
  Tensor i33 = indices({33}, 4097);
  i33.narrow(0, 30, 3).fill_(4096.0);  // the last element three times
  compare_op("index_select {1}, 7 times", select(0, seven_zeros), {{{1}}}, kExact, kExact);
  compare_op("index_select {4097}, 33 indices", select(0, i33), {{{4097}}}, kExact, kExact);
  compare_op("index_select {4097}, 4097 indices", select(0, indices({4097}, 4097)), {{{4097}}}, kExact, kExact);
  compare_op("index_select [1000, 3] dim 0", select(0, indices({33}, 1000)), {{{1000, 3}}}, kExact, kExact);
  compare_op("index_select [1000, 3] dim 1", select(1, repeats), {{{1000, 3}}}, kExact, kExact);
  compare_op("index_select of a transpose, dim 0", select(0, indices({7}, 1000), [](const Tensor& x) { return x.t(); }),
             {{{3, 1000}}}, kExact, kExact);
  compare_op("index_select of [1, 3] expanded to [1000, 3], dim 0",
             select(0, indices({33}, 1000),
                    [](const Tensor& x) {
                      return x.expand({1000, 3});
                    }),
             {{{1, 3}}}, kExact, kExact);
  compare_op("index_select with a strided index", select(0, indices({66}, 33).slice(0, 0, 66, 2)), {{{33, 7}}}, kExact,
             kExact);

  compare_op("gather {1}", take(0, seven_zeros), {{{1}}}, kExact, kExact);
  compare_op("gather {4097}", take(0, indices({4097}, 4097)), {{{4097}}}, kExact, kExact);
  compare_op("gather [1000, 3] dim 0", take(0, indices({33, 3}, 1000)), {{{1000, 3}}}, kExact, kExact);
  compare_op("gather [1000, 3] dim 1", take(1, indices({1000, 7}, 3)), {{{1000, 3}}}, kExact, kExact);
  compare_op("gather of a transpose, dim 1", take(1, indices({1000, 5}, 3), [](const Tensor& x) { return x.t(); }),
             {{{3, 1000}}}, kExact, kExact);
  compare_op("gather of [1000, 1] expanded to [1000, 3], dim 1",
             take(1, indices({1000, 2}, 3),
                  [](const Tensor& x) {
                    return x.expand({1000, 3});
                  }),
             {{{1000, 1}}}, kExact, kExact);
  compare_op("gather with a transposed index", take(0, indices({3, 33}, 7).t()), {{{7, 3}}}, kExact, kExact);
}

// ---- joining ops -----------------------------------------------------------------------------------

TEST(CudaShapes, CatStackSplitAndPadAtOddSizes) {
  REQUIRE_GPU();
  compare_op(
      "cat {1}, {7}, {33}, {4097}",
      [](const std::vector<Tensor>& v) {
        return cat({v[0], v[1], v[2], v[3]}, 0);
      },
      {{{1}}, {{7}}, {{33}}, {{4097}}}, kExact, kExact);
  compare_op(
      "cat along 1 of [1000, 3], [1000, 1] and [1, 3] expanded",
      [](const std::vector<Tensor>& v) {
        return cat({v[0], v[1], v[2].expand({1000, 3})}, 1);
      },
      {{{1000, 3}}, {{1000, 1}}, {{1, 3}}}, kExact, kExact);
  compare_op(
      "cat along 0 of a transpose and [1, 3]",
      [](const std::vector<Tensor>& v) {
        return cat({v[0].t(), v[1]}, 0);
      },
      {{{3, 1000}}, {{1, 3}}}, kExact, kExact);
  compare_op(
      "stack three {4097} along 0 and along 1",
      [](const std::vector<Tensor>& v) {
        return cat({stack({v[0], v[1], v[2]}, 0).flatten(), stack({v[0], v[1], v[2]}, 1).flatten()});
      },
      {{{4097}}, {{4097}}, {{4097}}}, kExact, kExact);
  compare_op(
      "stack [1000, 3] and a transpose along 2",
      [](const std::vector<Tensor>& v) {
        return stack({v[0], v[1].t()}, 2);
      },
      {{{1000, 3}}, {{3, 1000}}}, kExact, kExact);
  compare_op(
      "stack seven {1}",
      [](const std::vector<Tensor>& v) {
        return stack({v[0], v[0] * 2.0, v[0], v[0], v[0], v[0], v[0]}, 1);
      },
      {{{1}}}, kExact, kExact);
  // Split pieces put back in reverse order: a permutation, so every element's path shows in the gradient.
  auto reversed = [](std::vector<Tensor> parts, int64_t dim) {
    std::reverse(parts.begin(), parts.end());
    return cat(parts, dim);
  };
  compare_op(
      "split {4097} by 33 (124 pieces and one of 5)",
      [&](const std::vector<Tensor>& v) { return reversed(split(v[0], 33, 0), 0); }, {{{4097}}}, kExact, kExact);
  compare_op(
      "split [1000, 3] by sizes 1, 7, 33, 959 along 0",
      [&](const std::vector<Tensor>& v) {
        return reversed(split(v[0], std::vector<int64_t>{1, 7, 33, 959}, 0), 0);
      },
      {{{1000, 3}}}, kExact, kExact);
  compare_op(
      "split a transpose by 1 along 1",
      [&](const std::vector<Tensor>& v) { return reversed(split(v[0].t(), 1, 1), 1); }, {{{3, 1000}}}, kExact, kExact);
  compare_op(
      "pad {1} by 7 and 33",
      [](const std::vector<Tensor>& v) {
        return pad(v[0], {7, 33}, 0.5);
      },
      {{{1}}}, kExact, kExact);
  compare_op(
      "pad {4097} by 0 and 1",
      [](const std::vector<Tensor>& v) {
        return pad(v[0], {0, 1});
      },
      {{{4097}}}, kExact, kExact);
  compare_op(
      "pad [1000, 3] on both dims",
      [](const std::vector<Tensor>& v) {
        return pad(v[0], {1, 2, 3, 0}, -1.0);
      },
      {{{1000, 3}}}, kExact, kExact);
  compare_op(
      "crop [1000, 3]",
      [](const std::vector<Tensor>& v) {
        return pad(v[0], {-1, 0, 0, -7});
      },
      {{{1000, 3}}}, kExact, kExact);
  compare_op(
      "pad a transpose and an expand",
      [](const std::vector<Tensor>& v) {
        return cat({pad(v[0].t(), {2, 0}).flatten(), pad(v[1].expand({33, 7}), {0, 0, 1, 1}).flatten()});
      },
      {{{3, 1000}}, {{1, 7}}}, kExact, kExact);
}

// ---- dropout ---------------------------------------------------------------------------------------

// Each run draws its mask from a fresh generator of the same seed, so the CPU and the GPU runs see the
// same mask (Philox): forward x * mask / (1 - p) and backward g * mask / (1 - p) must be bit-equal.
TEST(CudaShapes, DropoutForwardAndBackwardAreExactAtOddSizes) {
  REQUIRE_GPU();
  auto drop = [](double p, std::function<Tensor(const Tensor&)> view = ident) {
    return [=](const std::vector<Tensor>& v) {
      Generator g(13);
      return dropout(view(v[0]), p, true, &g);
    };
  };
  auto drop_channels = [](std::function<Tensor(const Tensor&)> view = ident) {
    return [=](const std::vector<Tensor>& v) {
      Generator g(14);
      return channel_dropout(view(v[0]), 0.5, true, &g);
    };
  };
  for (const Shape& s : odd_shapes()) compare_op("dropout " + shape_str(s), drop(0.4), {{s}}, kExact, kExact);
  compare_op("dropout p = 1, {4097}", drop(1.0), {{{4097}}}, kExact, kExact);
  compare_op("dropout of a transpose", drop(0.4, [](const Tensor& x) { return x.t(); }), {{{3, 1000}}}, kExact, kExact);
  compare_op("dropout of [1, 33] expanded to [7, 33]",
             drop(0.3,
                  [](const Tensor& x) {
                    return x.expand({7, 33});
                  }),
             {{{1, 33}}}, kExact, kExact);
  compare_op("channel_dropout [1000, 3, 1]", drop_channels(), {{{1000, 3, 1}}}, kExact, kExact);
  compare_op("channel_dropout [1, 7, 33]", drop_channels(), {{{1, 7, 33}}}, kExact, kExact);
  compare_op("channel_dropout of a permute, [7, 33, 3]", drop_channels([](const Tensor& x) {
               return x.permute({2, 0, 1});
             }),
             {{{7, 33, 3}}}, kExact, kExact);
  // The comparisons above prove nothing about dropout if no element was dropped: the mask of {4097} at
  // p = 0.4 must zero some elements and keep others (about 1640 and 2457).
  Generator g(13);
  const std::vector<float> y = dropout(ones({4097}, {.device = kGpu}), 0.4, true, &g).values<float>();
  const auto zeros_seen = std::count(y.begin(), y.end(), 0.0f);
  EXPECT_GT(zeros_seen, 1400);
  EXPECT_LT(zeros_seen, 1900);
}
