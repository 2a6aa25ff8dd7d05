// CPU elementwise kernels: every one is the strided loop (strided_loop.h) applying a functor from
// autograd/functors.h. When all operands of a run have unit stride the loop body is a plain indexed loop
// that the compiler vectorises; a broadcast scalar operand (stride 0) keeps that fast path too.
#include <cstring>

#include "autograd/error.h"
#include "cpu/dtype_dispatch.h"
#include "cpu/kernels.h"
#include "cpu/strided_loop.h"

namespace minidl::cpu {
namespace {

// out = f(in...) over out's shape, with typed operands Out and In.
template <class Out, class In, class F, class... Ts>
void map(F f, const Tensor& out, const Ts&... in) {
  constexpr size_t N = 1 + sizeof...(Ts);
  auto L = make_loop<N>(out.shape(), {&out, &in...});
  run_loop(L, [f](int64_t n, const std::array<char*, N>& p, const std::array<int64_t, N>& s) {
    Out* o = reinterpret_cast<Out*>(p[0]);
    bool unit = s[0] == 1;
    for (size_t k = 1; k < N; ++k) unit &= s[k] == 1;
    if constexpr (N == 2) {
      const In* a = reinterpret_cast<const In*>(p[1]);
      if (unit) {
        for (int64_t i = 0; i < n; ++i) o[i] = f(a[i]);
      } else {
        for (int64_t i = 0; i < n; ++i) o[i * s[0]] = f(a[i * s[1]]);
      }
    } else if constexpr (N == 3) {
      const In* a = reinterpret_cast<const In*>(p[1]);
      const In* b = reinterpret_cast<const In*>(p[2]);
      if (unit) {
        for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], b[i]);
      } else if (s[0] == 1 && s[1] == 1 && s[2] == 0) {  // tensor op scalar-like row
        const In bv = *b;
        for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], bv);
      } else if (s[0] == 1 && s[1] == 0 && s[2] == 1) {
        const In av = *a;
        for (int64_t i = 0; i < n; ++i) o[i] = f(av, b[i]);
      } else {
        for (int64_t i = 0; i < n; ++i) o[i * s[0]] = f(a[i * s[1]], b[i * s[2]]);
      }
    } else {
      static_assert(N == 4, "map supports one to three inputs");
      const In* a = reinterpret_cast<const In*>(p[1]);
      const In* b = reinterpret_cast<const In*>(p[2]);
      const In* c = reinterpret_cast<const In*>(p[3]);
      if (unit) {
        for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], b[i], c[i]);
      } else {
        for (int64_t i = 0; i < n; ++i) o[i * s[0]] = f(a[i * s[1]], b[i * s[2]], c[i * s[3]]);
      }
    }
  });
}

}  // namespace

void unary(UnaryOp op, const UnaryParams& p, const Tensor& x, const Tensor& out) {
  float_dispatch(unary_name(op), x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    visit_unary(op, p, [&](auto f) { map<T, T>(f, out, x); });
  });
}

void unary_backward(UnaryOp op, const UnaryParams& p, const Tensor& s, const Tensor& g, const Tensor& gx) {
  float_dispatch(unary_name(op), g.dtype(), [&](auto tag) {
    using T = decltype(tag);
    visit_unary_grad(op, p, [&](auto f) { map<T, T>(f, gx, s, g); });
  });
}

void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  float_dispatch(binary_name(op), a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    visit_binary(op, [&](auto f) { map<T, T>(f, out, a, b); });
  });
}

void compare(CompareOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  any_dispatch(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    visit_compare(op, [&](auto f) { map<bool, T>(f, out, a, b); });
  });
}

void ternary(TernaryOp op, const Tensor& g, const Tensor& a, const Tensor& b, const Tensor& out) {
  float_dispatch("ternary", g.dtype(), [&](auto tag) {
    using T = decltype(tag);
    visit_ternary(op, [&](auto f) { map<T, T>(f, out, g, a, b); });
  });
}

void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  any_dispatch(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    auto L = make_loop<4>(out.shape(), {&out, &cond, &a, &b});
    run_loop(L, [](int64_t n, const std::array<char*, 4>& p, const std::array<int64_t, 4>& s) {
      T* o = reinterpret_cast<T*>(p[0]);
      const bool* c = reinterpret_cast<const bool*>(p[1]);
      const T* x = reinterpret_cast<const T*>(p[2]);
      const T* y = reinterpret_cast<const T*>(p[3]);
      for (int64_t i = 0; i < n; ++i) o[i * s[0]] = c[i * s[1]] ? x[i * s[2]] : y[i * s[3]];
    });
  });
}

void copy(const Tensor& src, const Tensor& dst) {
  any_dispatch(dst.dtype(), [&](auto dtag) {
    using D = decltype(dtag);
    any_dispatch(src.dtype(), [&](auto stag) {
      using S = decltype(stag);
      auto L = make_loop<2>(dst.shape(), {&dst, &src});
      run_loop(L, [](int64_t n, const std::array<char*, 2>& p, const std::array<int64_t, 2>& s) {
        D* o = reinterpret_cast<D*>(p[0]);
        const S* a = reinterpret_cast<const S*>(p[1]);
        if constexpr (std::is_same_v<D, S>) {
          if (s[0] == 1 && s[1] == 1) {
            if (o != a) std::memmove(o, a, static_cast<size_t>(n) * sizeof(D));
            return;
          }
        }
        for (int64_t i = 0; i < n; ++i) o[i * s[0]] = convert_value<D>(a[i * s[1]]);
      });
    });
  });
}

void fill(const Tensor& dst, double value) {
  any_dispatch(dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T v = convert_value<T>(value);
    auto L = make_loop<1>(dst.shape(), {&dst});
    run_loop(L, [v](int64_t n, const std::array<char*, 1>& p, const std::array<int64_t, 1>& s) {
      T* o = reinterpret_cast<T*>(p[0]);
      for (int64_t i = 0; i < n; ++i) o[i * s[0]] = v;
    });
  });
}

void axpy(double alpha, const Tensor& x, const Tensor& y) {
  float_dispatch("add_", y.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T al = static_cast<T>(alpha);
    map<T, T>([al](T yv, T xv) { return yv + al * xv; }, y, y, x);
  });
}

}  // namespace minidl::cpu
