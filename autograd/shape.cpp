#include "autograd/shape.h"

#include <algorithm>

#include "autograd/error.h"

namespace minidl {

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

int64_t numel_of(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    MINIDL_CHECK(d >= 0, "shape ", shape_str(shape), ": negative size ", d);
    n = checked_mul("shape", n, d);
  }
  return n;
}

Strides contiguous_strides(const Shape& shape) {
  Strides strides(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    // Saturate: an empty shape such as [0, 2^40, 2^40] passes check_shape, and its strides address nothing.
    if (__builtin_mul_overflow(s, std::max<int64_t>(shape[i], 1), &s)) s = INT64_MAX;
  }
  return strides;
}

Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    // i counts from the right: the trailing dimensions line up.
    const int64_t da = i < a.size() ? a[a.size() - 1 - i] : 1;
    const int64_t db = i < b.size() ? b[b.size() - 1 - i] : 1;
    MINIDL_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", shape_str(a), " and ", shape_str(b),
                 " cannot be broadcast: dimension -", i + 1, " is ", da, " vs ", db,
                 " (sizes must match or one of them must be 1)");
    out[n - 1 - i] = da == 1 ? db : da;
  }
  return out;
}

int64_t wrap_dim(const char* op, int64_t dim, const Shape& shape, bool scalar_ok) {
  const int64_t ndim = static_cast<int64_t>(shape.size());
  if (ndim == 0) {
    MINIDL_CHECK(scalar_ok && (dim == 0 || dim == -1), op, ": dim ", dim, " is out of range: the tensor is 0-d ",
                 "(shape []) and has no dims", scalar_ok ? " (only 0 or -1 name its single element)" : "");
    return 0;
  }
  MINIDL_CHECK(dim >= -ndim && dim < ndim, op, ": dim ", dim, " is out of range for a tensor of shape ",
               shape_str(shape), " (expected ", -ndim, "..", ndim - 1, ")");
  return dim < 0 ? dim + ndim : dim;
}

int64_t wrap_insert_dim(const char* op, int64_t dim, const Shape& shape) {
  const int64_t n = static_cast<int64_t>(shape.size()) + 1;
  MINIDL_CHECK(dim >= -n && dim < n, op, ": dim ", dim, " is out of range for inserting a dim into shape ",
               shape_str(shape), " (expected ", -n, "..", n - 1, ")");
  return dim < 0 ? dim + n : dim;
}

std::vector<int64_t> wrap_dims(const char* op, const std::vector<int64_t>& dims, const Shape& shape) {
  const int64_t ndim = static_cast<int64_t>(shape.size());
  std::vector<int64_t> out;
  if (dims.empty()) {
    for (int64_t d = 0; d < ndim; ++d) out.push_back(d);
    return out;
  }
  for (int64_t d : dims) out.push_back(wrap_dim(op, d, shape, /*scalar_ok=*/true));
  std::sort(out.begin(), out.end());
  for (size_t i = 1; i < out.size(); ++i)
    MINIDL_CHECK(out[i] != out[i - 1], op, ": dim ", out[i], " of shape ", shape_str(shape),
                 " appears more than once in the list of dims ", shape_str(dims));
  if (ndim == 0) out.clear();  // a 0-d tensor reduces over nothing
  return out;
}

void check_shape(const char* op, const Shape& shape, int64_t element_size) {
  int64_t n = element_size;
  for (int64_t d : shape) {
    MINIDL_CHECK(d >= 0, op, ": negative size ", d, " in shape ", shape_str(shape));
    MINIDL_CHECK(!__builtin_mul_overflow(n, d, &n), op, ": shape ", shape_str(shape),
                 " has more elements than a 64-bit count can address");
  }
}

int64_t checked_mul(const char* op, int64_t a, int64_t b) {
  int64_t r = 0;
  MINIDL_CHECK(!__builtin_mul_overflow(a, b, &r), op, ": the size ", a, " x ", b, " overflows a 64-bit element count");
  return r;
}

Shape reduced_shape(const Shape& shape, const std::vector<int64_t>& dims, bool keepdim) {
  Shape out;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    const bool reduced = std::binary_search(dims.begin(), dims.end(), d);
    if (!reduced)
      out.push_back(shape[d]);
    else if (keepdim)
      out.push_back(1);
  }
  return out;
}

}  // namespace minidl
