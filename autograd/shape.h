// Shapes, strides and the small pieces of index arithmetic every op needs: broadcasting, dimension
// wrapping (dim -1 is the last one), contiguous strides.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace minidl {

using Shape = std::vector<int64_t>;    // sizes, outermost first
using Strides = std::vector<int64_t>;  // in elements, not bytes

std::string shape_str(const Shape& shape);  // "[2,3]"; a 0-d shape prints as "[]"
int64_t numel_of(const Shape& shape);       // 1 for a 0-d shape; sizes must be non-negative, product < 2^63
Strides contiguous_strides(const Shape& shape);

// NumPy broadcasting: align trailing dimensions; sizes must match or be 1. `op` names the caller for the
// error message ("add: shapes [2,3] and [4] cannot be broadcast: dimension -1 is 3 vs 4").
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b);

// Wraps a possibly negative dim of a tensor of this shape into [0, ndim); out of range is an error naming
// op, the shape and the valid range. A 0-d tensor has no dims, except where the op treats it as one
// element (scalar_ok: reductions, softmax, squeeze accept dim 0 or -1 and get 0).
int64_t wrap_dim(const char* op, int64_t dim, const Shape& shape, bool scalar_ok = false);

// Wraps the position of a dim to insert (unsqueeze, stack): [-(ndim+1), ndim].
int64_t wrap_insert_dim(const char* op, int64_t dim, const Shape& shape);

// Wraps and sorts a list of dims, rejecting repeats. An empty list means "every dim". A 0-d shape
// accepts 0 and -1 and reduces nothing.
std::vector<int64_t> wrap_dims(const char* op, const std::vector<int64_t>& dims, const Shape& shape);

// Checks that a shape a tensor is made with has no negative size and that its element count, times
// element_size bytes, fits in int64; the error names op and the shape ("zeros: negative size -1 in shape
// [2,-1]").
void check_shape(const char* op, const Shape& shape, int64_t element_size = 1);

// a * b, or a minidl::Error naming op when the product of two sizes overflows int64.
int64_t checked_mul(const char* op, int64_t a, int64_t b);

// The shape after reducing `dims` (sorted, wrapped) with or without keeping them as size 1.
Shape reduced_shape(const Shape& shape, const std::vector<int64_t>& dims, bool keepdim);

}  // namespace minidl
