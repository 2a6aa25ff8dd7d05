// CPU fills from the Philox stream (autograd/random.h defines which stream values make which element).
// Each thread computes whole Philox blocks, so the result does not depend on the thread count.
#include <cmath>

#include "autograd/error.h"
#include "autograd/philox.h"
#include "cpu/kernels.h"
#include "cpu/strided_loop.h"

namespace minidl::cpu {
namespace {

// Calls fn(j, value) for stream values j in [0, count).
template <class Fn>
void for_stream(uint64_t seed, uint64_t offset, int64_t count, Fn&& fn) {
  const int64_t blocks = (count + 3) / 4;
#pragma omp parallel for schedule(static) if (count >= kParallelGrain && !omp_in_parallel())
  for (int64_t b = 0; b < blocks; ++b) {
    const uint64_t ctr = offset + static_cast<uint64_t>(b);
    const philox::Block blk = philox::philox4x32_10(static_cast<uint32_t>(ctr), static_cast<uint32_t>(ctr >> 32), 0u,
                                                    0u, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
    for (int lane = 0; lane < 4 && b * 4 + lane < count; ++lane) fn(b * 4 + lane, blk.v[lane]);
  }
}

// Uniform [0, 1) of every element into u (double), following the dtype's rule.
std::vector<double> uniforms(DType dtype, int64_t n, uint64_t seed, uint64_t offset) {
  std::vector<double> u(n);
  if (dtype == DType::Float32) {
    for_stream(seed, offset, n, [&](int64_t j, uint32_t v) { u[j] = philox::to_unit_float(v); });
  } else {
    std::vector<uint32_t> raw(2 * n);
    for_stream(seed, offset, 2 * n, [&](int64_t j, uint32_t v) { raw[j] = v; });
    for (int64_t i = 0; i < n; ++i) u[i] = philox::to_unit_double(raw[2 * i], raw[2 * i + 1]);
  }
  return u;
}

template <class Fn>
void write_float(const Tensor& out, Fn&& value_of) {
  const int64_t n = out.numel();
  if (out.dtype() == DType::Float32) {
    float* o = out.data<float>();
    for (int64_t i = 0; i < n; ++i) o[i] = static_cast<float>(value_of(i));
  } else if (out.dtype() == DType::Float64) {
    double* o = out.data<double>();
    for (int64_t i = 0; i < n; ++i) o[i] = value_of(i);
  } else {
    fail("random: expected a float32 or float64 tensor, got ", dtype_name(out.dtype()));
  }
}

}  // namespace

void uniform(const Tensor& out, uint64_t seed, uint64_t offset, double lo, double hi) {
  const auto u = uniforms(out.dtype(), out.numel(), seed, offset);
  write_float(out, [&](int64_t i) { return lo + (hi - lo) * u[i]; });
}

void normal(const Tensor& out, uint64_t seed, uint64_t offset, double mean, double std) {
  const int64_t n = out.numel(), pairs = (n + 1) / 2;
  const auto u = uniforms(out.dtype(), 2 * pairs, seed, offset);
  std::vector<double> z(2 * pairs);
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  for (int64_t m = 0; m < pairs; ++m) {
    const double r = std::sqrt(-2.0 * std::log(1.0 - u[2 * m]));  // 1 - u lies in (0, 1]: log is finite
    z[2 * m] = r * std::cos(kTwoPi * u[2 * m + 1]);
    z[2 * m + 1] = r * std::sin(kTwoPi * u[2 * m + 1]);
  }
  write_float(out, [&](int64_t i) { return mean + std * z[i]; });
}

void bernoulli(const Tensor& out, uint64_t seed, uint64_t offset, double p) {
  std::vector<double> u(out.numel());
  for_stream(seed, offset, out.numel(), [&](int64_t j, uint32_t v) { u[j] = philox::to_unit_float(v); });
  write_float(out, [&](int64_t i) { return u[i] < p ? 1.0 : 0.0; });
}

void arange(const Tensor& out, double start, double step) {
  const int64_t n = out.numel();
  switch (out.dtype()) {
    case DType::Float32: for (int64_t i = 0; i < n; ++i) out.data<float>()[i] = static_cast<float>(start + i * step); break;
    case DType::Float64: for (int64_t i = 0; i < n; ++i) out.data<double>()[i] = start + i * step; break;
    case DType::Int64:
      for (int64_t i = 0; i < n; ++i) out.data<int64_t>()[i] = static_cast<int64_t>(std::llround(start + i * step));
      break;
    case DType::Bool: fail("arange: bool is not an arithmetic dtype");
  }
}

}  // namespace minidl::cpu
