// Elementwise math, written once. Each op is a small functor with a __host__ __device__ call operator;
// the CPU loop (cpu/elementwise.cpp) and the CUDA grid-stride kernel (cuda/elementwise.cu) apply the same
// functor, so the two backends cannot disagree on the formula. This header must stay includable by nvcc.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "autograd/philox.h"  // MINIDL_HD

namespace minidl {

enum class UnaryOp : uint8_t { Neg, Exp, Log, Sqrt, Abs, Tanh, Sigmoid, Relu, LeakyRelu, Clamp };
enum class BinaryOp : uint8_t { Add, Sub, Mul, Div, Pow };
enum class CompareOp : uint8_t { Gt, Ge, Lt, Le, Eq, Ne };
enum class ReduceOp : uint8_t { Sum, Mean, Max, Min };
// Gradient formulas with three operands (g = incoming gradient, a and b the op's inputs) that no
// combination of the binary ops gives in one pass.
enum class TernaryOp : uint8_t { DivGradB, PowGradA, PowGradB };

// The parameters of the parameterised unary ops: LeakyRelu's slope (p0), Clamp's bounds (p0, p1).
struct UnaryParams {
  double p0 = 0.0, p1 = 0.0;
};

// Whether the backward of a unary op reads its output y (true) or its input x (false).
inline bool unary_backward_reads_output(UnaryOp op) {
  return op == UnaryOp::Exp || op == UnaryOp::Sqrt || op == UnaryOp::Tanh || op == UnaryOp::Sigmoid;
}

const char* unary_name(UnaryOp op);
const char* binary_name(BinaryOp op);
const char* compare_name(CompareOp op);

// float and double overloads of the C math functions, callable on host and device alike.
namespace fmath {
MINIDL_HD float exp(float x) { return ::expf(x); }
MINIDL_HD double exp(double x) { return ::exp(x); }
MINIDL_HD float log(float x) { return ::logf(x); }
MINIDL_HD double log(double x) { return ::log(x); }
MINIDL_HD float sqrt(float x) { return ::sqrtf(x); }
MINIDL_HD double sqrt(double x) { return ::sqrt(x); }
MINIDL_HD float tanh(float x) { return ::tanhf(x); }
MINIDL_HD double tanh(double x) { return ::tanh(x); }
MINIDL_HD float pow(float a, float b) { return ::powf(a, b); }
MINIDL_HD double pow(double a, double b) { return ::pow(a, b); }
MINIDL_HD float abs(float x) { return ::fabsf(x); }
MINIDL_HD double abs(double x) { return ::fabs(x); }
}  // namespace fmath

// Converts one value between dtypes (copies, fills, to(dtype)). Float to int64 saturates at the int64
// range and sends NaN to 0: a plain cast of an out-of-range double is undefined behaviour.
template <class To, class From>
MINIDL_HD To convert_value(From v) {
  if constexpr (std::is_same_v<To, bool>) {
    return v != From(0);
  } else if constexpr (std::is_same_v<To, int64_t> && std::is_floating_point_v<From>) {
    if (v != v) return 0;  // NaN
    if (v >= From(9223372036854775807.0)) return INT64_MAX;
    if (v <= From(-9223372036854775808.0)) return INT64_MIN;
    return static_cast<int64_t>(v);
  } else {
    return static_cast<To>(v);
  }
}

// Element i of arange: start + i step in double, rounded once to T (to the nearest integer for int64).
template <class T>
struct ArangeAt {
  double start, step;
  MINIDL_HD T operator()(int64_t i) const {
    const double v = start + static_cast<double>(i) * step;
    if constexpr (std::is_same_v<T, int64_t>)
      return ::llround(v);
    else
      return static_cast<T>(v);
  }
};

// A Bernoulli draw from an element's float32 uniform u (autograd/random.h): `value` with probability p,
// else 0. bernoulli() draws value 1; dropout draws its scaled keep mask, value 1 / (1 - p_drop), so the
// two keep the same elements of the same stream.
template <class T>
struct BernoulliDraw {
  double p;
  T value;
  MINIDL_HD T operator()(double u) const { return u < p ? value : T(0); }
};

// The functor table below is kept one functor per line, so the formulas read as a table.
// clang-format off
// ---- unary forward: y = f(x) ----------------------------------------------------------------------
struct NegF { template <class T> MINIDL_HD T operator()(T x) const { return -x; } };
struct ExpF { template <class T> MINIDL_HD T operator()(T x) const { return fmath::exp(x); } };
struct LogF { template <class T> MINIDL_HD T operator()(T x) const { return fmath::log(x); } };
struct SqrtF { template <class T> MINIDL_HD T operator()(T x) const { return fmath::sqrt(x); } };
struct AbsF { template <class T> MINIDL_HD T operator()(T x) const { return fmath::abs(x); } };
struct TanhF { template <class T> MINIDL_HD T operator()(T x) const { return fmath::tanh(x); } };
struct SigmoidF {
  // Split by sign so exp never overflows: for x < 0, e^x / (1 + e^x) equals 1 / (1 + e^-x).
  template <class T> MINIDL_HD T operator()(T x) const {
    if (x >= T(0)) return T(1) / (T(1) + fmath::exp(-x));
    const T e = fmath::exp(x);
    return e / (T(1) + e);
  }
};
struct ReluF { template <class T> MINIDL_HD T operator()(T x) const { return x > T(0) ? x : T(0); } };
struct LeakyReluF {
  double slope;
  template <class T> MINIDL_HD T operator()(T x) const { return x > T(0) ? x : x * T(slope); }
};
struct ClampF {
  double lo, hi;
  // NaN passes through (both comparisons are false), like torch.clamp.
  template <class T> MINIDL_HD T operator()(T x) const { return x < T(lo) ? T(lo) : (x > T(hi) ? T(hi) : x); }
};

// ---- unary backward: dx = f(s, g), s being x or y (see unary_backward_reads_output) ----------------
struct NegGrad { template <class T> MINIDL_HD T operator()(T, T g) const { return -g; } };
struct ExpGrad { template <class T> MINIDL_HD T operator()(T y, T g) const { return g * y; } };
struct LogGrad { template <class T> MINIDL_HD T operator()(T x, T g) const { return g / x; } };
struct SqrtGrad { template <class T> MINIDL_HD T operator()(T y, T g) const { return g / (T(2) * y); } };
struct AbsGrad {
  template <class T> MINIDL_HD T operator()(T x, T g) const { return x > T(0) ? g : (x < T(0) ? -g : T(0)); }
};
struct TanhGrad { template <class T> MINIDL_HD T operator()(T y, T g) const { return g * (T(1) - y * y); } };
struct SigmoidGrad { template <class T> MINIDL_HD T operator()(T y, T g) const { return g * y * (T(1) - y); } };
struct ReluGrad { template <class T> MINIDL_HD T operator()(T x, T g) const { return x > T(0) ? g : T(0); } };
struct LeakyReluGrad {
  double slope;
  template <class T> MINIDL_HD T operator()(T x, T g) const { return x > T(0) ? g : g * T(slope); }
};
struct ClampGrad {
  double lo, hi;
  template <class T> MINIDL_HD T operator()(T x, T g) const { return (x >= T(lo) && x <= T(hi)) ? g : T(0); }
};

// ---- binary: out = f(a, b) ------------------------------------------------------------------------
struct AddF { template <class T> MINIDL_HD T operator()(T a, T b) const { return a + b; } };
struct SubF { template <class T> MINIDL_HD T operator()(T a, T b) const { return a - b; } };
struct MulF { template <class T> MINIDL_HD T operator()(T a, T b) const { return a * b; } };
struct DivF { template <class T> MINIDL_HD T operator()(T a, T b) const { return a / b; } };
struct PowF { template <class T> MINIDL_HD T operator()(T a, T b) const { return fmath::pow(a, b); } };

struct GtF { template <class T> MINIDL_HD bool operator()(T a, T b) const { return a > b; } };
struct GeF { template <class T> MINIDL_HD bool operator()(T a, T b) const { return a >= b; } };
struct LtF { template <class T> MINIDL_HD bool operator()(T a, T b) const { return a < b; } };
struct LeF { template <class T> MINIDL_HD bool operator()(T a, T b) const { return a <= b; } };
struct EqF { template <class T> MINIDL_HD bool operator()(T a, T b) const { return a == b; } };
struct NeF { template <class T> MINIDL_HD bool operator()(T a, T b) const { return a != b; } };

// ---- ternary gradient formulas: out = f(g, a, b) ---------------------------------------------------
struct DivGradB { template <class T> MINIDL_HD T operator()(T g, T a, T b) const { return -g * a / (b * b); } };
struct PowGradA {
  // b * a^(b-1); at b == 0 the derivative is 0 even where a^(-1) is infinite.
  template <class T> MINIDL_HD T operator()(T g, T a, T b) const {
    return b == T(0) ? T(0) : g * b * fmath::pow(a, b - T(1));
  }
};
struct PowGradB {
  // a^b * log(a); at a == 0 with b >= 0 the limit is 0 (torch makes the same choice).
  template <class T> MINIDL_HD T operator()(T g, T a, T b) const {
    return (a == T(0) && b >= T(0)) ? T(0) : g * fmath::pow(a, b) * fmath::log(a);
  }
};

// clang-format on

// ---- enum -> functor: calls fn(functor) with the functor of `op` ----------------------------------
template <class Fn>
decltype(auto) visit_unary(UnaryOp op, const UnaryParams& p, Fn&& fn) {
  switch (op) {
    case UnaryOp::Neg: return fn(NegF{});
    case UnaryOp::Exp: return fn(ExpF{});
    case UnaryOp::Log: return fn(LogF{});
    case UnaryOp::Sqrt: return fn(SqrtF{});
    case UnaryOp::Abs: return fn(AbsF{});
    case UnaryOp::Tanh: return fn(TanhF{});
    case UnaryOp::Sigmoid: return fn(SigmoidF{});
    case UnaryOp::Relu: return fn(ReluF{});
    case UnaryOp::LeakyRelu: return fn(LeakyReluF{p.p0});
    case UnaryOp::Clamp: return fn(ClampF{p.p0, p.p1});
  }
  return fn(NegF{});  // unreachable: every enumerator is handled above
}

template <class Fn>
decltype(auto) visit_unary_grad(UnaryOp op, const UnaryParams& p, Fn&& fn) {
  switch (op) {
    case UnaryOp::Neg: return fn(NegGrad{});
    case UnaryOp::Exp: return fn(ExpGrad{});
    case UnaryOp::Log: return fn(LogGrad{});
    case UnaryOp::Sqrt: return fn(SqrtGrad{});
    case UnaryOp::Abs: return fn(AbsGrad{});
    case UnaryOp::Tanh: return fn(TanhGrad{});
    case UnaryOp::Sigmoid: return fn(SigmoidGrad{});
    case UnaryOp::Relu: return fn(ReluGrad{});
    case UnaryOp::LeakyRelu: return fn(LeakyReluGrad{p.p0});
    case UnaryOp::Clamp: return fn(ClampGrad{p.p0, p.p1});
  }
  return fn(NegGrad{});
}

template <class Fn>
decltype(auto) visit_binary(BinaryOp op, Fn&& fn) {
  switch (op) {
    case BinaryOp::Add: return fn(AddF{});
    case BinaryOp::Sub: return fn(SubF{});
    case BinaryOp::Mul: return fn(MulF{});
    case BinaryOp::Div: return fn(DivF{});
    case BinaryOp::Pow: return fn(PowF{});
  }
  return fn(AddF{});
}

template <class Fn>
decltype(auto) visit_compare(CompareOp op, Fn&& fn) {
  switch (op) {
    case CompareOp::Gt: return fn(GtF{});
    case CompareOp::Ge: return fn(GeF{});
    case CompareOp::Lt: return fn(LtF{});
    case CompareOp::Le: return fn(LeF{});
    case CompareOp::Eq: return fn(EqF{});
    case CompareOp::Ne: return fn(NeF{});
  }
  return fn(GtF{});
}

template <class Fn>
decltype(auto) visit_ternary(TernaryOp op, Fn&& fn) {
  switch (op) {
    case TernaryOp::DivGradB: return fn(DivGradB{});
    case TernaryOp::PowGradA: return fn(PowGradA{});
    case TernaryOp::PowGradB: return fn(PowGradB{});
  }
  return fn(DivGradB{});
}

// Batch norm's running statistics, PyTorch's convention: running = (1 - momentum) running + momentum stat,
// in double, for the CPU kernel and the CUDA one alike.
MINIDL_HD double running_average(double running, double stat, double momentum) {
  return (1.0 - momentum) * running + momentum * stat;
}

}  // namespace minidl
