// Tensor factories. Fills, ranges and random draws are made on the requested device by its own kernel
// (the Philox stream is the same on both, so a seed gives the same tensor on the CPU and on a GPU);
// tensors from host values are built on the CPU and copied.
#include "autograd/factories.h"

#include <cmath>

#include "autograd/error.h"
#include "cpu/kernels.h"
#include "cuda/kernels.h"

namespace minidl {
namespace {

Tensor finish(Tensor t, const TensorOptions& o) {
  if (o.device != t.device()) t = t.to(o.device);
  if (o.requires_grad) t.requires_grad_(true);
  return t;
}

template <class V>
Tensor from_values(const char* op, const std::vector<V>& values, const Shape& shape_in, const TensorOptions& o) {
  const Shape shape = shape_in.empty() ? Shape{static_cast<int64_t>(values.size())} : shape_in;
  check_shape(op, shape, 8);
  MINIDL_CHECK(numel_of(shape) == static_cast<int64_t>(values.size()), op, ": ", values.size(),
               " values do not fill shape ", shape_str(shape), " (", numel_of(shape), " elements)");
  Tensor src = Tensor::empty(shape, dtype_of<V>());
  V* p = src.data<V>();
  for (size_t i = 0; i < values.size(); ++i) p[i] = values[i];
  Tensor out = Tensor::empty(shape, o.dtype);
  cpu::copy(src, out);
  return finish(out, o);
}

}  // namespace

namespace {

// The named factories share full(); each checks the shape under its own name first.
// An uninitialised tensor on the requested device; a CUDA device that is not there is an error naming
// the factory.
Tensor on_device(const char* op, const Shape& shape, const TensorOptions& o) {
  const std::string unavailable = device_unavailable(o.device);
  MINIDL_CHECK(unavailable.empty(), op, ": cannot make a tensor on ", o.device.str(), ": ", unavailable);
  return Tensor::empty(shape, o.dtype, o.device);
}

Tensor filled(const char* op, const Shape& shape, double value, const TensorOptions& o) {
  check_shape(op, shape, static_cast<int64_t>(dtype_size(o.dtype)));
  Tensor t = on_device(op, shape, o);
  switch (t.device().type) {
    case DeviceType::CPU: cpu::fill(t, value); break;
    case DeviceType::CUDA: cuda::fill(t, value); break;
  }
  return finish(t, o);
}

}  // namespace

Tensor full(const Shape& shape, double value, const TensorOptions& o) { return filled("full", shape, value, o); }
Tensor zeros(const Shape& shape, const TensorOptions& o) { return filled("zeros", shape, 0.0, o); }
Tensor ones(const Shape& shape, const TensorOptions& o) { return filled("ones", shape, 1.0, o); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), {.dtype = t.dtype(), .device = t.device()}); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), {.dtype = t.dtype(), .device = t.device()}); }

Tensor arange(double start, double end, double step, const TensorOptions& o) {
  MINIDL_CHECK(step != 0 && std::isfinite(start) && std::isfinite(end) && std::isfinite(step), "arange: needs finite ",
               "start, end and a non-zero step, got (", start, ", ", end, ", ", step, ")");
  const double count = std::max(0.0, std::ceil((end - start) / step));
  MINIDL_CHECK(count <= 9007199254740992.0, "arange: [", start, ", ", end, ") in steps of ", step, " has ", count,
               " elements, more than a tensor can hold");
  const int64_t n = static_cast<int64_t>(count);
  Tensor t = on_device("arange", {n}, o);
  switch (t.device().type) {
    case DeviceType::CPU: cpu::arange(t, start, step); break;
    case DeviceType::CUDA: cuda::arange(t, start, step); break;
  }
  return finish(t, o);
}
Tensor arange(int64_t end, const TensorOptions& o) { return arange(0.0, static_cast<double>(end), 1.0, o); }

Tensor from_vector(const std::vector<double>& v, const Shape& s, const TensorOptions& o) {
  return from_values("from_vector", v, s, o);
}
Tensor from_vector(std::initializer_list<double> v, const Shape& s, const TensorOptions& o) {
  return from_values("from_vector", std::vector<double>(v), s, o);
}
Tensor from_vector(const std::vector<float>& v, const Shape& s, const TensorOptions& o) {
  return from_values("from_vector", v, s, o);
}
Tensor from_vector(const std::vector<int64_t>& v, const Shape& s, const TensorOptions& o) {
  return from_values("from_vector", v, s, o);
}
Tensor from_vector(const std::vector<bool>& v, const Shape& s, const TensorOptions& o) {
  return from_values("from_vector", v, s, o);
}
Tensor scalar_tensor(double value, const TensorOptions& o) { return full({}, value, o); }

// ---- random -------------------------------------------------------------------------------------
Generator& default_generator() {
  static Generator gen;
  return gen;
}
void manual_seed(uint64_t seed) { default_generator().set_state(seed, 0); }

namespace {

Tensor random_tensor(const char* op, const Shape& shape, const TensorOptions& o) {
  MINIDL_CHECK(is_floating(o.dtype), op, ": random tensors are float32 or float64, not ", dtype_name(o.dtype));
  check_shape(op, shape, static_cast<int64_t>(dtype_size(o.dtype)));
  return on_device(op, shape, o);
}

// How many 32-bit stream values a draw of n elements consumes (autograd/random.h).
uint64_t stream_values(int64_t n, DType dtype, bool normal) {
  const uint64_t per = dtype == kFloat64 ? 2 : 1;
  return per * static_cast<uint64_t>(normal ? (n + 1) / 2 * 2 : n);
}

}  // namespace

Tensor rand(const Shape& shape, const TensorOptions& o, Generator* gen, double lo, double hi) {
  Tensor t = random_tensor("rand", shape, o);
  Generator& g = gen ? *gen : default_generator();
  const auto [seed, offset] = g.reserve(stream_values(t.numel(), o.dtype, false));
  switch (t.device().type) {
    case DeviceType::CPU: cpu::uniform(t, seed, offset, lo, hi); break;
    case DeviceType::CUDA: cuda::uniform(t, seed, offset, lo, hi); break;
  }
  return finish(t, o);
}

Tensor randn(const Shape& shape, const TensorOptions& o, Generator* gen, double mean, double std) {
  Tensor t = random_tensor("randn", shape, o);
  Generator& g = gen ? *gen : default_generator();
  const auto [seed, offset] = g.reserve(stream_values(t.numel(), o.dtype, true));
  switch (t.device().type) {
    case DeviceType::CPU: cpu::normal(t, seed, offset, mean, std); break;
    case DeviceType::CUDA: cuda::normal(t, seed, offset, mean, std); break;
  }
  return finish(t, o);
}

Tensor bernoulli(const Shape& shape, double p, const TensorOptions& o, Generator* gen) {
  MINIDL_CHECK(p >= 0 && p <= 1, "bernoulli: p must lie in [0, 1], got ", p);
  Tensor t = random_tensor("bernoulli", shape, o);
  Generator& g = gen ? *gen : default_generator();
  const auto [seed, offset] = g.reserve(static_cast<uint64_t>(t.numel()));
  switch (t.device().type) {
    case DeviceType::CPU: cpu::bernoulli(t, seed, offset, p); break;
    case DeviceType::CUDA: cuda::bernoulli(t, seed, offset, p); break;
  }
  return finish(t, o);
}

}  // namespace minidl
