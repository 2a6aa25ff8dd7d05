// CPU batch norm and layer norm, forward and backward. Declarations and contracts: cpu/norm.h.
//
// Statistics. Each channel (batch norm) or row (layer norm) is summed by one thread in a fixed order, in
// double, with two passes: the mean first, then the squared deviations from it. On the CPU nothing needs
// merging, which is what Welford's update is for (the GPU splits a channel over many threads and merges
// their partial (count, mean, M2) triples, see DESIGN.md); here two passes are simpler, do no division per
// element, and are at least as accurate: the second pass sums non-negative terms around an accurate mean,
// so the cancellation of the one-pass E[x^2] - E[x]^2 never happens. The cost is one extra read of the
// data, which the output pass has to make anyway.
//
// Backward, per channel of N values (batch norm), with mu, var the batch statistics, r = (var + eps)^-1/2,
// xhat_i = (x_i - mu) r and y_i = w xhat_i + b:
//   dL/db = sum_i g_i                  dL/dw = sum_i g_i xhat_i
// With h_i = dL/dxhat_i = w g_i, and dmu/dx_j = 1/N, dvar/dx_j = 2 (x_j - mu) / N (the term through mu
// vanishes because the deviations sum to 0), so dr/dx_j = -r^3 (x_j - mu) / N = -r^2 xhat_j / N:
//   dxhat_i/dx_j = r (delta_ij - 1/N) + (x_i - mu) dr/dx_j = r (delta_ij - 1/N - xhat_i xhat_j / N)
//   dL/dx_j = sum_i h_i dxhat_i/dx_j = r (h_j - mean(h) - xhat_j mean(h xhat))
//           = w r (g_j - dL/db / N - xhat_j dL/dw / N).
// In evaluation mode mu and var are the running statistics, constants, and dL/dx_j = w r g_j.
// Layer norm is the same computation along a row instead of a channel, except that the weight varies
// along the row, so h_j = w_j g_j stays inside the means:
//   dL/dx_j = r (h_j - mean(h) - xhat_j mean(h xhat)),   dL/dw_j = sum over rows of g_j xhat_j,
//   dL/db_j = sum over rows of g_j.
#include "cpu/norm.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "autograd/functors.h"
#include "cpu/dtype_dispatch.h"
#include "cpu/strided_loop.h"

namespace minidl::cpu {
namespace {

// A [B, C, S] (or [M, N]) strided operand: element (b, c, s) at p[b * s0 + c * s1 + s * s2].
template <class T>
struct Strided3 {
  T* p = nullptr;
  int64_t s0 = 0, s1 = 0, s2 = 0;
  Strided3() = default;
  explicit Strided3(const Tensor& t) {
    if (!t.defined()) return;
    p = t.data<std::remove_const_t<T>>();
    s0 = t.stride(0);
    s1 = t.stride(1);
    s2 = t.dim() > 2 ? t.stride(2) : 0;
  }
};

// A [C] operand that may be absent (weight, bias, running statistics, gradients of the affine parameters).
template <class T>
struct Vec {
  T* p = nullptr;
  int64_t s = 0;
  explicit Vec(const Tensor& t) {
    if (!t.defined()) return;
    p = t.data<std::remove_const_t<T>>();
    s = t.stride(0);
  }
  double get(int64_t i, double absent) const { return p ? static_cast<double>(p[i * s]) : absent; }
};

// Calls fn(value) for the N = B * S values of channel c, in the same order every time.
template <class T, class Fn>
inline void for_channel(const Strided3<const T>& x, int64_t c, int64_t B, int64_t S, Fn&& fn) {
  for (int64_t b = 0; b < B; ++b) {
    const T* row = x.p + b * x.s0 + c * x.s1;
    for (int64_t s = 0; s < S; ++s) fn(row[s * x.s2]);
  }
}

// Mean and biased variance of n values visited by `visit`, two passes in double (see the top of the file).
template <class Visit>
inline void two_pass(int64_t n, Visit&& visit, double& mean, double& m2) {
  double sum = 0;
  visit([&](double v) { sum += v; });
  mean = sum / static_cast<double>(n);
  double ss = 0;
  const double m = mean;
  visit([&](double v) { ss += (v - m) * (v - m); });
  m2 = ss;  // the sum of squared deviations; callers divide by N or N - 1
}

// ---- batch norm ---------------------------------------------------------------------------------------
//
// A channel's sums run over B rows of S values each. They are kept in kLanes partial sums, value s of
// every row going into lane s % kLanes, combined pairwise at the end: an order fixed by the shape, as
// before, but one the compiler can keep in a vector register. A single running double sum cannot be
// vectorised (each addition waits for the one before), and at the tiny model's widths it made batch
// norm a sixth of the training step. Rows with unit stride get loops the compiler vectorises; other
// strides take the same loops with the stride as a variable, and the same lanes, so the same results.

constexpr int kLanes = 8;

struct LaneSum {
  double lane[kLanes] = {};
  // Adds term(s) for s in [0, n), s into lane s % kLanes.
  template <class Term>
  void add(int64_t n, Term&& term) {
    int64_t s = 0;
    for (; s + kLanes <= n; s += kLanes)
#pragma omp simd
      for (int l = 0; l < kLanes; ++l) lane[l] += term(s + l);
    for (int l = 0; s < n; ++s, ++l) lane[l] += term(s);
  }
  // Adds term_a(s) into a and term_b(s) into b in one sweep over s, each exactly as add() would: one read
  // of a row for both of batch norm's backward sums.
  template <class TermA, class TermB>
  static void add_both(int64_t n, LaneSum& a, TermA&& term_a, LaneSum& b, TermB&& term_b) {
    int64_t s = 0;
    for (; s + kLanes <= n; s += kLanes)
#pragma omp simd
      for (int l = 0; l < kLanes; ++l) {
        a.lane[l] += term_a(s + l);
        b.lane[l] += term_b(s + l);
      }
    for (int l = 0; s < n; ++s, ++l) {
      a.lane[l] += term_a(s);
      b.lane[l] += term_b(s);
    }
  }
  double total() const {
    double t[kLanes];
    std::copy(lane, lane + kLanes, t);
    for (int w = kLanes / 2; w > 0; w /= 2)
      for (int l = 0; l < w; ++l) t[l] += t[l + w];
    return t[0];
  }
};

// Runs body(std::true_type) when every operand's rows have unit stride (the loops then index with the
// constant 1, and the compiler vectorises them), else body(std::false_type) (each operand's own stride).
template <class Body>
inline void by_row_stride(bool unit, Body&& body) {
  if (unit)
    body(std::true_type{});
  else
    body(std::false_type{});
}

template <class T>
void batch_norm_forward_typed(const Tensor& x_t, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                              const Tensor& running_var, bool training, double momentum, double eps,
                              const Tensor& out_t, const Tensor& save_mean, const Tensor& save_invstd) {
  const int64_t B = x_t.size(0), C = x_t.size(1), S = x_t.size(2), N = B * S;
  const Strided3<const T> x(x_t);
  const Strided3<T> out(out_t);
  const Vec<const T> w(weight), bi(bias);
  const Vec<T> rm(running_mean), rv(running_var);
  double* sm = save_mean.data<double>();
  double* si = save_invstd.data<double>();
  by_row_stride(x.s2 == 1 && out.s2 == 1, [&](auto unit) {
    const int64_t xs = unit ? 1 : x.s2, os = unit ? 1 : out.s2;
#pragma omp parallel for schedule(static) if (x_t.numel() >= kParallelGrain && !omp_in_parallel())
    for (int64_t c = 0; c < C; ++c) {
      double mean = 0, var = 0;
      if (training) {
        // Two passes: the mean, then the squared deviations from it (see the top of the file).
        LaneSum sum, squares;
        for (int64_t b = 0; b < B; ++b) {
          const T* xr = x.p + b * x.s0 + c * x.s1;
          sum.add(S, [&](int64_t s) { return static_cast<double>(xr[s * xs]); });
        }
        mean = sum.total() / static_cast<double>(N);
        for (int64_t b = 0; b < B; ++b) {
          const T* xr = x.p + b * x.s0 + c * x.s1;
          squares.add(S, [&](int64_t s) {
            const double d = static_cast<double>(xr[s * xs]) - mean;
            return d * d;
          });
        }
        const double m2 = squares.total();
        var = m2 / static_cast<double>(N);
        if (rm.p) {
          const double unbiased = m2 / static_cast<double>(N - 1);
          T& m_ref = rm.p[c * rm.s];
          T& v_ref = rv.p[c * rv.s];
          m_ref = static_cast<T>(running_average(static_cast<double>(m_ref), mean, momentum));
          v_ref = static_cast<T>(running_average(static_cast<double>(v_ref), unbiased, momentum));
        }
      } else {
        mean = rm.get(c, 0.0);
        var = rv.get(c, 1.0);
      }
      const double invstd = 1.0 / std::sqrt(var + eps);
      sm[c] = mean;
      si[c] = invstd;
      const double scale = invstd * w.get(c, 1.0), shift = bi.get(c, 0.0);
      for (int64_t b = 0; b < B; ++b) {
        const T* xr = x.p + b * x.s0 + c * x.s1;
        T* orow = out.p + b * out.s0 + c * out.s1;
#pragma omp simd
        for (int64_t s = 0; s < S; ++s)
          orow[s * os] = static_cast<T>((static_cast<double>(xr[s * xs]) - mean) * scale + shift);
      }
    }
  });
}

template <class T>
void batch_norm_backward_typed(const Tensor& x_t, const Tensor& g_t, const Tensor& weight, const Tensor& save_mean,
                               const Tensor& save_invstd, bool training, const Tensor& gx_t, const Tensor& gweight,
                               const Tensor& gbias) {
  const int64_t B = g_t.size(0), C = g_t.size(1), S = g_t.size(2), N = B * S;
  const Strided3<const T> x(x_t), g(g_t);
  const Strided3<T> gx(gx_t);
  const Vec<const T> w(weight);
  const Vec<T> gw(gweight), gb(gbias);
  const double* sm = save_mean.data<double>();
  const double* si = save_invstd.data<double>();
  const bool need_x = gw.p || (gx.p && training);  // sum(g (x - mu)) is needed
  const bool need_g_sum = gb.p || (gx.p && training);
  by_row_stride((!x.p || x.s2 == 1) && g.s2 == 1 && (!gx.p || gx.s2 == 1), [&](auto unit) {
    const int64_t xs = unit ? 1 : x.s2, gs = unit ? 1 : g.s2, os = unit ? 1 : gx.s2;
#pragma omp parallel for schedule(static) if (g_t.numel() >= kParallelGrain && !omp_in_parallel())
    for (int64_t c = 0; c < C; ++c) {
      const double mean = sm[c], r = si[c], wc = w.get(c, 1.0);
      LaneSum sum_g, sum_gd;  // the sums of g and of g (x - mu)
      for (int64_t b = 0; b < B; ++b) {
        const T* gr = g.p + b * g.s0 + c * g.s1;
        auto term_g = [&](int64_t s) { return static_cast<double>(gr[s * gs]); };
        const T* xr = need_x ? x.p + b * x.s0 + c * x.s1 : nullptr;
        auto term_gd = [&](int64_t s) {
          return static_cast<double>(gr[s * gs]) * (static_cast<double>(xr[s * xs]) - mean);
        };
        if (need_x && need_g_sum)
          LaneSum::add_both(S, sum_g, term_g, sum_gd, term_gd);
        else if (need_x)
          sum_gd.add(S, term_gd);
        else if (need_g_sum)
          sum_g.add(S, term_g);
      }
      const double dbias = sum_g.total(), dweight = sum_gd.total() * r;
      if (gb.p) gb.p[c * gb.s] = static_cast<T>(dbias);
      if (gw.p) gw.p[c * gw.s] = static_cast<T>(dweight);
      if (!gx.p) continue;
      const double k = wc * r;
      const double mean_g = training ? dbias / static_cast<double>(N) : 0.0;
      const double mean_gxhat = training ? dweight / static_cast<double>(N) : 0.0;
      for (int64_t b = 0; b < B; ++b) {
        const T* gr = g.p + b * g.s0 + c * g.s1;
        T* out = gx.p + b * gx.s0 + c * gx.s1;
        if (training) {
          const T* xr = x.p + b * x.s0 + c * x.s1;
#pragma omp simd
          for (int64_t s = 0; s < S; ++s) {
            const double xhat = (static_cast<double>(xr[s * xs]) - mean) * r;
            out[s * os] = static_cast<T>(k * (static_cast<double>(gr[s * gs]) - mean_g - xhat * mean_gxhat));
          }
        } else {
#pragma omp simd
          for (int64_t s = 0; s < S; ++s) out[s * os] = static_cast<T>(k * static_cast<double>(gr[s * gs]));
        }
      }
    }
  });
}

// ---- layer norm ---------------------------------------------------------------------------------------

template <class T>
void layer_norm_forward_typed(const Tensor& x_t, const Tensor& weight, const Tensor& bias, double eps,
                              const Tensor& out_t, const Tensor& save_mean, const Tensor& save_invstd) {
  const int64_t M = x_t.size(0), N = x_t.size(1);
  const Strided3<const T> x(x_t);
  const Strided3<T> out(out_t);
  const Vec<const T> w(weight), bi(bias);
  double* sm = save_mean.data<double>();
  double* si = save_invstd.data<double>();
#pragma omp parallel for schedule(static) if (x_t.numel() >= kParallelGrain && !omp_in_parallel())
  for (int64_t m = 0; m < M; ++m) {
    const T* xr = x.p + m * x.s0;
    T* orow = out.p + m * out.s0;
    double mean = 0, m2 = 0;
    two_pass(
        N,
        [&](auto&& add) {
          for (int64_t j = 0; j < N; ++j) add(static_cast<double>(xr[j * x.s1]));
        },
        mean, m2);
    const double r = 1.0 / std::sqrt(m2 / static_cast<double>(N) + eps);
    sm[m] = mean;
    si[m] = r;
    for (int64_t j = 0; j < N; ++j)
      orow[j * out.s1] =
          static_cast<T>((static_cast<double>(xr[j * x.s1]) - mean) * r * w.get(j, 1.0) + bi.get(j, 0.0));
  }
}

template <class T>
void layer_norm_backward_typed(const Tensor& x_t, const Tensor& g_t, const Tensor& weight, const Tensor& save_mean,
                               const Tensor& save_invstd, const Tensor& gx_t, const Tensor& gweight,
                               const Tensor& gbias) {
  const int64_t M = g_t.size(0), N = g_t.size(1);
  const Strided3<const T> x(x_t), g(g_t);
  const Strided3<T> gx(gx_t);
  const Vec<const T> w(weight);
  const Vec<T> gw(gweight), gb(gbias);
  const double* sm = save_mean.data<double>();
  const double* si = save_invstd.data<double>();
  const bool parallel = g_t.numel() >= kParallelGrain && !omp_in_parallel();

  if (gx.p) {  // one row per iteration: the two row sums, then the row of dx
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t m = 0; m < M; ++m) {
      const T* xr = x.p + m * x.s0;
      const T* gr = g.p + m * g.s0;
      T* out = gx.p + m * gx.s0;
      const double mean = sm[m], r = si[m];
      double sum_h = 0, sum_hxhat = 0;
      for (int64_t j = 0; j < N; ++j) {
        const double h = static_cast<double>(gr[j * g.s1]) * w.get(j, 1.0);
        sum_h += h;
        sum_hxhat += h * (static_cast<double>(xr[j * x.s1]) - mean) * r;
      }
      const double mean_h = sum_h / static_cast<double>(N), mean_hxhat = sum_hxhat / static_cast<double>(N);
      for (int64_t j = 0; j < N; ++j) {
        const double h = static_cast<double>(gr[j * g.s1]) * w.get(j, 1.0);
        const double xhat = (static_cast<double>(xr[j * x.s1]) - mean) * r;
        out[j * gx.s1] = static_cast<T>(r * (h - mean_h - xhat * mean_hxhat));
      }
    }
  }

  if (gw.p || gb.p) {
    // Sums over the rows, for a chunk of columns per iteration: each column's sum runs over the rows in
    // order, whoever computes it. A [M, N] row-major g is read in row pieces of kCols values.
    constexpr int64_t kCols = 64;
    const int64_t chunks = (N + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t ch = 0; ch < chunks; ++ch) {
      const int64_t j0 = ch * kCols, j1 = std::min(N, j0 + kCols);
      double acc_w[kCols] = {}, acc_b[kCols] = {};
      for (int64_t m = 0; m < M; ++m) {
        const T* gr = g.p + m * g.s0;
        if (gw.p) {
          const T* xr = x.p + m * x.s0;
          const double mean = sm[m], r = si[m];
          for (int64_t j = j0; j < j1; ++j)
            acc_w[j - j0] += static_cast<double>(gr[j * g.s1]) * ((static_cast<double>(xr[j * x.s1]) - mean) * r);
        }
        if (gb.p)
          for (int64_t j = j0; j < j1; ++j) acc_b[j - j0] += static_cast<double>(gr[j * g.s1]);
      }
      for (int64_t j = j0; j < j1; ++j) {
        if (gw.p) gw.p[j * gw.s] = static_cast<T>(acc_w[j - j0]);
        if (gb.p) gb.p[j * gb.s] = static_cast<T>(acc_b[j - j0]);
      }
    }
  }
}

}  // namespace

void batch_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                        const Tensor& running_var, bool training, double momentum, double eps, const Tensor& out,
                        const Tensor& save_mean, const Tensor& save_invstd) {
  float_dispatch("batch_norm", x.dtype(), [&](auto tag) {
    batch_norm_forward_typed<decltype(tag)>(x, weight, bias, running_mean, running_var, training, momentum, eps, out,
                                            save_mean, save_invstd);
  });
}

void batch_norm_backward(const Tensor& x, const Tensor& g, const Tensor& weight, const Tensor& save_mean,
                         const Tensor& save_invstd, bool training, const Tensor& gx, const Tensor& gweight,
                         const Tensor& gbias) {
  float_dispatch("batch_norm backward", g.dtype(), [&](auto tag) {
    batch_norm_backward_typed<decltype(tag)>(x, g, weight, save_mean, save_invstd, training, gx, gweight, gbias);
  });
}

void layer_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& out,
                        const Tensor& save_mean, const Tensor& save_invstd) {
  float_dispatch("layer_norm", x.dtype(), [&](auto tag) {
    layer_norm_forward_typed<decltype(tag)>(x, weight, bias, eps, out, save_mean, save_invstd);
  });
}

void layer_norm_backward(const Tensor& x, const Tensor& g, const Tensor& weight, const Tensor& save_mean,
                         const Tensor& save_invstd, const Tensor& gx, const Tensor& gweight, const Tensor& gbias) {
  float_dispatch("layer_norm backward", g.dtype(), [&](auto tag) {
    layer_norm_backward_typed<decltype(tag)>(x, g, weight, save_mean, save_invstd, gx, gweight, gbias);
  });
}

}  // namespace minidl::cpu
