// The CPU kernels (cpu/kernels.h) and the ops built on them against naive references written here:
// elementwise maps over broadcast and non-contiguous operands, the strided loop's dim merging, copies
// between every pair of dtypes, reductions over every subset of dims, softmax, CCC, indexing and its
// backward, and the Philox fills. Every reference reads its inputs through their own strides (never
// through a library copy). The kernels whose summation order could depend on the thread count (the
// reductions) and the random fills are also checked for bitwise-identical results with 1 and 2 OpenMP
// threads.
//
// Tolerances, with u = 2^-24 (float32) or 2^-53 (float64), the unit roundoff of the kernel's type:
//   - +, -, *, / and every pure data movement (copy, max, min, argmax, index_select, gather) are exact:
//     IEEE operations are correctly rounded, so the reference computes the same operation in the same
//     type and compares bit for bit.
//   - transcendental unary ops (exp, log, tanh, sigmoid, sqrt, pow) use libm in the kernel's type; they
//     are compared with the double (long double) value within 8 u relative (a few ulp of libm error plus
//     one or two roundings of the formula).
//   - sums accumulate in double: the result is the double sum (error <= (n-1) 2^-53 sum|x|) rounded once
//     to T (error <= u |result|), so |got - exact| <= u |exact| + (n + 1) 2^-53 sum|x|.
//
// This header holds the helpers shared by the test_*_kernels.cpp files: random inputs, readers through
// strides, the OpenMP thread-count guard and the tolerances. All inline (or templates), so several files can
// include it; they bring it in with `using namespace kernel_test;`.
#pragma once

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "autograd/minidl.h"

namespace kernel_test {

using namespace minidl;

// ---- helpers --------------------------------------------------------------------------------------

// Sets the OpenMP thread count for one scope and restores the previous value after.
class OmpThreads {
 public:
  explicit OmpThreads(int n) : saved_(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~OmpThreads() { omp_set_num_threads(saved_); }
  OmpThreads(const OmpThreads&) = delete;
  OmpThreads& operator=(const OmpThreads&) = delete;

 private:
  int saved_;
};

inline constexpr long double kU53 = 1.1102230246251565404e-16L;  // 2^-53

template <class T>
constexpr long double unit_roundoff() {
  return std::is_same_v<T, float> ? std::ldexp(1.0L, -24) : std::ldexp(1.0L, -53);
}

// A tensor of the given shape (0-d allowed) with values uniform in [lo, hi).
inline Tensor rnd(const Shape& shape, DType dt, uint32_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(static_cast<size_t>(numel_of(shape)));
  for (auto& x : v) x = u(rng);
  if (shape.empty()) return scalar_tensor(v[0], {.dtype = dt});
  return from_vector(v, shape, {.dtype = dt});
}

// Integers in [0, k) as a floating tensor: many ties for max / min / argmax.
inline Tensor ints(const Shape& shape, DType dt, uint32_t seed, int k) {
  std::mt19937 rng(seed);
  std::vector<double> v(static_cast<size_t>(numel_of(shape)));
  for (auto& x : v) x = static_cast<double>(rng() % static_cast<uint32_t>(k));
  return from_vector(v, shape, {.dtype = dt});
}

inline Tensor index_tensor(const std::vector<int64_t>& v) {
  return from_vector(v, {static_cast<int64_t>(v.size())}, {.dtype = kInt64});
}

// Calls f(idx) for every multi-index of `shape` in row-major order (once, with an empty index, for 0-d).
template <class F>
void for_each_index(const Shape& shape, F&& f) {
  const int64_t n = numel_of(shape);
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t k = 0; k < n; ++k) {
    f(static_cast<const std::vector<int64_t>&>(idx));
    for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

// The element of t at idx, through t's strides.
template <class T>
T at(const Tensor& t, const std::vector<int64_t>& idx) {
  int64_t off = 0;
  for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * t.stride(static_cast<int64_t>(d));
  return t.data<T>()[off];
}

// The element of t broadcast (NumPy rules) to a tensor whose index is out_idx.
template <class T>
T bat(const Tensor& t, const std::vector<int64_t>& out_idx) {
  const int64_t lead = static_cast<int64_t>(out_idx.size()) - t.dim();
  int64_t off = 0;
  for (int64_t d = 0; d < t.dim(); ++d) off += (t.size(d) == 1 ? 0 : out_idx[lead + d]) * t.stride(d);
  return t.data<T>()[off];
}

template <class T>
std::vector<T> raw(const Tensor& t) {  // row-major values through the strides (test's own reader)
  std::vector<T> v;
  for_each_index(t.shape(), [&](const auto& i) { v.push_back(at<T>(t, i)); });
  return v;
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

inline std::string idx_str(const std::vector<int64_t>& idx) { return shape_str(idx); }

// Calls f(T{}) for float and double.
template <class F>
void for_float_types(F&& f) {
  {
    SCOPED_TRACE("float32");
    f(float{});
  }
  {
    SCOPED_TRACE("float64");
    f(double{});
  }
}

}  // namespace kernel_test
