// Checks and helpers shared by the op front ends (autograd/ops_*.cpp); not part of the public API.
#pragma once

#include "autograd/scope.h"
#include "autograd/tensor.h"

namespace minidl {

// The tensor is defined and of a float dtype.
void check_float(const char* op, const Tensor& t, const char* what = "input");
// Both defined, same dtype and same device; the message names both tensors.
void check_same(const char* op, const Tensor& a, const Tensor& b);
// The bytes of t's elements (0 for an undefined tensor), for the profiler's work counts (OpScope::work):
// what a kernel reads or writes once.
double bytes_of(const Tensor& t);
// A 0-d tensor holding `value` with t's dtype and device (the scalar forms of the binary ops use it).
Tensor scalar_like(double value, const Tensor& t);

}  // namespace minidl
