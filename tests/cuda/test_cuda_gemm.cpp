// CUDA matrix products (cuda/gemm.cu) against the CPU GEMM: both kernels (SIMT float32 and TF32 tensor
// cores), every layout of the operands (row-major, transposed views, general strides that are copied),
// odd sizes on either side of the tile sizes, batches with broadcasting, 1-D operands, linear, and the
// backward (which multiplies by transposed views); long reductions split along K; grouped products
// (matmul_group) against matmul.
//
// Tolerances, for inputs uniform in [-2, 2] (each product has variance 16/9, a K-term sum an rms of
// about 1.33 sqrt(K)):
//   SIMT: both sides accumulate in float32 in different orders; each rounding error is about 6e-8 of
//   the running sum, so the two results drift apart by about 1e-7 K. Allowed: 1e-6 K absolute plus 1e-5
//   relative, ten times that. A wrong index or a missed slice errs by the size of a whole term (> 0.1).
//   TF32: inputs rounded to 11 significant bits (relative error up to 2^-11), so each product is off by
//   about 4e-4 of its size and the sum by about 4e-4 x 1.33 sqrt(K). Allowed: 5e-3 sqrt(K), about nine
//   standard deviations of that error, plus the SIMT allowance for the float32 sums (tf32_sums).
#include <array>
#include <cmath>

#include "cuda/kernels.h"
#include "cuda/runtime.h"
#include "tests/cuda/cuda_test_helpers.h"

using namespace minidl;
using namespace minidl::cuda_test;

namespace {

// Runs the body with each kernel selected, restoring the default after.
void for_each_path(const std::function<void(cuda::GemmPath, const char*)>& body) {
  for (auto [path, name] : {std::pair{cuda::GemmPath::Simt, "simt"}, std::pair{cuda::GemmPath::Tf32, "tf32"}}) {
    const GemmPathScope scope(path);
    body(path, name);
  }
}

Tolerance tol_for(cuda::GemmPath path, int64_t K) {
  return path == cuda::GemmPath::Simt ? float_sums(K) : tf32_sums(K);
}

}  // namespace

TEST(CudaGemm, OddSizesBothKernels) {
  REQUIRE_GPU();
  // Around the tile sizes: 1, below and above 32, 64 and 128, and one big enough for the 128 x 128 tiles.
  const std::vector<std::array<int64_t, 3>> sizes = {{1, 1, 1},     {7, 33, 5},    {33, 7, 1000},   {64, 64, 32},
                                                     {65, 129, 31}, {128, 128, 8}, {200, 300, 257}, {513, 260, 96}};
  for_each_path([&](cuda::GemmPath path, const char* name) {
    for (const auto& [M, N, K] : sizes) {
      const Tolerance t = tol_for(path, K);
      compare_op(
          std::string(name) + " " + std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K),
          [](const std::vector<Tensor>& v) { return matmul(v[0], v[1]); }, {{{M, K}}, {{K, N}}}, t,
          tol_for(path, std::max({M, N, K})));
    }
  });
}

TEST(CudaGemm, EveryOperandLayout) {
  REQUIRE_GPU();
  for_each_path([&](cuda::GemmPath path, const char* name) {
    const int64_t M = 150, N = 140, K = 130;
    const Tolerance t = tol_for(path, 150);
    compare_op(
        std::string(name) + " A^T B", [](const std::vector<Tensor>& v) { return matmul(v[0].t(), v[1]); },
        {{{K, M}}, {{K, N}}}, t, t);
    compare_op(
        std::string(name) + " A B^T", [](const std::vector<Tensor>& v) { return matmul(v[0], v[1].t()); },
        {{{M, K}}, {{N, K}}}, t, t);
    compare_op(
        std::string(name) + " A^T B^T", [](const std::vector<Tensor>& v) { return matmul(v[0].t(), v[1].t()); },
        {{{K, M}}, {{N, K}}}, t, t);
    // Neither index contiguous: copied to row-major first. A row slice of an aligned matrix: ld kept,
    // start misaligned (the vector loads must switch off).
    compare_op(
        std::string(name) + " strided both ways",
        [](const std::vector<Tensor>& v) { return matmul(v[0].slice(0, 0, 2 * M, 2).slice(1, 0, 2 * K, 2), v[1]); },
        {{{2 * M, 2 * K}}, {{K, N}}}, t, t);
    compare_op(
        std::string(name) + " misaligned start",
        [](const std::vector<Tensor>& v) { return matmul(v[0].slice(0, 1, M + 1), v[1].slice(1, 3, N + 3)); },
        {{{M + 1, K}}, {{K, N + 3}}}, t, t);
  });
}

// The layouts above fall back to SIMT on the TF32 path (odd leading dimensions); these have leading
// dimensions divisible by 4 and M, N >= 64, so each transposed kernel instance and the partial
// zero-filled copy of a K that is not a multiple of 4 run on the tensor cores.
TEST(CudaGemm, TransposedOperandsOnTheTensorCores) {
  REQUIRE_GPU();
  for_each_path([&](cuda::GemmPath path, const char* name) {
    const Tolerance t = tol_for(path, 132);
    compare_op(
        std::string(name) + " A^T B, ld 128", [](const std::vector<Tensor>& v) { return matmul(v[0].t(), v[1]); },
        {{{96, 128}}, {{96, 132}}}, t, t);
    compare_op(
        std::string(name) + " A B^T, ld 96", [](const std::vector<Tensor>& v) { return matmul(v[0], v[1].t()); },
        {{{128, 96}}, {{132, 96}}}, t, t);
    compare_op(
        std::string(name) + " A^T B^T", [](const std::vector<Tensor>& v) { return matmul(v[0].t(), v[1].t()); },
        {{{96, 128}}, {{132, 96}}}, t, t);
    compare_op(
        std::string(name) + " K = 35 inside ld 36",
        [](const std::vector<Tensor>& v) { return matmul(v[0].narrow(1, 0, 35), v[1]); }, {{{128, 36}}, {{35, 64}}}, t,
        t);
  });
}

// Small integers are exact in TF32, and so are their products and sums in float32: on the tensor cores
// too, every layout must give the CPU's bits. An element taken from the wrong lane of an mma fragment,
// a wrong bank-padding offset or a result stored to the wrong place shows as an exact mismatch, which a
// tolerance could hide. The second size leaves partial tiles on every edge (M 132, N 76, K 44: a
// partial slice), with leading dimensions divisible by 4 so that every layout runs on the tensor cores.
TEST(CudaGemm, Tf32IsExactOnSmallIntegersInEveryLayout) {
  REQUIRE_GPU();
  const GemmPathScope tf32(cuda::GemmPath::Tf32);
  Generator gen(21);
  auto integers = [&](const Shape& shape) {
    std::vector<double> v = rand(shape, {}, &gen, -4, 4).values<double>();
    for (double& e : v) e = std::floor(e);
    return from_vector(v, shape, {.dtype = kFloat32});
  };
  for (auto [M, N, K] : {std::array<int64_t, 3>{128, 128, 64}, std::array<int64_t, 3>{132, 76, 44}}) {
    const Tensor a = integers({M, K}), b = integers({K, N}), ref = matmul(a, b);
    const Tensor ag = a.to(kGpu), bg = b.to(kGpu);
    const Tensor at = ag.t().contiguous().t(), bt = bg.t().contiguous().t();  // the column-major layouts
    const std::string size = std::to_string(M) + " x " + std::to_string(N) + " x " + std::to_string(K);
    EXPECT_EQ(compare_bits(matmul(ag, bg), ref), "") << "A B, " << size;
    EXPECT_EQ(compare_bits(matmul(at, bg), ref), "") << "A^T-stored B, " << size;
    EXPECT_EQ(compare_bits(matmul(ag, bt), ref), "") << "A B^T-stored, " << size;
    EXPECT_EQ(compare_bits(matmul(at, bt), ref), "") << "both column-major, " << size;
  }
}

// TF32 keeps 10 of float32's 23 mantissa bits. The kernel rounds its inputs to the nearest TF32 value,
// ties to even; the tensor cores alone would drop the low bits, and no rounding at all (as a CPU product)
// keeps them. With u = 2^-10, one TF32 step above 1, the rows of A hold (rounded to):
//   1 + 3/4 u -> 1 + u      (truncation gives 1)
//   -(1 + 3/4 u) -> -(1 + u)  (the sign is kept apart from the magnitude)
//   1 + 1/2 u -> 1          (a tie: 1 is even; rounding ties away from zero gives 1 + u)
//   1 + 3/2 u -> 1 + 2 u    (a tie: 1 + u is odd, so it goes up)
// C = A B with B's first row ones and the rest zeros is exactly A's first column rounded (every other
// product is 0 and adding zeros is exact), so the test wants exact equality.
TEST(CudaGemm, Tf32RoundsInputsToTheNearestTf32ValueTiesToEven) {
  REQUIRE_GPU();
  const GemmPathScope tf32(cuda::GemmPath::Tf32);
  const int64_t M = 64, N = 64, K = 32;  // the smallest product the TF32 kernel takes
  const double u = 1.0 / 1024.0;
  const double inputs[4] = {1 + 0.75 * u, -(1 + 0.75 * u), 1 + 0.5 * u, 1 + 1.5 * u};
  const double rounded[4] = {1 + u, -(1 + u), 1, 1 + 2 * u};
  Tensor a = zeros({M, K});
  for (int r = 0; r < 4; ++r) a.narrow(0, r * M / 4, M / 4).fill_(inputs[r]);
  Tensor b = zeros({K, N});
  b.narrow(0, 0, 1).fill_(1.0);
  const std::vector<float> c = matmul(a.to(kGpu), b.to(kGpu)).values<float>();
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j)
      ASSERT_EQ(c[i * N + j], static_cast<float>(rounded[i / (M / 4)])) << "C[" << i << ", " << j << "]";
}

// More row tiles than grid.y holds: the product runs in row chunks, and the rows after the first
// chunk's end must be computed like the rest.
TEST(CudaGemm, TallerThanOneLaunch) {
  REQUIRE_GPU();
  const int64_t M = 2'097'024 + 777, K = 8, N = 8;
  Generator gen(9);
  const Tensor a = rand({M, K}, {}, &gen, -2, 2), b = rand({K, N}, {}, &gen, -2, 2);
  const Tensor ref = matmul(a, b);
  for_each_path([&](cuda::GemmPath path, const char* name) {
    SCOPED_TRACE(name);
    const Tolerance t = tol_for(path, K);
    EXPECT_CLOSE(matmul(a.to(kGpu), b.to(kGpu)), ref, t.atol, t.rtol);
    EXPECT_CLOSE(matmul(a.to(kGpu).t().contiguous().t(), b.to(kGpu)), ref, t.atol, t.rtol);
  });
}

TEST(CudaGemm, BatchesBroadcastAndVectors) {
  REQUIRE_GPU();
  for_each_path([&](cuda::GemmPath path, const char* name) {
    const Tolerance t = tol_for(path, 96);
    compare_op(
        std::string(name) + " batched", [](const std::vector<Tensor>& v) { return matmul(v[0], v[1]); },
        {{{6, 70, 96}}, {{6, 96, 80}}}, t, t);
    compare_op(
        std::string(name) + " broadcast batch", [](const std::vector<Tensor>& v) { return matmul(v[0], v[1]); },
        {{{3, 1, 65, 96}}, {{4, 96, 66}}}, t, t);
    compare_op(
        std::string(name) + " many small (the fusion's shape)",
        [](const std::vector<Tensor>& v) { return matmul(v[0].transpose(1, 2), v[1]); },
        {{{64, 16, 32}}, {{64, 16, 64}}}, tol_for(path, 64), tol_for(path, 64));
    compare_op(
        std::string(name) + " vector @ matrix", [](const std::vector<Tensor>& v) { return matmul(v[0], v[1]); },
        {{{96}}, {{96, 33}}}, t, t);
    compare_op(
        std::string(name) + " matrix @ vector", [](const std::vector<Tensor>& v) { return matmul(v[0], v[1]); },
        {{{33, 96}}, {{96}}}, t, t);
    compare_op(
        std::string(name) + " linear with bias", [](const std::vector<Tensor>& v) { return linear(v[0], v[1], v[2]); },
        {{{4, 16, 96}}, {{128, 96}}, {{128}}}, t, tol_for(path, 64));
  });
}

// Batch dims that merge into one (a contiguous [2, 3] batch is 6 matrices at one stride) and batch dims
// that cannot (a transposed batch: the outer dim's stride is the smaller), and a right operand with
// neither matrix index contiguous, which is copied to row-major with its batch dims kept.
TEST(CudaGemm, BatchDimsMergedOrNotAndACopiedRightOperand) {
  REQUIRE_GPU();
  for_each_path([&](cuda::GemmPath path, const char* name) {
    const Tolerance t = tol_for(path, 72);
    compare_op(
        std::string(name) + " [2, 3] batch, merged", [](const std::vector<Tensor>& v) { return matmul(v[0], v[1]); },
        {{{2, 3, 65, 72}}, {{2, 3, 72, 68}}}, t, t);
    compare_op(
        std::string(name) + " transposed batch, not merged",
        [](const std::vector<Tensor>& v) { return matmul(v[0].transpose(0, 1), v[1].transpose(0, 1)); },
        {{{3, 2, 65, 72}}, {{3, 2, 72, 68}}}, t, t);
    compare_op(
        std::string(name) + " B strided both ways, batched",
        [](const std::vector<Tensor>& v) { return matmul(v[0], v[1].slice(1, 0, 144, 2).slice(2, 0, 136, 2)); },
        {{{2, 65, 72}}, {{2, 144, 136}}}, t, t);
  });
}

TEST(CudaGemm, RawSgemmWithLeadingDimensions) {
  REQUIRE_GPU();
  // C [M, N] inside a wider buffer (ldc > N): the columns beyond N must stay untouched.
  const int64_t M = 37, N = 45, K = 29, lda = 32, ldb = 48, ldc = 52;
  Generator gen(8);
  const Tensor A = rand({M, lda}, {}, &gen, -2, 2), B = rand({K, ldb}, {}, &gen, -2, 2);
  const Tensor ref = matmul(A.narrow(1, 0, K), B.narrow(1, 0, N));
  for_each_path([&](cuda::GemmPath path, const char* name) {
    SCOPED_TRACE(name);
    const Tensor a = A.to(kGpu), b = B.to(kGpu);
    Tensor c = full({M, ldc}, 7.0, {.device = kGpu});
    cuda::sgemm(path, M, N, K, static_cast<const float*>(a.raw_data()), lda, static_cast<const float*>(b.raw_data()),
                ldb, static_cast<float*>(c.raw_data()), ldc, 0);
    const Tolerance t = tol_for(path, K);
    EXPECT_CLOSE(c.narrow(1, 0, N), ref, t.atol, t.rtol);
    EXPECT_EQ(c.narrow(1, N, ldc - N).values<float>(), std::vector<float>(M * (ldc - N), 7.0f));
  });
}

// Few tiles of C and a long K: the product is cut along K (cuda/gemm.cu, split_count) and its partial
// products added in order. Each operand in both layouts; K = 5000 leaves a last segment shorter than
// the others (8 of 576, then 392), and K = 1024 is two; the TF32 kernel takes the 64 x 64 ones; a
// second run gives the same bits; and a C inside a wider buffer keeps the columns beyond N.
TEST(CudaGemm, LongReductionsWithFewTilesAreSplitAlongK) {
  REQUIRE_GPU();
  for_each_path([&](cuda::GemmPath path, const char* name) {
    for (const auto& [M, N, K] : {std::array<int64_t, 3>{7, 5, 5000}, std::array<int64_t, 3>{64, 64, 5000},
                                  std::array<int64_t, 3>{33, 70, 1024}}) {
      const std::string what =
          std::string(name) + " " + std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K);
      const Tolerance t = tol_for(path, K);
      compare_op(
          what, [](const std::vector<Tensor>& v) { return matmul(v[0], v[1]); }, {{{M, K}}, {{K, N}}}, t, t);
      compare_op(
          what + " transposed", [](const std::vector<Tensor>& v) { return matmul(v[0].t(), v[1].t()); },
          {{{K, M}}, {{N, K}}}, t, t);
    }
    Generator gen(10);
    const Tensor a = rand({7, 5000}, {.device = kGpu}, &gen, -2, 2), b = rand({5000, 5}, {.device = kGpu}, &gen, -2, 2);
    EXPECT_EQ(matmul(a, b).values<float>(), matmul(a, b).values<float>()) << name;
    Tensor c = full({7, 9}, 7.0, {.device = kGpu});
    cuda::sgemm(path, 7, 5, 5000, static_cast<const float*>(a.raw_data()), 5000,
                static_cast<const float*>(b.raw_data()), 5, static_cast<float*>(c.raw_data()), 9, 0);
    EXPECT_EQ(c.narrow(1, 0, 5).values<float>(), matmul(a, b).values<float>()) << name;
    EXPECT_EQ(c.narrow(1, 5, 4).values<float>(), std::vector<float>(28, 7.0f)) << name;
    // The split is taken: its partial products take one scratch allocation, which an unsplit product of
    // the same size (K = 1000, under two segments of 512) does not.
    auto allocations_of = [&](int64_t k) {
      const Tensor x = a.narrow(1, 0, k), y = b.narrow(0, 0, k), out = Tensor::empty({7, 5}, kFloat32, kGpu);
      const int64_t before = cuda::memory_stats(0).allocations;
      cuda::matmul(x, y, out);
      return cuda::memory_stats(0).allocations - before;
    };
    EXPECT_EQ(allocations_of(1000), 0) << name;
    EXPECT_EQ(allocations_of(5000), 1) << name;
  });
}

TEST(CudaGemm, EmptyInnerDimensionGivesZeros) {
  REQUIRE_GPU();
  const Tensor a = zeros({3, 0}, {.device = kGpu}), b = zeros({0, 4}, {.device = kGpu});
  EXPECT_EQ(matmul(a, b).values<float>(), std::vector<float>(12, 0.0f));
}

// matmul_group runs independent products in one launch, each as matmul would: the same bits, for the
// LSTM's step (a strided time slice times a transposed weight, each direction its own allocations)
// at sizes for the small tiles and for the TF32 kernel, and for four products at once. Products that
// cannot share a launch (another layout, another leading dimension, other sizes) run one by one.
TEST(CudaGemm, GroupedProductsGiveEachTheBitsOfMatmul) {
  REQUIRE_GPU();
  Generator gen(9);
  auto gpu_rand = [&](const Shape& s) { return rand(s, {}, &gen, -2, 2).to(kGpu); };
  auto product = [&](const Tensor& a, const Tensor& b) {
    return cuda::GemmProblem{a, b, Tensor::empty({a.size(0), b.size(1)}, kFloat32, kGpu)};
  };
  auto expect_each_as_matmul = [](const std::vector<cuda::GemmProblem>& group, bool one_launch) {
    std::vector<Tensor> want;
    for (const cuda::GemmProblem& p : group) {
      want.push_back(Tensor::empty(p.out.shape(), kFloat32, kGpu));
      cuda::matmul(p.a, p.b, want.back());
    }
    EXPECT_EQ(cuda::matmul_group(group), one_launch);
    for (size_t i = 0; i < group.size(); ++i) EXPECT_EQ(group[i].out.values<float>(), want[i].values<float>()) << i;
  };
  for_each_path([&](cuda::GemmPath, const char* name) {
    for (const auto& [B, T, H] : {std::array<int64_t, 3>{3, 5, 7}, std::array<int64_t, 3>{64, 5, 96}}) {
      SCOPED_TRACE(std::string(name) + " LSTM step B=" + std::to_string(B) + " H=" + std::to_string(H));
      const Tensor out_f = gpu_rand({B, T, H}), out_r = gpu_rand({B, T, H});
      const Tensor w_f = gpu_rand({4 * H, H}), w_r = gpu_rand({4 * H, H});
      const std::vector<cuda::GemmProblem> step{product(out_f.select(1, 1), w_f.t()),
                                                product(out_r.select(1, T - 2), w_r.t())};
      expect_each_as_matmul(step, true);
      // The first group's result against the CPU, so that a group and matmul cannot be wrong together.
      const Tensor cpu = matmul(out_f.to(Device::cpu()).select(1, 1), w_f.to(Device::cpu()).t());
      const Tolerance t = tol_for(cuda::gemm_path(), H);
      EXPECT_CLOSE(step[0].out, cpu, t.atol, t.rtol);
    }
    SCOPED_TRACE(name);
    std::vector<cuda::GemmProblem> four;
    for (int i = 0; i < 4; ++i) four.push_back(product(gpu_rand({130, 33}), gpu_rand({33, 70})));
    expect_each_as_matmul(four, true);
    expect_each_as_matmul(
        {product(gpu_rand({65, 40}), gpu_rand({40, 66})), product(gpu_rand({40, 65}).t(), gpu_rand({40, 66}))}, false);
    expect_each_as_matmul({product(gpu_rand({65, 40}), gpu_rand({40, 66})),
                           product(gpu_rand({65, 44}).narrow(1, 0, 40), gpu_rand({40, 66}))},
                          false);
    expect_each_as_matmul(
        {product(gpu_rand({65, 40}), gpu_rand({40, 66})), product(gpu_rand({64, 40}), gpu_rand({40, 66}))}, false);
    expect_each_as_matmul({product(gpu_rand({9, 4}), gpu_rand({4, 5}))}, false);
    // Products matmul splits along K run one by one, each split as matmul splits it.
    expect_each_as_matmul(
        {product(gpu_rand({9, 2048}), gpu_rand({2048, 5})), product(gpu_rand({9, 2048}), gpu_rand({2048, 5}))}, false);
  });
}
