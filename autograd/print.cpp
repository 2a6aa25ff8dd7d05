// Printing a tensor, in the style of torch: nested brackets, one row per line, columns aligned, large
// tensors elided to their first and last three entries per dim, then shape, dtype, device, grad state.
#include <cmath>
#include <cstdio>
#include <sstream>

#include "autograd/node.h"
#include "autograd/tensor.h"

namespace minidl {
namespace {

constexpr int64_t kElideAbove = 1000;  // more elements than this: elide
constexpr int64_t kEdgeItems = 3;      // entries kept at each end of an elided dim

struct Printer {
  const std::vector<double>& v;
  const Shape& shape;
  DType dtype;
  bool elide;
  bool scientific = false;
  int width = 1;

  const std::vector<int64_t>* ints = nullptr;  // int64 values, exactly (a double holds only 53 bits)

  std::string format(int64_t i) const {
    char buf[64];
    const double x = v[i];
    if (dtype == kBool) return x != 0 ? "true" : "false";
    if (dtype == kInt64)
      std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>((*ints)[i]));
    else if (std::isnan(x))
      std::snprintf(buf, sizeof buf, "nan");
    else if (std::isinf(x))
      std::snprintf(buf, sizeof buf, x > 0 ? "inf" : "-inf");
    else if (scientific)
      std::snprintf(buf, sizeof buf, "%.4e", x);
    else
      std::snprintf(buf, sizeof buf, "%.4f", x);
    return buf;
  }

  // Indices of dim d to show: all of them, or the first and last kEdgeItems with -1 marking the gap.
  std::vector<int64_t> shown(int64_t d) const {
    std::vector<int64_t> idx;
    const int64_t n = shape[d];
    if (!elide || n <= 2 * kEdgeItems) {
      for (int64_t i = 0; i < n; ++i) idx.push_back(i);
    } else {
      for (int64_t i = 0; i < kEdgeItems; ++i) idx.push_back(i);
      idx.push_back(-1);
      for (int64_t i = n - kEdgeItems; i < n; ++i) idx.push_back(i);
    }
    return idx;
  }

  // Column width: the widest of the entries that will be shown (not of every element of a huge tensor).
  void measure(size_t d, int64_t base) {
    if (d == shape.size()) {
      width = std::max(width, static_cast<int>(format(base).size()));
      return;
    }
    int64_t stride = 1;
    for (size_t k = d + 1; k < shape.size(); ++k) stride *= shape[k];
    for (int64_t i : shown(d))
      if (i >= 0) measure(d + 1, base + i * stride);
  }

  void visit(std::ostringstream& os, size_t d, int64_t base, int indent) const {
    if (d == shape.size()) {
      const std::string s = format(base);
      os << std::string(width > static_cast<int>(s.size()) ? width - s.size() : 0, ' ') << s;
      return;
    }
    int64_t stride = 1;
    for (size_t k = d + 1; k < shape.size(); ++k) stride *= shape[k];
    os << "[";
    const auto idx = shown(d);
    for (size_t i = 0; i < idx.size(); ++i) {
      if (i) {
        os << ",";
        if (d + 1 == shape.size())
          os << " ";
        else
          os << std::string(shape.size() - d - 1, '\n') << std::string(indent + 1, ' ');
      }
      if (idx[i] < 0)
        os << "...";
      else
        visit(os, d + 1, base + idx[i] * stride, indent + 1);
    }
    os << "]";
  }
};

}  // namespace

std::string Tensor::str() const {
  if (!defined()) return "tensor(undefined)";
  const std::vector<double> v = values<double>();
  std::vector<int64_t> ints;
  if (dtype() == kInt64) ints = values<int64_t>();
  Printer p{v, shape(), dtype(), numel() > kElideAbove};
  p.ints = &ints;
  if (is_floating(dtype())) {
    double big = 0, small = INFINITY;
    for (double x : v)
      if (std::isfinite(x) && x != 0) {
        big = std::max(big, std::fabs(x));
        small = std::min(small, std::fabs(x));
      }
    p.scientific = big >= 1e5 || (big > 0 && small < 1e-4);
  }
  if (numel() > 0) p.measure(0, 0);
  std::ostringstream os;
  os << "tensor(";
  if (numel() == 0)
    os << "[]";
  else
    p.visit(os, 0, 0, 7);
  os << ", shape=" << shape_str(shape()) << ", dtype=" << dtype_name(dtype());
  if (!device().is_cpu()) os << ", device=" << device().str();
  if (grad_fn())
    os << ", grad_fn=" << grad_fn()->name();
  else if (requires_grad())
    os << ", requires_grad";
  os << ")";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

}  // namespace minidl
