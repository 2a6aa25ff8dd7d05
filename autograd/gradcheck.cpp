#include "autograd/gradcheck.h"

#include <cmath>
#include <sstream>

#include "autograd/error.h"
#include "autograd/factories.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"

namespace minidl {
namespace {

// Row-major index -> multi-index.
Shape unravel(int64_t n, const Shape& shape) {
  Shape idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = n % shape[d];
    n /= shape[d];
  }
  return idx;
}

// Offset (elements, from data<double>()) of the n-th element of t in row-major order.
int64_t element_offset(const Tensor& t, int64_t n) {
  const Shape idx = unravel(n, t.shape());
  int64_t off = 0;
  for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * t.strides()[d];
  return off;
}

std::vector<double> evaluate(const GradcheckFn& f, const std::vector<Tensor>& inputs) {
  NoGradGuard no_grad;
  const Tensor out = f(inputs);
  check_defined("gradcheck", out, "function output");
  return out.values<double>();
}

}  // namespace

GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs, const GradcheckOptions& opt) {
  bool any = false;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    check_defined("gradcheck", x, "an input");
    if (!x.requires_grad()) continue;
    any = true;
    MINIDL_CHECK(x.dtype() == kFloat64 && x.device().is_cpu(), "gradcheck: input ", i, " is ", x.meta_str(),
                 "; finite differences need float64 on the CPU");
    MINIDL_CHECK(x.is_leaf(), "gradcheck: input ", i, " is not a leaf (it was produced by '", x.grad_fn()->name(),
                 "'); pass the leaf and apply the op inside f");
    MINIDL_CHECK(!x.has_overlap(), "gradcheck: input ", i, " is expanded (", x.meta_str(),
                 "), so one stored element has several indices; pass the unexpanded tensor and expand inside f");
  }
  MINIDL_CHECK(any, "gradcheck: no input requires grad, so there is nothing to check");

  const Tensor out = f(inputs);
  check_defined("gradcheck", out, "function output");
  MINIDL_CHECK(out.dtype() == kFloat64, "gradcheck: f returned ", out.meta_str(), "; it must return float64");
  const int64_t n_out = out.numel();

  // Analytic Jacobian, one output element (one backward) at a time: analytic[i][o * n_i + e].
  std::vector<std::vector<double>> analytic(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].requires_grad()) analytic[i].assign(static_cast<size_t>(n_out * inputs[i].numel()), 0.0);
  if (out.requires_grad()) {
    for (int64_t o = 0; o < n_out; ++o) {
      for (const Tensor& x : inputs)
        if (x.requires_grad()) x.zero_grad();
      Tensor seed = zeros(out.shape(), {.dtype = kFloat64});
      seed.data<double>()[o] = 1.0;
      out.backward(seed, /*retain_graph=*/true);
      for (size_t i = 0; i < inputs.size(); ++i) {
        if (!inputs[i].requires_grad() || !inputs[i].grad().defined()) continue;
        const std::vector<double> g = inputs[i].grad().values<double>();
        std::copy(g.begin(), g.end(), analytic[i].begin() + o * inputs[i].numel());
      }
    }
    for (const Tensor& x : inputs)
      if (x.requires_grad()) x.zero_grad();
  }

  // Numeric Jacobian, one input element at a time, compared as it is computed.
  GradcheckResult r;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!x.requires_grad()) continue;
    double* base = x.data<double>();
    for (int64_t e = 0; e < x.numel(); ++e) {
      double* p = base + element_offset(x, e);
      const double orig = *p;
      *p = orig + opt.eps;
      const std::vector<double> plus = evaluate(f, inputs);
      *p = orig - opt.eps;
      const std::vector<double> minus = evaluate(f, inputs);
      *p = orig;
      for (int64_t o = 0; o < n_out; ++o) {
        const double num = (plus[o] - minus[o]) / (2 * opt.eps);
        const double ana = analytic[i][o * x.numel() + e];
        // An exact match passes even with atol = 0 (no 0 / 0); a NaN on either side gives a NaN ratio,
        // which stays the worst entry once found (every comparison with NaN is false).
        const double diff = std::fabs(ana - num);
        const double ratio = diff == 0 ? 0.0 : diff / (opt.atol + opt.rtol * std::fabs(num));
        ++r.entries;
        const bool worst_is_nan = r.input >= 0 && std::isnan(r.worst_ratio);
        if (r.input < 0 || (!worst_is_nan && !(ratio <= r.worst_ratio))) {
          r.worst_ratio = ratio;
          r.input = static_cast<int64_t>(i);
          r.input_index = unravel(e, x.shape());
          r.output_index = unravel(o, out.shape());
          r.analytic = ana;
          r.numeric = num;
        }
      }
    }
  }
  r.ok = r.worst_ratio <= 1.0;  // false for NaN
  std::ostringstream os;
  os.precision(10);
  os << "gradcheck " << (r.ok ? "passed" : "FAILED") << " (" << r.entries << " entries): worst at input " << r.input
     << " index " << shape_str(r.input_index) << ", output index " << shape_str(r.output_index) << ": analytic "
     << r.analytic << " vs numeric " << r.numeric << ", |diff| " << std::fabs(r.analytic - r.numeric) << " is "
     << r.worst_ratio << " x the tolerance (atol " << opt.atol << " + rtol " << opt.rtol << " |numeric|)";
  r.message = os.str();
  return r;
}

}  // namespace minidl
