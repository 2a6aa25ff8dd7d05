// Views: ops that change only shape, strides and offset, sharing the storage. Each is differentiable;
// its backward maps the gradient back to the input's geometry (reshape back, inverse permutation,
// embedding into zeros for narrow/slice, sum_to for expand).
#include <algorithm>
#include <numeric>
#include <optional>

#include "autograd/dispatch.h"
#include "autograd/error.h"
#include "autograd/factories.h"
#include "autograd/node.h"
#include "autograd/ops.h"

namespace minidl {
namespace {

// Replaces one -1 in `shape` by the size that makes numel match; checks the total.
Shape infer_shape(const char* op, const Shape& shape, int64_t numel, const Shape& from) {
  Shape out = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      MINIDL_CHECK(infer < 0, op, ": only one dimension can be -1 in ", shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      MINIDL_CHECK(out[i] >= 0, op, ": negative size ", out[i], " in ", shape_str(shape));
      MINIDL_CHECK(!__builtin_mul_overflow(known, out[i], &known), op, ": shape ", shape_str(shape),
                   " has more elements than a 64-bit count can address");
    }
  }
  if (infer >= 0) {
    MINIDL_CHECK(known != 0 && numel % known == 0, op, ": cannot infer the -1 in ", shape_str(shape), " for ",
                 shape_str(from), " (", numel, " elements)");
    out[infer] = numel / known;
  }
  check_shape(op, out);
  MINIDL_CHECK(numel_of(out) == numel, op, ": shape ", shape_str(shape), " holds ", numel_of(out),
               " elements but the tensor ", shape_str(from), " has ", numel);
  return out;
}

// Strides that let the data of (shape, strides) be read as new_shape without a copy, if any exist.
// Dims are grouped into chunks that are contiguous among themselves; each chunk must map onto whole
// dims of the new shape.
std::optional<Strides> view_strides(const Shape& shape, const Strides& strides, const Shape& new_shape) {
  Strides out(new_shape.size());
  if (shape.empty() || numel_of(shape) == 0) return contiguous_strides(new_shape);
  int64_t view_d = static_cast<int64_t>(new_shape.size()) - 1;
  int64_t chunk_stride = strides.back(), tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= shape[d];
    const bool chunk_ends = d == 0 || (shape[d - 1] != 1 && strides[d - 1] != tensor_numel * chunk_stride);
    if (!chunk_ends) continue;
    while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
      out[view_d] = view_numel * chunk_stride;
      view_numel *= new_shape[view_d];
      --view_d;
    }
    if (view_numel != tensor_numel) return std::nullopt;
    if (d > 0) {
      chunk_stride = strides[d - 1];
      tensor_numel = 1;
      view_numel = 1;
    }
  }
  if (view_d != -1) return std::nullopt;
  return out;
}

// Records a view whose gradient is the incoming gradient reshaped back to the input's shape.
Tensor reshape_view(const char* name, const Tensor& x, const Shape& shape, const Strides& strides) {
  Tensor out = make_view(x, shape, strides, x.offset());
  if (needs_grad(x)) {
    const Shape in_shape = x.shape();
    record(out, name, {x}, [in_shape](const Tensor& g) { return std::vector<Tensor>{g.reshape(in_shape)}; });
  }
  return out;
}

}  // namespace

Tensor Tensor::view(const Shape& shape_in) const {
  check_defined("view", *this, "tensor");
  const Shape s = infer_shape("view", shape_in, numel(), shape());
  const auto st = view_strides(shape(), strides(), s);
  MINIDL_CHECK(st.has_value(), "view: cannot view ", meta_str(), " with strides ", shape_str(strides()), " as ",
               shape_str(s), " without copying; use reshape() (which copies when it must) or contiguous() first");
  return reshape_view("view", *this, s, *st);
}

Tensor Tensor::reshape(const Shape& shape_in) const {
  check_defined("reshape", *this, "tensor");
  const Shape s = infer_shape("reshape", shape_in, numel(), shape());
  if (s == shape()) return *this;
  if (const auto st = view_strides(shape(), strides(), s)) return reshape_view("reshape", *this, s, *st);
  const Tensor c = clone();  // recorded: the gradient flows back through the copy
  return reshape_view("reshape", c, s, contiguous_strides(s));
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  check_defined("permute", *this, "tensor");
  MINIDL_CHECK(static_cast<int64_t>(dims.size()) == dim(), "permute: ", meta_str(), " has ", dim(),
               " dims but the permutation lists ", dims.size());
  std::vector<int64_t> perm(dims.size()), inverse(dims.size());
  std::vector<bool> used(dims.size(), false);
  Shape s(dims.size());
  Strides st(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) {
    const int64_t d = wrap_dim("permute", dims[i], shape());
    MINIDL_CHECK(!used[d], "permute: dim ", d, " appears twice in ", shape_str(dims));
    used[d] = true;
    perm[i] = d;
    inverse[d] = static_cast<int64_t>(i);
    s[i] = size(d);
    st[i] = stride(d);
  }
  Tensor out = make_view(*this, s, st, offset());
  if (needs_grad(*this))
    record(out, "permute", {*this}, [inverse](const Tensor& g) { return std::vector<Tensor>{g.permute(inverse)}; });
  return out;
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  check_defined("transpose", *this, "tensor");
  const int64_t a = wrap_dim("transpose", d0, shape()), b = wrap_dim("transpose", d1, shape());
  std::vector<int64_t> perm(dim());
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[a], perm[b]);
  return permute(perm);
}

Tensor Tensor::t() const {
  check_defined("t", *this, "tensor");
  MINIDL_CHECK(dim() <= 2, "t: expects a tensor of at most 2 dims, got ", meta_str(), "; use transpose(d0, d1)");
  return dim() < 2 ? *this : transpose(0, 1);
}

Tensor Tensor::slice(int64_t dim_in, int64_t start, int64_t end, int64_t step) const {
  check_defined("slice", *this, "tensor");
  const int64_t d = wrap_dim("slice", dim_in, shape());
  MINIDL_CHECK(step > 0, "slice: step must be positive, got ", step);
  const int64_t n = size(d);
  // Python's rules: negative positions count from the end, out-of-range positions are clamped.
  auto clamp_pos = [n](int64_t p) { return std::clamp<int64_t>(p < 0 ? p + n : p, 0, n); };
  const int64_t b = clamp_pos(start), e = std::max(b, clamp_pos(end));
  const int64_t len = e > b ? (e - b - 1) / step + 1 : 0;  // no overflow for a huge step
  Shape s = shape();
  Strides st = strides();
  s[d] = len;
  if (len > 1) st[d] *= step;  // a single element never steps; a huge step must not overflow
  Tensor out = make_view(*this, s, st, offset() + b * stride(d));
  if (needs_grad(*this)) {
    const Shape in_shape = shape();
    const DType dt = dtype();
    const Device dev = device();
    record(out, "slice", {*this}, [in_shape, dt, dev, d, b, e, step](const Tensor& g) {
      Tensor gx = zeros(in_shape, {.dtype = dt, .device = dev});
      gx.slice(d, b, e, step).copy_(g);
      return std::vector<Tensor>{gx};
    });
  }
  return out;
}

Tensor Tensor::narrow(int64_t dim_in, int64_t start, int64_t length) const {
  check_defined("narrow", *this, "tensor");
  const int64_t d = wrap_dim("narrow", dim_in, shape());
  const int64_t n = size(d), b = start < 0 ? start + n : start;
  MINIDL_CHECK(b >= 0 && b <= n && length >= 0 && length <= n - b, "narrow: [", start, ", ", start, " + ", length,
               ") is outside dim ", d, " of ", meta_str(), " (size ", n, ")");
  return slice(d, b, b + length);
}

Tensor Tensor::select(int64_t dim_in, int64_t index) const {
  check_defined("select", *this, "tensor");
  const int64_t d = wrap_dim("select", dim_in, shape());
  const int64_t n = size(d);
  MINIDL_CHECK(index >= -n && index < n, "select: index ", index, " is out of range for dim ", d, " of ", meta_str());
  return narrow(d, index < 0 ? index + n : index, 1).squeeze(d);
}

Tensor Tensor::expand(const Shape& target) const {
  check_defined("expand", *this, "tensor");
  const int64_t nd = static_cast<int64_t>(target.size()), lead = nd - dim();
  MINIDL_CHECK(lead >= 0, "expand: cannot expand ", meta_str(), " to the smaller rank of ", shape_str(target));
  Shape s(nd);
  Strides st(nd);
  for (int64_t i = 0; i < nd; ++i) {
    if (i < lead) {
      MINIDL_CHECK(target[i] >= 0, "expand: new leading dim ", i, " of ", shape_str(target), " cannot be -1");
      s[i] = target[i];
      st[i] = 0;
      continue;
    }
    MINIDL_CHECK(target[i] >= -1, "expand: cannot expand ", meta_str(), " to ", shape_str(target), ": size ", target[i],
                 " is invalid (sizes are >= 0, or -1 to keep a dim)");
    const int64_t have = size(i - lead), want = target[i] == -1 ? have : target[i];
    MINIDL_CHECK(have == want || have == 1, "expand: cannot expand ", meta_str(), " to ", shape_str(target), ": dim ",
                 i, " has size ", have, ", and only size-1 dims can be expanded");
    s[i] = want;
    st[i] = have == want ? stride(i - lead) : 0;
  }
  if (s == shape()) return *this;
  Tensor out = make_view(*this, s, st, offset());
  if (needs_grad(*this)) {
    const Shape in_shape = shape();
    record(out, "expand", {*this}, [in_shape](const Tensor& g) { return std::vector<Tensor>{sum_to(g, in_shape)}; });
  }
  return out;
}

Tensor Tensor::squeeze() const {
  check_defined("squeeze", *this, "tensor");
  Shape s;
  Strides st;
  for (int64_t d = 0; d < dim(); ++d)
    if (size(d) != 1) {
      s.push_back(size(d));
      st.push_back(stride(d));
    }
  if (s.size() == shape().size()) return *this;
  return reshape_view("squeeze", *this, s, st);
}

Tensor Tensor::squeeze(int64_t dim_in) const {
  check_defined("squeeze", *this, "tensor");
  const int64_t d = wrap_dim("squeeze", dim_in, shape(), /*scalar_ok=*/true);
  if (dim() == 0 || size(d) != 1) return *this;
  Shape s = shape();
  Strides st = strides();
  s.erase(s.begin() + d);
  st.erase(st.begin() + d);
  return reshape_view("squeeze", *this, s, st);
}

Tensor Tensor::unsqueeze(int64_t dim_in) const {
  check_defined("unsqueeze", *this, "tensor");
  const int64_t d = wrap_insert_dim("unsqueeze", dim_in, shape());
  Shape s = shape();
  Strides st = strides();
  const int64_t new_stride = d < dim() ? stride(d) * size(d) : 1;
  s.insert(s.begin() + d, 1);
  st.insert(st.begin() + d, new_stride);
  return reshape_view("unsqueeze", *this, s, st);
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  check_defined("flatten", *this, "tensor");
  if (dim() == 0) return reshape({1});
  const int64_t a = wrap_dim("flatten", start_dim, shape()), b = wrap_dim("flatten", end_dim, shape());
  MINIDL_CHECK(a <= b, "flatten: start_dim ", a, " comes after end_dim ", b);
  Shape s(shape().begin(), shape().begin() + a);
  int64_t merged = 1;
  for (int64_t d = a; d <= b; ++d) merged *= size(d);
  s.push_back(merged);
  s.insert(s.end(), shape().begin() + b + 1, shape().end());
  return reshape(s);
}

}  // namespace minidl
