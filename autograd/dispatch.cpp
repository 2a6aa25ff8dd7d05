#include "autograd/dispatch.h"

#include "autograd/error.h"
#include "cpu/kernels.h"
#include "cuda/kernels.h"

namespace minidl {

void check_float(const char* op, const Tensor& t, const char* what) {
  check_defined(op, t, what);
  MINIDL_CHECK(is_floating(t.dtype()), op, ": expected a float32 or float64 ", what, ", got ", t.meta_str());
}

void check_same(const char* op, const Tensor& a, const Tensor& b) {
  check_defined(op, a, "first operand");
  check_defined(op, b, "second operand");
  MINIDL_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch: ", a.meta_str(), " and ", b.meta_str(),
               "; convert one of them with .to(", dtype_name(a.dtype()), ")");
  MINIDL_CHECK(a.device() == b.device(), op, ": tensors are on different devices: ", a.meta_str(), " and ",
               b.meta_str(), "; move one of them with .to(device)");
}

double bytes_of(const Tensor& t) {
  return t.defined() ? static_cast<double>(t.numel()) * static_cast<double>(dtype_size(t.dtype())) : 0.0;
}

Tensor scalar_like(double value, const Tensor& t) {
  // Filled where it is used: on a GPU a one-element fill kernel, not a host-to-device copy (which would
  // wait for the device every time an op takes a scalar).
  Tensor s = Tensor::empty({}, t.dtype(), t.device());
  switch (t.device().type) {
    case DeviceType::CPU: cpu::fill(s, value); break;
    case DeviceType::CUDA: cuda::fill(s, value); break;
  }
  return s;
}

}  // namespace minidl
