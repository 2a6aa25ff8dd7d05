// From a runtime dtype to a C++ type: fn(T{}) is called with a value of the matching type, so a kernel
// template is instantiated once per dtype it supports and picked with one switch.
#pragma once

#include <cstdint>

#include "autograd/dtype.h"
#include "autograd/error.h"

namespace minidl::cpu {

// float32 -> float, float64 -> double; any other dtype is an error naming op.
template <class Fn>
void float_dispatch(const char* op, DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::Float32: fn(float{}); return;
    case DType::Float64: fn(double{}); return;
    default: fail(op, ": expected a float32 or float64 tensor, got ", dtype_name(dtype));
  }
}

// Every dtype: float, double, int64_t, bool.
template <class Fn>
void any_dispatch(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::Float32: fn(float{}); return;
    case DType::Float64: fn(double{}); return;
    case DType::Int64: fn(int64_t{}); return;
    case DType::Bool: fn(bool{}); return;
  }
}

}  // namespace minidl::cpu
