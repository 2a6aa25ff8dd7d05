// The N-operand strided loop behind every elementwise CPU kernel, over the merged geometry of
// autograd/strided_geometry.h. The body is called once per run of the innermost dimension with typed
// pointers and element strides; it can test for all-unit strides and take a loop the compiler vectorises.
#pragma once

#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "autograd/strided_geometry.h"

namespace minidl::cpu {

// Below this many elements a loop runs on one thread: starting a parallel region costs more.
inline constexpr int64_t kParallelGrain = 32768;

// Calls body(n, ptrs, strides) for each run of the innermost dim covering elements [begin, end) of the
// loop in row-major order: ptrs[k] points at operand k's first element of the run, strides[k] is its
// element stride along the run.
template <size_t N, class Body>
void run_loop_range(const StridedLoop<N>& L, int64_t begin, int64_t end, Body& body) {
  if (begin >= end) return;
  const size_t nd = L.shape.size();
  const int64_t inner = L.shape.back();
  std::array<int64_t, N> inner_stride;
  for (size_t k = 0; k < N; ++k) inner_stride[k] = L.strides[k].back();
  int64_t i = begin;
  while (i < end) {
    const int64_t col = i % inner;
    const int64_t run = std::min(inner - col, end - i);
    // Address of element i: decompose its row index over the outer dims.
    std::array<char*, N> ptr;
    std::array<int64_t, N> off{};
    int64_t rest = i / inner;
    for (size_t d = nd - 1; d-- > 0;) {
      const int64_t idx = rest % L.shape[d];
      rest /= L.shape[d];
      for (size_t k = 0; k < N; ++k) off[k] += idx * L.strides[k][d];
    }
    for (size_t k = 0; k < N; ++k) ptr[k] = L.base[k] + (off[k] + col * inner_stride[k]) * L.elsize[k];
    body(run, ptr, inner_stride);
    i += run;
  }
}

// Runs the whole loop, split into one contiguous range per thread when it is large enough.
template <size_t N, class Body>
void run_loop(const StridedLoop<N>& L, Body body) {
  if (L.numel == 0) return;
  if (L.numel < kParallelGrain || omp_in_parallel()) {
    run_loop_range(L, 0, L.numel, body);
    return;
  }
#pragma omp parallel
  {
    const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t chunk = (L.numel + nt - 1) / nt;
    const int64_t b = std::min(L.numel, t * chunk), e = std::min(L.numel, b + chunk);
    Body local = body;
    run_loop_range(L, b, e, local);
  }
}

}  // namespace minidl::cpu
