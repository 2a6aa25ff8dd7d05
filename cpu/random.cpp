// CPU fills from the Philox stream (autograd/random.h defines which stream values make which element).
// Work is split by whole Philox blocks, so the result does not depend on the thread count, and nothing
// is staged: each block's values go straight to the elements they define.
#include <array>
#include <cmath>

#include "autograd/error.h"
#include "autograd/functors.h"
#include "autograd/philox.h"
#include "cpu/kernels.h"
#include "cpu/strided_loop.h"

namespace minidl::cpu {
namespace {

using Uniforms = std::array<double, 4>;

// Calls fn(first, u, count) once per Philox block of a draw of n elements: u[k] (k < count) is the uniform [0, 1) of
// element first + k. A block defines 4 float32 uniforms (one value each) or 2 float64 ones (two values
// each); either way both elements of a Box-Muller pair (2m, 2m + 1) fall in the same block.
template <class Fn>
void for_blocks(bool float64, int64_t n, uint64_t seed, uint64_t offset, Fn&& fn) {
  const int per_block = float64 ? 2 : 4;
  const int64_t blocks = (n + per_block - 1) / per_block;
#pragma omp parallel for schedule(static) if (n >= kParallelGrain && !omp_in_parallel())
  for (int64_t b = 0; b < blocks; ++b) {
    const uint64_t ctr = offset + static_cast<uint64_t>(b);
    const philox::Block blk = philox::philox4x32_10(static_cast<uint32_t>(ctr), static_cast<uint32_t>(ctr >> 32), 0u,
                                                    0u, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
    Uniforms u{};
    for (int k = 0; k < per_block; ++k)
      u[k] = float64 ? philox::to_unit_double(blk.v[2 * k], blk.v[2 * k + 1]) : philox::to_unit_float(blk.v[k]);
    const int64_t first = b * per_block;
    fn(first, u, static_cast<int>(std::min<int64_t>(per_block, n - first)));
  }
}

// Runs body<T>(pointer) for a contiguous float tensor.
template <class Body>
void with_float_data(const char* op, const Tensor& out, Body&& body) {
  switch (out.dtype()) {
    case DType::Float32: body(out.data<float>()); return;
    case DType::Float64: body(out.data<double>()); return;
    default: fail(op, ": expected a float32 or float64 tensor, got ", out.meta_str());
  }
}

}  // namespace

void uniform(const Tensor& out, uint64_t seed, uint64_t offset, double lo, double hi) {
  with_float_data("rand", out, [&](auto* o) {
    using T = std::remove_pointer_t<decltype(o)>;
    for_blocks(std::is_same_v<T, double>, out.numel(), seed, offset, [&](int64_t first, const Uniforms& u, int count) {
      // lo + (hi - lo) u can round up to hi in float32 (u just below 1); keep the interval half-open.
      const T top = std::nextafter(static_cast<T>(hi), static_cast<T>(lo));
      for (int k = 0; k < count; ++k) o[first + k] = std::min(static_cast<T>(lo + (hi - lo) * u[k]), top);
    });
  });
}

void normal(const Tensor& out, uint64_t seed, uint64_t offset, double mean, double std) {
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  const int64_t n = out.numel();
  with_float_data("randn", out, [&](auto* o) {
    using T = std::remove_pointer_t<decltype(o)>;
    // The draw covers whole pairs; an odd count drops the last pair's second element.
    for_blocks(std::is_same_v<T, double>, (n + 1) / 2 * 2, seed, offset,
               [&](int64_t first, const Uniforms& u, int count) {
                 for (int k = 0; k + 1 < count; k += 2) {
                   const double r = std::sqrt(-2.0 * std::log(1.0 - u[k]));  // 1 - u lies in (0, 1]: the log is finite
                   const double z[2] = {r * std::cos(kTwoPi * u[k + 1]), r * std::sin(kTwoPi * u[k + 1])};
                   for (int j = 0; j < 2 && first + k + j < n; ++j)
                     o[first + k + j] = static_cast<T>(mean + std * z[j]);
                 }
               });
  });
}

void dropout(const Tensor& x, uint64_t seed, uint64_t offset, double keep, const Tensor& y, const Tensor& mask) {
  with_float_data("dropout", x, [&](auto* xp) {
    using T = std::remove_pointer_t<decltype(xp)>;
    T* yp = y.data<T>();
    T* mp = mask.data<T>();
    const BernoulliDraw<T> draw{keep, static_cast<T>(1.0 / keep)};
    // bernoulli's draw (the float32 rule, one value per element), scaled and applied in the same pass.
    for_blocks(false, x.numel(), seed, offset, [&](int64_t first, const Uniforms& u, int count) {
      for (int k = 0; k < count; ++k) {
        const T m = draw(u[k]);
        mp[first + k] = m;
        yp[first + k] = xp[first + k] * m;
      }
    });
  });
}

void bernoulli(const Tensor& out, uint64_t seed, uint64_t offset, double p) {
  with_float_data("bernoulli", out, [&](auto* o) {
    using T = std::remove_pointer_t<decltype(o)>;
    // Always the float32 rule (one value per element), whatever the output dtype.
    for_blocks(false, out.numel(), seed, offset, [&](int64_t first, const Uniforms& u, int count) {
      const BernoulliDraw<T> draw{p, T(1)};
      for (int k = 0; k < count; ++k) o[first + k] = draw(u[k]);
    });
  });
}

void arange(const Tensor& out, double start, double step) {
  auto sequence = [&](auto* o) {
    const ArangeAt<std::remove_pointer_t<decltype(o)>> at{start, step};
    for (int64_t i = 0; i < out.numel(); ++i) o[i] = at(i);
  };
  switch (out.dtype()) {
    case DType::Float32: sequence(out.data<float>()); break;
    case DType::Float64: sequence(out.data<double>()); break;
    case DType::Int64: sequence(out.data<int64_t>()); break;
    case DType::Bool: fail("arange: bool is not an arithmetic dtype");
  }
}

}  // namespace minidl::cpu
