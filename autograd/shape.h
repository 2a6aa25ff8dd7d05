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
int64_t numel_of(const Shape& shape);        // 1 for a 0-d shape
Strides contiguous_strides(const Shape& shape);

// NumPy broadcasting: align trailing dimensions; sizes must match or be 1. `op` names the caller for the
// error message ("add: shapes [2,3] and [4] cannot be broadcast: dimension -1 is 3 vs 4").
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b);

// Wraps a possibly negative dim into [0, ndim); out of range is an error naming op and the valid range.
int64_t wrap_dim(const char* op, int64_t dim, int64_t ndim);

// Wraps and sorts a list of dims, rejecting repeats. An empty list means "every dim".
std::vector<int64_t> wrap_dims(const char* op, const std::vector<int64_t>& dims, int64_t ndim);

// The shape after reducing `dims` (sorted, wrapped) with or without keeping them as size 1.
Shape reduced_shape(const Shape& shape, const std::vector<int64_t>& dims, bool keepdim);

}  // namespace minidl
