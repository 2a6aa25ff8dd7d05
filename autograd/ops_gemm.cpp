// Front ends of matmul (NumPy semantics, broadcast batch dims) and linear. Kernel: cpu/gemm.cpp (and
// cuda/gemm.cu).
//
// Backward of C = A B: dA = dC B^T and dB = A^T dC. The transposes are views (swapped strides); the
// GEMM's packing step reads any strides, so no transposed copy is ever made. Where a batch dim of A or B
// was broadcast, its gradient is summed over that dim (sum_to).
#include "autograd/dispatch.h"
#include "autograd/error.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "cpu/kernels.h"
#include "cuda/kernels.h"

namespace minidl {
namespace {

// The operands as matmul sees them: 1-D promoted to a matrix, batch dims broadcast.
struct MatmulPlan {
  Tensor a, b;   // [batch..., M, K] and [batch..., K, N] views (stride 0 along broadcast batch dims)
  Shape a2, b2;  // the shapes after promotion, before broadcasting (what the gradients sum back to)
  Shape out;     // the shape handed to the user, promoted dims removed
};

MatmulPlan plan(const Tensor& a, const Tensor& b) {
  check_same("matmul", a, b);
  check_float("matmul", a, "first operand");
  MINIDL_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: ", shape_str(a.shape()), " @ ", shape_str(b.shape()),
               ": both operands need at least one dim");
  MatmulPlan p;
  const Tensor a2 = a.dim() == 1 ? make_view(a, {1, a.size(0)}, {0, a.stride(0)}, a.offset()) : a;
  const Tensor b2 = b.dim() == 1 ? make_view(b, {b.size(0), 1}, {b.stride(0), 0}, b.offset()) : b;
  const int64_t M = a2.size(-2), K = a2.size(-1), K2 = b2.size(-2), N = b2.size(-1);
  MINIDL_CHECK(K == K2, "matmul: ", shape_str(a.shape()), " @ ", shape_str(b.shape()), ": inner dimensions ", K,
               " and ", K2, " differ");
  const Shape ba(a2.shape().begin(), a2.shape().end() - 2), bb(b2.shape().begin(), b2.shape().end() - 2);
  Shape batch;
  try {
    batch = broadcast_shapes("matmul", ba, bb);
  } catch (const Error&) {
    fail("matmul: ", shape_str(a.shape()), " @ ", shape_str(b.shape()), ": batch dims ", shape_str(ba), " and ",
         shape_str(bb), " cannot be broadcast");
  }
  auto expanded = [&](const Tensor& t, int64_t rows, int64_t cols) {
    const int64_t lead = static_cast<int64_t>(batch.size()) - (t.dim() - 2);
    Shape s = batch;
    Strides st(batch.size(), 0);
    for (int64_t i = lead; i < static_cast<int64_t>(batch.size()); ++i)
      st[i] = t.size(i - lead) == batch[i] ? t.stride(i - lead) : 0;
    s.push_back(rows);
    s.push_back(cols);
    st.push_back(t.stride(-2));
    st.push_back(t.stride(-1));
    return make_view(t, s, st, t.offset());
  };
  p.a = expanded(a2, M, K);
  p.b = expanded(b2, K, N);
  p.a2 = a2.shape();
  p.b2 = b2.shape();
  p.out = batch;
  if (a.dim() > 1) p.out.push_back(M);
  if (b.dim() > 1) p.out.push_back(N);
  return p;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  OpScope scope("matmul", a, b);
  const MatmulPlan p = plan(a, b);
  Shape full(p.a.shape().begin(), p.a.shape().end() - 1);
  full.push_back(p.b.size(-1));
  Tensor out_full = Tensor::empty(full, a.dtype(), a.device());
  switch (a.device().type) {
    case DeviceType::CPU: cpu::matmul(p.a, p.b, out_full); break;
    case DeviceType::CUDA: cuda::matmul(p.a, p.b, out_full); break;
  }
  // Each of the batch's M x N outputs is K multiply-adds.
  scope.work(2.0 * static_cast<double>(out_full.numel()) * static_cast<double>(p.a.size(-1)),
             bytes_of(a) + bytes_of(b) + bytes_of(out_full));
  Tensor out = make_view(out_full, p.out, contiguous_strides(p.out), 0);
  if (needs_grad(a, b)) {
    const bool ra = a.requires_grad(), rb = b.requires_grad();
    const SavedTensor sa(rb ? a : Tensor()), sb(ra ? b : Tensor());
    const Shape sha = a.shape(), shb = b.shape(), a2 = p.a2, b2 = p.b2, fshape = full;
    record(out, "matmul", {a, b}, [sa, sb, ra, rb, sha, shb, a2, b2, fshape](const Tensor& g) {
      const Tensor gf = g.reshape(fshape);  // [batch..., M, N]
      Tensor ga, gb;
      if (ra) {
        const Tensor bv = sb.get("matmul");
        const Tensor bt = (bv.dim() == 1 ? bv.reshape({bv.size(0), 1}) : bv).transpose(-1, -2);
        ga = sum_to(matmul(gf, bt), a2).reshape(sha);
      }
      if (rb) {
        const Tensor av = sa.get("matmul");
        const Tensor at = (av.dim() == 1 ? av.reshape({1, av.size(0)}) : av).transpose(-1, -2);
        gb = sum_to(matmul(at, gf), b2).reshape(shb);
      }
      return std::vector<Tensor>{ga, gb};
    });
  }
  return out;
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const OpScope scope("linear", x, weight, bias);
  check_float("linear", x);
  check_same("linear", x, weight);
  MINIDL_CHECK(weight.dim() == 2, "linear: weight must be [out_features, in_features], got ", weight.meta_str());
  MINIDL_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(1), "linear: input ", shape_str(x.shape()), " has ",
               x.dim() >= 1 ? x.size(-1) : 0, " features but weight ", shape_str(weight.shape()), " expects ",
               weight.size(1));
  if (bias.defined()) {
    check_same("linear", x, bias);
    MINIDL_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), "linear: bias must be [", weight.size(0),
                 "] to match weight ", shape_str(weight.shape()), ", got ", bias.meta_str());
  }
  // Fold every leading dim into the rows of one GEMM: [rows, in] @ [in, out]. The weight gradient is then
  // a single product over all rows instead of a batch of products summed afterwards.
  Shape out_shape = x.shape();
  out_shape.back() = weight.size(0);
  const int64_t rows = numel_of(Shape(x.shape().begin(), x.shape().end() - 1));  // not -1: in may be 0
  Tensor y = matmul(x.reshape({rows, x.size(-1)}), weight.t());
  if (bias.defined()) y = add(y, bias);
  return y.reshape(out_shape);
}

}  // namespace minidl
