// tanh over contiguous arrays, several values per instruction (cpu/attention.h).
//
// glibc's scalar tanhf goes through expm1f, element by element: the joint cross-attention's two tanh of
// 2 million values each took nearly half of W1's CPU step (docs/perf.md). glibc also ships vector
// variants (libmvec: _ZGVdN8v_tanhf for AVX2, _ZGVeN16v_tanhf for AVX-512), accurate to a few ulp, which
// GCC calls for a `#pragma omp simd` loop only when math.h declares them, and it declares them only under
// -ffast-math. So this file, and this file alone, is compiled with -ffast-math (CMakeLists.txt): it holds
// no arithmetic of its own for the flag to reorder, only the calls, and libmvec handles NaN and Inf
// itself. With another C library the loop calls the scalar tanhf: slower, the same contract.
// float64 stays on the scalar tanh, in cpu/attention.cpp, away from the flag.
#include <cmath>

#include "cpu/attention.h"

namespace minidl::cpu {

void tanh_contiguous(const float* x, float* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = tanhf(x[i]);
}

}  // namespace minidl::cpu
