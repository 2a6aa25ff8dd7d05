// The tensor side of the matrix products: matmul (any batch dims, broadcast or strided, as
// cpu::matmul) and matmul_group (independent products in one launch) turn tensors into the operands
// of cuda/gemm.cu's kernels. A transposed view is read as it lies, column-major; an operand with
// neither matrix index contiguous is copied to row-major first.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "cuda/common.cuh"
#include "cuda/gemm_launch.cuh"
#include "cuda/kernels.h"

namespace minidl::cuda {
using namespace gemm_detail;

namespace {

// A product's operands as the kernels read them. Operands with neither matrix index contiguous are
// copied to row-major first (rare: a matrix sliced with a step in both dims); the copies keep the batch
// dims, so the batch strides of `a` and `b` apply, and live here until the launch is queued.
struct Operands {
  Tensor a, b;
  Operand oa{}, ob{};
};

Operands operands_of(const Tensor& a_in, const Tensor& b_in, int64_t M, int64_t K, int64_t N) {
  Operands r{a_in.detach(), b_in.detach()};
  if (!as_operand(device_data<float>(r.a), M, K, r.a.stride(-2), r.a.stride(-1), r.oa)) {
    r.a = r.a.contiguous();
    as_operand(device_data<float>(r.a), M, K, r.a.stride(-2), r.a.stride(-1), r.oa);
  }
  if (!as_operand(device_data<float>(r.b), K, N, r.b.stride(-2), r.b.stride(-1), r.ob)) {
    r.b = r.b.contiguous();
    as_operand(device_data<float>(r.b), K, N, r.b.stride(-2), r.b.stride(-1), r.ob);
  }
  return r;
}

void check_product(const Tensor& a, const Tensor& b, const Tensor& out, const char* op) {
  MINIDL_CHECK(a.dtype() == kFloat32, op, ": the CUDA kernels compute in float32, got ", a.meta_str(),
               " (float64 is for CPU gradchecks)");
  MINIDL_CHECK(out.is_contiguous(), op, ": the CUDA output must be contiguous, got ", out.meta_str());
  MINIDL_CHECK(a.size(-2) < kMaxGemmDim && b.size(-1) < kMaxGemmDim && a.size(-1) < kMaxGemmDim, op, ": ", a.meta_str(),
               " @ ", b.meta_str(), ": a dimension is larger than the CUDA kernels address");
}

}  // namespace

void matmul(const Tensor& a_in, const Tensor& b_in, const Tensor& out) {
  check_product(a_in, b_in, out, "matmul");
  const int64_t M = a_in.size(-2), K = a_in.size(-1), N = b_in.size(-1);
  if (out.numel() == 0) return;
  const int device = out.device().index;
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  if (K == 0) {
    fill(out, 0.0);
    return;
  }
  Operands ops = operands_of(a_in, b_in, M, K, N);
  const Tensor &a = ops.a, &b = ops.b;
  // Batch dims: every dim but the last two, merged where all three operands allow it.
  const int64_t nb = out.dim() - 2;
  std::vector<int64_t> shape, sa, sb, sc;
  for (int64_t d = 0; d < nb; ++d) {
    if (out.size(d) == 1) continue;
    if (!shape.empty() && sa.back() == a.stride(d) * out.size(d) && sb.back() == b.stride(d) * out.size(d) &&
        sc.back() == out.stride(d) * out.size(d)) {
      shape.back() *= out.size(d);
      sa.back() = a.stride(d), sb.back() = b.stride(d), sc.back() = out.stride(d);
      continue;
    }
    shape.push_back(out.size(d));
    sa.push_back(a.stride(d));
    sb.push_back(b.stride(d));
    sc.push_back(out.stride(d));
  }
  MINIDL_CHECK(static_cast<int>(shape.size()) <= kMaxDims, "matmul: more than ", kMaxDims,
               " batch dims that cannot be merged (", out.meta_str(), ")");
  Batch batch;
  batch.nd = static_cast<int>(shape.size());
  int64_t count = 1;
  for (int d = 0; d < batch.nd; ++d) {
    batch.shape[d] = shape[d];
    batch.sa[d] = sa[d];
    batch.sb[d] = sb[d];
    batch.sc[d] = sc[d];
    count *= shape[d];
  }
  ops.oa.vec = batches_aligned(ops.oa.p, ops.oa.ld, sa, 4);
  ops.ob.vec = batches_aligned(ops.ob.p, ops.ob.ld, sb, 4);
  float* cp = device_data<float>(out);
  const int64_t ldc = M == 1 ? N : out.stride(-2);
  const Output c{cp, ldc, batches_aligned(cp, ldc, sc, 4), batches_aligned(cp, ldc, sc, 2)};
  launch(gemm_path(), static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), ops.oa, ops.ob, c, batch, count,
         device);
}

namespace {

// How many floats p lies after base, for two device pointers that need not be in one allocation (so
// not a C++ pointer difference): the kernels add it back to base in the one flat address space.
int64_t elements_between(const float* base, const float* p) {
  return (static_cast<int64_t>(reinterpret_cast<uintptr_t>(p)) -
          static_cast<int64_t>(reinterpret_cast<uintptr_t>(base))) /
         static_cast<int64_t>(sizeof(float));
}

}  // namespace

bool matmul_group(const std::vector<GemmProblem>& problems) {
  if (problems.empty()) return false;
  const GemmProblem& first = problems[0];
  for (const GemmProblem& p : problems) {
    check_product(p.a, p.b, p.out, "matmul_group");
    MINIDL_CHECK(p.a.dim() == 2 && p.b.dim() == 2 && p.out.dim() == 2 && p.a.size(1) == p.b.size(0) &&
                     p.out.size(0) == p.a.size(0) && p.out.size(1) == p.b.size(1),
                 "matmul_group: each product is [M, K] @ [K, N] -> [M, N], got ", p.a.meta_str(), " @ ", p.b.meta_str(),
                 " -> ", p.out.meta_str());
    MINIDL_CHECK(p.out.device() == first.out.device(), "matmul_group: the products are on different devices (",
                 first.out.meta_str(), ", ", p.out.meta_str(), ")");
  }
  const int64_t M = first.a.size(0), K = first.a.size(1), N = first.b.size(1);
  auto one_by_one = [&] {
    for (const GemmProblem& p : problems) matmul(p.a, p.b, p.out);
  };
  const bool same_sizes = std::all_of(problems.begin(), problems.end(), [&](const GemmProblem& p) {
    return p.a.size(0) == M && p.a.size(1) == K && p.b.size(1) == N;
  });
  // A product that matmul splits along K runs as matmul runs it, so a group has its bits.
  if (!same_sizes || problems.size() == 1 || problems.size() > static_cast<size_t>(kMaxGroup) || M == 0 || N == 0 ||
      K == 0 || M > kRowsPerLaunch || split_count(static_cast<int>(M), static_cast<int>(N), static_cast<int>(K)) > 1) {
    one_by_one();
    return false;
  }
  const int device = first.out.device().index;
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  // One launch needs one layout per operand and one leading dimension per matrix for all products;
  // the alignment flags must hold for every one of them.
  std::vector<Operands> ops;
  ops.reserve(problems.size());
  Batch batch;
  batch.group = static_cast<int>(problems.size());
  Operand oa{}, ob{};
  Output c{};
  for (size_t i = 0; i < problems.size(); ++i) {
    const GemmProblem& p = problems[i];
    ops.push_back(operands_of(p.a, p.b, M, K, N));
    Operand a = ops.back().oa, b = ops.back().ob;
    a.vec = batches_aligned(a.p, a.ld, {}, 4);
    b.vec = batches_aligned(b.p, b.ld, {}, 4);
    float* cp = device_data<float>(p.out);
    const int64_t ldc = M == 1 ? N : p.out.stride(0);
    const Output ci{cp, ldc, batches_aligned(cp, ldc, {}, 4), batches_aligned(cp, ldc, {}, 2)};
    if (i == 0) {
      oa = a, ob = b, c = ci;
    } else {
      if (a.row != oa.row || a.ld != oa.ld || b.row != ob.row || b.ld != ob.ld || ci.ld != c.ld) {
        one_by_one();
        return false;
      }
      oa.vec = oa.vec && a.vec;
      ob.vec = ob.vec && b.vec;
      c.vec4 = c.vec4 && ci.vec4;
      c.vec2 = c.vec2 && ci.vec2;
    }
    batch.ga[i] = elements_between(oa.p, a.p);
    batch.gb[i] = elements_between(ob.p, b.p);
    batch.gc[i] = elements_between(c.p, cp);
  }
  launch(gemm_path(), static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), oa, ob, c, batch, batch.group,
         device);
  return true;
}

}  // namespace minidl::cuda
