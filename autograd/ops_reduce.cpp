// Front ends of the reductions: sum, mean, var, max, min, argmax, and sum_to (the gradient of a
// broadcast). Kernels: cpu/reduce.cpp (and cuda/reduce.cu).
//
// Every backward here spreads a gradient of the reduced shape back over the input: reshape it to the
// keepdim shape (size 1 where a dim was reduced), then expand (a stride-0 view, no copy).
#include <algorithm>

#include "autograd/dispatch.h"
#include "autograd/error.h"
#include "autograd/factories.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "cpu/kernels.h"
#include "cuda/kernels.h"

namespace minidl {
namespace {

const char* reduce_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return "sum";
    case ReduceOp::Mean: return "mean";
    case ReduceOp::Max: return "max";
    case ReduceOp::Min: return "min";
  }
  return "reduce";
}

// Runs the kernel into a tensor of the keepdim shape.
Tensor reduce_kernel(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims) {
  Tensor out = Tensor::empty(reduced_shape(x.shape(), dims, true), x.dtype(), x.device());
  switch (x.device().type) {
    case DeviceType::CPU: cpu::reduce(op, x, dims, out); break;
    case DeviceType::CUDA: cuda::reduce(op, x, dims, out); break;
  }
  count_work(static_cast<double>(x.numel()), bytes_of(x) + bytes_of(out));
  return out;
}

// The result handed to the user: the keepdim tensor itself, or a view of it without the reduced dims.
Tensor final_shape(const Tensor& kept, const Shape& in_shape, const std::vector<int64_t>& dims, bool keepdim) {
  if (keepdim) return kept;
  const Shape s = reduced_shape(in_shape, dims, false);
  return make_view(kept, s, contiguous_strides(s), 0);
}

// g (the reduced shape, with or without kept dims) spread over in_shape.
Tensor spread(const Tensor& g, const Shape& in_shape, const std::vector<int64_t>& dims) {
  return g.reshape(reduced_shape(in_shape, dims, true)).expand(in_shape);
}

Tensor sum_or_mean(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim) {
  const char* name = reduce_name(op);
  const OpScope scope(name, x);
  check_float(name, x);
  const auto dims = wrap_dims(name, dims_in, x.shape());
  Tensor out = final_shape(reduce_kernel(op, x, dims), x.shape(), dims, keepdim);
  if (needs_grad(x)) {
    const Shape in_shape = x.shape();
    int64_t count = 1;
    for (int64_t d : dims) count *= x.size(d);
    record(out, name, {x}, [op, in_shape, dims, count](const Tensor& g) {
      Tensor gx = spread(g, in_shape, dims);
      return std::vector<Tensor>{op == ReduceOp::Mean ? div(gx, static_cast<double>(count)) : gx};
    });
  }
  return out;
}

Tensor max_or_min(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim) {
  const char* name = reduce_name(op);
  const OpScope scope(name, x);
  check_float(name, x);
  const auto dims = wrap_dims(name, dims_in, x.shape());
  for (int64_t d : dims)
    MINIDL_CHECK(x.size(d) > 0, name, ": cannot reduce ", x.meta_str(), " over dim ", d, ", which has size 0");
  Tensor kept = reduce_kernel(op, x, dims);
  Tensor out = final_shape(kept, x.shape(), dims, keepdim);
  if (needs_grad(x)) {
    const SavedTensor sx(x), sk(kept);
    const Shape in_shape = x.shape();
    record(out, name, {x}, [sx, sk, in_shape, dims, name](const Tensor& g) {
      // Every element equal to the extreme shares the gradient equally (torch.amax's rule).
      const Tensor xv = sx.get(name), kv = sk.get(name);
      const Tensor hit = eq(xv, kv).to(xv.dtype());
      const Tensor share = div(g.reshape(kv.shape()), sum(hit, dims, true));
      return std::vector<Tensor>{mul(hit, share)};
    });
  }
  return out;
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return sum_or_mean(ReduceOp::Sum, x, dims, keepdim);
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return sum_or_mean(ReduceOp::Mean, x, dims, keepdim);
}

Tensor max(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return max_or_min(ReduceOp::Max, x, dims, keepdim);
}

Tensor min(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return max_or_min(ReduceOp::Min, x, dims, keepdim);
}

Tensor var(const Tensor& x, const std::vector<int64_t>& dims_in, int64_t ddof, bool keepdim) {
  OpScope scope("var", x);
  check_float("var", x);
  const auto dims = wrap_dims("var", dims_in, x.shape());
  int64_t count = 1;
  for (int64_t d : dims) count *= x.size(d);
  MINIDL_CHECK(ddof >= 0, "var: ddof ", ddof, " is negative; it must be 0 or more (for ", x.meta_str(), ")");
  MINIDL_CHECK(ddof < count, "var: ddof ", ddof, " needs more than ", ddof, " elements per variance, but ",
               x.meta_str(), " has ", count, " over the reduced dims");
  Tensor kept = Tensor::empty(reduced_shape(x.shape(), dims, true), x.dtype(), x.device());
  switch (x.device().type) {
    case DeviceType::CPU: cpu::var(x, dims, ddof, kept); break;
    case DeviceType::CUDA: cuda::var(x, dims, ddof, kept); break;
  }
  scope.work(2.0 * static_cast<double>(x.numel()), bytes_of(x) + bytes_of(kept));
  Tensor out = final_shape(kept, x.shape(), dims, keepdim);
  if (needs_grad(x)) {
    const SavedTensor sx(x);
    const Shape in_shape = x.shape();
    record(out, "var", {x}, [sx, in_shape, dims, ddof, count](const Tensor& g) {
      // d var / dx_i = 2 (x_i - mean) / (N - ddof)
      const Tensor xv = sx.get("var");
      const Tensor centered = sub(xv, mean(xv, dims, true));
      return std::vector<Tensor>{mul(centered, spread(g, in_shape, dims) * (2.0 / static_cast<double>(count - ddof)))};
    });
  }
  return out;
}

Tensor argmax(const Tensor& x, int64_t dim_in, bool keepdim) {
  OpScope scope("argmax", x);
  check_float("argmax", x);
  const int64_t dim = wrap_dim("argmax", dim_in, x.shape(), /*scalar_ok=*/true);
  const std::vector<int64_t> dims = x.dim() == 0 ? std::vector<int64_t>{} : std::vector<int64_t>{dim};
  MINIDL_CHECK(x.dim() == 0 || x.size(dim) > 0, "argmax: dim ", dim, " of ", x.meta_str(), " is empty");
  Tensor kept = Tensor::empty(reduced_shape(x.shape(), dims, true), kInt64, x.device());
  switch (x.device().type) {
    case DeviceType::CPU: cpu::argmax(x, dim, kept); break;
    case DeviceType::CUDA: cuda::argmax(x, dim, kept); break;
  }
  scope.work(static_cast<double>(x.numel()), bytes_of(x) + bytes_of(kept));
  return final_shape(kept, x.shape(), dims, keepdim);
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  check_defined("sum_to", x);
  if (x.shape() == shape) return x;
  const int64_t lead = x.dim() - static_cast<int64_t>(shape.size());
  MINIDL_CHECK(lead >= 0, "sum_to: cannot sum ", shape_str(x.shape()), " down to the larger rank of ",
               shape_str(shape));
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d < lead) {
      dims.push_back(d);
      continue;
    }
    const int64_t target = shape[d - lead];
    MINIDL_CHECK(target == x.size(d) || target == 1, "sum_to: cannot sum ", shape_str(x.shape()), " down to ",
                 shape_str(shape), ": dim ", d, " is ", x.size(d), " vs ", target);
    if (target == 1 && x.size(d) != 1) dims.push_back(d);
  }
  return sum(x, dims, true).reshape(shape);
}

}  // namespace minidl
