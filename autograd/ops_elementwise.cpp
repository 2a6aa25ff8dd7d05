// Front ends of the elementwise ops: unary math, binary arithmetic with broadcasting, comparisons,
// where / masked_fill. Kernels: cpu/elementwise.cpp (and cuda/elementwise.cu); formulas: functors.h.
//
// Broadcasting and the gradient: if a was broadcast from shape Sa to the output shape, every element of
// a fed several outputs, so its gradient is the sum of theirs: sum_to(grad, Sa).
#include "autograd/dispatch.h"
#include "autograd/error.h"
#include "autograd/factories.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "cpu/kernels.h"
#include "cuda/kernels.h"

namespace minidl {

const char* unary_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg: return "neg";
    case UnaryOp::Exp: return "exp";
    case UnaryOp::Log: return "log";
    case UnaryOp::Sqrt: return "sqrt";
    case UnaryOp::Abs: return "abs";
    case UnaryOp::Tanh: return "tanh";
    case UnaryOp::Sigmoid: return "sigmoid";
    case UnaryOp::Relu: return "relu";
    case UnaryOp::LeakyRelu: return "leaky_relu";
    case UnaryOp::Clamp: return "clamp";
  }
  return "unary";
}

const char* binary_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return "add";
    case BinaryOp::Sub: return "sub";
    case BinaryOp::Mul: return "mul";
    case BinaryOp::Div: return "div";
    case BinaryOp::Pow: return "pow";
  }
  return "binary";
}

const char* compare_name(CompareOp op) {
  switch (op) {
    case CompareOp::Gt: return "gt";
    case CompareOp::Ge: return "ge";
    case CompareOp::Lt: return "lt";
    case CompareOp::Le: return "le";
    case CompareOp::Eq: return "eq";
    case CompareOp::Ne: return "ne";
  }
  return "compare";
}

namespace {

Tensor unary_op(UnaryOp op, const Tensor& x, UnaryParams p = {}) {
  const char* name = unary_name(op);
  OpScope scope(name, x);
  check_float(name, x);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  switch (x.device().type) {
    case DeviceType::CPU: cpu::unary(op, p, x, out); break;
    case DeviceType::CUDA: cuda::unary(op, p, x, out); break;
  }
  scope.work(static_cast<double>(out.numel()), bytes_of(x) + bytes_of(out));
  if (needs_grad(x)) {
    if (op == UnaryOp::Neg) {
      record(out, name, {x}, [](const Tensor& g) { return std::vector<Tensor>{neg(g)}; });
    } else {
      const SavedTensor saved(unary_backward_reads_output(op) ? out : x);
      record(out, name, {x}, [op, p, saved, name](const Tensor& g) {
        Tensor s = saved.get(name);
        Tensor gx = Tensor::empty(g.shape(), g.dtype(), g.device());
        switch (g.device().type) {
          case DeviceType::CPU: cpu::unary_backward(op, p, s, g, gx); break;
          case DeviceType::CUDA: cuda::unary_backward(op, p, s, g, gx); break;
        }
        count_work(static_cast<double>(gx.numel()), bytes_of(s) + bytes_of(g) + bytes_of(gx));
        return std::vector<Tensor>{gx};
      });
    }
  }
  return out;
}

// The forward kernel of a binary op on already-checked operands.
Tensor binary_kernel(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(op);
  Tensor out = Tensor::empty(broadcast_shapes(name, a.shape(), b.shape()), a.dtype(), a.device());
  switch (a.device().type) {
    case DeviceType::CPU: cpu::binary(op, a, b, out); break;
    case DeviceType::CUDA: cuda::binary(op, a, b, out); break;
  }
  count_work(static_cast<double>(out.numel()), bytes_of(a) + bytes_of(b) + bytes_of(out));
  return out;
}

Tensor ternary_kernel(TernaryOp op, const Tensor& g, const Tensor& a, const Tensor& b) {
  Tensor out = Tensor::empty(g.shape(), g.dtype(), g.device());
  switch (g.device().type) {
    case DeviceType::CPU: cpu::ternary(op, g, a, b, out); break;
    case DeviceType::CUDA: cuda::ternary(op, g, a, b, out); break;
  }
  count_work(static_cast<double>(out.numel()), bytes_of(g) + bytes_of(a) + bytes_of(b) + bytes_of(out));
  return out;
}

void check_binary(const char* op, const Tensor& a, const Tensor& b) {
  check_same(op, a, b);
  check_float(op, a, "first operand");
}

Tensor compare_op(CompareOp op, const Tensor& a, const Tensor& b) {
  const char* name = compare_name(op);
  OpScope scope(name, a, b);
  check_same(name, a, b);
  Tensor out = Tensor::empty(broadcast_shapes(name, a.shape(), b.shape()), kBool, a.device());
  switch (a.device().type) {
    case DeviceType::CPU: cpu::compare(op, a, b, out); break;
    case DeviceType::CUDA: cuda::compare(op, a, b, out); break;
  }
  scope.work(static_cast<double>(out.numel()), bytes_of(a) + bytes_of(b) + bytes_of(out));
  return out;
}

Tensor where_impl(const char* name, const Tensor& cond, const Tensor& a, const Tensor& b) {
  OpScope scope(name, cond, a, b);
  check_defined(name, cond, "condition");
  MINIDL_CHECK(cond.dtype() == kBool, name, ": the condition must be a bool tensor, got ", cond.meta_str(),
               "; make one with a comparison such as gt(x, 0)");
  check_binary(name, a, b);
  MINIDL_CHECK(cond.device() == a.device(), name, ": the condition is ", cond.meta_str(), " but the values are on ",
               a.device().str());
  const Shape shape = broadcast_shapes(name, cond.shape(), broadcast_shapes(name, a.shape(), b.shape()));
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  switch (a.device().type) {
    case DeviceType::CPU: cpu::where(cond, a, b, out); break;
    case DeviceType::CUDA: cuda::where(cond, a, b, out); break;
  }
  scope.work(static_cast<double>(out.numel()), bytes_of(cond) + bytes_of(a) + bytes_of(b) + bytes_of(out));
  if (needs_grad(a, b)) {
    const SavedTensor sc(cond);
    const Shape sa = a.shape(), sb = b.shape();
    const bool ra = a.requires_grad(), rb = b.requires_grad();
    record(out, name, {a, b}, [sc, sa, sb, ra, rb, name](const Tensor& g) {
      const Tensor c = sc.get(name);
      const Tensor zero = scalar_like(0.0, g);
      return std::vector<Tensor>{ra ? sum_to(where(c, g, zero), sa) : Tensor(),
                                 rb ? sum_to(where(c, zero, g), sb) : Tensor()};
    });
  }
  return out;
}

}  // namespace

// ---- binary arithmetic --------------------------------------------------------------------------
Tensor add(const Tensor& a, const Tensor& b) {
  const OpScope scope("add", a, b);
  check_binary("add", a, b);
  Tensor out = binary_kernel(BinaryOp::Add, a, b);
  if (needs_grad(a, b)) {
    const Shape sa = a.shape(), sb = b.shape();
    record(out, "add", {a, b}, [sa, sb](const Tensor& g) { return std::vector<Tensor>{sum_to(g, sa), sum_to(g, sb)}; });
  }
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  const OpScope scope("sub", a, b);
  check_binary("sub", a, b);
  Tensor out = binary_kernel(BinaryOp::Sub, a, b);
  if (needs_grad(a, b)) {
    const Shape sa = a.shape(), sb = b.shape();
    const bool rb = b.requires_grad();
    record(out, "sub", {a, b}, [sa, sb, rb](const Tensor& g) {
      return std::vector<Tensor>{sum_to(g, sa), rb ? sum_to(neg(g), sb) : Tensor()};
    });
  }
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  const OpScope scope("mul", a, b);
  check_binary("mul", a, b);
  Tensor out = binary_kernel(BinaryOp::Mul, a, b);
  if (needs_grad(a, b)) {
    const bool ra = a.requires_grad(), rb = b.requires_grad();
    // d(ab)/da = b: a's gradient needs b, and b's needs a. Save only what will be read.
    const SavedTensor sa(rb ? a : Tensor()), sb(ra ? b : Tensor());
    const Shape sha = a.shape(), shb = b.shape();
    record(out, "mul", {a, b}, [sa, sb, sha, shb, ra, rb](const Tensor& g) {
      return std::vector<Tensor>{ra ? sum_to(mul(g, sb.get("mul")), sha) : Tensor(),
                                 rb ? sum_to(mul(g, sa.get("mul")), shb) : Tensor()};
    });
  }
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  const OpScope scope("div", a, b);
  check_binary("div", a, b);
  Tensor out = binary_kernel(BinaryOp::Div, a, b);
  if (needs_grad(a, b)) {
    const bool ra = a.requires_grad(), rb = b.requires_grad();
    const SavedTensor sa(rb ? a : Tensor()), sb(b);
    const Shape sha = a.shape(), shb = b.shape();
    record(out, "div", {a, b}, [sa, sb, sha, shb, ra, rb](const Tensor& g) {
      const Tensor bv = sb.get("div");
      return std::vector<Tensor>{
          ra ? sum_to(div(g, bv), sha) : Tensor(),
          rb ? sum_to(ternary_kernel(TernaryOp::DivGradB, g, sa.get("div"), bv), shb) : Tensor()};
    });
  }
  return out;
}

Tensor pow(const Tensor& a, const Tensor& b) {
  const OpScope scope("pow", a, b);
  check_binary("pow", a, b);
  Tensor out = binary_kernel(BinaryOp::Pow, a, b);
  if (needs_grad(a, b)) {
    const bool ra = a.requires_grad(), rb = b.requires_grad();
    const SavedTensor sa(a), sb(b);
    const Shape sha = a.shape(), shb = b.shape();
    record(out, "pow", {a, b}, [sa, sb, sha, shb, ra, rb](const Tensor& g) {
      const Tensor av = sa.get("pow"), bv = sb.get("pow");
      return std::vector<Tensor>{ra ? sum_to(ternary_kernel(TernaryOp::PowGradA, g, av, bv), sha) : Tensor(),
                                 rb ? sum_to(ternary_kernel(TernaryOp::PowGradB, g, av, bv), shb) : Tensor()};
    });
  }
  return out;
}

// Scalar forms: the scalar becomes a 0-d tensor of the other operand's dtype; it never requires grad.
Tensor add(const Tensor& a, double b) { return check_float("add", a), add(a, scalar_like(b, a)); }
Tensor sub(const Tensor& a, double b) { return check_float("sub", a), sub(a, scalar_like(b, a)); }
Tensor sub(double a, const Tensor& b) { return check_float("sub", b), sub(scalar_like(a, b), b); }
Tensor mul(const Tensor& a, double b) { return check_float("mul", a), mul(a, scalar_like(b, a)); }
Tensor div(const Tensor& a, double b) { return check_float("div", a), div(a, scalar_like(b, a)); }
Tensor div(double a, const Tensor& b) { return check_float("div", b), div(scalar_like(a, b), b); }
Tensor pow(const Tensor& a, double exponent) { return check_float("pow", a), pow(a, scalar_like(exponent, a)); }
Tensor pow(double base, const Tensor& exponent) {
  return check_float("pow", exponent), pow(scalar_like(base, exponent), exponent);
}

// ---- unary --------------------------------------------------------------------------------------
Tensor neg(const Tensor& x) { return unary_op(UnaryOp::Neg, x); }
Tensor exp(const Tensor& x) { return unary_op(UnaryOp::Exp, x); }
Tensor log(const Tensor& x) { return unary_op(UnaryOp::Log, x); }
Tensor sqrt(const Tensor& x) { return unary_op(UnaryOp::Sqrt, x); }
Tensor abs(const Tensor& x) { return unary_op(UnaryOp::Abs, x); }
Tensor tanh(const Tensor& x) { return unary_op(UnaryOp::Tanh, x); }
Tensor sigmoid(const Tensor& x) { return unary_op(UnaryOp::Sigmoid, x); }
Tensor relu(const Tensor& x) { return unary_op(UnaryOp::Relu, x); }
Tensor leaky_relu(const Tensor& x, double negative_slope) {
  return unary_op(UnaryOp::LeakyRelu, x, {negative_slope, 0});
}
Tensor clamp(const Tensor& x, double lo, double hi) {
  MINIDL_CHECK(lo <= hi, "clamp: the lower bound ", lo, " is above the upper bound ", hi);
  return unary_op(UnaryOp::Clamp, x, {lo, hi});
}

// ---- comparisons, where -------------------------------------------------------------------------
Tensor gt(const Tensor& a, const Tensor& b) { return compare_op(CompareOp::Gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return compare_op(CompareOp::Ge, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return compare_op(CompareOp::Lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return compare_op(CompareOp::Le, a, b); }
Tensor eq(const Tensor& a, const Tensor& b) { return compare_op(CompareOp::Eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return compare_op(CompareOp::Ne, a, b); }
// A scalar compared with an integer or bool tensor keeps its fraction: both sides go to float64.
Tensor gt(const Tensor& a, double b) {
  check_defined("gt", a);
  const Tensor x = is_floating(a.dtype()) ? a : a.to(kFloat64);
  return gt(x, scalar_like(b, x));
}
Tensor lt(const Tensor& a, double b) {
  check_defined("lt", a);
  const Tensor x = is_floating(a.dtype()) ? a : a.to(kFloat64);
  return lt(x, scalar_like(b, x));
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) { return where_impl("where", cond, a, b); }

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  check_float("masked_fill", x);
  check_defined("masked_fill", mask, "mask");
  MINIDL_CHECK(broadcast_shapes("masked_fill", mask.shape(), x.shape()) == x.shape(), "masked_fill: the mask ",
               mask.meta_str(), " must broadcast to the input ", x.meta_str(), " without growing it");
  return where_impl("masked_fill", mask, scalar_like(value, x), x);
}

// ---- operators ----------------------------------------------------------------------------------
Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, double b) { return add(a, b); }
Tensor operator+(double a, const Tensor& b) { return add(b, a); }
Tensor operator-(const Tensor& a, double b) { return sub(a, b); }
Tensor operator-(double a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, double b) { return mul(a, b); }
Tensor operator*(double a, const Tensor& b) { return mul(b, a); }
Tensor operator/(const Tensor& a, double b) { return div(a, b); }
Tensor operator/(double a, const Tensor& b) { return div(a, b); }

}  // namespace minidl
