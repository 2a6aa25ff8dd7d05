// Front ends of the joining, splitting, padding and indexing ops: cat, stack, split, pad, index_select,
// gather. Kernels: cat and pad are strided copies (cpu/elementwise.cpp copy), index_select and gather are
// in cpu/index.cpp (and cuda/index.cu).
#include "autograd/dispatch.h"
#include "autograd/error.h"
#include "autograd/factories.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "cpu/kernels.h"
#include "cuda/kernels.h"

namespace minidl {
namespace {

void copy_kernel(const Tensor& src, const Tensor& dst) {
  switch (dst.device().type) {
    case DeviceType::CPU: cpu::copy(src, dst); break;
    case DeviceType::CUDA: cuda::copy(src, dst); break;
  }
  count_work(0, 2 * bytes_of(src));
}

// Checks an int64 index tensor against the size of the dim it indexes; names the first bad entry.
void check_index(const char* op, const Tensor& index, const Tensor& x, int64_t dim) {
  check_defined(op, index, "index");
  MINIDL_CHECK(index.dtype() == kInt64, op, ": the index must be int64, got ", index.meta_str());
  MINIDL_CHECK(index.device() == x.device(), op, ": the index is ", index.meta_str(), " but the input is on ",
               x.device().str());
  const int64_t n = x.size(dim);
  const std::vector<int64_t> v = index.values<int64_t>();
  for (size_t i = 0; i < v.size(); ++i)
    MINIDL_CHECK(v[i] >= 0 && v[i] < n, op, ": index ", v[i], " (entry ", i, ") is out of range for dim ", dim, " of ",
                 x.meta_str(), " (valid: 0..", n - 1, ")");
}

}  // namespace

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim_in) {
  const OpScope scope("cat", tensors);
  MINIDL_CHECK(!tensors.empty(), "cat: expects a non-empty list of tensors");
  const Tensor& first = tensors[0];
  check_defined("cat", first, "tensor 0");
  MINIDL_CHECK(first.dim() > 0, "cat: cannot concatenate 0-d tensors; unsqueeze them or use stack()");
  const int64_t dim = wrap_dim("cat", dim_in, first.shape());
  Shape out_shape = first.shape();
  out_shape[dim] = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    check_defined("cat", t, ("tensor " + std::to_string(i) + " of the list").c_str());
    check_same("cat", first, t);
    MINIDL_CHECK(t.dim() == first.dim(), "cat: tensor ", i, " is ", shape_str(t.shape()), " but tensor 0 is ",
                 shape_str(first.shape()), ": all need the same number of dims");
    for (int64_t d = 0; d < t.dim(); ++d)
      MINIDL_CHECK(d == dim || t.size(d) == first.size(d), "cat: tensor ", i, " is ", shape_str(t.shape()),
                   " but tensor 0 is ", shape_str(first.shape()), ": sizes must match except in dim ", dim);
    out_shape[dim] += t.size(dim);
  }
  Tensor out = Tensor::empty(out_shape, first.dtype(), first.device());
  std::vector<int64_t> starts, lengths;
  int64_t at = 0;
  for (const Tensor& t : tensors) {
    copy_kernel(t, out.narrow(dim, at, t.size(dim)));
    starts.push_back(at);
    lengths.push_back(t.size(dim));
    at += t.size(dim);
  }
  bool any = false;
  for (const Tensor& t : tensors) any |= needs_grad(t);
  if (any)
    record(out, "cat", tensors, [dim, starts, lengths](const Tensor& g) {
      std::vector<Tensor> grads;
      for (size_t i = 0; i < starts.size(); ++i) grads.push_back(g.narrow(dim, starts[i], lengths[i]));
      return grads;
    });
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim_in) {
  const OpScope scope("stack", tensors);
  MINIDL_CHECK(!tensors.empty(), "stack: expects a non-empty list of tensors");
  check_defined("stack", tensors[0], "tensor 0");
  const int64_t dim = wrap_insert_dim("stack", dim_in, tensors[0].shape());
  std::vector<Tensor> parts;
  for (size_t i = 0; i < tensors.size(); ++i) {
    check_defined("stack", tensors[i], "a tensor in the list");
    check_same("stack", tensors[0], tensors[i]);
    MINIDL_CHECK(tensors[i].shape() == tensors[0].shape(), "stack: tensor ", i, " is ", shape_str(tensors[i].shape()),
                 " but tensor 0 is ", shape_str(tensors[0].shape()), ": all must have the same shape");
    parts.push_back(tensors[i].unsqueeze(dim));
  }
  return cat(parts, dim);
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim_in) {
  check_defined("split", x);
  const int64_t dim = wrap_dim("split", dim_in, x.shape());
  MINIDL_CHECK(split_size > 0, "split: split_size must be positive, got ", split_size);
  std::vector<int64_t> sizes;
  for (int64_t at = 0; at < x.size(dim); at += split_size) sizes.push_back(std::min(split_size, x.size(dim) - at));
  return split(x, sizes, dim);
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim_in) {
  check_defined("split", x);
  const int64_t dim = wrap_dim("split", dim_in, x.shape());
  int64_t total = 0;
  for (int64_t s : sizes) {
    MINIDL_CHECK(s >= 0, "split: negative piece size ", s);
    MINIDL_CHECK(!__builtin_add_overflow(total, s, &total), "split: piece sizes ", shape_str(sizes),
                 " overflow a 64-bit count");
  }
  MINIDL_CHECK(total == x.size(dim), "split: piece sizes ", shape_str(sizes), " add up to ", total, " but dim ", dim,
               " of ", x.meta_str(), " has ", x.size(dim));
  std::vector<Tensor> out;
  int64_t at = 0;
  for (int64_t s : sizes) {
    out.push_back(x.narrow(dim, at, s));
    at += s;
  }
  return out;
}

Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, double value) {
  const OpScope scope("pad", x);
  check_defined("pad", x);
  MINIDL_CHECK(pads.size() % 2 == 0 && static_cast<int64_t>(pads.size()) <= 2 * x.dim(),
               "pad: expects an even number of ", "amounts, two per padded dim (at most ", 2 * x.dim(), " for ",
               shape_str(x.shape()), "), got ", pads.size());
  Shape out_shape = x.shape();
  // Pair k pads dim (ndim - 1 - k): the list starts at the last dim.
  for (size_t k = 0; k < pads.size() / 2; ++k) {
    const int64_t d = x.dim() - 1 - static_cast<int64_t>(k);
    int64_t grown = 0;
    MINIDL_CHECK(!__builtin_add_overflow(pads[2 * k], pads[2 * k + 1], &grown) &&
                     !__builtin_add_overflow(out_shape[d], grown, &out_shape[d]),
                 "pad: amounts (", pads[2 * k], ", ", pads[2 * k + 1], ") overflow the size of dim ", d, " of ",
                 shape_str(x.shape()));
    MINIDL_CHECK(out_shape[d] >= 0, "pad: amounts (", pads[2 * k], ", ", pads[2 * k + 1], ") leave dim ", d, " of ",
                 shape_str(x.shape()), " with negative size ", out_shape[d]);
  }
  Tensor out = full(out_shape, value, {.dtype = x.dtype(), .device = x.device()});
  // The part of x that survives cropping, and where it lands in out.
  Tensor src = x.detach(), dst = out;
  bool empty = false;
  for (size_t k = 0; k < pads.size() / 2; ++k) {
    const int64_t d = x.dim() - 1 - static_cast<int64_t>(k), lo = pads[2 * k], hi = pads[2 * k + 1];
    const int64_t s0 = std::max<int64_t>(0, -lo), s1 = x.size(d) - std::max<int64_t>(0, -hi);
    if (s1 <= s0) {
      empty = true;
      break;
    }
    src = src.narrow(d, s0, s1 - s0);
    dst = dst.narrow(d, std::max<int64_t>(0, lo), s1 - s0);
  }
  if (!empty) copy_kernel(src, dst);
  if (needs_grad(x)) {
    std::vector<int64_t> back(pads.size());
    for (size_t i = 0; i < pads.size(); ++i) back[i] = -pads[i];
    // Padding's gradient crops what was added and zero-fills what was cropped: pad with the amounts negated.
    record(out, "pad", {x}, [back](const Tensor& g) { return std::vector<Tensor>{pad(g, back, 0.0)}; });
  }
  return out;
}

Tensor index_select(const Tensor& x, int64_t dim_in, const Tensor& index) {
  OpScope scope("index_select", x, index);
  check_float("index_select", x);
  MINIDL_CHECK(x.dim() > 0, "index_select: cannot index a 0-d tensor");
  const int64_t dim = wrap_dim("index_select", dim_in, x.shape());
  check_defined("index_select", index, "index");
  MINIDL_CHECK(index.dim() == 1, "index_select: the index must be 1-D, got ", index.meta_str());
  check_index("index_select", index, x, dim);
  Shape out_shape = x.shape();
  out_shape[dim] = index.size(0);
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  switch (x.device().type) {
    case DeviceType::CPU: cpu::index_select(x, dim, index, out); break;
    case DeviceType::CUDA: cuda::index_select(x, dim, index, out); break;
  }
  scope.work(0, 2 * bytes_of(out) + bytes_of(index));
  if (needs_grad(x)) {
    const SavedTensor si(index);
    const Shape in_shape = x.shape();
    record(out, "index_select", {x}, [si, in_shape, dim](const Tensor& g) {
      Tensor gx = zeros(in_shape, {.dtype = g.dtype(), .device = g.device()});
      switch (g.device().type) {
        case DeviceType::CPU: cpu::index_add(g, dim, si.get("index_select"), gx); break;
        case DeviceType::CUDA: cuda::index_add(g, dim, si.get("index_select"), gx); break;
      }
      count_work(static_cast<double>(g.numel()), 3 * bytes_of(g));
      return std::vector<Tensor>{gx};
    });
  }
  return out;
}

Tensor gather(const Tensor& x, int64_t dim_in, const Tensor& index) {
  OpScope scope("gather", x, index);
  check_float("gather", x);
  MINIDL_CHECK(x.dim() > 0, "gather: cannot index a 0-d tensor");
  const int64_t dim = wrap_dim("gather", dim_in, x.shape());
  check_defined("gather", index, "index");
  MINIDL_CHECK(index.dim() == x.dim(), "gather: the index ", index.meta_str(), " must have as many dims as the input ",
               x.meta_str());
  for (int64_t d = 0; d < x.dim(); ++d)
    MINIDL_CHECK(d == dim || index.size(d) <= x.size(d), "gather: index ", shape_str(index.shape()),
                 " is larger than input ", shape_str(x.shape()), " in dim ", d, " (only dim ", dim, " may be larger)");
  check_index("gather", index, x, dim);
  Tensor out = Tensor::empty(index.shape(), x.dtype(), x.device());
  switch (x.device().type) {
    case DeviceType::CPU: cpu::gather(x, dim, index, out); break;
    case DeviceType::CUDA: cuda::gather(x, dim, index, out); break;
  }
  scope.work(0, 2 * bytes_of(out) + bytes_of(index));
  if (needs_grad(x)) {
    const SavedTensor si(index);
    const Shape in_shape = x.shape();
    record(out, "gather", {x}, [si, in_shape, dim](const Tensor& g) {
      Tensor gx = zeros(in_shape, {.dtype = g.dtype(), .device = g.device()});
      switch (g.device().type) {
        case DeviceType::CPU: cpu::scatter_add(g, dim, si.get("gather"), gx); break;
        case DeviceType::CUDA: cuda::scatter_add(g, dim, si.get("gather"), gx); break;
      }
      count_work(static_cast<double>(g.numel()), 3 * bytes_of(g));
      return std::vector<Tensor>{gx};
    });
  }
  return out;
}

}  // namespace minidl
