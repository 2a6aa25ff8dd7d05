// Tensor factories. Random ones draw from a Philox4x32-10 stream (autograd/random.h), so the same seed
// gives the same numbers on every device.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <vector>

#include "autograd/random.h"
#include "autograd/tensor.h"

namespace minidl {

Tensor zeros(const Shape& shape, const TensorOptions& options = {});
Tensor ones(const Shape& shape, const TensorOptions& options = {});
Tensor full(const Shape& shape, double value, const TensorOptions& options = {});
Tensor zeros_like(const Tensor& t);  // same shape, dtype and device; never requires grad
Tensor ones_like(const Tensor& t);
// start, start + step, ... below end (above it for a negative step).
Tensor arange(double start, double end, double step = 1.0, const TensorOptions& options = {});
Tensor arange(int64_t end, const TensorOptions& options = {});

// From values in row-major order; an empty shape means 1-D [values.size()] (use scalar_tensor for a 0-d
// tensor). The values are converted to options.dtype.
Tensor from_vector(const std::vector<double>& values, const Shape& shape = {}, const TensorOptions& options = {});
// A braced list of numbers: from_vector({1, 2.5, 3}, {3}).
Tensor from_vector(std::initializer_list<double> values, const Shape& shape = {}, const TensorOptions& options = {});
Tensor from_vector(const std::vector<float>& values, const Shape& shape = {}, const TensorOptions& options = {});
Tensor from_vector(const std::vector<int64_t>& values, const Shape& shape = {}, const TensorOptions& options = {});
Tensor from_vector(const std::vector<bool>& values, const Shape& shape = {}, const TensorOptions& options = {});
Tensor scalar_tensor(double value, const TensorOptions& options = {});  // a 0-d tensor

// Uniform on [lo, hi), standard normal times std plus mean, and 0/1 draws with P(1) = p. `gen` defaults
// to the global generator (seeded by manual_seed).
Tensor rand(const Shape& shape, const TensorOptions& options = {}, Generator* gen = nullptr, double lo = 0.0,
            double hi = 1.0);
Tensor randn(const Shape& shape, const TensorOptions& options = {}, Generator* gen = nullptr, double mean = 0.0,
             double std = 1.0);
Tensor bernoulli(const Shape& shape, double p, const TensorOptions& options = {}, Generator* gen = nullptr);

}  // namespace minidl
